"""Reference-data choices for forms and labels, in the user's language."""
from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from flask_babel import get_locale

from crm.core.models import Area, Industry, IndustrySection, Street, VisitMode, WillingnessLevel
from crm.extensions import db


def _english() -> bool:
    try:
        return get_locale() is not None and get_locale().language == "en"
    except Exception:  # outside a request (CLI)
        return False


def label(item) -> str:
    """The display name of a code-list row (name_zh / name_en) or an Area (name)."""
    if item is None:
        return ""
    if hasattr(item, "name_zh"):
        return item.name_en if _english() and getattr(item, "name_en", "") else item.name_zh
    return getattr(item, "name", str(item))


# The code lists' statements, built once: the tenant scope's hook keeps their scoped forms (crm.core.scoping), so
# a form or filter reads them without building or keying a statement again.
_INDUSTRIES = sa.select(Industry).order_by(Industry.sort_order, Industry.code)
_SECTIONS = sa.select(IndustrySection).order_by(IndustrySection.code)
_AREAS = sa.select(Area).order_by(Area.sort_order, Area.code)
_STREETS = sa.select(Street).order_by(Street.area_code, Street.sort_order, Street.id)
_STREETS_OF_AREA = _STREETS.where(Street.area_code == sa.bindparam("area_code"))
_VISIT_MODES = sa.select(VisitMode).order_by(VisitMode.sort_order)
_WILLINGNESS_LEVELS = sa.select(WillingnessLevel).order_by(WillingnessLevel.rank)


def industries() -> list[Industry]:
    return list(db.session.scalars(_INDUSTRIES))


def sections() -> list[IndustrySection]:
    return list(db.session.scalars(_SECTIONS))


def areas() -> list[Area]:
    return list(db.session.scalars(_AREAS))


def streets(area_code: Optional[str] = None) -> list[Street]:
    if area_code:
        return list(db.session.scalars(_STREETS_OF_AREA, {"area_code": area_code}))
    return list(db.session.scalars(_STREETS))


def visit_modes() -> list[VisitMode]:
    return list(db.session.scalars(_VISIT_MODES))


def willingness_levels() -> list[WillingnessLevel]:
    return list(db.session.scalars(_WILLINGNESS_LEVELS))


def choices(items, empty: Optional[str] = None) -> list[tuple[str, str]]:
    out = [("", empty)] if empty is not None else []
    return out + [(str(getattr(i, "code", getattr(i, "id", ""))), label(i)) for i in items]


def find_code(model, text) -> Optional[str]:
    """The code of a code-list row matching ``text`` by code, Chinese or English name (case-insensitive)."""
    if text is None:
        return None
    key = str(text).strip().casefold()
    if not key:
        return None
    for item in db.session.scalars(sa.select(model)):
        names = [item.code, getattr(item, "name_zh", None), getattr(item, "name_en", None), getattr(item, "name", None)]
        if any(n is not None and str(n).strip().casefold() == key for n in names):
            return item.code
    return None
