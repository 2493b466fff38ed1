"""Imports blueprint."""
from flask import Blueprint

bp = Blueprint("imports", __name__)

from crm.imports import views  # noqa: E402,F401
