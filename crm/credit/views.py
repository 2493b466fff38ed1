"""Credit views."""
from crm.credit import bp  # noqa: F401
