"""Organisations, campaigns, targets and the administration pages (/admin)."""
from flask import Blueprint

bp = Blueprint("orgs", __name__)
# views are imported by create_app (crm.orgs.models is imported early by crm.auth.models)
