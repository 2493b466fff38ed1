"""Visits blueprint."""
from flask import Blueprint

bp = Blueprint("visits", __name__)

from crm.visits import views  # noqa: E402,F401
