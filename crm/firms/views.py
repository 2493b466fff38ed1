"""Firms views."""
from crm.firms import bp  # noqa: F401
