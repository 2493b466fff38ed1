"""Performance tooling: the synthetic data generator (`flask --app wsgi crm gen-data`).

Importing this package registers the command on the ``crm`` CLI group.
"""
from crm.perf import commands  # noqa: F401  (registers `crm gen-data`)
