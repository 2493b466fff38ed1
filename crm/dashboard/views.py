"""Dashboard views."""
from crm.dashboard import bp  # noqa: F401
