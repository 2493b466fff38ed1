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
* **Staff are read as distinct (user, group) pairs before they are joined to ``user``**: a campaign year's
  visits have a few hundred relationship managers and companions, not 300,000 look-ups of the visit's user.
* **Covering indexes** (migration 0010): ``ix_visit_dashboard`` holds every visit column these statements read
  and ``ix_registration_event_firm_checked_in`` the check-in time, so the window's visits and check-ins are read from the
  indexes alone.

Everything else (events, staff at events, credit, SLA, labels, scoping) is the reference's. The exactness test
(``tests/test_dashboard_snapshots.py``) compares this backend, behind the snapshots, with :class:`SqlBackend` for
random filters and scopes after random writes, and ``::test_fast_sql_equals_the_reference_for_every_breakdown``
compares the two directly, every breakdown of many filters, before and after writes.
"""
from __future__ import annotations

from typing import Optional

import sqlalchemy as sa

from crm.auth.models import User
from crm.credit.models import APPROVED_STAGES, DECIDED_STAGES, CreditApplication, Pledge
from crm.dashboard.metrics import (
    SqlBackend, _apps_from, _bank_user_conds, _checkin_conds, _Ctx, _event_staff_from, _events_from, _few_shards,
    _firm_conds, _group, _grouped_rows, _ip_product_codes, _month, _overrides, _shard_conds, _shard_of,
    _staff_grouped, _tier_days_expr, _visit_conds, _workdays,
)
from crm.events.models import Event, Registration, event_industry, event_organiser, event_staff
from crm.extensions import db
from crm.firms.models import Firm
from crm.orgs.models import Organisation, OrgKind
from crm.visits.models import Visit, visit_companion

__all__ = ["FastSqlBackend", "per_transaction", "forget_view_rows"]

#: in Session.info: the transaction in which PostgreSQL's work_mem was raised
_WORK_MEM_SET = "crm_dashboard_work_mem"
#: in Session.info: rows read for the view being computed (_for_view), by name: the visit, check-in and
#: application rows of its shards (FastSqlBackend._visit_grain, _checkin_grain, _credit_grain), whether its
#: visits are few (_few_visits)
_VIEW_ROWS = "crm_dashboard_view_rows"
_VISIT_GRAIN = "crm_dashboard_visit_grain"
_CHECKIN_GRAIN = "crm_dashboard_checkin_grain"
_FEW_VISITS = "crm_dashboard_few_visits"
_CREDIT_GRAIN = "crm_dashboard_credit_grain"
#: a whole view with at most this many visits counts its breakdowns from its rows (FastSqlBackend.family_rows)
FINE_VISITS = 15_000
#: the families counted from their rows whatever the view (FastSqlBackend.family_rows)
ROWS_ARE_FEW = frozenset({"staff", "approved", "ip_registered", "disbursed", "applied", "sla"})

#: the firm attribute behind each firm breakdown
_FIRM_ATTRIBUTE = {"industry": Firm.industry_code, "district": Firm.area_code, "street": Firm.street_id}


def per_transaction(name: str, key, compute):
    """``compute()``, remembered in the request's Session under ``name`` for its transaction and ``key``."""
    session = db.session()  # the Session itself: get_transaction is not proxied by the scoped session
    session.connection()  # (begins the transaction)
    transaction = session.get_transaction()
    held = session.info.get(name)
    if held is None or held[0] is not transaction or held[1] != key:
        held = (transaction, key, compute())
        session.info[name] = held
    return held[2]


def _for_view(name: str, key, compute):
    """``compute()``, remembered in the request's Session under ``name`` and ``key`` for the view being computed:
    rows that several families count (see :meth:`FastSqlBackend.family_rows`). Never beyond the view
    (:func:`forget_view_rows`): a later view of the same transaction may see rows another worker committed since
    (PostgreSQL reads committed rows at each statement, and so does SQLite between statements here), and its
    parts are filed under the versions it read, so it must read them again."""
    held = db.session().info.setdefault(_VIEW_ROWS, {})
    got = held.get(name)
    if got is None or got[0] != key:
        got = held[name] = (key, compute())
    return got[1]


def forget_view_rows() -> None:
    """Drop the rows :func:`_for_view` kept (a view is computed, or about to be)."""
    db.session().info.pop(_VIEW_ROWS, None)


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
    stmt = _checked_in(*cols).where(*_checkin_conds(c))
    firm_conds = _firm_conds(c)
    return stmt.join(Firm, Firm.id == Registration.firm_id).where(*firm_conds) if firm_conds else stmt


def _by_firm_attribute(per_firm: sa.Subquery, c: _Ctx, dim: str, *aggregates) -> list:
    """``aggregates`` over one-row-per-firm ``per_firm`` joined to ``firm``, firm filters applied, grouped by the
    dimension's firm attribute (and, for partial results, the firm's shard); each row ends with the group keys."""
    stmt = (sa.select(*aggregates).select_from(per_firm).join(Firm, Firm.id == per_firm.c.firm_id)
            .where(*_firm_conds(c)))
    return _grouped_rows(stmt, _FIRM_ATTRIBUTE[dim], _shard_of(c, per_firm.c.firm_id))


class FastSqlBackend(SqlBackend):
    """The reference families, with visits read without needless joins (see the module docstring)."""

    visits_from = staticmethod(_visit_rows)
    attendances_from = staticmethod(_attendance_rows)

    def aggregate(self, c, dim):
        self._tune()
        return super().aggregate(c, dim)

    @staticmethod
    def _tune() -> None:
        """PostgreSQL, for this transaction only (once in it):

        * memory for each sort and hash of these statements: with the default 4 MB a campaign year's distinct
          counts spilled to disk at scale 1 (by month: 260 -> 221 ms);
        * the cost of reading a page out of order, as for storage that seeks as fast as it reads (SSD, or tables
          held in memory, as the dashboard's are): with the default (4, a spinning disk's) the planner scanned a
          bank's quarter of visits (34,000 index entries, 5.6 ms) rather than look up the 140 visits of a
          shard's companions by primary key (0.7 ms);
        * a plan for each run's own values, never the generic plan of a prepared statement, even in a transaction
          that allowed them (``db.generic_plans``; connections keep the statements they run often prepared,
          crm/core/pgconn.py). For these, whose shard ranges and filters change how many rows match, a generic
          plan was twice as slow: the filtered page right after a new visit went from 18 to 42 ms at its
          eleventh visit and stayed there (scale 1, 20 visits in a row)."""
        if db.session.get_bind().dialect.name == "postgresql":
            per_transaction(_WORK_MEM_SET, None, lambda: db.session.execute(sa.text(
                "SELECT set_config('work_mem', '32MB', true), set_config('random_page_cost', '1.1', true), "
                "set_config('plan_cache_mode', 'force_custom_plan', true)")))

    def _visits(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            # COUNT(*), not the reference's COUNT(visit.id) (the same: a primary key is never NULL): without
            # migration 0012's INCLUDE (id), PostgreSQL read every visit row from the table to count the id
            need_firm = sa.case((Visit.need_amount_fen > 0, Visit.firm_id), else_=sa.null())
            stmt = self.visits_from(c, sa.func.count(), sa.func.count(sa.distinct(Visit.firm_id)),
                                    sa.func.count(sa.distinct(need_firm)))
            stmt, g = _group(stmt, dim, date_col=Visit.visited_on, bank_col=Visit.bank_id,
                             branch_col=Visit.branch_id)
            return [({"visits": r[0], "firms_visited": r[1], "firms_with_need": r[2]}, *r[3:])
                    for r in _grouped_rows(stmt, g, _shard_of(c, Visit.firm_id))]
        need = sa.case((Visit.need_amount_fen > 0, 1), else_=0)
        per_firm = (sa.select(Visit.firm_id.label("firm_id"), sa.func.count().label("n"),
                              sa.func.max(need).label("need"))
                    .where(*_visit_conds(c)).group_by(Visit.firm_id).subquery())
        rows = _by_firm_attribute(per_firm, c, dim, sa.func.sum(per_firm.c.n), sa.func.count(),
                                  sa.func.sum(per_firm.c.need))
        return [({"visits": int(n), "firms_visited": firms, "firms_with_need": int(need_firms)}, *keys)
                for n, firms, need_firms, *keys in rows]

    def _reached(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            return super()._reached(c, dim)
        firms = sa.union(sa.select(Visit.firm_id.label("firm_id")).where(*_visit_conds(c)),
                         _checked_in(Registration.firm_id.label("firm_id")).where(*_checkin_conds(c))).subquery()
        return [({"firms_reached": n}, *keys) for n, *keys in _by_firm_attribute(firms, c, dim, sa.func.count())]

    def _attendances(self, c, dim):
        if dim not in _FIRM_ATTRIBUTE:
            return super()._attendances(c, dim)
        pairs = (_checked_in(Registration.event_id, Registration.firm_id.label("firm_id"))
                 .where(*_checkin_conds(c)).distinct().subquery())
        return [({"firm_attendances": n}, *keys) for n, *keys in _by_firm_attribute(pairs, c, dim, sa.func.count())]

    def _staff_selects(self, c, dim):
        """The reference's parts, visits and companions reduced to distinct (user, group) pairs before the join to
        ``user`` (its conditions depend on the user and the group only, so the pairs they keep are the same)."""
        g = {"month": _month(Visit.visited_on), "bank": Visit.bank_id, "branch": Visit.branch_id}.get(dim)
        selects = []
        for user_col, companions in ((Visit.rm_id, False), (visit_companion.c.user_id, True)):
            stmt = self.visits_from(c, user_col.label("user_id"), *([g.label("g")] if g is not None else []))
            if companions:
                stmt = stmt.join(visit_companion, visit_companion.c.visit_id == Visit.id)
            pairs = stmt.where(*_shard_conds(c, user_col, "user")).distinct().subquery()
            part = (sa.select(pairs.c.user_id, *([pairs.c.g] if g is not None else []))
                    .join(User, User.id == pairs.c.user_id).where(*_bank_user_conds(c)))
            selects.append(part.where(User.bank_id == pairs.c.g) if dim == "bank" else part)
        return [*selects, _staff_grouped(_event_staff_from(c), Event.held_on, Event.id, dim)]  # (as it is)

    # -- every breakdown of a few shards at once ---------------------------------------------------------------
    def family_rows(self, family: str, c: _Ctx, dims: tuple) -> dict:
        """{dim: ``self._<family>(c, dim)``} for each of ``dims`` (None: the totals), for partial results by shard.

        The families over visits and check-ins can read their rows once, at the finest grain any of ``dims`` needs
        (each firm's visits per bank, branch, month and firm attribute; each firm's check-ins per event; each
        person's visits per bank, branch and month, and events staffed; each application, once for the five credit
        families), and count every breakdown here: one statement instead of one per breakdown, over the same rows
        and conditions, so the same numbers. Staff and credit always do (``ROWS_ARE_FEW``: a few rows per person,
        12,500 applications in a campaign year at scale 1); visits, firms reached and attendances when the view
        holds a few shards (``ShardSpec.by_rows``: a kept view refreshed after a write, ``crm.dashboard.shards``;
        more stale shards are recomputed by grouped statements restricted to them) or at most
        ``FINE_VISITS`` visits: beyond that, counting a row per firm in Python costs more than one grouped
        statement per breakdown (scale 1, a bank's campaign year of 126,000 visits: 1.4 s against 0.9 s; a quarter
        of one bank's firms of one industry, 7,500: 0.26 s against 0.7 s)."""
        by_dims = getattr(self, f"_{family}_by_dims", None)
        if by_dims is not None and c.shards is not None and (
                family in ROWS_ARE_FEW or (_few_shards(c) and c.shards.by_rows) or self._few_visits(c)):
            return by_dims(c, dims)
        return {dim: getattr(self, f"_{family}")(c, dim) for dim in dims}

    def _few_visits(self, c) -> bool:
        """Whether the view's visits (all shards) are at most ``FINE_VISITS`` (counted up to one more, once)."""
        def count():
            first = self.visits_from(c, sa.literal(1)).limit(FINE_VISITS + 1).subquery()
            return db.session.scalar(sa.select(sa.func.count()).select_from(first)) <= FINE_VISITS

        return _for_view(_FEW_VISITS, c, count)

    def _visit_grain(self, c, attrs: tuple, new: Optional[list] = None) -> list:
        """(firm, bank, branch, month, *its ``attrs``, visits, any with a need) for the visits of ``c``'s shards,
        once for the visits and firms-reached families; with ``new`` (visit ids), whether the row's visits are
        among them before the two counts (a row for each)."""
        def read():
            keys = [Visit.firm_id, Visit.bank_id, Visit.branch_id, _month(Visit.visited_on),
                    *(_FIRM_ATTRIBUTE[dim] for dim in attrs)]
            if new is not None:
                keys.append(sa.case((Visit.id.in_(new), 1), else_=0))
            need = sa.case((Visit.need_amount_fen > 0, 1), else_=0)
            stmt = self.visits_from(c, *keys, sa.func.count(), sa.func.max(need))
            return db.session.execute(_with_firm(stmt, c, attrs, Visit.firm_id).group_by(*keys)).all()

        return _for_view(_VISIT_GRAIN, (c, attrs, new), read)

    def _visits_by_dims(self, c, dims):
        attrs = tuple(dim for dim in dims if dim in _FIRM_ATTRIBUTE)
        return count_visits(self._visit_grain(c, attrs), dims, attrs, c.shards.firm_width)

    def _reached_by_dims(self, c, dims):
        attrs = tuple(dim for dim in dims if dim in _FIRM_ATTRIBUTE)
        return self.count_reached(c, dims, attrs, self._visit_grain(c, attrs))

    def count_reached(self, c, dims, attrs: tuple, visit_rows: list) -> dict:
        """Firms reached by ``dims`` from rows of :meth:`_visit_grain` and the check-ins of ``c``'s shards."""
        found = _Distinct(dims)
        width = c.shards.firm_width
        for firm_id, bank, branch, month, *rest in visit_rows:
            values = rest[:len(attrs)]
            at = {"bank": (bank,), "branch": (branch,), "month": (month,), **{d: (v,) for d, v in zip(attrs, values)}}
            found.add(firm_id, firm_id // width, at)
        self._add_checkins(found, c, dims, attrs, lambda firm_id, event_id: firm_id)
        return found.rows("firms_reached")

    def _checkin_grain(self, c, attrs: tuple) -> list:
        """(firm, event, month held, *the firm's ``attrs``) for the check-ins of ``c``'s shards, once for the
        firms-reached and attendances families."""
        return _for_view(_CHECKIN_GRAIN, (c, attrs), lambda: db.session.execute(_with_firm(
            self.attendances_from(c, Registration.firm_id, Registration.event_id, _month(Event.held_on),
                                  *(_FIRM_ATTRIBUTE[dim] for dim in attrs)),
            c, attrs, Registration.firm_id).distinct()).all())

    def _add_checkins(self, found: "_Distinct", c, dims, attrs: tuple, member) -> None:
        """Count ``member(firm, event)`` of each check-in in its groups: the event's organisers by bank and branch
        (the reference's outer join), its month, the firm's attributes."""
        rows = self._checkin_grain(c, attrs)
        organisers = self._organisers({row[1] for row in rows}, dims)
        width = c.shards.firm_width
        for firm_id, event_id, month, *values in rows:
            banks, branches = organisers.get(event_id, _NO_ORGANISER)
            at = {"bank": banks, "branch": branches, "month": (month,), **{d: (v,) for d, v in zip(attrs, values)}}
            found.add(member(firm_id, event_id), firm_id // width, at)

    def _attendances_by_dims(self, c, dims):
        """Firm attendances: distinct (event, firm) pairs of the check-ins."""
        found = _Distinct(dims)
        self._add_checkins(found, c, dims, tuple(dim for dim in dims if dim in _FIRM_ATTRIBUTE),
                           lambda firm_id, event_id: (event_id, firm_id))
        return found.rows("firm_attendances")

    def _events_by_dims(self, c, dims):
        """Events held by each of ``dims`` from one read of the view's events (with their industry tags when a
        breakdown is by industry; an untagged event in the None group, as the reference's outer join) and of their
        organisers (``_organisers``): a few thousand rows a campaign year at scale 1, against one statement per
        breakdown. Shard 0: the family is computed whole (``crm.dashboard.shards.WHOLE_FAMILIES``)."""
        tag = event_industry.alias()
        by_industry = "industry" in dims
        stmt = _events_from(c, Event.id, _month(Event.held_on), *([tag.c.industry_code] if by_industry else []))
        if by_industry:
            stmt = stmt.outerjoin(tag, tag.c.event_id == Event.id)
        rows = db.session.execute(stmt).all()
        # (their organisers found by the same conditions: thousands of ids as parameters cost PostgreSQL 11 ms)
        organisers = self._organisers({row[0] for row in rows}, dims, within=_events_from(c, Event.id))
        found = _Distinct(dims)
        for event_id, month, *industry in rows:
            banks, branches = organisers.get(event_id, _NO_ORGANISER)
            found.add(event_id, 0, {"bank": banks, "branch": branches, "month": (month,),
                                    "industry": (industry[0] if industry else None,)})
        out = found.rows("events_held")
        if None in out and not out[None]:
            out[None] = [({"events_held": 0}, 0)]  # (the totals' statement answers one row, none held or not)
        return out

    # credit: one read of the applications any of the five families counts
    def _credit_grain(self, c, attrs: tuple) -> list:
        """(application row, {dim: its group}, shard) per application whose decision, disbursement or acceptance
        falls in the window (the families' own conditions otherwise, ``metrics._apps_from``), the row with what each
        family reads and the sum and number of its registered pledges; once for the five credit families, which
        each add the month of their own date."""
        def read():
            app = CreditApplication
            in_window = [sa.and_(col >= c.start, col <= c.end)
                         for col in (app.decided_on, app.disbursed_on, app.accepted_on)]
            pledges = (sa.select(Pledge.application_id, sa.func.count().label("n"),
                                 sa.func.sum(Pledge.secured_fen).label("fen"))
                       .where(Pledge.registered_on.is_not(None)).group_by(Pledge.application_id).subquery())
            stmt = (_apps_from(c, app.firm_id, app.bank_id, app.branch_id, app.stage,
                               app.product_code.in_(_ip_product_codes()).label("is_ip"), app.decided_on,
                               app.disbursed_on, app.accepted_on, app.approved_fen, app.disbursed_fen,
                               _tier_days_expr().label("tier_days"),
                               app.discount_bp, app.high_tech_at_decision, app.is_first_loan, pledges.c.n,
                               pledges.c.fen, *(_FIRM_ATTRIBUTE[dim] for dim in attrs),
                               date_col=None, extra=[sa.or_(*in_window)])
                    .outerjoin(pledges, pledges.c.application_id == app.id))
            width = c.shards.firm_width
            return [(row, {"bank": row.bank_id, "branch": row.branch_id,
                           **dict(zip(attrs, row[len(row) - len(attrs):]))},  # (the firm attributes come last)
                     row.firm_id // width) for row in db.session.execute(stmt)]

        return _for_view(_CREDIT_GRAIN, (c, attrs), read)

    def _credit_rows(self, c, dims) -> list:
        return self._credit_grain(c, tuple(dim for dim in dims if dim in _FIRM_ATTRIBUTE))

    def _in_window(self, c, day) -> bool:
        return day is not None and c.start <= day <= c.end

    def _approved_by_dims(self, c, dims):
        acc = _Sums(dims)
        for row, at, shard in self._credit_rows(c, dims):
            if row.stage not in APPROVED_STAGES or not self._in_window(c, row.decided_on):
                continue
            fen, is_ip, discounted = row.approved_fen or 0, bool(row.is_ip), row.discount_bp is not None
            acc.add(shard, {**at, "month": _month_of(row.decided_on)}, {
                "_credit_fen": fen, "ip_pledge_deals": int(is_ip), "_ip_fen": fen if is_ip else 0,
                "_discount_num": fen * row.discount_bp if discounted else 0,
                "_discount_den": fen if discounted else 0,
            }, {"credit_firms": row.firm_id,
                "credit_firms_high_tech": row.firm_id if row.high_tech_at_decision is True else None,
                "first_loan_firms": row.firm_id if row.is_first_loan is True else None})
        return acc.rows()

    def _ip_registered_by_dims(self, c, dims):
        acc = _Sums(dims)
        for row, at, shard in self._credit_rows(c, dims):
            if (row.stage in APPROVED_STAGES and self._in_window(c, row.decided_on) and row.is_ip
                    and row.n):  # the reference's inner join to registered pledges: none, no row
                acc.add(shard, {**at, "month": _month_of(row.decided_on)},
                        {"_ip_registered_fen": row.fen or 0}, {})
        return acc.rows()

    def _disbursed_by_dims(self, c, dims):
        acc = _Sums(dims)
        for row, at, shard in self._credit_rows(c, dims):
            if self._in_window(c, row.disbursed_on):
                acc.add(shard, {**at, "month": _month_of(row.disbursed_on)},
                        {"_disbursed_fen": row.disbursed_fen or 0}, {"disbursed_firms": row.firm_id})
        return acc.rows()

    def _applied_by_dims(self, c, dims):
        acc = _Sums(dims)
        for row, at, shard in self._credit_rows(c, dims):
            if self._in_window(c, row.accepted_on):
                acc.add(shard, {**at, "month": _month_of(row.accepted_on)}, {}, {"firms_applied": row.firm_id})
        return acc.rows()

    def _sla_by_dims(self, c, dims):
        """Decided applications: a hit when its working days are within its tier's (``SqlBackend._sla``); a
        group's calendar is provisional when any of its applications' is."""
        acc = _Sums(dims)
        overrides = frozenset(_overrides().items())
        for row, at, shard in self._credit_rows(c, dims):
            if row.stage not in DECIDED_STAGES or not self._in_window(c, row.decided_on):
                continue
            count = _workdays(row.accepted_on, row.decided_on, overrides)
            acc.add(shard, {**at, "month": _month_of(row.decided_on)},
                    {"_sla_decided": 1, "_sla_hits": int(count.count <= row.tier_days)},
                    {"_calendar_provisional": True if count.provisional else None})
        return acc.rows()

    def _staff_by_dims(self, c, dims):
        """The people taking part, read by one statement (:meth:`staff_rows`)."""
        found = _Distinct(dims)
        width = c.shards.user_width
        for user_id, groups in self.staff_groups(c, dims, self.staff_rows(c)):
            found.add(user_id, user_id // width, groups)
        return found.rows("staff_participating")

    def staff_rows(self, c, users: Optional[list] = None, other_than: tuple = (),
                   visit_ids: Optional[list] = None) -> list:
        """(user, their bank, the record's bank, branch and month, None) of visits as RM and as companion, and
        (user, their bank, None, None, month, event) of event staff, of ``c``'s user shards or (``users``) of those
        users, at events but ``other_than``; with ``visit_ids``, of those visits only (and no event staff)."""
        def user_conds(col) -> list:
            conds = _shard_conds(c, col, "user") if users is None else [col.in_(users)]
            return conds if visit_ids is None else [*conds, Visit.id.in_(visit_ids)]

        no_id = sa.cast(sa.null(), sa.Integer)
        reads = []
        for user_col, companions in ((Visit.rm_id, False), (visit_companion.c.user_id, True)):
            stmt = self.visits_from(c, user_col.label("user_id"), Visit.bank_id.label("bank_id"),
                                    Visit.branch_id.label("branch_id"), _month(Visit.visited_on).label("month"))
            if companions:
                stmt = stmt.join(visit_companion, visit_companion.c.visit_id == Visit.id)
            pairs = stmt.where(*user_conds(user_col)).distinct().subquery()
            reads.append(sa.select(pairs.c.user_id, User.bank_id, pairs.c.bank_id, pairs.c.branch_id, pairs.c.month,
                                   no_id.label("event_id"))
                         .join(User, User.id == pairs.c.user_id).where(*_bank_user_conds(c)))
        if visit_ids is None:
            staff = _event_staff_from(c)  # (with the shards' conditions)
            if users is not None:
                staff = staff.where(event_staff.c.user_id.in_(users))
            if other_than:
                staff = staff.where(Event.id.not_in(other_than))
            reads.append(staff.add_columns(User.bank_id, no_id, no_id, _month(Event.held_on), Event.id).distinct())
        return db.session.execute(sa.union_all(*reads)).all()

    def staff_groups(self, c, dims, rows):
        """(user, {dim: their groups}) of each of :meth:`staff_rows`: per bank, a bank's own people in its records
        and at the events it organised (``_staff_grouped``)."""
        organisers = self._organisers({row[5] for row in rows if row[5] is not None}, dims)
        for user_id, own_bank, bank, branch, month, event_id in rows:
            if event_id is None:
                yield user_id, {"bank": (bank,) if bank == own_bank else (), "branch": (branch,), "month": (month,)}
            else:
                banks, branches = organisers.get(event_id, _NO_ORGANISER)
                yield user_id, {"bank": tuple(b for b in banks if b == own_bank), "branch": branches,
                                "month": (month,)}

    def _organisers(self, event_ids: set, dims: tuple, within: Optional[sa.Select] = None) -> dict:
        """{event id: (banks, branches)} of ``event_ids`` (:func:`_read_organisers`), when a breakdown needs them;
        those already in :meth:`known` are not read again. ``within``: a statement selecting these events' ids and
        maybe others, to find many by instead of their ids."""
        if not event_ids or not {"bank", "branch"} & set(dims):
            return {}
        known = self.known("organisers")
        missing = sorted(e for e in event_ids if e not in known)
        if missing:
            known.update(_read_organisers(missing, within if len(missing) > _FEW_EVENT_IDS else None))
        return known

    def known(self, name: str) -> dict:
        """A dictionary of facts read from tables whose every write bumps the global write version (events'
        organisers, users' banks), to fill and reuse while it holds: here, a new one each time."""
        return {}


def _with_firm(stmt: sa.Select, c: _Ctx, attrs: list, firm_col) -> sa.Select:
    """``stmt`` joined to ``firm`` when the firm attributes ``attrs`` are read and no firm filter joined it."""
    return stmt.join(Firm, Firm.id == firm_col) if attrs and not _firm_conds(c) else stmt


#: an event without organising banks: its group by bank or branch is None (the reference's outer join)
_NO_ORGANISER = ((None,), (None,))


#: event ids looked up by their values; more are found by a statement selecting them (``_organisers``' ``within``)
_FEW_EVENT_IDS = 200


def _read_organisers(event_ids: list, within: Optional[sa.Select] = None) -> dict:
    """{event id: (its organising banks, a branch counting for its bank; its organising branches)} for each of
    ``event_ids`` (found among the ids ``within`` selects, when given), as the reference's ``_event_organisers``
    joins them (none: the outer join's None)."""
    org = Organisation
    rows = db.session.execute(
        sa.select(event_organiser.c.event_id, org.id, org.parent_id)
        .join(org, sa.and_(org.id == event_organiser.c.org_id, org.kind == OrgKind.BANK))
        .where(event_organiser.c.event_id.in_(event_ids if within is None else within)))
    banks: dict[int, set] = {}
    branches: dict[int, set] = {}
    for event_id, org_id, parent_id in rows:
        banks.setdefault(event_id, set()).add(org_id if parent_id is None else parent_id)
        if parent_id is not None:
            branches.setdefault(event_id, set()).add(org_id)
    return {e: (tuple(banks[e]), tuple(branches.get(e, ())) or (None,)) if e in banks else _NO_ORGANISER
            for e in event_ids}


def _month_of(day) -> str:
    """The month key of a date, as ``metrics._month`` gives it in SQL."""
    return f"{day.year:04d}-{day.month:02d}"


class _Sums:
    """Sums and distinct counts per breakdown group and shard (``_Distinct`` with sums beside): for the credit
    families, whose rows belong to one group of each breakdown. (One class for both cost the row counting 10%
    more: most rows are visits and check-ins, which need the distinct counts only.)"""

    def __init__(self, dims: tuple):
        self.found: dict = {dim: {} for dim in dims}

    def add(self, shard: int, at: dict, sums: dict, members: dict) -> None:
        """Add ``sums`` and the ``members`` (None: not one) of each distinct count to the row's group of each
        breakdown (``at[dim]``) in ``shard``."""
        for dim, found in self.found.items():
            key = (shard,) if dim is None else (at[dim], shard)
            group = found.get(key)
            if group is None:
                group = found[key] = ({k: 0 for k in sums}, {k: set() for k in members})
            for k, v in sums.items():
                group[0][k] += v
            for k, member in members.items():
                if member is not None:
                    group[1][k].add(member)

    def rows(self) -> dict:
        return {dim: [({**totals, **{k: len(v) for k, v in members.items()}}, *key)
                      for key, (totals, members) in found.items()] for dim, found in self.found.items()}


def count_visits(rows: list, dims: tuple, attrs: tuple, width: int) -> dict:
    """Visits, firms visited and firms with a need by ``dims`` and shard (of ``width`` firms), as the family's
    statements return them, from rows of ``FastSqlBackend._visit_grain``."""
    acc: dict = {dim: {} for dim in dims}
    for firm_id, bank, branch, month, *rest in rows:
        *values, n, needed = rest
        at = {"bank": bank, "branch": branch, "month": month, **dict(zip(attrs, values))}
        shard = firm_id // width
        for dim, groups in acc.items():
            a = groups.setdefault((shard,) if dim is None else (at[dim], shard), [0, set(), set()])
            a[0] += n
            a[1].add(firm_id)
            if needed:
                a[2].add(firm_id)
    return {dim: [({"visits": n, "firms_visited": len(firms), "firms_with_need": len(need_firms)}, *key)
                  for key, (n, firms, need_firms) in groups.items()] for dim, groups in acc.items()}


class _Distinct:
    """Distinct members (firms, users) per breakdown group and shard, counted at the end."""

    def __init__(self, dims: tuple):
        self.found: dict = {dim: {} for dim in dims}

    def add(self, member: int, shard: int, groups: dict) -> None:
        """``member`` counts in ``shard`` of the totals and, per breakdown, of each of ``groups[dim]``."""
        for dim, found in self.found.items():
            if dim is None:
                found.setdefault((shard,), set()).add(member)
                continue
            for g in groups[dim]:
                found.setdefault((g, shard), set()).add(member)

    def rows(self, name: str) -> dict:
        """{dim: [({name: count}, *group keys)]}, as the family's statements return them."""
        return {dim: [({name: len(members)}, *key) for key, members in found.items()]
                for dim, found in self.found.items()}
