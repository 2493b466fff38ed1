"""The dashboard's fast path: whole :class:`~crm.dashboard.metrics.MetricsResult` snapshots, invalidated by writes.

How it stays exact
------------------
* **One write version in the database**, table ``dashboard_write_version``: a few counter rows ("slots"). Every
  transaction that wrote to a table the numbers may depend on adds one to one slot, *in that same transaction*,
  right before it commits. The version a reader sees is the sum of the slots: it grows with every such commit,
  and because PostgreSQL and SQLite make commits visible in one order, one sum names one set of committed writes.
* **Snapshots** live in each process's memory, keyed by (database, version, filter, breakdowns, the viewer's
  scope, the label language). Workers share the version through the database, so a write in any worker, CLI,
  importer or other connection is seen by every worker's next lookup. A reader reads the version *before* it
  computes, so a snapshot is never older than the version it is filed under.
* **Invalidation cannot be forgotten**: it is not called from services. SQLAlchemy's Core cursor events see every
  statement any ``Session`` or ``Connection`` sends (ORM unit-of-work flushes, bulk ``update()`` / ``delete()`` /
  ``insert()`` through ``Session.execute``, Core and ``text()`` statements); any INSERT / UPDATE / DELETE (or DDL)
  on a table that is not listed in :data:`IGNORED_TABLES` (and is not an UPDATE of columns no number reads,
  :data:`COLUMN_SENSITIVE`, or a new firm, :data:`INSERT_IGNORED`) marks the connection's transaction, and the engine's
  ``commit`` event bumps a slot through the same DBAPI connection before the COMMIT. A rollback clears the mark.
  New tables count by default. Code that writes through a raw DBAPI connection (``crm gen-data``'s COPY loader)
  calls :func:`bump_write_version` afterwards.
* **A transaction that has written and not yet committed** never reads or fills the cache: it computes directly,
  since its own uncommitted rows are in what it sees.
* **Shared by every worker and server**: a computed snapshot is also written to table ``dashboard_snapshot`` (one
  row per key: viewer scope, language, filter, breakdowns; only the newest version is kept), so a worker that
  misses in memory reads what another worker computed at the same version instead of computing it again. Gunicorn
  recycles workers (``max_requests``) and runs several: without this, each of them paid every miss itself. The
  row is written through its own short transaction, so the viewer's request never waits long for it; when the
  database is busy the write is skipped (the snapshot stays in this worker's memory).

Why slots bumped at commit instead of one counter row (PostgreSQL write contention)
------------------------------------------------------------------------------------
``UPDATE version SET n = n + 1`` at the first write of a transaction would lock one hot row until that
transaction commits, serialising every writer in the system behind the slowest one (an import of 10,000 rows
would block every visit being saved). Here the row lock is taken only by the last statement before COMMIT, so it
is held for the commit itself, and the transaction picks one of :data:`SLOTS` rows at random, so two writers
committing in the same instant rarely even touch the same row. One row per transaction means no deadlock. A
per-campaign version was rejected: firms, reference data, users and organisations feed every campaign, and
the importers' bulk statements do not say which campaign they touch, so they would have to bump all of them.

Writes the flush can place (shard versions)
-------------------------------------------
A visit saved, a check-in, an application moved: the ORM flush knows which firms (and users) the rows belong to,
so such a commit bumps the rows of those firms' and users' shards instead of a global slot (section "Writes the
flush can place" below). Both kinds of row count in the write version, so every whole snapshot is invalidated as
before; what the shard rows add is that :class:`~crm.dashboard.shards.ShardedBackend`, which computes every miss,
recomputes only the shards written since it last computed the view (about 1/200 of a campaign year's visits at
scale 1 for a visit saved; for an edit of a visit's need alone, only the visit numbers of its firm's shard). A write
that cannot be placed bumps a global slot: every shard of every view is stale.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import random
import re
import threading
import weakref
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.interfaces import ONETOMANY
from sqlalchemy.pool import Pool

from crm.core.db import Base, upsert_insert
from crm.core.scoping import current_scope

__all__ = [
    "SLOTS", "IGNORED_TABLES", "SnapshotBackend", "write_version", "snapshot_store", "read_write_version",
    "bump_write_version", "hold_events", "install",
]

log = logging.getLogger(__name__)

VERSION_TABLE = "dashboard_write_version"
STORE_TABLE = "dashboard_snapshot"
#: counter rows; a committing writer picks one at random (see the module docstring)
SLOTS = 16

#: Shard versions ("Writes the flush can place", below) are rows of the same table, one block of slot numbers per
#: source of numbers: ``block + firm_id // FIRM_SHARD_WIDTH`` for a firm's visits, check-ins and credit, and
#: ``block + user_id // USER_SHARD_WIDTH`` for the people on visits. Every row counts in the write version, so a
#: process that knows nothing of shards (an older release during an upgrade) still sees every write. The widths must
#: be the same in every process that writes: changing them is a release that also bumps the global slots (any
#: migration does: DDL counts as a write).
SHARD_BLOCK = 1_000_000
SOURCES = {"visit": 1 * SHARD_BLOCK, "people": 2 * SHARD_BLOCK, "registration": 3 * SHARD_BLOCK,
           "credit": 4 * SHARD_BLOCK, "need": 5 * SHARD_BLOCK, "firm": 6 * SHARD_BLOCK, "event": 9 * SHARD_BLOCK,
           "names": 8 * SHARD_BLOCK}
#: A source whose meaning changes takes a new block, so that a release that knows the old meaning only counts the
#: new rows as global during a rolling upgrade (``shards._split_versions``), and this one counts the old rows so:
#: block 7 was the ``event`` row when an event's change also bumped its firms' check-in shards and its staff's
#: people shards; block 9 is the ``event`` row whose changes are logged instead (:data:`event_change_log`).

#: the one row of the ``event`` source: any event's date, status, campaign, organisers, industries or staff changed,
#: each change logged with its count (:data:`event_change_log`): a kept view reads what each moves
#: (``shards._event_moves``)
EVENT_SLOT = SOURCES["event"]
#: the one row of the ``names`` source: an organisation's name, short name or code changed, which only the labels
#: and codes of the bank and branch breakdowns read (``metrics.Names``, kept between views): no number moves
NAMES_SLOT = SOURCES["names"]
FIRM_SHARD_WIDTH = 512  #: firms per shard (scale 1: 100,000 firms in 196 shards, ~1,500 visits a campaign year each)
USER_SHARD_WIDTH = 1  #: users per shard: one (a busy RM has 3,000 visits a campaign year at scale 1)

write_version = sa.Table(
    VERSION_TABLE, Base.metadata,
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
)

#: the shared store (see "The shared store" below): one row per snapshot key, the newest version only
snapshot_store = sa.Table(
    STORE_TABLE, Base.metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)

#: the changes of held events (see "Writes the flush can place"): one row per commit that bumped ``EVENT_SLOT``,
#: numbered by that row's count after the bump, so a reader that kept a view at count ``a`` and sees count ``b``
#: finds every change in between as the rows ``a < seq <= b`` (fewer: some are gone, it treats every shard as
#: written). Its payload: [[event id, state before, state after, the check-in shards of its firms], ...], a state
#: being [campaign id, held on (ISO), status, [organiser ids], [industry codes], [staff user ids]]; a new event is
#: [null, null, null, []] (it moves the events held of every view; its staff's shards are bumped)
EVENT_LOG_TABLE = "dashboard_event_change"
event_change_log = sa.Table(
    EVENT_LOG_TABLE, Base.metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("payload", sa.Text, nullable=False),
)
#: the writer that logs change ``seq`` drops the rows up to ``seq - EVENT_LOG_KEPT`` (a view kept since then is
#: computed again for every shard of its check-ins and firms reached)
EVENT_LOG_KEPT = 1000

#: the new visits of each commit that bumped a firm shard's ``visit`` row or a person's ``people`` row with new visits
#: only (no visit of theirs edited, deleted or given companions): one row per such row and commit, numbered by the
#: row's count after the bump, so a reader that kept a view at count ``a`` of the row and sees ``b`` finds every
#: commit in between as the rows ``a < seq <= b``; a count with no row was a commit that did more, and the parts are
#: recomputed. Its ``visit_ids``: the ids of the new visits, as JSON (``shards.ShardedBackend._inserted_visits``)
VISIT_INSERT_TABLE = "dashboard_visit_insert"
visit_insert_log = sa.Table(
    VISIT_INSERT_TABLE, Base.metadata,
    sa.Column("slot", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("visit_ids", sa.Text, nullable=False),
)
#: a writer whose count of a person's row reaches a multiple of this drops that row's older entries, keeping this many
VISIT_INSERT_KEPT = 100
#: the sources whose rows are logged so: a firm shard's visits and a person's (the rows a new visit bumps)
_INSERT_LOGGED = frozenset({SOURCES["visit"], SOURCES["people"]})

#: tables no kept number or fact reads: writes to them never invalidate (every other table does). Besides the
#: bookkeeping: the targets (the page reads them for each request, beside the kept numbers), a pledge's patent and
#: its valuations and securitisation pools (registered with a pledge, whose own row is placed), and code lists no
#: number is grouped by. ``tests/test_dashboard_snapshots.py`` fails when a kept number or fact reads one of them.
IGNORED_TABLES = frozenset({
    VERSION_TABLE, STORE_TABLE, EVENT_LOG_TABLE, VISIT_INSERT_TABLE, "alembic_version", "audit_entry", "api_token",
    "follow_up", "contact", "export_column_set", "firm_account", "stage_change", "target", "ip_asset", "valuation",
    "securitisation_pool", "decline_reason", "visit_mode", "willingness_level",
})
#: the columns of a visit the numbers read; of those, the ones that decide which firm was visited (reached), when,
#: by whom (staff) and for which bank: every column but the need (firms with a need)
VISIT_COUNTED = frozenset({"id", "bank_id", "branch_id", "campaign_id", "firm_id", "rm_id", "visited_on",
                           "is_deleted"})
#: tables of which only some columns matter: an UPDATE that sets none of these does not invalidate
#: (signing in updates ``user.last_login_at``; staff counts read ``user.bank_id`` only; a firm's numbers move with
#: its industry, district and street, an event's with its date and status, a visit's with ``VISIT_COUNTED`` and its
#: need, never with a name, an address, a summary or a note)
COLUMN_SENSITIVE = {
    "user": frozenset({"id", "bank_id"}),
    "firm": frozenset({"id", "industry_code", "area_code", "street_id"}),
    "event": frozenset({"id", "campaign_id", "held_on", "status"}),
    "visit": VISIT_COUNTED | {"need_amount_fen"},
    # (a person's name, mobile, title or status moves nothing: only check-ins are counted, by event and firm)
    "registration": frozenset({"id", "event_id", "firm_id", "checked_in_at"}),
}
#: tables whose new rows move no number: a firm is counted through its visits, registrations and applications,
#: which a foreign key keeps from naming it before it exists (registering firms, a firm import)
INSERT_IGNORED = frozenset({"firm"})

_DIRTY = "crm_dashboard_dirty"  #: in Connection.info (the pooled DBAPI connection's): this transaction wrote
_SHARDS = "crm_dashboard_shards"  #: in Connection.info: shard slots written by flushes (when not _DIRTY)
_EVENT_LOG = "crm_dashboard_event_log"  #: in Connection.info: the held events' changes of those flushes (``_bump``)
#: in Connection.info: {visit or people slot: the new visits of those flushes it holds, None when it moved otherwise}
_VISIT_INSERTS = "crm_dashboard_visit_inserts"
_HAS_TABLE = "crm_dashboard_version_table"  #: in Connection.info: the schema generation it was found in
_schema_generation = 0  #: bumped by any DDL this process runs, so "the table exists" is checked again


# ---------------------------------------------------------------------------------------------------------
# Which statements write what
# ---------------------------------------------------------------------------------------------------------

_FIRST_WORD = re.compile(r"\s*(?:(?:/\*.*?\*/|--[^\n]*\n)\s*)*(\w+)", re.S)
_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|\w+)'
_TARGET = re.compile(
    r"\b(INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?"
    r"|MERGE\s+INTO|COPY)\s+(?:ONLY\s+)?(" + _NAME + r"(?:\s*\.\s*" + _NAME + r")?)", re.I)
_SET = re.compile(r"(?:\s+(?:AS\s+)?\w+)??\s+SET\s+(.*?)(?:\s+WHERE\b|\s+FROM\b|\s+RETURNING\b|\)|$)", re.I | re.S)
_PYFORMAT = re.compile(r"%\(\w+\)s")
_SUBQUERY = re.compile(r"\(\s*(?:SELECT|WITH|VALUES)\b", re.I)
_SET_COLUMN = re.compile(r'(?:^|,)\s*(?:"([^"]+)"|(\w+))\s*=')
_UPSERT = re.compile(r"\bON\s+(?:CONFLICT|DUPLICATE)\b", re.I)
_PLAIN_INSERT = re.compile(r"INSERT\s+INTO", re.I)  #: not INSERT OR REPLACE / OR IGNORE
_DML = {"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "TRUNCATE", "COPY", "WITH", "UPSERT"}
_DDL = {"CREATE", "DROP", "ALTER", "RENAME"}

#: outcomes of :func:`classify`
IGNORE, WRITE, DDL = 0, 1, 2


def _table_name(raw: str) -> str:
    name = re.split(r"\s*\.\s*", raw)[-1]
    return name.strip('"`[]').lower()


def _update_is_relevant(after_target: str, table: str) -> bool:
    """Whether an UPDATE of ``table`` (``after_target``: the statement from just after the table's name, so a
    ``WITH`` of several updates reads each one's own SET) may set a column a number reads."""
    sensitive = COLUMN_SENSITIVE.get(table)
    if sensitive is None:
        return True
    m = _SET.match(_PYFORMAT.sub("?", after_target))  # (psycopg's %(name)s: its parentheses are not SQL's)
    if not m:
        return True
    clause = m.group(1)
    if _SUBQUERY.search(clause) or clause.count("(") != clause.count(")"):
        return True  # a subquery's FROM or WHERE, or a function's ")", ended the clause early: it cannot be read
    cols = {(a or b).lower() for a, b in _SET_COLUMN.findall(clause)}
    return not cols or bool(cols & sensitive)


def classify(statement: str) -> int:
    """IGNORE, WRITE (a data change that may move a dashboard number) or DDL, for one SQL statement."""
    return analyse(statement)[0]


def analyse(statement: str) -> tuple[int, Optional[frozenset]]:
    """(:func:`classify`'s outcome, the tables a WRITE writes that count; None when the statement cannot be placed)."""
    return _analyse_cached(statement) if len(statement) <= 4000 else _analyse(statement)


def _analyse(statement: str) -> tuple[int, Optional[frozenset]]:
    m = _FIRST_WORD.match(statement)
    if not m:
        return IGNORE, frozenset()
    word = m.group(1).upper()
    if word in _DDL:
        return DDL, None
    if word not in _DML:
        return IGNORE, frozenset()
    targets = list(_TARGET.finditer(statement)) if word == "WITH" else [_TARGET.search(statement)]
    targets = [t for t in targets if t is not None]
    if not targets:
        return (IGNORE, frozenset()) if word == "WITH" else (WRITE, None)  # a write we cannot place: count it
    tables = set()
    for t in targets:
        table = _table_name(t.group(2))
        if table in IGNORED_TABLES:
            continue
        verb = t.group(1).upper()
        if verb.startswith("UPDATE") and not _update_is_relevant(statement[t.end():], table):
            continue
        if (table in INSERT_IGNORED and _PLAIN_INSERT.fullmatch(verb)
                and not _UPSERT.search(statement)):  # (an upsert may change an existing row)
            continue
        tables.add(table)
    return (WRITE, frozenset(tables)) if tables else (IGNORE, frozenset())


_analyse_cached = lru_cache(maxsize=2048)(_analyse)  # the same few hundred statements come back all the time


# ---------------------------------------------------------------------------------------------------------
# The write version: marked on write, bumped in the same transaction right before COMMIT
# ---------------------------------------------------------------------------------------------------------


def _has_table(dbapi_connection, dialect_name: str, info: dict, table: str = "") -> bool:
    """Whether ``table`` (default: the version table) exists, remembered per connection and schema generation."""
    table = table or VERSION_TABLE
    marker = (_HAS_TABLE, table)
    if info.get(marker) == _schema_generation:
        return True
    cur = dbapi_connection.cursor()
    try:
        if dialect_name == "sqlite":
            cur.execute(f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
            found = cur.fetchone() is not None
        else:
            cur.execute(f"SELECT to_regclass('{table}') IS NOT NULL")
            found = bool(cur.fetchone()[0])
    finally:
        cur.close()
    if found:
        info[marker] = _schema_generation
    return found


def _bump(dbapi_connection, dialect_name: str, info: dict, shards: Iterable[int] = (),
          events: Optional[dict] = None, inserts: Optional[dict] = None) -> None:
    """Add one to a random global slot, or to each of the shard slots ``shards``, through the raw DBAPI connection
    (inside its open transaction). Shard rows are taken in order, so two writers never wait for each other in a
    cycle. With ``EVENT_SLOT`` among them, the held events' changes ``events`` ({event id: [state before, state
    after, check-in shards]}) are logged under its new count (:data:`event_change_log`); without that table (a
    database before 0015) their shards' check-in rows are bumped instead. The visit and people slots among them
    with new visits only (``inserts``: {slot: visit ids, or None}) have those visits logged under their new counts
    (:data:`visit_insert_log`)."""
    if not _has_table(dbapi_connection, dialect_name, info):
        return  # a database not migrated to 0008 yet (or being migrated): nothing caches against it
    slots = sorted(shards) or [random.randrange(SLOTS)]
    logged = EVENT_SLOT in slots and _has_table(dbapi_connection, dialect_name, info, EVENT_LOG_TABLE)
    if EVENT_SLOT in slots and not logged:  # (what the changes would have logged, as shard rows)
        changes = (events or {}).values()
        slots = sorted(set(slots) | {SOURCES["registration"] + shard for _old, _new, shards_of in changes
                                     for shard in shards_of}
                       | (_user_slots({u for old, new, _s in changes for state in (old, new) if state
                                       for u in state[5]}) or set()))
    values = ", ".join(f"({int(slot):d}, 1)" for slot in slots)
    inserted = {slot: ids for slot, ids in (inserts or {}).items() if ids and slot in slots}
    if inserted and not _has_table(dbapi_connection, dialect_name, info, VISIT_INSERT_TABLE):
        inserted = {}
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"INSERT INTO {VERSION_TABLE} (slot, n) VALUES {values} "
                    f"ON CONFLICT (slot) DO UPDATE SET n = {VERSION_TABLE}.n + 1"
                    + (" RETURNING slot, n" if inserted else ""))
        if inserted:  # (each row locked by this transaction from here to its commit: the counts are its own)
            counts = {int(slot): int(n) for slot, n in cur.fetchall()}
            _log_visit_inserts(cur, dialect_name, {slot: (counts[slot], ids) for slot, ids in inserted.items()})
        if logged:  # (the event row is locked by this transaction from here to its commit: the counts are its own)
            cur.execute(f"SELECT n FROM {VERSION_TABLE} WHERE slot = {EVENT_SLOT:d}")
            seq = int(cur.fetchone()[0])
            payload = json.dumps([[max(event_id, 0) or None, old, new, sorted(shards_of)]  # (new events: None)
                                  for event_id, (old, new, shards_of) in sorted((events or {}).items())],
                                 separators=(",", ":"))
            mark = "?" if dialect_name == "sqlite" else "%s"
            # (a row left under this number, by counts restored from an older copy of the version table alone,
            # is replaced: a reader never trusts it, its view's count being above the database's)
            cur.execute(f"INSERT INTO {EVENT_LOG_TABLE} (seq, payload) VALUES ({seq:d}, {mark}) "
                        f"ON CONFLICT (seq) DO UPDATE SET payload = excluded.payload", (payload,))
            if seq % 100 == 0:
                cur.execute(f"DELETE FROM {EVENT_LOG_TABLE} WHERE seq <= {seq - EVENT_LOG_KEPT:d}")
    finally:
        cur.close()


def _log_visit_inserts(cur, dialect_name: str, logged: dict) -> None:
    """Write the rows of :data:`visit_insert_log` ``logged`` {slot: (its count after the bump, visit ids)}, and drop
    the older rows of a slot whose count reaches a multiple of :data:`VISIT_INSERT_KEPT`."""
    mark = "?" if dialect_name == "sqlite" else "%s"
    rows = sorted(logged.items())
    # (a row left under this number, by counts restored from an older copy of the version table alone, is replaced)
    cur.execute(f"INSERT INTO {VISIT_INSERT_TABLE} (slot, seq, visit_ids) VALUES "
                + ", ".join(f"({slot:d}, {seq:d}, {mark})" for slot, (seq, _ids) in rows)
                + " ON CONFLICT (slot, seq) DO UPDATE SET visit_ids = excluded.visit_ids",
                tuple(json.dumps(sorted(ids), separators=(",", ":")) for _slot, (_seq, ids) in rows))
    for slot, (seq, _ids) in rows:
        if seq % VISIT_INSERT_KEPT == 0:
            cur.execute(f"DELETE FROM {VISIT_INSERT_TABLE} "
                        f"WHERE slot = {slot:d} AND seq <= {seq - VISIT_INSERT_KEPT:d}")


def read_visit_inserts(conn: sa.Connection, wanted: dict) -> dict:
    """{slot: the ids of the new visits logged with its counts ``after < seq <= upto``} of each slot of ``wanted``
    {slot: (after, upto)} whose every count in between is logged (:data:`visit_insert_log`); a slot with one count
    not logged (a commit that did more than add visits, a row dropped, a database before 0016) is left out."""
    wanted = {slot: (after, upto) for slot, (after, upto) in wanted.items() if upto > after}
    if not wanted or not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info,
                                    VISIT_INSERT_TABLE):
        return {}
    t = visit_insert_log
    lowest = min(after for after, _upto in wanted.values())
    found: dict = {}
    for slot, seq, ids in conn.execute(sa.select(t.c.slot, t.c.seq, t.c.visit_ids)
                                       .where(t.c.slot.in_(sorted(wanted)), t.c.seq > lowest)):
        after, upto = wanted[slot]
        if after < seq <= upto:
            found.setdefault(slot, []).append(ids)
    return {slot: {int(i) for ids in found[slot] for i in json.loads(ids)} for slot, (after, upto) in wanted.items()
            if len(found.get(slot, ())) == upto - after}


def read_event_changes(conn: sa.Connection, after: int, upto: int, *, numbered: bool = False) -> Optional[list]:
    """The held events' changes committed with the event row's counts ``after < seq <= upto``, oldest first, each
    (event id, state before, state after, check-in shards), or (``numbered``) (seq, that change); None when one of
    them is not logged (dropped, a database before 0015, a writer that did not log)."""
    if upto <= after:
        return []
    if not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info, EVENT_LOG_TABLE):
        return None
    t = event_change_log
    rows = conn.execute(sa.select(t.c.seq, t.c.payload).where(t.c.seq > after, t.c.seq <= upto)
                        .order_by(t.c.seq)).all()
    if len(rows) != upto - after:
        return None
    return [(seq, tuple(change)) if numbered else tuple(change)
            for seq, payload in rows for change in json.loads(payload)]


# ---------------------------------------------------------------------------------------------------------
# Writes the flush can place: shard versions
# ---------------------------------------------------------------------------------------------------------
#
# Every dashboard number but the events held is a sum over firms (or, for the staff, over users): a firm's visits,
# check-ins and applications move its own shard's share only. ``crm.dashboard.shards`` keeps each view's numbers
# per shard, so a visit saved needs its firm's shard and its people's shards recomputed, not the campaign.
#
# The ORM flush knows which firms and users its rows belong to (before and after the change). Right before a
# flush, the rows it will write to ``visit``, ``visit_companion``, ``registration``, ``credit_application``,
# ``pledge``, ``firm`` (its industry, district or street) and ``event`` with its organisers, industries and staff
# (the one ``event`` row, the change logged with its state and the firms checked in at it: ``_place_event``) are
# placed in shards; a statement the flush then sends to those tables bumps those shards only. Any other statement,
# one the flush cannot place (a value not loaded, a row without its firm) and every statement outside a flush (bulk
# statements, importers, ``text()``) bumps a global slot as before, which every view reads.


@dataclasses.dataclass(frozen=True)
class _Placed:
    session: Any  #: a weak reference to the flushing Session (None: a service's declaration, ``placed_writes``)
    slots: Optional[frozenset]  #: the shard slots its rows live in; None when one of them cannot be placed
    tables: frozenset  #: the tables of the rows it placed
    events: Optional[dict] = None  #: with ``EVENT_SLOT`` among the slots: its events' changes (``_event_change``)
    #: the new visits it writes, each with its firm's and people's slots (:data:`_INSERT_LOGGED`): ((visit, slots),
    #: ...), their ids known after the flush
    new_visits: tuple = ()
    #: those slots it bumps for anything else (a stored visit edited, deleted or given companions, a new event's
    #: staff): not new visits only
    moved_otherwise: frozenset = frozenset()


_FLUSH: contextvars.ContextVar[Optional[_Placed]] = contextvars.ContextVar("crm_dashboard_flush", default=None)
_DECLARED: contextvars.ContextVar[Optional[_Placed]] = contextvars.ContextVar("crm_dashboard_declared", default=None)
_NO_VALUE = object()


def _values(obj, key: str) -> Optional[set]:
    """The attribute's value and, when the flush changes it, its value before; None when one is not known.

    A change made through a relationship (``visit.firm = other``) reaches the id column only during the flush, after
    this runs: such a row is not placed (its write bumps a global slot).
    """
    state = sa.inspect(obj)
    if any(state.attrs[rel.key].history.has_changes() for rel in _relationships_of(state.mapper, key)):
        return None
    current = state.dict.get(key, _NO_VALUE)
    if current is _NO_VALUE or current is None:
        return None  # expired (persistent) or never set (pending): the row's value is not known here
    out = {current}
    if state.key is not None and key in state.committed_state:  # persistent, changed in this flush
        old = state.committed_state[key]
        if old is None or old is NO_VALUE:
            return None
        out.add(old)
    return out


@lru_cache(maxsize=64)
def _relationships_of(mapper, key: str) -> tuple:
    """The many-to-one relationships that set the column ``key`` (``Visit.firm`` for ``firm_id``)."""
    return tuple(rel for rel in mapper.relationships if any(col.key == key for col in rel.local_columns))


def _slots(ids: Optional[set], base: int, width: int) -> Optional[set]:
    """``base + id // width`` for each id; None (not placed) when one is unknown or beyond its block."""
    if ids is None:
        return None
    shards = {int(i) // width for i in ids}
    return None if any(s >= SHARD_BLOCK or s < 0 for s in shards) else {base + s for s in shards}


def _firm_slots(firm_ids: Optional[set], source: str) -> Optional[set]:
    """The slots of these firms' shards for ``source`` (visit, registration, credit)."""
    return _slots(firm_ids, SOURCES[source], FIRM_SHARD_WIDTH)


def _user_slots(user_ids: Optional[set]) -> Optional[set]:
    return _slots(user_ids, SOURCES["people"], USER_SHARD_WIDTH)


class _Lookups:
    """What placing a flush reads from the database, one statement per kind for the whole flush: the companions of
    visits whose collection is not loaded (so not changed), the firms of the applications pledges belong to, and the
    firms checked in at and the staff of events whose numbers the flush moves (``_place_event``)."""

    def __init__(self, session, objs):
        from crm.credit.models import CreditApplication
        from crm.events.models import Event, EventStatus, Registration, event_industry, event_organiser, event_staff
        from crm.visits.models import visit_companion

        visit_ids, app_ids, event_ids, unheld, held_registrations = [], set(), [], [], []
        for obj in objs:
            state = sa.inspect(obj)
            table = state.mapper.local_table.name
            if table == "visit" and "companions" not in state.dict and state.key is not None:
                visit_ids.append(state.identity[0])
            elif table == "pledge":
                app_ids |= _values(obj, "application_id") or set()
            elif table == "event" and state.key is not None and _event_moves(obj):
                event_ids.append(state.identity[0])
                if _never_held(obj):
                    unheld.append(state.identity[0])
            elif table == "registration" and _moves_a_check_in(obj):
                held_registrations.append(obj)
        self.companions: dict[int, set] = {}
        self.app_firms: dict[int, int] = {}
        self.event_firms: dict[int, set] = {}
        self.event_staff: dict[int, set] = {}
        #: of those events not held as this session loaded them, the ones held as committed (read under the lock)
        self.events_held: set = set()
        self.events_locked = False
        #: {event id: its state as committed (``event_change_log``), read under the lock}
        self.event_states: dict[int, list] = {}
        #: what ``_place_event`` found: {event id: [state before, state after, check-in shards]} (see ``_bump``)
        self.event_changes: dict[int, list] = {}
        with session.no_autoflush:
            if held_registrations:  # (a check-in, or one given to another firm: see ``_lock_events``)
                _lock_events(session, _events_of(session, held_registrations), share=True)
            if event_ids:
                ids = sorted(event_ids)
                self.events_locked = _lock_events(session, ids)
            if self.events_locked and unheld:
                self.events_held = set(session.scalars(sa.select(Event.id).where(
                    Event.id.in_(sorted(unheld)), Event.status == EventStatus.HELD)
                    .execution_options(skip_tenant_scope=True)))
            if self.events_locked:
                self.event_firms = {e: set() for e in ids}
                self.event_staff = {e: set() for e in ids}
                for event_id, firm_id in session.execute(sa.select(Registration.event_id, Registration.firm_id)
                                                         .where(Registration.event_id.in_(ids),
                                                                Registration.checked_in_at.is_not(None)).distinct()
                                                         .execution_options(skip_tenant_scope=True)):
                    self.event_firms[event_id].add(firm_id)
                for event_id, user_id in session.execute(sa.select(event_staff.c.event_id, event_staff.c.user_id)
                                                         .where(event_staff.c.event_id.in_(ids))):
                    self.event_staff[event_id].add(user_id)
                for event_id, campaign_id, held_on, status in session.execute(
                        sa.select(Event.id, Event.campaign_id, Event.held_on, Event.status)
                        .where(Event.id.in_(ids)).execution_options(skip_tenant_scope=True)):
                    self.event_states[event_id] = [campaign_id, held_on.isoformat(), EventStatus(status).value,
                                                   [], [], sorted(self.event_staff[event_id])]
                for i, (table, column) in ((3, (event_organiser, "org_id")), (4, (event_industry, "industry_code"))):
                    for event_id, value in session.execute(sa.select(table.c.event_id, table.c[column])
                                                           .where(table.c.event_id.in_(ids))):
                        if event_id in self.event_states:  # (an event deleted meanwhile: its flush fails)
                            self.event_states[event_id][i].append(value)
                for state in self.event_states.values():  # (sorted here as the state after is: no collation)
                    state[3].sort()
                    state[4].sort()
            if visit_ids:
                for visit_id, user_id in session.execute(
                        sa.select(visit_companion.c.visit_id, visit_companion.c.user_id)
                        .where(visit_companion.c.visit_id.in_(sorted(visit_ids)))):
                    self.companions.setdefault(visit_id, set()).add(user_id)
            if app_ids:
                self.app_firms = dict(session.execute(sa.select(CreditApplication.id, CreditApplication.firm_id)
                                                      .where(CreditApplication.id.in_(sorted(app_ids)))).all())


def _lock_events(session, ids: list, *, share: bool = False) -> bool:
    """Serialise a change of these events' numbers with the writes that give them a check-in (or a staff row)
    another transaction's placement of the change could miss; False when the lock was not free (the change is then
    not placed: its commit bumps a global slot).

    The change reads its events' checked-in firms and staff right after this, and places its write in their shards.
    A check-in written for one of these events by another transaction after that read and committed before this
    change would be counted, by a view computed between the two commits, with the event as it was, in a shard this
    change does not bump; a global slot bumped by that other write would not help (the view is computed after it).
    So, before the read:

    * PostgreSQL: the change takes ``FOR UPDATE NOWAIT`` on the events' rows. A registration or staff row inserted
      for the event, or moved to it, takes a key-share lock on the event row for its foreign key's check; a stored
      registration checked in, checked out or given to another firm takes one here (``share``: ``FOR KEY SHARE``,
      waiting), from its flush (``_moves_a_check_in``) or from the service's statement (:func:`hold_events`). Those
      conflict with the change's lock: the other transaction waits for the change to commit (its own bump then
      comes after the change is visible), or, when it holds its lock first, the change does not wait for it (no
      deadlock with an import holding several events) and is not placed.
    * SQLite: a change takes the database's write lock before reading (a write to no row of the version table), so
      no other writer commits until it does. pysqlite begins a transaction only at the first write: without this the
      read would see no transaction at all.
    """
    from crm.events.models import Event

    if session.get_bind().dialect.name != "postgresql":
        if not share:
            session.execute(sa.update(write_version).where(write_version.c.slot < 0).values(n=write_version.c.n))
        return True
    lock = sa.select(Event.id).where(Event.id.in_(ids)).order_by(Event.id).execution_options(skip_tenant_scope=True)
    if share:
        session.execute(lock.with_for_update(read=True, key_share=True))
        return True
    conn = session.connection()
    try:
        with conn.begin_nested():
            conn.execute(lock.with_for_update(nowait=True))
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        return False
    return True


def hold_events(session, event_ids: Iterable[int]) -> None:
    """Before a statement outside a flush checks people in or out of these events (``placed_writes`` takes it for
    ``events.services.check_in``): a change of one of the events in flight is then committed first, or is not placed
    (``_lock_events``). A flush takes this lock itself."""
    ids = sorted(set(event_ids))
    if ids:
        _lock_events(session, ids, share=True)


_LOCK_NOT_AVAILABLE = "55P03"  #: PostgreSQL's SQLSTATE for a NOWAIT lock that was not free


def _place_visit(visit, known: _Lookups) -> Optional[set]:
    """The visit's firm (before and after) and its people: the RM and every companion, before and after.

    An edit of a visit that keeps every column of ``VISIT_COUNTED`` and its companions (its summary, its need, the
    next step) moves the firms with a need at most: its firm's ``need`` shard only, so the firms reached and the
    staff of that shard are not recomputed.
    """
    if _edits_need_only(visit):
        return _firm_slots(_values(visit, "firm_id"), "need")
    firms, users = _firm_slots(_values(visit, "firm_id"), "visit"), _values(visit, "rm_id")
    if firms is None or users is None:
        return None
    state = sa.inspect(visit)
    if "companions" in state.dict:
        companions = _member_ids(state, "companions")
        if companions is None:
            return None
        users |= companions
    elif state.key is not None:  # not loaded, so not changed: the rows in the database are its companions
        users |= known.companions.get(state.identity[0], set())
    people = _user_slots(users)
    return None if people is None else firms | people


def _member_ids(state, key: str) -> Optional[set]:
    """The ids of a loaded collection's members before and after the flush; None when one has no id yet."""
    history = state.attrs[key].history
    members = [*history.added, *history.unchanged, *history.deleted]
    return None if any(m.id is None for m in members) else {m.id for m in members}


def _edits_need_only(visit) -> bool:
    """Whether the flush updates this visit (not a new or deleted one) and changes none of ``VISIT_COUNTED`` nor its
    companions. Every other attribute changed must be a column outside ``VISIT_COUNTED``: a relationship changed
    (``visit.rm = ...``) reaches its id column only during the flush, so it counts as a change that matters."""
    state = sa.inspect(visit)
    if state.key is None or state.session is None or visit in state.session.deleted:
        return False
    if "companions" in state.dict and state.attrs.companions.history.has_changes():
        return False
    quiet = _visit_quiet_keys(state.mapper)
    # (an attribute set to the value it had is in committed_state too, unchanged: the service sets the branch again)
    return all(key in quiet or not state.attrs[key].history.has_changes() for key in state.committed_state)


@lru_cache(maxsize=4)
def _visit_quiet_keys(mapper) -> frozenset:
    """The visit's column attributes outside ``VISIT_COUNTED`` (its need among them); no relationship."""
    return frozenset(attr.key for attr in mapper.column_attrs
                     if not {col.key for col in attr.columns} & VISIT_COUNTED)


def _moves_a_check_in(registration) -> bool:
    """Whether the flush may change which firm a stored registration counts a check-in for: its check-in time or its
    firm (set, even when the value before is not known). Its event is then locked first (``_lock_events``)."""
    state = sa.inspect(registration)
    if state.key is None:
        return False  # a new row: its foreign key's check locks the event
    return any(state.attrs[key].history.has_changes() for key in ("checked_in_at", "firm_id")) or any(
        state.attrs[rel.key].history.has_changes() for rel in _relationships_of(state.mapper, "firm_id"))


def _events_of(session, registrations) -> list:
    """The events of these stored registrations, before and after the flush; read from the database for those whose
    event id is not loaded."""
    from crm.events.models import Registration

    ids, unknown = set(), []
    for registration in registrations:
        known = _values(registration, "event_id")
        if known is None:
            unknown.append(sa.inspect(registration).identity[0])
        else:
            ids |= known
    if unknown:
        ids.update(session.scalars(sa.select(Registration.event_id).where(Registration.id.in_(sorted(unknown)))
                                   .execution_options(skip_tenant_scope=True)))
    return sorted(ids)


def _checked_in(registration) -> Optional[bool]:
    """Whether the registration is checked in before or after the flush; None when that is not known here."""
    state = sa.inspect(registration)
    values = [state.dict.get("checked_in_at", None if state.key is None else NO_VALUE)]  # (new: NULL by default)
    if state.key is not None and "checked_in_at" in state.committed_state:
        values.append(state.committed_state["checked_in_at"])
    if any(v is NO_VALUE for v in values):
        return None
    return any(v is not None for v in values)


def _place_registration(registration, known: _Lookups) -> Optional[set]:
    """The registration's firm's check-in shard, before and after; nothing for one not checked in before or after
    the flush (no kept number counts a registration that is not checked in: a person registered, invited, edited or
    cancelled moves none)."""
    if _checked_in(registration) is False:
        return set()
    return _firm_slots(_values(registration, "firm_id"), "registration")


def _place_application(application, known: _Lookups) -> Optional[set]:
    return _firm_slots(_values(application, "firm_id"), "credit")


def _place_pledge(pledge, known: _Lookups) -> Optional[set]:
    app_ids = _values(pledge, "application_id")
    if app_ids is None or any(a not in known.app_firms for a in app_ids):
        return None
    return _firm_slots({known.app_firms[a] for a in app_ids}, "credit")


def _place_firm(firm, known: _Lookups) -> Optional[set]:
    """A firm whose industry, district or street the flush changes: its shard's ``firm`` source, which every part
    of its shard reads (and, for views filtered by those attributes, every user shard's staff: ``shards._refresh``).
    A new firm moves nothing (``INSERT_IGNORED``), nor does an edit of other columns (``COLUMN_SENSITIVE``); a
    deleted firm is not placed."""
    state = sa.inspect(firm)
    if state.key is None:
        return set()
    if state.session is not None and firm in state.session.deleted:
        return None
    moved = _columns_move(state, _FIRM_PLACED)
    if moved is None:
        return None
    return _firm_slots({state.identity[0]}, "firm") if moved else set()


def _columns_move(state, keys: Iterable[str]) -> Optional[bool]:
    """Whether the flush changes one of these columns of a loaded row; None when that is not known here."""
    moved = False
    for key in keys:
        if any(state.attrs[rel.key].history.has_changes() for rel in _relationships_of(state.mapper, key)):
            return None  # set through a relationship (``firm.street = ...``): the column changes during the flush
        if key not in state.committed_state:
            continue  # not set since it was loaded
        old = state.committed_state[key]
        if old is NO_VALUE or key not in state.dict:
            return None  # a value not loaded: whether it changed is not known here
        moved |= old != state.dict[key]
    return moved


#: an organisation's columns only the breakdowns' labels and codes read (``metrics.Names``); those no number reads
#: (whether it may still be chosen in forms, its timestamps). Any other column (its kind and parent decide which bank
#: a branch, a visit's branch or an event's organiser counts for; its id; one added later) is not placed.
_ORGANISATION_NAMES = frozenset({"code", "name", "short_name"})
_ORGANISATION_UNREAD = frozenset({"is_active", "created_at", "modified_at"})


def _place_organisation(org, known: _Lookups) -> Optional[set]:
    """An organisation renamed (its name, short name or code): the ``names`` row, after which the kept labels are
    read again and no part of any view is recomputed. A change of any other column the numbers may read (its kind,
    its parent: which bank a branch belongs to, set directly or through ``parent``/``children``), a new or a deleted
    organisation is not placed (a global slot: rare, administrators' writes)."""
    state = sa.inspect(org)
    if state.key is None or (state.session is not None and org in state.session.deleted):
        return None
    if any(state.attrs[rel.key].history.has_changes() for rel in state.mapper.relationships):
        return None  # its parent or children set through a relationship: parent ids change during the flush
    others = sorted(key for key in state.committed_state if key not in _ORGANISATION_NAMES | _ORGANISATION_UNREAD)
    counted = _columns_move(state, others)  # (a column set again to its value moves nothing)
    if counted is None or counted:
        return None
    named = _columns_move(state, sorted(_ORGANISATION_NAMES))
    if named is None:
        return None
    return {NAMES_SLOT} if named else set()


#: the firm's columns the numbers read besides its id
_FIRM_PLACED = tuple(sorted(COLUMN_SENSITIVE["firm"] - {"id"}))
#: an event's columns and collections the numbers read (its venue, title or capacity move none)
_EVENT_PLACED = tuple(sorted(COLUMN_SENSITIVE["event"] - {"id"}))
_EVENT_COLLECTIONS = ("industries", "organisers", "staff")


def _event_moves(event) -> Optional[bool]:
    """Whether the flush changes one of the event's columns or collections the numbers read; None when that is not
    known here (a column set through a relationship, ``event.campaign = ...``, or one not loaded)."""
    state = sa.inspect(event)
    moved = _columns_move(state, _EVENT_PLACED)
    if moved is None:
        return None
    return moved or any(key in state.dict and state.attrs[key].history.has_changes() for key in _EVENT_COLLECTIONS)


def _never_held(event) -> bool:
    """Whether the event is known not to be held, before and after the flush, as this session loaded it: every kept
    number reads held events only (``metrics._event_conds``), so an event planned or cancelled throughout moves none,
    whatever else changes (its date, organisers, staff; a check-in at it). For a stored event the status committed
    meanwhile must agree (``_Lookups.events_held``, read under the event's lock): a change of its organisers or staff
    alone updates no ``event`` row, so no version check would notice another transaction having held it."""
    from crm.events.models import EventStatus

    statuses = _values(event, "status")
    return statuses is not None and EventStatus.HELD not in statuses


def _place_event(event, known: _Lookups) -> Optional[set]:
    """An event whose date, status, campaign, organisers, industries or staff the flush changes, or a new event: the
    ``event`` row, with which the change is logged (``known.event_changes``, see ``_bump``): the stored event's state
    before and after and the check-in shards of every firm checked in at it (a firm only registered counts in no
    kept number). A kept view recomputes the events held, those firms' check-ins and the staff's participation only
    when the change moves them in it (``shards._event_moves``). A new event logs no state: it moves the events held
    of every view, and its staff's people shards are bumped. Its other columns move nothing (``COLUMN_SENSITIVE``),
    nor does any change of an event not held before or after the flush (``_never_held``: organisers edit planned
    events); a deleted event is not placed."""
    state = sa.inspect(event)
    if state.session is not None and event in state.session.deleted:
        return None
    if state.key is None:
        if _never_held(event):
            return set()
        staff = _user_slots(_member_ids(state, "staff")) if "staff" in state.dict else set()
        if staff is None:
            return None
        known.event_changes[-len(known.event_changes) - 1] = [None, None, set()]  # (no id yet: a key of its own)
        return {EVENT_SLOT} | staff
    moves = _event_moves(event)
    if not moves:
        return None if moves is None else set()
    if not known.events_locked:
        return None
    if _never_held(event) and state.identity[0] not in known.events_held:
        return set()
    change = _event_change(state, known)
    if change is None:
        return None
    known.event_changes[state.identity[0]] = change
    return {EVENT_SLOT}


def _event_change(state, known: _Lookups) -> Optional[list]:
    """[state before, state after, check-in shards] of a stored event this flush changes: before as committed (read
    under its lock: another transaction may have changed it since this session loaded it), after as this flush
    leaves it (the columns and collections it writes, over the committed ones); None when that is not known here."""
    before = known.event_states.get(state.identity[0])
    firms = _firm_slots(known.event_firms.get(state.identity[0], set()), "registration")
    if before is None or firms is None:
        return None
    after = list(before)
    for i, key in enumerate(("campaign_id", "held_on", "status")):
        if state.attrs[key].history.has_changes():
            value = state.dict[key]
            after[i] = value.isoformat() if key == "held_on" else getattr(value, "value", value)
    for i, key, ident in ((3, "organisers", "id"), (4, "industries", "code"), (5, "staff", "id")):
        if key in state.dict:
            history = state.attrs[key].history
            added, deleted = ({getattr(m, ident) for m in members} for members in (history.added, history.deleted))
            if None in added:
                return None
            after[i] = sorted((set(before[i]) - deleted) | added)
    return [before, after, {slot - SOURCES["registration"] for slot in firms}]


#: table -> (the tables its rows' flush writes, the function placing a row in shard slots)
_PLACERS: dict[str, tuple[frozenset, Callable]] = {
    "visit": (frozenset({"visit", "visit_companion"}), _place_visit),
    "registration": (frozenset({"registration"}), _place_registration),
    "credit_application": (frozenset({"credit_application"}), _place_application),
    "pledge": (frozenset({"pledge"}), _place_pledge),
    "firm": (frozenset({"firm"}), _place_firm),
    "event": (frozenset({"event", "event_organiser", "event_industry", "event_staff"}), _place_event),
    "organisation": (frozenset({"organisation"}), _place_organisation),
}


@lru_cache(maxsize=64)
def _collections_of_placed(mapper) -> tuple[str, ...]:
    """The one-to-many relationships of ``mapper`` to a placed table (``CreditApplication.pledges``)."""
    return tuple(rel.key for rel in mapper.relationships
                 if rel.direction is ONETOMANY and rel.mapper.local_table.name in _PLACERS)


def _moves_placed_rows(obj) -> bool:
    """Whether the flush sets a placed row's foreign key from the other side (``app.pledges.append(pledge)``):
    the row's own attributes do not show it before the flush."""
    state = sa.inspect(obj)
    return any(state.attrs[key].history.has_changes() for key in _collections_of_placed(state.mapper))


def _place_flush(session) -> _Placed:
    """The shard slots of every row of a placeable table this flush writes (slots None when one cannot be
    placed)."""
    slots: set = set()
    tables: set = set()
    objs = [*session.new, *session.dirty, *session.deleted]
    if any(map(_moves_placed_rows, objs)):
        return _Placed(weakref.ref(session), None, frozenset())
    placed = [(obj, _PLACERS[name]) for obj in objs if (name := getattr(obj, "__tablename__", None)) in _PLACERS]
    known = _Lookups(session, [obj for obj, _placer in placed])
    new_visits, moved_otherwise = [], set()
    for obj, placer in placed:  # (objects of other tables: their statements, if any, bump a global slot)
        got = placer[1](obj, known)
        if got is None:
            return _Placed(weakref.ref(session), None, frozenset())
        slots |= got
        tables |= placer[0]
        logged = frozenset(s for s in got if s - s % SHARD_BLOCK in _INSERT_LOGGED)
        if placer[1] is _place_visit and sa.inspect(obj).key is None:  # (pending: its INSERT is in this flush)
            new_visits.append((obj, logged))
        else:  # (a stored visit, a new event's staff: not new visits only)
            moved_otherwise |= logged
    return _Placed(weakref.ref(session), frozenset(slots), frozenset(tables), known.event_changes,
                   tuple(new_visits), frozenset(moved_otherwise))


def _before_flush(session, flush_context, instances) -> None:
    _FLUSH.set(_place_flush(session))


def _after_flush(session, *args) -> None:
    """After a flush, and after a rollback (a flush that raised leaves no placement behind)."""
    _FLUSH.set(None)


def _after_flush_postexec(session, flush_context) -> None:
    """After a flush that succeeded: its new visits, which have their ids now, noted for the firm shards and people
    whose slots they bumped (:data:`visit_insert_log`), unless its transaction already bumps a global slot."""
    flush = _FLUSH.get()
    _FLUSH.set(None)
    if (flush is None or flush.slots is None or flush.session is None or flush.session() is not session
            or not (flush.new_visits or flush.moved_otherwise)):
        return
    info = session.connection().info
    if info.get(_DIRTY):
        return
    noted = info.setdefault(_VISIT_INSERTS, {})
    for slot in flush.moved_otherwise:
        noted[slot] = None
    for visit, people in flush.new_visits:
        identity = sa.inspect(visit).identity
        for slot in people:
            if identity is None:  # (never: a flushed row has its key)
                noted[slot] = None
            elif noted.setdefault(slot, set()) is not None:
                noted[slot].add(int(identity[0]))


def _placed(tables: Optional[frozenset]) -> Optional[_Placed]:
    """The placement of a statement writing ``tables``: the flush's in progress, else a service's declaration
    (``placed_writes``); None when not placed (its ``slots`` empty: it moves none)."""
    if tables is None:
        return None
    flush = _FLUSH.get()
    session = flush.session() if flush is not None else None
    if session is not None and getattr(session, "_flushing", False):  # (not a flush that raised early)
        return flush if flush.slots is not None and tables <= flush.tables else None
    declared = _DECLARED.get()
    if declared is not None and declared.slots and tables <= declared.tables:
        return declared
    return None


#: the tables whose rows a service may place itself (``placed_writes``), and their source of numbers
_DECLARABLE = {"registration": "registration", "credit_application": "credit", "firm": "firm"}


@contextlib.contextmanager
def placed_writes(table: str, *, firm_ids: Iterable[int], event_ids: Optional[Iterable[int]] = None):
    """Statements a service sends to ``table`` inside this block write rows of these firms only.

    For the few bulk statements that are services' hot paths (a check-in is one atomic UPDATE of one registration
    row; the firms ledger updates its changed firms by executemany): without it they bump a global slot, as every
    statement outside a flush does. The caller must know the rows' firms for certain (a row it loaded, a
    ``WHERE id =`` on it). Only ``table`` is covered; a flush inside the block places its own rows as usual.
    Registrations also name their events, locked first (:func:`hold_events`): a check-in written meanwhile would
    escape an event's change in flight, whatever slot it bumped.
    """
    source = _DECLARABLE[table]  # (a visit's writes also move its people's numbers: visits are placed by the flush)
    if table == "registration":
        if event_ids is None:
            raise TypeError("placed_writes('registration') needs the rows' event_ids")
        from crm.extensions import db

        hold_events(db.session, event_ids)
    firms = set(firm_ids)
    placed = None if None in firms else _firm_slots(firms, source)
    slots = None if placed is None else frozenset(placed)
    token = _DECLARED.set(_Placed(None, slots, frozenset({table})))
    try:
        yield
    finally:
        _DECLARED.reset(token)


def _after_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    kind, tables = analyse(statement)
    if kind == IGNORE:
        return
    if kind == DDL:
        global _schema_generation
        _schema_generation += 1
    placed = _placed(tables) if kind == WRITE else None
    slots = None if placed is None else placed.slots
    events = placed.events if slots is not None and EVENT_SLOT in slots else None
    if conn._is_autocommit_isolation():  # the statement is committed already: bump on its own
        # (an event's change is not logged there: no lock holds its state until a log row could follow it)
        _bump(conn.connection.dbapi_connection, conn.dialect.name, conn.info, () if events else slots or ())
        return
    if slots is None:
        _mark_dirty(conn.info)
    elif not conn.info.get(_DIRTY):
        conn.info.setdefault(_SHARDS, set()).update(slots)
        logged = conn.info.setdefault(_EVENT_LOG, {})
        for event_id, (before, after, firm_shards) in (events or {}).items():
            if event_id in logged:  # (a later flush of the transaction: its state before is this one's after)
                logged[event_id] = [logged[event_id][0], after, logged[event_id][2] | firm_shards]
            else:
                logged[event_id] = [before, after, set(firm_shards)]


def _on_commit(conn) -> None:
    dirty, shards = conn.info.pop(_DIRTY, False), conn.info.pop(_SHARDS, None)
    events, inserts = conn.info.pop(_EVENT_LOG, None), conn.info.pop(_VISIT_INSERTS, None)
    if dirty or shards:
        _bump(conn.connection.dbapi_connection, conn.dialect.name, conn.info, () if dirty else shards, events,
              None if dirty else inserts)


def _on_rollback_savepoint(conn, name, context) -> None:
    """A savepoint rolled back: the shard slots its statements added only invalidate more than needed, but an
    event's change logged there did not happen (the states logged around it would then skip it): the transaction
    bumps a global slot instead."""
    if conn.info.get(_EVENT_LOG):
        _mark_dirty(conn.info)


def _mark_dirty(info: dict) -> None:
    """The transaction wrote what no shard holds: its commit bumps a global slot, and no shard slot nor change."""
    info[_DIRTY] = True
    for key in (_SHARDS, _EVENT_LOG, _VISIT_INSERTS):
        info.pop(key, None)


def _forget(info: dict) -> None:
    for key in (_DIRTY, _SHARDS, _EVENT_LOG, _VISIT_INSERTS):
        info.pop(key, None)


def _on_rollback(conn) -> None:
    _forget(conn.info)
    _FLUSH.set(None)


def _on_pool_reset(dbapi_connection, connection_record, reset_state) -> None:
    info = getattr(connection_record, "info", None)
    if info is not None:
        _forget(info)


def _listen() -> None:
    for target, name, fn in ((Engine, "after_cursor_execute", _after_cursor_execute), (Engine, "commit", _on_commit),
                             (Engine, "rollback", _on_rollback),
                             (Engine, "rollback_savepoint", _on_rollback_savepoint), (Pool, "reset", _on_pool_reset),
                             (Session, "before_flush", _before_flush),
                             (Session, "after_flush_postexec", _after_flush_postexec),
                             (Session, "after_soft_rollback", _after_flush)):
        if not event.contains(target, name, fn):
            event.listen(target, name, fn)


_listen()  # on import (create_app imports this module): every worker, CLI command and script built on the app


def bump_write_version(bind) -> None:
    """Invalidate every snapshot: for code that wrote through a raw DBAPI connection (no SQLAlchemy events)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.begin() as conn:
        conn.info[_DIRTY] = True


def read_write_version(conn: sa.Connection) -> Optional[int]:
    """The committed write version this connection sees (global and shard slots), or None without the table
    (database before 0008)."""
    if not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info):
        return None
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(write_version.c.n), 0))).scalar_one())


def transaction_has_written(session) -> bool:
    """Whether the session's transaction holds writes (flushed or pending) that are not committed yet."""
    if session.new or session.dirty or session.deleted:
        return True
    info = session.connection().info
    return bool(info.get(_DIRTY) or info.get(_SHARDS))


def read_slots(conn: sa.Connection, slots: Iterable[int], blocks: Iterable[int] = ()) -> tuple[int, dict[int, int]]:
    """(the sum of the global slots and of the rows in blocks this release does not know, {slot: n} of the shard
    slots ``slots``, 0 for a row not written yet, and of every row of the sources' blocks ``blocks`` (their first
    slots)) this connection sees now: a few of :func:`read_versions`' rows read again, to tell whether a write
    committed since."""
    wanted = sorted(set(slots))
    blocks = set(blocks)
    slot = write_version.c.slot
    known = [slot.between(base, base + SHARD_BLOCK - 1) for base in SOURCES.values()]
    whole = [slot.between(base, base + SHARD_BLOCK - 1) for base in sorted(blocks)]
    rows = conn.execute(sa.select(slot, write_version.c.n).where(
        sa.or_(slot < SHARD_BLOCK, slot.in_(wanted), *whole, sa.not_(sa.or_(*known))))).all()
    found = dict(rows)
    in_blocks = {s: n for s, n in found.items() if s - s % SHARD_BLOCK in blocks}
    return (sum(n for s, n in found.items() if s not in wanted and s not in in_blocks),
            {**in_blocks, **{s: found.get(s, 0) for s in wanted}})


def read_versions(conn: sa.Connection) -> Optional[tuple[int, dict[int, int]]]:
    """(the sum of the global slots, {shard slot: n}) this connection sees; None without the table."""
    if not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info):
        return None
    rows = conn.execute(sa.select(write_version.c.slot, write_version.c.n)).all()
    return sum(n for slot, n in rows if slot < SHARD_BLOCK), {slot: n for slot, n in rows if slot >= SHARD_BLOCK}


# ---------------------------------------------------------------------------------------------------------
# Copies of results
# ---------------------------------------------------------------------------------------------------------


def _copy_result(result, campaign, dims: Optional[tuple] = None):
    """A copy sharing no mutable part with ``result`` (values are immutable: ints, Decimals, str, None),
    keeping the breakdowns ``dims`` (in that order; all of them when None)."""
    from crm.dashboard.metrics import MetricsResult

    dims = tuple(result.breakdowns) if dims is None else dims
    return MetricsResult(
        result.filter, campaign, result.window_from, result.window_to, dict(result.totals),
        {dim: {k: dict(v) for k, v in result.breakdowns[dim].items()} for dim in dims},
        {dim: dict(result.labels[dim]) for dim in dims if dim in result.labels}, dict(result.meta),
        {dim: dict(result.codes[dim]) for dim in dims if dim in result.codes})


# ---------------------------------------------------------------------------------------------------------
# The shared store: snapshots as JSON rows every worker reads
# ---------------------------------------------------------------------------------------------------------


def _to_json(value):
    if isinstance(value, Decimal):
        return {"$decimal": format(value, "f")}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"{type(value).__name__} in a dashboard snapshot")


def _from_json(obj: dict):
    if len(obj) == 1:
        if "$decimal" in obj:
            return Decimal(obj["$decimal"])
        if "$date" in obj:
            return date.fromisoformat(obj["$date"])
    return obj


def encode_result(result) -> str:
    """A result as JSON text (exact: Decimals and dates tagged; dict order kept)."""
    return json.dumps({"window": [result.window_from, result.window_to], "totals": result.totals,
                       "breakdowns": result.breakdowns, "labels": result.labels, "meta": result.meta,
                       "codes": result.codes}, default=_to_json, ensure_ascii=False, separators=(",", ":"))


def decode_result(payload: str, f, campaign):
    """The result :func:`encode_result` wrote, for filter ``f`` and ``campaign``."""
    from crm.dashboard.metrics import MetricsResult

    doc = json.loads(payload, object_hook=_from_json)
    return MetricsResult(f, campaign, doc["window"][0], doc["window"][1], doc["totals"], doc["breakdowns"],
                         doc["labels"], doc["meta"], doc["codes"])


def _store_key(key: tuple) -> str:
    """The shared store's key of a memory key (database, version, bank, all banks, language, filter, dims):
    everything but the database and the version, which is a column of its own."""
    _database, _version, bank_id, all_banks, zh, f, dims = key
    return hashlib.sha256(repr((bank_id, all_banks, zh, dataclasses.astuple(f), dims)).encode()).hexdigest()


def _load_shared(conn: sa.Connection, version: int, keys: list[str]) -> Optional[tuple[str, str]]:
    """(key, payload) of the first of ``keys`` stored at ``version``, through the viewer's own connection."""
    if not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info, STORE_TABLE):
        return None
    t = snapshot_store
    rows = dict(conn.execute(sa.select(t.c.key, t.c.payload).where(t.c.key.in_(keys), t.c.version == version)).all())
    return next(((k, rows[k]) for k in keys if k in rows), None)


#: per database: the version below which this process last dropped the store's rows (``_save_shared``)
_PRUNED: dict[str, int] = {}


def _save_shared(engine: Engine, key: str, version: int, payload: str) -> bool:
    """Write a snapshot row in a transaction of its own; drop rows of older versions, once per version and process
    (the first save after a write; the rows of keys viewed again are replaced by the upsert anyway, and a lookup
    wants its own version only). False when skipped."""
    t = snapshot_store
    database = engine.url.render_as_string(hide_password=True)
    prune = _PRUNED.get(database) != version  # (not <: a database created again under its URL starts low)
    try:
        with engine.begin() as conn:
            dbapi = conn.connection.dbapi_connection
            sqlite = conn.dialect.name == "sqlite"
            if not _has_table(dbapi, conn.dialect.name, conn.info, STORE_TABLE):
                return False
            cur, previous = dbapi.cursor(), None
            try:  # wait for a busy writer a moment, not the usual ten seconds
                if sqlite:
                    cur.execute("PRAGMA busy_timeout")
                    previous = int(cur.fetchone()[0])
                    cur.execute("PRAGMA busy_timeout = 250")
                else:
                    # a copy that can be computed again: its commit need not wait for the WAL to reach the disk
                    # (a crash may lose it, never anything else; SQLite's synchronous=NORMAL is the same bargain)
                    cur.execute("SET LOCAL lock_timeout = '250ms'; SET LOCAL synchronous_commit = off")
                if prune:
                    conn.execute(sa.delete(t).where(t.c.version < version))
                stmt = upsert_insert(t, conn.dialect.name).values(key=key, version=version, payload=payload)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[t.c.key], set_={"version": stmt.excluded.version, "payload": stmt.excluded.payload},
                    where=t.c.version < stmt.excluded.version))
            finally:
                if previous is not None:
                    cur.execute(f"PRAGMA busy_timeout = {previous:d}")
                cur.close()
        if prune:
            _PRUNED[database] = version
        return True
    except sa.exc.DBAPIError as exc:  # busy or locked: the snapshot stays in this worker's memory only
        log.warning("dashboard snapshot not shared (%s)", type(exc.orig).__name__)
        return False


# ---------------------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------------------


class VersionedCache:
    """A worker's memory of computed results keyed by ``(database, version, ...)``, least recently used out first.

    Only the newest version of each database is worth keeping: a result filed under an older version is dropped
    (``put`` says False), and the first one of a newer version drops every older entry of that database.
    """

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._newest: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._newest.clear()

    def get(self, key: tuple, *, take: bool = False):
        """The entry (None when absent); ``take``: out of the cache, for its caller alone to bring up to date."""
        with self._lock:
            if take:
                return self._entries.pop(key, None)
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value) -> bool:
        """File ``value`` under ``key``; False when a newer version is known (nobody would ask for it)."""
        database, version = key[0], key[1]
        with self._lock:
            newest = self._newest.get(database, -1)
            if version < newest:
                return False  # a reader on an older snapshot: its result is of no use to anyone later
            if version > newest:
                self._newest[database] = version
                for k in [k for k in self._entries if k[0] == database and k[1] < version]:
                    del self._entries[k]
            self._entries[key] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True


@lru_cache(maxsize=256)
def _covering(dims: tuple) -> tuple:
    """The breakdown sets the dashboard computes that hold ``dims`` (and are not ``dims``), smallest first:
    the page's (``page_dimensions`` of each tab), then every breakdown."""
    from crm.dashboard.metrics import DIMENSIONS, page_dimensions

    out: list[tuple] = []
    for candidate in (*(page_dimensions(tab) for tab in DIMENSIONS), DIMENSIONS):
        if candidate != dims and set(dims) <= set(candidate) and candidate not in out:
            out.append(candidate)
    return tuple(out)


class SnapshotBackend:
    """Serves whole results from snapshots filed under the database's write version: from this worker's memory,
    else from the shared store; misses go to ``inner`` and are filed in both."""

    def __init__(self, inner=None, max_entries: int = 512, shared: bool = True):
        from crm.dashboard.shards import ShardedBackend

        self.inner = inner if inner is not None else ShardedBackend()
        self.shared = shared
        self._cache = VersionedCache(max_entries)
        self.stats = {"hits": 0, "shared_hits": 0, "misses": 0, "bypassed": 0, "shared_skipped": 0}

    # the MetricsBackend protocol, for anyone aggregating directly
    def aggregate(self, ctx, dim):
        return self.inner.aggregate(ctx, dim)

    def known(self, name: str) -> dict:
        """The inner backend's facts kept under the global write count (``ShardedBackend.known``); without them, a
        new dictionary each time."""
        known = getattr(self.inner, "known", None)
        return known(name) if known is not None else {}

    def clear(self) -> None:
        self._cache.clear()
        inner_clear = getattr(self.inner, "clear", None)
        if inner_clear is not None:
            inner_clear()

    def compute_metrics(self, f, breakdowns: Iterable[str], compute: Callable):
        """``compute(f, breakdowns, backend)`` is the uncached computation (metrics._compute_metrics)."""
        from crm.dashboard.metrics import _lang_is_zh
        from crm.extensions import db
        from crm.orgs.models import Campaign

        dims = tuple(breakdowns)
        session = db.session
        if transaction_has_written(session):
            self.stats["bypassed"] += 1
            return compute(f, dims, self.inner)
        conn = session.connection()
        inner_version = getattr(self.inner, "write_version", None)  # (its parts are computed with that same read)
        version = inner_version(db.session()) if inner_version is not None else read_write_version(conn)
        if version is None:
            self.stats["bypassed"] += 1
            return compute(f, dims, self.inner)
        scope = current_scope()
        database = conn.engine.url.render_as_string(hide_password=True)
        key = (database, version, scope.bank_id, scope.all_banks, _lang_is_zh(), f, dims)
        # a result with more breakdowns (the dashboard page's, the full one) holds this one too
        keys = [key] + [key[:-1] + (covering,) for covering in _covering(dims)]
        cached = next((c for c in map(self._cache.get, keys) if c is not None), None)
        if cached is None and self.shared:
            stored = {_store_key(k): k for k in keys}
            found = _load_shared(conn, version, list(stored))
            campaign = session.get(Campaign, f.campaign_id) if found is not None else None
            if campaign is not None:
                cached = decode_result(found[1], f, None)
                self._cache.put(stored[found[0]], cached)
                self.stats["shared_hits"] += 1
                return _copy_result(cached, campaign, dims)
        if cached is not None:
            campaign = session.get(Campaign, f.campaign_id)
            if campaign is not None:
                self.stats["hits"] += 1
                return _copy_result(cached, campaign, dims)
        self.stats["misses"] += 1
        result = compute(f, dims, self.inner)
        if self._cache.put(key, _copy_result(result, None)) and self.shared:
            if not _save_shared(conn.engine, _store_key(key), version, encode_result(result)):
                self.stats["shared_skipped"] += 1
        return result


def install(app) -> None:
    """Make the snapshot backend the dashboard's (config ``DASHBOARD_SNAPSHOTS``, on by default); without
    snapshots every view computes with :class:`~crm.dashboard.fastsql.FastSqlBackend`."""
    from crm.dashboard.fastsql import FastSqlBackend
    from crm.dashboard.metrics import get_backend, set_backend

    current = get_backend()
    if app.config.get("DASHBOARD_SNAPSHOTS", True):
        if not isinstance(current, SnapshotBackend):
            set_backend(SnapshotBackend(shared=app.config.get("DASHBOARD_SHARED_SNAPSHOTS", True)))
    elif type(current) is not FastSqlBackend:
        set_backend(FastSqlBackend())
