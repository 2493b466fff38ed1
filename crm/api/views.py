"""Api views."""
from crm.api import bp  # noqa: F401
