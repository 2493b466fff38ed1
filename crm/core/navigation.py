"""The navigation bar: each domain registers its entries with the roles that see them."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object
    icon: str
    roles: frozenset
    order: int = 50


_NAV: list[NavItem] = []
_PROFILE: list[NavItem] = []

ROLE_LABELS = {
    "rm": _l("Relationship manager"),
    "bank_manager": _l("Bank campaign lead"),
    "bureau": _l("District bureau"),
    "admin": _l("Administrator"),
}
ALL_ROLES = frozenset(ROLE_LABELS)


def add_nav(endpoint: str, label, icon: str, roles=ALL_ROLES, order: int = 50, profile: bool = False) -> None:
    """Register a navigation entry (idempotent)."""
    target = _PROFILE if profile else _NAV
    if any(i.endpoint == endpoint for i in target):
        return
    target.append(NavItem(endpoint, label, icon, frozenset(roles), order))
    target.sort(key=lambda i: i.order)


def _visible(items):
    if not current_user.is_authenticated:
        return []
    return [i for i in items if current_user.role in i.roles and i.endpoint in current_app.view_functions]


def register(app: Flask) -> None:
    app.jinja_env.globals["nav_items"] = lambda: _visible(_NAV)
    app.jinja_env.globals["profile_items"] = lambda: _visible(_PROFILE)
    app.jinja_env.globals["role_label"] = lambda role: ROLE_LABELS.get(str(role), str(role))
