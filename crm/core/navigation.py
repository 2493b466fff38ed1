"""The navigation bar: each domain registers its entries with the roles that see them."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, get_template_attribute, request
from flask_babel import get_locale, gettext
from flask_login import current_user
from markupsafe import Markup

from crm.i18n import lazy_gettext as _l


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


def _nav_links() -> Markup:
    """The bar's links for this request: Home, then the entries of the user's role, the current page's marked.

    They are the same for every request of one role, language and page, so each combination is written once (by
    the ``nav_link`` macro) and kept by the app: a macro call and a URL per link were a tenth of a firm page's
    template. The combinations are bounded by the roles, languages and endpoints."""
    if not current_user.is_authenticated:
        return Markup("")
    key = (str(current_user.role), str(get_locale()), request.endpoint, request.script_root)
    kept = current_app.extensions.setdefault("crm_nav_links", {})
    links = kept.get(key)
    if links is None:
        nav_link = get_template_attribute("_macros/nav.html", "nav_link")
        links = Markup("").join([nav_link("main.home", gettext("Home"), "house"),
                                 *(nav_link(i.endpoint, i.label, i.icon) for i in _visible(_NAV))])
        kept[key] = links
    return links


def register(app: Flask) -> None:
    app.jinja_env.globals["nav_links"] = _nav_links
    app.jinja_env.globals["profile_items"] = lambda: _visible(_PROFILE)
    app.jinja_env.globals["role_label"] = lambda role: ROLE_LABELS.get(str(role), str(role))
