"""The dashboard's computation of a snapshot miss: the reference SQL with cheaper statements, the same numbers.

:class:`FastSqlBackend` is :class:`~crm.dashboard.metrics.SqlBackend` with three changes to the statements over
visits and check-ins, which are most of the dashboard's cost (a campaign year at scale 1 holds 300,000 visits):

* **The firm table is joined only when a firm filter needs it.** ``visit.firm_id`` is a NOT NULL foreign key
  (enforced on SQLite too, ``PRAGMA foreign_keys=ON``), so the reference's inner join to ``firm`` never drops a
  visit; without a firm filter it only costs one index look-up per visit.
* **A breakdown by a firm attribute (industry, district, street) joins each firm once**, not once per visit: the
  visits are first reduced to one row per firm (its visits, and whether any stated a need), attendances to
  distinct (event, firm) pairs, then joined to ``firm``. A firm has one value of each attribute, so "distinct
  firms per industry" is "per-firm rows per industry" there.
* **Covering indexes** (migration 0010): ``ix_visit_dashboard`` holds every visit column these statements read
  and ``ix_registration_event_firm_checked_in`` the check-in time, so the window's visits and check-ins are read from the
  indexes alone.

Everything else (events, staff at events, credit, SLA, labels, scoping) is the reference's. The exactness test
(``tests/test_dashboard_snapshots.py``) compares this backend, behind the snapshots, with :class:`SqlBackend` for
random filters and scopes after random writes, and ``::test_fast_sql_equals_the_reference_for_every_breakdown``
compares the two directly, every breakdown of many filters, before and after writes.
"""
from __future__ import annotations

import sqlalchemy as sa

from crm.dashboard.metrics import (
    SqlBackend, _Ctx, _event_conds, _firm_conds, _visit_conds,
)
from crm.events.models import Event, Registration
from crm.extensions import db
from crm.firms.models import Firm
from crm.visits.models import Visit

__all__ = ["FastSqlBackend"]

#: the firm attribute behind each firm breakdown
_FIRM_ATTRIBUTE = {"industry": Firm.industry_code, "district": Firm.area_code, "street": Firm.street_id}


def _visit_rows(c: _Ctx, *cols) -> sa.Select:
    """The reference's ``_visits_from``, joining ``firm`` only when a firm filter needs it."""
    stmt = sa.select(*cols).select_from(Visit).where(*_visit_conds(c))
    firm_conds = _firm_conds(c)
    return stmt.join(Firm, Firm.id == Visit.firm_id).where(*firm_conds) if firm_conds else stmt


def _checked_in(*cols) -> sa.Select:
    return (sa.select(*cols).select_from(Registration).join(Event, Event.id == Registration.event_id)
            .where(Registration.checked_in_at.is_not(None)))


def _attendance_rows(c: _Ctx, *cols) -> sa.Select:
    """The reference's ``_attendances_from``, joining ``firm`` only when a firm filter needs it
    (``registration.firm_id`` is a NOT NULL foreign key too)."""
    stmt = _checked_in(*cols).where(*_event_conds(c))
    firm_conds = _firm_conds(c)
    return stmt.join(Firm, Firm.id == Registration.firm_id).where(*firm_conds) if firm_conds else stmt


def _by_firm_attribute(per_firm: sa.Subquery, c: _Ctx, dim: str, *aggregates) -> list:
    """``aggregates`` over one-row-per-firm ``per_firm`` joined to ``firm``, firm filters applied, grouped by the
    dimension's firm attribute; each row ends with the group key."""
    g = _FIRM_ATTRIBUTE[dim]
    stmt = (sa.select(*aggregates, g.label("g")).select_from(per_firm).join(Firm, Firm.id == per_firm.c.firm_id)
            .where(*_firm_conds(c)).group_by(g))
    return db.session.execute(stmt).all()


class FastSqlBackend(SqlBackend):
    """The reference families, with visits read without needless joins (see the module docstring)."""

    visits_from = staticmethod(_visit_rows)
    attendances_from = staticmethod(_attendance_rows)

    def _visits(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            return super()._visits(c, dim)
        need = sa.case((Visit.need_amount_fen > 0, 1), else_=0)
        per_firm = (sa.select(Visit.firm_id.label("firm_id"), sa.func.count(Visit.id).label("n"),
                              sa.func.max(need).label("need"))
                    .where(*_visit_conds(c)).group_by(Visit.firm_id).subquery())
        rows = _by_firm_attribute(per_firm, c, dim, sa.func.sum(per_firm.c.n), sa.func.count(),
                                  sa.func.sum(per_firm.c.need))
        return [({"visits": int(n), "firms_visited": firms, "firms_with_need": int(need_firms)}, g)
                for n, firms, need_firms, g in rows]

    def _reached(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            return super()._reached(c, dim)
        firms = sa.union(sa.select(Visit.firm_id.label("firm_id")).where(*_visit_conds(c)),
                         _checked_in(Registration.firm_id.label("firm_id")).where(*_event_conds(c))).subquery()
        return [({"firms_reached": n}, g) for n, g in _by_firm_attribute(firms, c, dim, sa.func.count())]

    def _attendances(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            return super()._attendances(c, dim)
        pairs = (_checked_in(Registration.event_id, Registration.firm_id.label("firm_id")).where(*_event_conds(c))
                 .distinct().subquery())
        return [({"firm_attendances": n}, g) for n, g in _by_firm_attribute(pairs, c, dim, sa.func.count())]
