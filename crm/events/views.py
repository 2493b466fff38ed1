"""Events views."""
from crm.events import bp  # noqa: F401
