"""Imports views."""
from crm.imports import bp  # noqa: F401
