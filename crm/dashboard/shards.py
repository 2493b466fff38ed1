"""The dashboard after a write: each view's numbers kept per shard, and only the shards a write touched recomputed.

Why it is exact
---------------
Firms are split into contiguous id ranges of ``FIRM_SHARD_WIDTH`` ("shards"), users likewise. Every dashboard
number but one is a sum over firms: visits, firms visited / reached / with a need / applied / with credit /
disbursed, first loans, amounts, SLA hits and decisions, discount sums, and firm attendances (pairs of an event
and a *firm*). A firm is in exactly one shard, so each number is exactly the sum of the same number computed on
each shard alone. Staff taking part are a distinct count of *users*: split by user shard, the same holds. Events
held (a few dozen rows, no firm) are computed whole.

So a view is kept as partial results, one per shard, each computed by the reference families with one more
``GROUP BY`` column (the shard) and, when only some shards are wanted, one more range condition
(:class:`~crm.dashboard.metrics.ShardSpec`). The view's numbers are the sums of the partial results, maintained as
a running total (a recomputed shard subtracts its old share and adds its new one).

Which shards are stale
----------------------
``crm.dashboard.snapshots`` counts writes: a write it can place (a flush of visits, registrations, applications,
pledges and firms' industry, district or street: it knows their firms and people; a check-in, which the service
declares) bumps its shards' rows of ``dashboard_write_version``, one block of rows per source (visits by firm, the
people on visits by user, check-ins by firm, credit by firm, visits whose need alone was edited, by firm, and
firms' attributes, by firm); any other write bumps a global row. A kept view is filed under the global
count; each of its parts (:data:`PARTS`: visits, check-ins, firms reached, credit, staff) is recomputed for the
shards whose sources were written since it was computed. After a visit is saved, the next view recomputes the
visit, reached and staff statements for one firm shard (about 1/200 of a campaign year's visits at scale 1) and the
user shards of the visit's people; the credit and check-in statements are not run at all. After an edit of a
visit's need alone (``snapshots._edits_need_only``), only the visit statements of its firm's shard run; after an
edit of its summary or next step, nothing does (no number reads them: ``snapshots.COLUMN_SENSITIVE``). After a
firm's industry, district or street is corrected, every firm part of its shard is recomputed, and in a view filtered
by one of those attributes the staff part too, for every user shard in one grouped pass (whoever visited the firm
may enter or leave the filter; the firm's visitors at the time of the write are not a safe list, since a visit
committed meanwhile by someone else would be missed).

An event's date, status, campaign, organisers, industries or staff changed (through the event form) bumps the one
row of the ``event`` source and logs with it (table ``dashboard_event_change``, numbered by the row's count) the
event's state before and after (campaign, date, status, organisers, industries, staff) and the check-in shards of
the firms checked in at it. A kept view reads the changes logged since its count and, in each breakdown, recomputes
those shards' check-ins and firms reached, the staff part of the people on its staff and the events held (computed
whole) only when a change moves the event's part there (:func:`_event_moves`): held or not, in its campaign and
window or not, by month its month, with a bank or branch in the view its organisers, for the staff and the events
held with an industry filter (and the events held by industry) its industries; the staff part also for the people
who joined or left its staff. A date moved within its month and the window, or a new title, recompute nothing in
any view; marked planned, its firms' and people's shards in every view. The events' organisers kept between views
are read again after any change. A view kept since changes no longer logged (the last thousand are kept)
recomputes those parts over every shard. A new held event logs that it is new (the events held of every view) and
bumps its staff's people shards. An event not held before nor after the change (planned or cancelled) moves
nothing at all; a change inside a savepoint rolled back sends the transaction to a global slot. Its placement
locks the event's row first on PostgreSQL and reads its state and its checked-in firms under that lock: a
registration or staff row inserted for it meanwhile by another transaction waits on that lock (its foreign key's
check), and so does a check-in (``snapshots.placed_writes`` names its event and locks it), so none slips between
the rows the change read and its commit, and another change of the same event commits before or after it, each
logging the state the other left.
A registration not checked in moves no number: registering, inviting or editing a person bumps nothing.

An organisation renamed (its name, short name or code, through the ORM) bumps the one row of the ``names`` source:
the labels kept between views are read again, and no part is recomputed.

A write that cannot be placed (an import, an organisation's kind or parent, a new organisation, a calendar day, a
bulk statement) changes the global count: the view is computed again whole, in one pass that groups by shard as well.

The partial results live in the worker's memory (``max_entries`` views x breakdowns, least recently used first
out); the finished numbers are still shared between workers by ``crm.dashboard.snapshots``.
"""
from __future__ import annotations

import dataclasses
import threading
from datetime import date
from typing import Any, Optional

import sqlalchemy as sa

from crm.auth.models import User
from crm.core.scoping import current_scope
from crm.dashboard import snapshots
from crm.dashboard.fastsql import FastSqlBackend, forget_view_rows, per_transaction
from crm.dashboard.metrics import _FAMILY_DIMS, Names, ShardSpec, _firm_conds, _key, shard_ranges
from crm.events.models import EventStatus
from crm.extensions import db

__all__ = ["ShardedBackend", "PARTS"]


@dataclasses.dataclass(frozen=True)
class _Part:
    space: str  #: "firm" or "user": whose id ranges the shards are
    families: tuple[str, ...]  #: the metric families (``SqlBackend._<family>``) summed over those shards
    sources: tuple[str, ...]  #: the writes that move them (``snapshots.SOURCES``)


#: how each family is kept: a part is recomputed for a shard when one of its sources was written in that shard
PARTS = {
    "visits": _Part("firm", ("visits",), ("visit", "need", "firm")),
    "checkins": _Part("firm", ("attendances",), ("registration", "firm")),
    "reached": _Part("firm", ("reached",), ("visit", "registration", "firm")),
    "credit": _Part("firm", ("approved", "ip_registered", "disbursed", "applied", "sla"), ("credit", "firm")),
    "staff": _Part("user", ("staff",), ("people",)),
}
#: the source of a firm's industry, district or street: every firm part of its shard reads them, and so does every
#: user shard's staff in a view filtered by them (a person counts when they visited a firm the filter keeps), so
#: there a firm's change makes the whole staff part stale (``_refresh``)
FIRM_ATTRIBUTES = "firm"
#: families computed whole (events held: a few dozen rows, no firm), again after a global write or a write of the
#: ``event`` source
WHOLE_FAMILIES = ("events",)
#: the source of events' dates, statuses, campaigns, organisers, industries and staff (one row: ``EVENT_SLOT``): the
#: families computed whole, the staff and the events' organisers kept between views read them; each change is logged
#: with the check-in shards of its firms (:data:`CHECKIN_PARTS`) and read by :func:`_event_moves`
EVENTS = "event"
#: the parts that count check-ins: a held event's change (logged with the ``event`` row, ``snapshots._bump``) makes
#: the check-in shards of its firms stale for them, in the views it moves (:func:`_event_moves`)
CHECKIN_PARTS = ("checkins", "reached")
#: the source of organisations' names, short names and codes (one row: ``snapshots.NAMES_SLOT``): only the labels and
#: codes kept with the other facts (:meth:`ShardedBackend.known`) read them; no part does
NAMES = "names"
#: the sources besides the global count whose writes the facts kept between views (:meth:`ShardedBackend.known`)
#: read: the events' organisers are placed with the event source, the organisations' names and codes (the breakdowns'
#: labels, the filter bar's banks) with the names source; any other fact (the bank users) only with the global count
KNOWN_SOURCES = {"organisers": (EVENTS,), "names": (NAMES,), "filter_bar": (NAMES,)}
#: more stale shards than this for a part: they are recomputed by grouped statements (one per breakdown, the stale
#: shards' id ranges as conditions) instead of reading their rows (``FastSqlBackend.family_rows``)
MAX_STALE = 24
#: more than this share of a part's shards stale: the grouped statements run over every shard, without conditions
MOST_STALE = 0.5

_VERSIONS = "crm_dashboard_shard_versions"  #: in Session.info (per_transaction): the versions read for the view
_VIEWED = "crm_dashboard_viewed"  #: in Session.info: the transaction a view was served in with those versions


class _Entry:
    """One view's (filter, scope, breakdown) partial results and their running sums."""

    __slots__ = ("versions", "parts", "merged", "refs", "whole")

    def __init__(self):
        self.versions: dict[str, dict[int, int]] = {source: {} for source in snapshots.SOURCES}
        self.parts: dict[str, dict[int, dict]] = {name: {} for name in PARTS}
        self.merged: dict[Any, dict[str, int]] = {}
        self.refs: dict[Any, int] = {}  #: how many shard parts hold each group (a group with none is dropped)
        self.whole: dict[Any, dict[str, int]] = {}

    def put(self, name: str, shard: int, part: Optional[dict]) -> None:
        """Replace the shard's part ``name`` (None or empty: it has no rows) in the running sums."""
        old = self.parts[name].pop(shard, None)
        for g, raw in (old or {}).items():
            merged = self.merged[g]
            for k, v in raw.items():
                merged[k] -= v
            self.refs[g] -= 1
            if not self.refs[g]:
                del self.refs[g], self.merged[g]
        if part:
            self.parts[name][shard] = part
            for g, raw in part.items():
                merged = self.merged.setdefault(g, {})
                for k, v in raw.items():
                    merged[k] = merged.get(k, 0) + v
                self.refs[g] = self.refs.get(g, 0) + 1

    def result(self) -> dict:
        out = {g: dict(raw) for g, raw in self.merged.items()}
        for g, raw in self.whole.items():
            out.setdefault(g, {}).update(raw)
        return out


def _split_versions(shard_slots: dict[int, int]) -> tuple[int, dict[str, dict[int, int]]]:
    """(the sum of rows in blocks this release does not know, {source: {shard: version}}) from the shard rows.

    A block it does not know was written by a newer release (during a rolling upgrade): this one cannot tell
    which of its parts such a write moves, so it counts those rows as global (every view is computed again).
    """
    by_block: dict[int, dict[int, int]] = {base: {} for base in snapshots.SOURCES.values()}
    unknown = 0
    for slot, n in shard_slots.items():
        base = slot - slot % snapshots.SHARD_BLOCK
        if base in by_block:
            by_block[base][slot - base] = n
        else:
            unknown += n
    return unknown, {source: by_block[base] for source, base in snapshots.SOURCES.items()}


class ShardedBackend(FastSqlBackend):
    """:class:`FastSqlBackend`'s numbers, kept per shard between writes (see the module docstring)."""

    def __init__(self, max_entries: int = 40):
        self._entries = snapshots.VersionedCache(max_entries)
        self._known: tuple[Any, dict] = (None, {})
        self._known_lock = threading.Lock()
        self.stats = {"cold": 0, "refreshed": 0, "reused": 0, "shards_recomputed": 0, "bypassed": 0}

    def clear(self) -> None:
        self._entries.clear()
        with self._known_lock:
            self._known = (None, {})

    def aggregate(self, c, dim):
        return self.aggregate_many(c, (dim,))[dim]

    def aggregate_many(self, c, dims):
        """{dim: the view's numbers by ``dim``} for one view's totals and breakdowns: the kept parts, with the
        shards written since recomputed for all of them together (``FastSqlBackend.family_rows``)."""
        session = db.session()
        versions = None
        if c.shards is None and not snapshots.transaction_has_written(session):  # else its own uncommitted rows
            versions = self._versions(session)  # are in what it sees: nothing kept
        if versions is None:
            self.stats["bypassed"] += len(dims)
            compute = super().aggregate
            return {dim: compute(c, dim) for dim in dims}
        forget_view_rows()  # (the rows its families share are read again for each view)
        try:
            return self._aggregate_kept(session, c, dims, versions)
        finally:
            forget_view_rows()

    def _aggregate_kept(self, session, c, dims, versions) -> dict:
        global_version, current = versions
        scope = current_scope()
        database = session.get_bind().url.render_as_string(hide_password=True)
        self._tune()
        keys = {dim: (database, global_version, scope.bank_id, scope.all_banks, c, dim) for dim in dims}
        kept = {dim: self._entries.get(key, take=True) for dim, key in keys.items()}  # (another thread computes
        kept = {dim: entry for dim, entry in kept.items() if entry is not None}  # its own meanwhile)
        cold = self._compute_whole(c, tuple(dim for dim in dims if dim not in kept), current)
        self.stats["cold"] += len(cold)
        entries = {dim: (keys[dim], kept[dim] if dim in kept else cold[dim]) for dim in dims}
        refreshed = self._refresh(kept, c, current)
        self.stats["refreshed"] += len(refreshed)
        self.stats["reused"] += len(kept) - len(refreshed)
        out = {}
        for dim, (key, entry) in entries.items():
            out[dim] = entry.result()
            self._entries.put(key, entry)
        return out

    # -- versions ---------------------------------------------------------------------------------------------
    @classmethod
    def write_version(cls, session) -> Optional[int]:
        """The write version (the sum of every row of the version table) of a view about to be served: from the
        rows this transaction read (:meth:`_versions`; None without the table), read again when a view of this
        transaction was served with them already (a write committed meanwhile is then seen, as by a new
        transaction). ``SnapshotBackend`` files the result under it, so a part is never older than the version its
        result is filed under, and one statement serves both: the dashboard page's filter bar reads the rows
        first (``known``), and its view uses them. A write committed between those two reads is therefore not in
        that page: it shows the numbers as of its first statement, as a page whose transaction is one snapshot (SQLite)
        would, exact for that version; the next request reads the rows again."""
        transaction = session.get_transaction()
        if transaction is not None and session.info.get(_VIEWED) is transaction:
            session.info.pop(_VERSIONS, None)
        versions = cls._versions(session)
        session.info[_VIEWED] = session.get_transaction()
        if versions is None:
            return None
        return versions[0] + sum(n for by_shard in versions[1].values() for n in by_shard.values())

    @staticmethod
    def _versions(session) -> Optional[tuple[int, dict[str, dict[int, int]]]]:
        """The global count and each shard's version, read once per transaction and view (:meth:`write_version`),
        before anything is computed with them, so a part is never older than the version it is filed under."""
        def read():
            got = snapshots.read_versions(session.connection())
            if got is None:
                return None
            unknown, by_source = _split_versions(got[1])
            return got[0] + unknown, by_source

        return per_transaction(_VERSIONS, None, read)

    # -- computing parts --------------------------------------------------------------------------------------
    def _parts(self, c, dims: tuple, name: str, shards: Optional[tuple[int, ...]], by_rows: bool = True) -> dict:
        """{dim: {shard: {group key: raw sums}}} of the part's families by each of ``dims``, for ``shards`` (all
        when None), read row by row or (``by_rows`` False) by grouped statements (``ShardSpec.by_rows``)."""
        part = PARTS[name]
        spec = ShardSpec(snapshots.FIRM_SHARD_WIDTH, snapshots.USER_SHARD_WIDTH,
                         firm=shards if part.space == "firm" else None, user=shards if part.space == "user" else None,
                         by_rows=by_rows)
        if spec.user is not None:
            spec = dataclasses.replace(spec, user_ids=self._bank_users(spec.user))
        sc = dataclasses.replace(c, shards=spec)
        parts: dict = {dim: {} for dim in dims}
        for family in part.families:
            wanted = tuple(dim for dim in dims if dim is None or dim in _FAMILY_DIMS[family])
            if not wanted:
                continue
            for dim, rows in self.family_rows(family, sc, wanted).items():
                for values, *keys in rows:
                    g, shard = (None, keys[0]) if dim is None else (_key(keys[0]), keys[1])
                    raw = parts[dim].setdefault(int(shard), {}).setdefault(g, {})
                    for k, v in values.items():
                        raw[k] = raw.get(k, 0) + int(v)
        return parts

    def _bank_users(self, shards: tuple[int, ...]) -> tuple[int, ...]:
        """The bank users in these user shards (the only users staff counts)."""
        known = self.known("bank_users")
        if shards not in known:
            known[shards] = tuple(db.session.scalars(sa.select(User.id).where(
                User.bank_id.is_not(None), *shard_ranges(User.id, shards, snapshots.USER_SHARD_WIDTH))
                .order_by(User.id)))
        return known[shards]

    def names(self) -> Names:
        """The breakdowns' labels and codes from reference tables kept with the other :meth:`known` facts (every
        write to industries, districts and streets bumps the global count; an organisation renamed, the ``names``
        source)."""
        return Names(self.known("names"))

    def known(self, name: str) -> dict:
        """Facts read from tables every write to which bumps the global count (a user's bank, a new user:
        ``snapshots.COLUMN_SENSITIVE``, not placed) or one of the sources :data:`KNOWN_SOURCES` names for them (an
        event's organisers, an organisation renamed), kept while the count and those sources this transaction read
        hold: a fact read under older ones is never used under newer."""
        session = db.session()
        versions = None if snapshots.transaction_has_written(session) else self._versions(session)
        if versions is None:  # (its own uncommitted writes may have changed them)
            return {}
        key = (session.get_bind().url.render_as_string(hide_password=True), versions[0],
               *(versions[1][source].get(0, 0) for source in KNOWN_SOURCES.get(name, ())))
        with self._known_lock:
            if self._known[0] != key[:2]:  # (a global write: every fact is read again)
                self._known = (key[:2], {})
            kept = self._known[1].get(name)
            if kept is None or kept[0] != key:
                kept = self._known[1][name] = (key, {})
            return kept[1]

    @staticmethod
    def _wanted(name: str, dim) -> bool:
        return dim is None or any(dim in _FAMILY_DIMS[family] for family in PARTS[name].families)

    def _compute_whole(self, c, dims: tuple, current) -> dict:
        """{dim: a new entry} holding every shard's parts of the view by each of ``dims`` (none: {})."""
        entries = {dim: _Entry() for dim in dims}
        for name in PARTS:
            wanted = tuple(dim for dim in dims if self._wanted(name, dim))
            if wanted:
                for dim, parts in self._parts(c, wanted, name, None).items():
                    for shard, part in parts.items():
                        entries[dim].put(name, shard, part)
        wholes = self._whole(c, dims)
        for dim, entry in entries.items():
            entry.versions = {source: dict(versions) for source, versions in current.items()}
            entry.whole = wholes[dim]
        return entries

    def _whole(self, c, dims) -> dict:
        """{dim: {group key: values}} of the families computed whole (:data:`WHOLE_FAMILIES`) by each of ``dims``,
        every breakdown from one read (``FastSqlBackend._<family>_by_dims``)."""
        wholes: dict = {dim: {} for dim in dims}
        for family in WHOLE_FAMILIES:
            wanted = tuple(dim for dim in dims if dim is None or dim in _FAMILY_DIMS[family])
            if not wanted:
                continue
            for dim, rows in getattr(self, f"_{family}_by_dims")(c, wanted).items():
                for values, *keys in rows:
                    wholes[dim].setdefault(None if dim is None else _key(keys[0]), {}).update(values)
        return wholes

    @staticmethod
    def _event_changes(after: int, upto: int):
        """A function of ``then``: the held events' changes logged with the ``event`` row's counts ``then < seq <=
        upto`` (``snapshots.read_event_changes``, read once here for every ``then >= after``); None when some are
        not logged."""
        rows = snapshots.read_event_changes(db.session.connection(), after, upto, numbered=True)
        if rows is None:  # (some older than the oldest view's are gone: each view finds out whether it needs them)
            return lambda then: (snapshots.read_event_changes(db.session.connection(), then, upto)
                                 if after < then <= upto else None)
        # (a count above the database's: not this database's changes, so not known)
        return lambda then: [change for seq, change in rows if seq > then] if then <= upto else None

    def _refresh(self, entries: dict, c, current) -> set:
        """Recompute, in each kept entry {dim: entry} of one view, the parts of the shards written since it was
        computed; the dims refreshed (none: nothing was written since).

        The entries of one view were computed together and go stale together, so each part's stale shards are
        recomputed for every breakdown at once, from one set of statements."""
        stale: dict = {}  # dim -> {part: stale shards, None for all}
        events_moved = []
        now_events = current[EVENTS].get(0, 0)
        changes = self._event_changes(min((e.versions[EVENTS].get(0, 0) for e in entries.values()),
                                          default=now_events), now_events)
        for dim, entry in entries.items():
            written = {}
            for source, now in current.items():
                then = entry.versions[source]
                written[source] = {s for s in now.keys() | then.keys() if now.get(s, 0) != then.get(s, 0)}
            if any(written.values()):
                stale[dim] = {name: set().union(*(written[source] for source in part.sources))
                              for name, part in PARTS.items() if self._wanted(name, dim)}
                if written[FIRM_ATTRIBUTES] and "staff" in stale[dim] and _firm_conds(c):
                    stale[dim]["staff"] = None  # every user shard: recomputed in one grouped pass
            if written[EVENTS]:
                since = changes(entry.versions[EVENTS].get(0, 0))
                moved = None if since is None else _event_moves(c, dim, since)
                if moved is None or moved.events:
                    events_moved.append(dim)
                shards = None if moved is None else moved.firm_shards
                for name in CHECKIN_PARTS:
                    if name in stale[dim] and stale[dim][name] is not None:
                        stale[dim][name] = None if shards is None else stale[dim][name] | shards
                if "staff" in stale[dim] and stale[dim]["staff"] is not None:
                    stale[dim]["staff"] = (None if moved is None else stale[dim]["staff"]
                                           | {u // snapshots.USER_SHARD_WIDTH for u in moved.staff})
        for name in PARTS:
            jobs = {dim: parts[name] for dim, parts in stale.items() if name in parts and parts[name] != set()}
            several = {dim: shards for dim, shards in jobs.items() if shards is not None and len(shards) <= MAX_STALE}
            some = {dim: shards for dim, shards in jobs.items() if shards is not None and dim not in several
                    and len(shards) <= MOST_STALE * len(entries[dim].parts[name])}
            for chosen, by_rows in ((several, True), (some, False)):
                if chosen:
                    parts = self._parts(c, tuple(chosen), name, tuple(sorted(set().union(*chosen.values()))),
                                        by_rows=by_rows)
                    for dim, shards in chosen.items():
                        for shard in shards:
                            entries[dim].put(name, shard, parts[dim].get(shard))
            many = tuple(jobs.keys() - several.keys() - some.keys())  # most: recomputed in one grouped pass
            for dim, parts in (self._parts(c, many, name, None) if many else {}).items():
                shards = set(entries[dim].parts[name]) | set(parts)
                for shard in shards:
                    entries[dim].put(name, shard, parts.get(shard))
                jobs[dim] = shards
            self.stats["shards_recomputed"] += sum(len(shards) for shards in jobs.values())
        if events_moved:  # an event's date, status, campaign or organisers: the events held again
            for dim, whole in self._whole(c, tuple(events_moved)).items():
                entries[dim].whole = whole
        for dim in stale:
            entries[dim].versions = {source: dict(versions) for source, versions in current.items()}
        return set(stale)


@dataclasses.dataclass
class _EventMoves:
    """What held events' changes move in one view by one breakdown (:func:`_event_moves`)."""

    firm_shards: set  #: the firm shards whose check-ins and firms reached move
    staff: set  #: the users whose participation moves
    events: bool  #: whether the events held move


def _event_moves(c, dim, changes: list) -> _EventMoves:
    """What these events' changes may move in the view ``c`` by ``dim``.

    An event counts (``metrics._event_conds``) when it is held, of the view's campaign, on a day of its window and,
    with a bank or branch filter, organised by them; it is grouped by its month (by month) or its organisers (by
    bank, by branch). Its check-ins are also filtered and grouped by their firm's industry, district and street
    (the firm's own); its staff and the event itself by its industries (the industry filter; the events held by
    industry). So a change moves a view's part only when the event's key for that part differs before and after
    (a date moved within its month and the window moves none but by month across a month's end; new organisers
    move the views with a bank or branch in them), and the staff also where people joined or left the staff of an
    event that counts. Any change in the range counts: a kept part may have been computed with any of the states
    in between (it is never older than its versions, and may be newer). A new event moves the events held.
    """
    by_organisers = c.bank_id is not None or c.branch_id is not None or dim in ("bank", "branch")

    def key(state, tags: bool):
        if c.empty or state is None:
            return None
        campaign_id, held_on, status, organisers, industries, _staff = state
        if (status != EventStatus.HELD.value or campaign_id != c.campaign_id
                or not c.start <= date.fromisoformat(held_on) <= c.end or (tags and c.industry
                                                                            and c.industry not in industries)):
            return None
        return (held_on[:7] if dim == "month" else None, tuple(organisers) if by_organisers else None,
                tuple(industries) if tags and dim == "industry" else None)

    moved = _EventMoves(set(), set(), False)
    for event_id, before, after, firm_shards in changes:
        if event_id is None:
            moved.events = True  # (a new event: its staff's shards were bumped, and no firm has checked in yet)
            continue
        if key(before, False) != key(after, False):
            moved.firm_shards.update(firm_shards)
        old, new = key(before, True), key(after, True)
        moved.events |= old != new
        staff_before, staff_after = set(before[5]), set(after[5])
        moved.staff |= ((staff_before | staff_after) if old != new
                        else (staff_before ^ staff_after) if new is not None else set())
    return moved
