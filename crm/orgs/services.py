"""Create organisations and campaigns. Services flush, never commit."""
from __future__ import annotations

import re
from datetime import date
from typing import Optional, Sequence

import sqlalchemy as sa
from flask_babel import gettext as _

from crm.core import audit
from crm.core.models import Industry
from crm.extensions import db
from crm.orgs.models import Campaign, Organisation, OrgKind

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class OrgError(ValueError):
    pass


def create_org(*, code: str, name: str, kind: str, parent: Optional[Organisation] = None,
               short_name: str = "") -> Organisation:
    """Create an organisation; a branch must hang under a bank, other kinds have no parent bank."""
    code = (code or "").strip()
    name = (name or "").strip()
    if not CODE_RE.match(code):
        raise OrgError(_("The code must be 1–40 letters, digits, '.', '_' or '-': %(c)s", c=code))
    if not name or len(name) > 100:
        raise OrgError(_("The name is required (at most 100 characters)."))
    try:
        kind = OrgKind(kind)
    except ValueError as exc:
        raise OrgError(_("Unknown organisation kind: %(k)s", k=kind)) from exc
    if db.session.scalar(sa.select(Organisation.id).where(Organisation.code == code)) is not None:
        raise OrgError(_("The organisation code %(c)s is already taken.", c=code))
    if parent is not None and (kind != OrgKind.BANK or parent.kind != OrgKind.BANK):
        raise OrgError(_("Only a branch (kind bank) can have a parent, and the parent must be a bank."))
    org = Organisation(code=code, name=name, kind=kind, parent=parent, short_name=short_name.strip()[:40])
    db.session.add(org)
    db.session.flush()
    audit.record_create(org)
    return org


def create_campaign(*, code: str, name: str, district: str, start_on: date, end_on: date,
                    orgs: Sequence[Organisation], industry_codes: Optional[Sequence[str]] = None) -> Campaign:
    """Create a campaign; the end may not precede the start."""
    code = (code or "").strip()
    if not CODE_RE.match(code):
        raise OrgError(_("The code must be 1–40 letters, digits, '.', '_' or '-': %(c)s", c=code))
    if not (name or "").strip():
        raise OrgError(_("The name is required."))
    if not (district or "").strip():
        raise OrgError(_("The district is required."))
    if end_on < start_on:
        raise OrgError(_("The end date %(e)s is before the start date %(s)s.", e=end_on, s=start_on))
    if db.session.scalar(sa.select(Campaign.id).where(Campaign.code == code)) is not None:
        raise OrgError(_("The campaign code %(c)s is already taken.", c=code))
    q = sa.select(Industry).where(Industry.is_priority.is_(True))
    if industry_codes:
        q = sa.select(Industry).where(Industry.code.in_(industry_codes))
    industries = list(db.session.scalars(q))
    if industry_codes and len(industries) != len(set(industry_codes)):
        unknown = set(industry_codes) - {i.code for i in industries}
        raise OrgError(_("Unknown industry codes: %(c)s", c=", ".join(sorted(unknown))))
    campaign = Campaign(code=code, name=name.strip(), district=district.strip(), start_on=start_on,
                        end_on=end_on, organisations=list(orgs), industries=industries)
    db.session.add(campaign)
    db.session.flush()
    audit.record_create(campaign)
    return campaign
