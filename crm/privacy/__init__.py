"""PIPL duties towards data subjects: a copy of one person's records (PI-4) and the retention job (PI-3)."""
from flask import Blueprint

bp = Blueprint("privacy", __name__)
# views are imported by create_app (crm.BLUEPRINTS); they import the `crm pi-retention` command
