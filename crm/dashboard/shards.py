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

A new visit (the write relationship managers make all day) is counted rather than recomputed. Its commit logs, for
its firm shard's ``visit`` row and each of its people's ``people`` rows that it bumped with new visits only, the
row's count and the new visits' ids (table ``dashboard_visit_insert``). A kept view whose shard rows moved by
logged counts only (:meth:`ShardedBackend._inserted_visits`) moves the shard's visits and firms reached by the new
visits' firms' share with them less their share without them (one read of those firms' visits and check-ins), and
adds the new visits' groups to each person's staff (a person's groups can only grow with a new visit). An edit, a
deletion, a companion added to a stored visit, a need edited, a check-in or a firm's change in the shard since, or a
count not logged (older than the last hundred of its row), sends those parts to be recomputed as before.

An event's date, status, campaign, organisers, industries or staff changed (through the event form) bumps the one
row of the ``event`` source and logs with it (table ``dashboard_event_change``, numbered by the row's count) the
event's state before and after (campaign, date, status, organisers, industries, staff) and the check-in shards of
the firms checked in at it. A kept view reads the changes logged since its count and, in each breakdown, moves those
shards' check-ins and firms reached, the staff of the people on its staff and the events held only when a change
moves the event's part there (:func:`_event_moves`): held or not, in its campaign and window or not, by month its
month, with a bank or branch in the view its organisers, for the staff and the events held with an industry filter
(and the events held by industry) its industries; the staff also for the people who joined or left its staff. None
of them is recomputed over its shards: each is counted again, only for what the event touches. Each firm checked in
at a changed event leaves the groups the event's state before gave its check-in and enters those of its state after,
and is reached in a group when its visits or check-ins at other events put it there too
(:meth:`ShardedBackend._checkin_deltas`); each person on its staff likewise, with their visits and other events
(:meth:`ShardedBackend._staff_deltas`); the event itself among the events held (:func:`_count_events`). A few
statements over those firms' and people's rows only. That needs the parts to hold each event exactly as it was at
the view's count, so a view whose parts reading events were computed while an event's change committed is not kept
(``_settled``); in a view filtered by firms' attributes the people counted again also read firms no slot of theirs
covers, so there every firm-attribute slot is read again too. A date moved within its month and the window, or a new
title, move nothing in any view; marked planned, its firms' check-ins, its people and the event itself in every
view. The events' organisers kept between views are read again after any change. A view kept since changes no longer
logged (the last thousand are kept) recomputes those parts over every shard. A new held event logs that it is new
(the events held of every view) and bumps its staff's people shards. An event not held before nor after the change
(planned or cancelled) moves nothing at all; a change inside a savepoint rolled back sends the transaction to a
global slot. Its placement locks the event's row first on PostgreSQL and reads its state and its checked-in firms
under that lock: a registration or staff row inserted for it meanwhile by another transaction waits on that lock
(its foreign key's check), and so does a check-in (``snapshots.placed_writes`` names its event and locks it), so
none slips between the rows the change read and its commit, and another change of the same event commits before or
after it, each logging the state the other left. A registration not checked in moves no number: registering,
inviting or editing a person bumps nothing.

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
from crm.dashboard.fastsql import (
    _FIRM_ATTRIBUTE, _NO_ORGANISER, FastSqlBackend, count_visits, forget_view_rows, per_transaction,
)
from crm.dashboard.metrics import (
    _FAMILY_DIMS, Names, ShardSpec, _bank_user_conds, _firm_conds, _key, _month, shard_ranges,
)
from crm.events.models import Event, EventStatus, Registration
from crm.extensions import db
from crm.firms.models import Firm
from crm.orgs.models import Organisation, OrgKind
from crm.visits.models import Visit

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
CHECKIN_PARTS = frozenset({"checkins", "reached"})
#: the parts that read events' states (with the events held): those an event's change moves by counting again from
#: the state they were computed with, which must be known (``ShardedBackend._settled``)
EVENT_PARTS = CHECKIN_PARTS | {"staff"}
#: the source of organisations' names, short names and codes (one row: ``snapshots.NAMES_SLOT``): only the labels and
#: codes kept with the other facts (:meth:`ShardedBackend.known`) read them; no part does
NAMES = "names"
#: the sources besides the global count whose writes the facts kept between views (:meth:`ShardedBackend.known`)
#: read: the events' organisers are placed with the event source, the organisations' names and codes (the breakdowns'
#: labels, the filter bar's banks) with the names source; any other fact (the bank users) only with the global count
KNOWN_SOURCES = {"organisers": (EVENTS,), "names": (NAMES,), "filter_bar": (NAMES,)}
#: at most this many firms' check-ins at changed events are counted again one by one (:meth:`ShardedBackend.
#: _checkin_deltas`); more, and their shards' check-in parts are recomputed
MAX_COUNTED_FIRMS = 2000
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
        self.stats = {"cold": 0, "refreshed": 0, "reused": 0, "shards_recomputed": 0, "shards_counted": 0,
                      "bypassed": 0, "unsettled": 0, "added": 0}

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
        refreshed, counted, blocks, recounted = self._refresh(kept, c, current)
        self.stats["refreshed"] += len(refreshed)
        self.stats["reused"] += len(kept) - len(refreshed)
        if (cold or recounted) and not self._settled(session, global_version, current, counted, blocks):
            # an event's change committed while check-in parts were computed: they may hold its state before or
            # after, so none is kept (a later change's counts, :func:`_checkin_deltas`, start from a known state); and
            # when check-ins were counted again firm by firm, a write to their shards meanwhile may be in the rows
            # read for them but not in the parts they were counted into: the view is computed again whole
            self.stats["unsettled"] += 1
            if counted:
                entries = {dim: (keys[dim], entry) for dim, entry in self._compute_whole(c, dims, current).items()}
                self.stats["cold"] += len(dims)
            return {dim: entry.result() for dim, (_key, entry) in entries.items()}
        out = {}
        for dim, (key, entry) in entries.items():
            out[dim] = entry.result()
            self._entries.put(key, entry)
        return out

    @staticmethod
    def _settled(session, global_version: int, current: dict, counted: set, blocks: set = frozenset()) -> bool:
        """Whether the global count, the ``event`` row, the shard rows of the check-ins and staff counted again
        one by one (``counted``: their sources' slots) and every row of the sources ``blocks`` (their first slots:
        the firms' attributes, when staff filtered by them was counted) still hold the counts the view was computed
        under."""
        by_slot = {snapshots.SOURCES[source] + shard: n for source, shards in current.items()
                   for shard, n in shards.items()}
        now_global, now = snapshots.read_slots(session.connection(), {snapshots.EVENT_SLOT, *counted}, blocks)
        # (a version row is never deleted: a block's rows then are among its rows now)
        return now_global == global_version and all(n == by_slot.get(slot, 0) for slot, n in now.items())

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
            _add_rows(parts, self.family_rows(family, sc, wanted))
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

    @staticmethod
    def _wanted_whole(dim) -> bool:
        return dim is None or any(dim in _FAMILY_DIMS[family] for family in WHOLE_FAMILIES)

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

    def _refresh(self, entries: dict, c, current) -> tuple[set, set, set, bool]:
        """Recompute, in each kept entry {dim: entry} of one view, the parts of the shards written since it was
        computed; (the dims refreshed (none: nothing was written since), the slots of the sources of the shards
        whose check-ins or staff were counted again after events' changes (:meth:`_checkin_deltas`,
        :meth:`_staff_deltas`), the sources' blocks those counts read besides (the firms' attributes, for staff in a
        view filtered by them), whether any part reading events (:data:`EVENT_PARTS`, the events held) was
        recomputed or counted).

        The entries of one view were computed together and go stale together, so each part's stale shards are
        recomputed for every breakdown at once, from one set of statements."""
        stale: dict = {}  # dim -> {part: stale shards, None for all}
        events_moved = []
        events_counting: dict = {}  # dim -> the changes since its count, which move its events held
        counting: dict = {}  # dim -> {check-in part: shards whose firms' check-ins events' changes move}
        since_by_dim: dict = {}
        blocks = set()  # (the sources' blocks that counts read besides their shards' own sources)
        now_events = current[EVENTS].get(0, 0)
        oldest = min((e.versions[EVENTS].get(0, 0) for e in entries.values()), default=now_events)
        changes = self._event_changes(oldest, now_events)
        quiet = {}  # dim -> what was written since its entry, when no event's change was (new visits are counted)
        for dim, entry in entries.items():
            written = {}
            for source, now in current.items():
                then = entry.versions[source]
                written[source] = {s for s in now.keys() | then.keys() if now.get(s, 0) != then.get(s, 0)}
            if not written[EVENTS]:
                quiet[dim] = written
            if any(written.values()):
                stale[dim] = {name: set().union(*(written[source] for source in part.sources))
                              for name, part in PARTS.items() if self._wanted(name, dim)}
                if written[FIRM_ATTRIBUTES] and "staff" in stale[dim] and _firm_conds(c):
                    stale[dim]["staff"] = None  # every user shard: recomputed in one grouped pass
            if written[EVENTS]:
                since = changes(entry.versions[EVENTS].get(0, 0))
                moved = None if since is None else _event_moves(c, dim, since)
                if moved is None or (moved.events and any(event_id is None for event_id, *_ in since)):
                    events_moved.append(dim)  # (a new event's state is not logged: the events held again)
                elif moved.events and self._wanted_whole(dim):
                    events_counting[dim] = since
                shards = None if moved is None else moved.firm_shards
                for name in CHECKIN_PARTS:
                    if name in stale[dim] and stale[dim][name] is not None:
                        if shards is None:
                            stale[dim][name] = None
                        else:
                            counting.setdefault(dim, {})[name] = shards - stale[dim][name]
                            since_by_dim[dim] = since
                if "staff" in stale[dim] and stale[dim]["staff"] is not None:
                    if moved is None:
                        stale[dim]["staff"] = None
                    else:
                        people = {u // snapshots.USER_SHARD_WIDTH for u in moved.staff} - stale[dim]["staff"]
                        counting.setdefault(dim, {})["staff"] = people
                        since_by_dim[dim] = since
                        if people and _firm_conds(c):  # (their visits are filtered by firms' attributes, which
                            # no slot of theirs settles: every firm's, ``_settled``)
                            blocks.add(snapshots.SOURCES[FIRM_ATTRIBUTES])
        inserted, insert_slots = self._inserted_visits(c, entries, stale, current, quiet)
        self.stats["added"] += len(inserted)
        for dim, name, shard in inserted:  # (counted from their new visits, not recomputed)
            stale[dim][name].discard(shard)
        # (each entry's changes are the last ones of one sequence: the longest holds every other's; the oldest
        # entry's may be gone from the log, its parts then recomputed over every shard)
        widest = max((*since_by_dim.values(), *events_counting.values()), key=len, default=[])
        kinds = _organisation_kinds(widest) if counting or events_counting else {}
        got = self._checkin_deltas(c, entries, counting, since_by_dim, widest, kinds) if counting else ({}, set())
        if got is None:  # (too many firms: their shards are recomputed)
            got = {}, {(dim, name, shard) for dim, by_name in counting.items() for name, shards in by_name.items()
                       if name in CHECKIN_PARTS for shard in shards}
        deltas, uncounted = got
        deltas.update(inserted)
        if any("staff" in by_name for by_name in counting.values()):
            staff_deltas, staff_uncounted = self._staff_deltas(c, entries, counting, since_by_dim, widest, kinds)
            deltas.update(staff_deltas)
            uncounted |= staff_uncounted
        # every shard counted, with or without a change: one whose firms left the rows read meanwhile (their
        # check-ins undone by another worker) kept its part, which must still be what its slots say
        recounted = bool(inserted) or any(shards for by_name in counting.values() for shards in by_name.values())
        for dim, name, shard in uncounted:
            stale[dim][name].add(shard)
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
            recounted |= bool(jobs) and name in EVENT_PARTS
        counted = insert_slots | {snapshots.SOURCES[source] + shard for by_name in counting.values()
                                  for name, shards in by_name.items() for shard in shards
                                  for source in PARTS[name].sources}
        for (dim, name, shard), part in deltas.items():
            entries[dim].put(name, shard, part)
        self.stats["shards_counted"] += len(deltas)
        for dim, since in events_counting.items():  # (a few events changed: counted again, each one)
            whole = _count_events(c, dim, since, kinds, entries[dim].whole)
            if whole is None:
                events_moved.append(dim)
            else:
                entries[dim].whole = whole
        recounted |= bool(events_counting or events_moved)
        if events_moved:  # a new event, or changes no longer logged: the events held again
            for dim, whole in self._whole(c, tuple(events_moved)).items():
                entries[dim].whole = whole
        for dim in stale:
            entries[dim].versions = {source: dict(versions) for source, versions in current.items()}
        return set(stale), counted, blocks, recounted

    def _inserted_visits(self, c, entries: dict, stale: dict, current, quiet: dict) -> tuple[dict, set]:
        """The stale parts a new visit moves (its firm's visits and firms reached, its people's staff), in the
        entries of the dims ``quiet`` ({dim: what was written since its entry}), whose shards' every write since
        the entries were computed added visits only (``snapshots.visit_insert_log``), counted from those visits
        instead of recomputed: ({(dim, part, shard): its new part}, the slots of those parts' sources).

        The entries' events did not change since (``quiet``: else their check-ins and staff are counted from the
        parts' state, :meth:`_checkin_deltas`); a firm part's other sources (a need edited, a check-in, a firm's
        industry) were not written in its shard since. The visits are read as they are now: a write after the counts
        the view was computed under may be in those rows, which ``_settled`` finds (the slots returned are among
        ``counted``)."""
        jobs: dict = {}  # (dim, part) -> {shard: the count of its visits' (people's) slot its entry saw}
        for dim, written in quiet.items():
            by_name = stale.get(dim, {})
            if snapshots.USER_SHARD_WIDTH == 1 and by_name.get("staff"):
                jobs[(dim, "staff")] = {shard: entries[dim].versions["people"].get(shard, 0)
                                        for shard in by_name["staff"]}
            for name in ("visits", "reached"):
                others = set().union(*(written[source] for source in PARTS[name].sources if source != "visit"))
                shards = {shard: entries[dim].versions["visit"].get(shard, 0) for shard in by_name.get(name) or ()
                          if shard not in others}
                if shards:
                    jobs[(dim, name)] = shards
        spans: dict = {}  # slot -> (the oldest count its entries saw, its count now)
        for (_dim, name), by_shard in jobs.items():
            source = "people" if name == "staff" else "visit"
            for shard, then in by_shard.items():
                slot = snapshots.SOURCES[source] + shard
                spans[slot] = (min(then, spans.get(slot, (then,))[0]), current[source].get(shard, 0))
        found = snapshots.read_visit_inserts(db.session.connection(), spans) if spans else {}
        deltas: dict = {}
        counted: set = set()
        for space, source, add in (("user", "people", self._added_staff), ("firm", "visit", self._added_firm_visits)):
            base = snapshots.SOURCES[source]
            logged = {slot - base: ids for slot, ids in found.items() if base <= slot < base + snapshots.SHARD_BLOCK}
            mine = {key: {shard: then for shard, then in by_shard.items() if shard in logged}
                    for key, by_shard in jobs.items() if PARTS[key[1]].space == space}
            mine = {key: by_shard for key, by_shard in mine.items() if by_shard}
            if mine:
                add(c, entries, mine, logged, deltas)
        for dim, name, shard in deltas:
            counted |= {snapshots.SOURCES[source] + shard for source in PARTS[name].sources}
        return deltas, counted

    def _added_staff(self, c, entries: dict, jobs: dict, logged: dict, deltas: dict) -> None:
        """Staff (``jobs``: {(dim, "staff"): {shard: ...}}) after their people's new visits ``logged`` {shard:
        visit ids}. A user shard holds one person (``USER_SHARD_WIDTH``), and its part the groups they take part in;
        a new visit can only add them to the groups it belongs to, so their groups now are the part's and those of
        their new visits as the view reads them (``staff_rows`` of those visits, with the view's conditions)."""
        people = sorted({shard for by_shard in jobs.values() for shard in by_shard})
        rows = self.staff_rows(dataclasses.replace(c, by_ids=True), users=people,
                               visit_ids=sorted(set().union(*(logged[shard] for shard in people))))
        dims = tuple(dim for dim, _name in jobs)
        groups: dict = {dim: {} for dim in dims}
        for user_id, at in self.staff_groups(c, dims, rows):
            for dim in dims:
                groups[dim].setdefault(user_id, set()).update(_group_key(dim, at, {}))
        field = _COUNTED_FIELD["staff"]
        for (dim, name), by_shard in jobs.items():
            moves: dict = {}
            for shard in by_shard:
                was_in = {g for g, raw in (entries[dim].parts[name].get(shard) or {}).items() if raw.get(field)}
                _count_membership(moves.setdefault((name, shard), {}), was_in, was_in | groups[dim].get(shard, set()))
            _move_parts(entries[dim], dim, moves, deltas, set())

    def _added_firm_visits(self, c, entries: dict, jobs: dict, logged: dict, deltas: dict) -> None:
        """The visits and firms reached of firm shards (``jobs``: {(dim, part): {shard: ...}}) after the new visits
        ``logged`` {shard: visit ids}. Each number of a shard is a sum over its firms, so a part moves by the new
        visits' firms' share with them less their share without them: both counted by the families' own code
        (``fastsql.count_visits``, ``count_reached``) from one read of those firms' visits, each row telling whether
        it holds the new ones (``_visit_grain``), and their check-ins (for firms reached)."""
        width = snapshots.FIRM_SHARD_WIDTH
        shards = sorted({shard for by_shard in jobs.values() for shard in by_shard})
        new = tuple(sorted(set().union(*(logged[shard] for shard in shards))))
        firms = tuple(sorted(firm_id for firm_id in db.session.scalars(
            sa.select(Visit.firm_id).where(Visit.id.in_(new)).distinct()) if firm_id // width in shards))
        dims = tuple({dim: None for dim, _name in jobs})
        attrs = tuple(dim for dim in dims if dim in _FIRM_ATTRIBUTE)
        spec = ShardSpec(width, snapshots.USER_SHARD_WIDTH, firm=tuple(shards), firm_ids=firms, by_rows=True)
        cf = dataclasses.replace(c, shards=spec, by_ids=True)
        with_new, without = {}, []
        for *key, is_new, n, needed in self._visit_grain(cf, attrs, new):
            had = with_new.get(tuple(key), (0, 0))
            with_new[tuple(key)] = (had[0] + n, max(had[1], needed))
            if not is_new:
                without.append((*key, n, needed))
        now = [(*key, n, needed) for key, (n, needed) in with_new.items()]
        for name in ("visits", "reached"):
            named = {dim: by_shard for (dim, part), by_shard in jobs.items() if part == name}
            if not named:
                continue
            shares = []
            for rows in (now, without):
                share: dict = {dim: {} for dim in named}
                _add_rows(share, count_visits(rows, tuple(named), attrs, width) if name == "visits"
                          else self.count_reached(cf, tuple(named), attrs, rows))
                shares.append(share)
            for dim, by_shard in named.items():
                for shard in by_shard:
                    part = _shifted(entries[dim].parts[name].get(shard), shares[0][dim].get(shard),
                                    shares[1][dim].get(shard))
                    if part is not None:  # (never below zero when the part holds what it should)
                        deltas[(dim, name, shard)] = part

    def _checkin_deltas(self, c, entries: dict, counting: dict, since_by_dim: dict, changes: list, kinds: dict):
        """The check-in parts of the shards in ``counting`` ({dim: {part: shards}}) after the held events' changes
        ``changes`` (the longest of ``since_by_dim``, each entry's own since its count), counted firm by
        firm instead of recomputed: ({(dim, part, shard): its new part}, {(dim, part, shard) to recompute: a count
        that came out below zero}); None when more than :data:`MAX_COUNTED_FIRMS` firms checked in at them.

        A shard here had none of its sources written since its entry was computed, and that was computed under a
        known count of the ``event`` row (``_settled``), so its parts hold exactly: its firms' visits and check-ins
        as they are now, and each changed event as it was before its first change since. A firm's check-in at a
        changed event counts in the groups the event's state gives it (:func:`_checkin_groups`); the firm is reached
        in a group when a visit or a check-in at an event not changed puts it there as well. So each shard's firm
        attendances move by the pairs' groups after less before, and its firms reached by the firms whose set of
        groups gained or lost one. The check-ins at the changed events are read across banks: a restricted scope's
        view is filtered by its bank (``metrics._resolve``), which keeps exactly the events the scope
        shows (organised by the bank or its branches), and an event no longer organised by it is out of the scope
        now but was in the part."""
        width = snapshots.FIRM_SHARD_WIDTH
        last = _states(changes)[1]  # event id -> its state now
        shards = set().union(*(s for by_name in counting.values() for name, s in by_name.items()
                               if name in CHECKIN_PARTS))
        if not last or not shards:
            return {}, set()
        events = sorted(last)
        # (every check-in at the events, kept here by shard: the shards' id ranges as conditions made a statement
        # of its own, built and compiled again, for each set of shards)
        rows = [row for row in db.session.execute(
            sa.select(Registration.event_id, Registration.firm_id, Firm.industry_code, Firm.area_code, Firm.street_id)
            .join(Firm, Firm.id == Registration.firm_id)
            .where(Registration.event_id.in_(events), Registration.checked_in_at.is_not(None), *_firm_conds(c))
            .distinct().execution_options(skip_tenant_scope=True)) if row[1] // width in shards]
        attributes = {firm_id: dict(zip(_FIRM_ATTRIBUTES, values)) for _e, firm_id, *values in rows}
        if len(attributes) > MAX_COUNTED_FIRMS:
            return None
        at: dict = {}  # firm -> the changed events it checked in at
        for event_id, firm_id, *_values in rows:
            at.setdefault(firm_id, []).append(event_id)
        dims = tuple(dim for dim, by_name in counting.items() if CHECKIN_PARTS & by_name.keys())
        firms = sorted(at)
        by_firms = dataclasses.replace(c, by_ids=True)  # (their rows found by their ids)
        # the firms' other ways into each group (for firms reached): their visits, their check-ins at other events
        others: dict = {dim: {} for dim in dims}
        if firms and any("reached" in by_name for by_name in counting.values()):
            visits = db.session.execute(self.visits_from(by_firms, Visit.firm_id, Visit.bank_id, Visit.branch_id,
                                                         _month(Visit.visited_on))
                                        .where(Visit.firm_id.in_(firms)).distinct()).all()
            # their check-ins at the events not changed (one statement: a statement per breakdown, grouped by
            # the events' months or organisers, took 3-8 times as long on SQLite at scale 1, for firms at a few
            # hundred events a campaign year), grouped here by the events' organisers kept between views
            other = (Registration.firm_id.in_(firms), Registration.event_id.not_in(events))
            checkins = db.session.execute(self.attendances_from(by_firms, Registration.firm_id, Registration.event_id,
                                                                _month(Event.held_on)).where(*other).distinct()).all()
            organisers = self._organisers({event_id for _f, event_id, _m in checkins}, dims,
                                          within=self.attendances_from(by_firms, Registration.event_id).where(*other))
            for dim in dims:
                found = others[dim]
                for firm_id, bank, branch, month in visits:
                    found.setdefault(firm_id, set()).add(_group_key(dim, {"bank": (bank,), "branch": (branch,),
                                                                          "month": (month,)}, attributes[firm_id])[0])
                if dim in ("bank", "branch", "month"):
                    for firm_id, event_id, month in checkins:
                        keys = ((month,) if dim == "month"
                                else organisers.get(event_id, _NO_ORGANISER)[0 if dim == "bank" else 1])
                        found.setdefault(firm_id, set()).update(_key(k) for k in keys)
                else:  # (the totals and the firm's own attributes: whether it checked in anywhere else)
                    for firm_id in {firm_id for firm_id, _e, _m in checkins}:
                        found.setdefault(firm_id, set()).add(_group_key(dim, {}, attributes[firm_id])[0])
        deltas, uncounted = {}, set()
        for dim in dims:
            by_name = counting[dim]
            before = _states(since_by_dim[dim])[0]  # (the first state since the entry's count)
            moves: dict = {}  # (part, shard) -> {group: change}
            for firm_id, changed in at.items():
                shard = firm_id // width
                was = [_checkin_groups(c, dim, before.get(e, last[e]), kinds, attributes[firm_id]) for e in changed]
                now = [_checkin_groups(c, dim, last[e], kinds, attributes[firm_id]) for e in changed]
                if shard in by_name.get("checkins", ()):
                    move = moves.setdefault(("checkins", shard), {})
                    for groups, sign in ((was, -1), (now, 1)):
                        for g in (g for of_event in groups for g in of_event):
                            move[g] = move.get(g, 0) + sign
                if shard in by_name.get("reached", ()):
                    move = moves.setdefault(("reached", shard), {})
                    other = others[dim].get(firm_id, set())
                    _count_membership(move, other.union(*was), other.union(*now))
            _move_parts(entries[dim], dim, moves, deltas, uncounted)
        return deltas, uncounted

    def _staff_deltas(self, c, entries: dict, counting: dict, since_by_dim: dict, changes: list,
                      kinds: dict) -> tuple:
        """The staff parts of the user shards in ``counting`` ({dim: {"staff": shards}}) after the held events'
        changes ``changes``, counted person by person instead of recomputed, as :meth:`_checkin_deltas` counts
        firms: a person on a changed event's staff before or after takes part in the groups its state gives them
        (``_staff_event_groups``), and in those their visits and their other events put them in."""
        width = snapshots.USER_SHARD_WIDTH
        last = _states(changes)[1]
        shards = set().union(*(by_name.get("staff", set()) for by_name in counting.values()))
        people = sorted({u for event_id, before, after, _s in changes if event_id is not None
                         for state in (before, after) if state for u in state[5] if u // width in shards})
        if not people:
            return {}, set()
        own = dict(db.session.execute(sa.select(User.id, User.bank_id).where(User.id.in_(people),
                                                                            *_bank_user_conds(c))).all())
        dims = tuple(dim for dim, by_name in counting.items() if "staff" in by_name)
        others: dict = {dim: {} for dim in dims}
        if own:
            rows = self.staff_rows(dataclasses.replace(c, by_ids=True), users=sorted(own),
                                   other_than=tuple(sorted(last)))
            for user_id, groups in self.staff_groups(c, dims, rows):
                for dim in dims:
                    others[dim].setdefault(user_id, set()).update(_group_key(dim, groups, {}))
        deltas, uncounted = {}, set()
        for dim in dims:
            before = _states(since_by_dim[dim])[0]
            moves: dict = {}
            for user_id, bank_id in own.items():
                shard = user_id // width
                if shard not in counting[dim]["staff"]:
                    continue
                other = others[dim].get(user_id, set())
                was_in = other.union(*(_staff_event_groups(c, dim, before.get(e, last[e]), kinds, user_id, bank_id)
                                       for e in last))
                now_in = other.union(*(_staff_event_groups(c, dim, last[e], kinds, user_id, bank_id) for e in last))
                _count_membership(moves.setdefault(("staff", shard), {}), was_in, now_in)
            _move_parts(entries[dim], dim, moves, deltas, uncounted)
        return deltas, uncounted


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


def _move_parts(entry: "_Entry", dim, moves: dict, deltas: dict, uncounted: set) -> None:
    """Put in ``deltas`` {(dim, part, shard): new part} the entry's parts moved by ``moves`` {(part, shard): {group:
    change}}; a part whose count would come out below zero (never, when the parts hold what they should) in
    ``uncounted`` instead, to be recomputed."""
    for (name, shard), move in moves.items():
        field = _COUNTED_FIELD[name]
        part = {g: dict(raw) for g, raw in (entry.parts[name].get(shard) or {}).items()}
        for g, change in move.items():
            if change:
                part.setdefault(g, {})[field] = part.get(g, {}).get(field, 0) + change
        if any(raw.get(field, 0) < 0 for raw in part.values()):
            uncounted.add((dim, name, shard))
            continue
        deltas[(dim, name, shard)] = {g: raw for g, raw in part.items() if any(raw.values())}


def _add_rows(parts: dict, rows_by_dim: dict) -> None:
    """Add a family's rows {dim: [(values, *group keys)]} (its statements', or counted from rows) to ``parts``
    {dim: {shard: {group key: raw sums}}}."""
    for dim, rows in rows_by_dim.items():
        for values, *keys in rows:
            g, shard = (None, keys[0]) if dim is None else (_key(keys[0]), keys[1])
            raw = parts[dim].setdefault(int(shard), {}).setdefault(g, {})
            for k, v in values.items():
                raw[k] = raw.get(k, 0) + int(v)


def _shifted(part: Optional[dict], plus: Optional[dict], minus: Optional[dict]) -> Optional[dict]:
    """``part`` {group: raw sums} with ``plus`` added and ``minus`` taken away, groups left with nothing dropped;
    None when a sum would come out below zero."""
    out = {g: dict(raw) for g, raw in (part or {}).items()}
    for sign, moved in ((1, plus), (-1, minus)):
        for g, raw in (moved or {}).items():
            into = out.setdefault(g, {})
            for k, v in raw.items():
                into[k] = into.get(k, 0) + sign * v
    if any(v < 0 for raw in out.values() for v in raw.values()):
        return None
    return {g: raw for g, raw in out.items() if any(raw.values())}


def _staff_event_groups(c, dim, state, kinds: dict, user_id: int, own_bank: int) -> tuple:
    """The groups by ``dim`` in which a bank user (of ``own_bank``) on the staff of an event in ``state`` takes
    part through it (``metrics._staff_grouped``): the event's groups among the events held, by bank only their
    own bank's."""
    if state is None or user_id not in state[5]:
        return ()
    groups = _checkin_groups(c, dim, state, kinds, {}, tags=True)
    return tuple(g for g in groups if g == _key(own_bank)) if dim == "bank" else groups


#: the firm attributes a check-in is grouped by (its firm's)
_FIRM_ATTRIBUTES = ("industry", "district", "street")
#: the number each check-in part counts
_COUNTED_FIELD = {"checkins": "firm_attendances", "reached": "firms_reached", "staff": "staff_participating"}


def _group_key(dim, at: dict, attributes: dict) -> tuple:
    """The group keys by ``dim`` (None: the totals) of a row in the groups ``at`` {bank, branch, month: keys}, of a
    firm with ``attributes``, as the parts hold them (``metrics._key``)."""
    if dim is None:
        return (None,)
    return tuple(_key(v) for v in (at[dim] if dim in at else (attributes[dim],)))


def _states(changes: list) -> tuple[dict, dict]:
    """({event: its first state before}, {event: its last state after}) of the stored events' changes, in order."""
    first, last = {}, {}
    for event_id, before, after, _shards in changes:
        if event_id is not None:
            first.setdefault(event_id, before)
            last[event_id] = after
    return first, last


def _count_membership(move: dict, was_in: set, now_in: set) -> None:
    """A member (a firm reached, a person taking part) in the groups ``was_in`` before and ``now_in`` after: +1 in
    each group gained, −1 in each lost, added to ``move`` {group: change}."""
    for g in now_in - was_in:
        move[g] = move.get(g, 0) + 1
    for g in was_in - now_in:
        move[g] = move.get(g, 0) - 1


def _organisation_kinds(changes: list) -> dict:
    """{organisation: (whether a bank, its parent)} of the organisers the events' states ``changes`` name."""
    orgs = sorted({org_id for _e, before, after, _s in changes for state in (before, after) if state
                   for org_id in state[3]})
    if not orgs:
        return {}
    return {org_id: (kind == OrgKind.BANK, parent_id) for org_id, kind, parent_id in db.session.execute(
        sa.select(Organisation.id, Organisation.kind, Organisation.parent_id).where(Organisation.id.in_(orgs)))}


def _count_events(c, dim, since: list, kinds: dict, whole: dict) -> Optional[dict]:
    """The events held by ``dim`` (``whole``: as the view's entry holds them, {group: {"events_held": n}}) after
    the stored events' changes ``since``: each changed event leaves the groups its first state before gave it and
    enters those of its last state after (:func:`_checkin_groups`, by its industry tags); None when a count comes
    out below zero (never, when ``whole`` holds what it should)."""
    first, last = _states(since)
    counts = {g: raw.get("events_held", 0) for g, raw in whole.items()}
    for event_id in first:
        for state, sign in ((first[event_id], -1), (last[event_id], 1)):
            for g in _checkin_groups(c, dim, state, kinds, {}, tags=True):
                counts[g] = counts.get(g, 0) + sign
    if any(n < 0 for n in counts.values()):
        return None
    # (a group with none held has no row, but the totals always have one, as the statement answers)
    return {g: {**whole.get(g, {}), "events_held": n} for g, n in counts.items() if n or dim is None}


def _checkin_groups(c, dim, state, kinds: dict, attributes: dict, tags: bool = False) -> tuple:
    """The groups by ``dim`` in which a check-in of a firm with ``attributes`` at an event in ``state`` (as logged:
    campaign, date, status, organisers, industries, staff) counts in the view ``c``: none when the event does not
    count there (``metrics._event_conds``: held, of the campaign, in the window, organised by the bank or branch
    filtered), its month, its organising banks or branches (``fastsql._read_organisers``; ``kinds``: {organisation:
    (a bank, its parent)}) or the firm's attribute. ``tags``: the groups of the event itself, among the events
    held (``metrics._events_from``): kept by the industry filter only when tagged with it, by industry its tags
    (none: the outer join's None)."""
    if state is None or c.empty:
        return ()
    campaign_id, held_on, status, organisers, industries, _staff = state
    if (status != EventStatus.HELD.value or campaign_id != c.campaign_id
            or not c.start <= date.fromisoformat(held_on) <= c.end or (tags and c.industry
                                                                        and c.industry not in industries)):
        return ()
    if c.bank_id is not None and not any(o == c.bank_id or kinds.get(o, (False, None))[1] == c.bank_id
                                         for o in organisers):
        return ()
    if c.branch_id is not None and c.branch_id not in organisers:
        return ()
    if tags and dim == "industry":
        return tuple(_key(code) for code in industries) or (_key(None),)
    banks = [(o, kinds[o][1]) for o in organisers if kinds.get(o, (False, None))[0]]
    at = {"month": (held_on[:7],), "bank": _NO_ORGANISER[0], "branch": _NO_ORGANISER[1]}
    if banks:
        at["bank"] = tuple({o if parent is None else parent for o, parent in banks})
        at["branch"] = tuple(o for o, parent in banks if parent is not None) or (None,)
    return _group_key(dim, at, attributes)
