"""Firms blueprint."""
from flask import Blueprint

bp = Blueprint("firms", __name__)

from crm.firms import views  # noqa: E402,F401
