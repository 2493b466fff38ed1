"""Sign-in, sign-out, profile and roles."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from crm.auth import views  # noqa: E402,F401
