"""Visits views."""
from crm.visits import bp  # noqa: F401
