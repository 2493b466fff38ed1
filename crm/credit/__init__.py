"""Credit blueprint."""
from flask import Blueprint

bp = Blueprint("credit", __name__)

from crm.credit import views  # noqa: E402,F401
