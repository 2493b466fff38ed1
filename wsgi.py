"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""
import os

from crm import create_app

app = create_app(os.environ.get("CRM_CONFIG", "config.ProdConfig"))
