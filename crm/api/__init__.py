"""Api blueprint."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from crm.api import views  # noqa: E402,F401
