"""Credit factories: applications at a given stage, patents, pledges (flushed, not committed)."""
from __future__ import annotations

import itertools
from datetime import date
from typing import Optional

from crm.core.scoping import scope_for, scoped
from crm.core.validators import patent_check_char
from crm.credit import services
from crm.credit.models import CreditApplication, Stage
from crm.extensions import db

_serial = itertools.count(100001)

#: the move that reaches each stage, with what it needs
APPROVAL = services.Decision(approved_fen=500 * 1_000_000, rate_bp=345, discount_bp=15, term_months=12)


def patent_no(year: int = 2020, kind: int = 1, serial: Optional[int] = None) -> str:
    """A valid patent number (canonical, with the ZL prefix)."""
    digits = f"{year}{kind}{(serial or next(_serial)):07d}"
    return f"ZL{digits}.{patent_check_char(digits)}"


def application(world, user=None, *, product: str = "ip_pledge", requested_wan: int = 500,
                accepted_on: date = date(2026, 3, 2), firm=None, term: Optional[int] = 12, **kw) -> CreditApplication:
    user = user or world.rm_a
    data = services.ApplicationData(
        firm=firm or world.firm, product_code=product, requested_fen=requested_wan * 1_000_000, accepted_on=accepted_on,
        campaign_id=world.campaign.id, requested_term_months=term, **kw)
    with scoped(scope_for(user)):
        return services.create_application(user, data, today=date(2026, 11, 26))


def pledge_data(**kw) -> services.PledgeData:
    values = dict(patent_no=patent_no(), title="一种无人机电池管理方法", granted_on=date(2021, 5, 7),
                  expires_on=date(2040, 6, 1), legal_status=services.LEGAL_VALID, owner_name="深圳市共享科技有限公司")
    values.update(kw)
    return services.PledgeData(**values)


def pledge(app, user, **kw):
    with scoped(scope_for(user)):
        return services.add_pledge(app, user, pledge_data(**kw), today=date(2026, 11, 26))


def advance(app, user, to: Stage, on: Optional[date] = None):
    """Move an application along the happy path up to ``to`` (registering pledges when needed)."""
    from crm.credit import stages as sm

    on = on or app.accepted_on
    with scoped(scope_for(user)):
        while app.stage != to:
            options = sm.next_stages(app.stage, app.product)
            target = to if to in options else next(s for s in options if s not in (Stage.DECLINED, Stage.WITHDRAWN))
            decision = None
            if target == Stage.APPROVED:
                decision = APPROVAL
            elif target == Stage.DECLINED:
                decision = services.Decision(decline_reason_code="collateral")
            elif target == Stage.PLEDGE_REGISTERED:
                if not app.pledges:
                    services.add_pledge(app, user, pledge_data(), today=date(2026, 11, 26))
                for p in app.pledges:
                    if p.registered_on is None:
                        services.register_pledge(p, user, f"Y2026{p.id:06d}", on, 300 * 1_000_000,
                                                 today=date(2026, 11, 26))
            services.move(app, target, user, on, decision=decision, today=date(2026, 11, 26))
    db.session.flush()
    return app
