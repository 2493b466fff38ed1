"""Events blueprint."""
from flask import Blueprint

bp = Blueprint("events", __name__)

from crm.events import views  # noqa: E402,F401
