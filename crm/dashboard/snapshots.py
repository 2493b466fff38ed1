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
  on a table that is not listed in :data:`IGNORED_TABLES` marks the connection's transaction, and the engine's
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

Every miss is computed by :class:`~crm.dashboard.fastsql.FastSqlBackend`: the reference
:class:`~crm.dashboard.metrics.SqlBackend`'s numbers from cheaper statements.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import re
import threading
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from crm.core.db import Base, upsert_insert
from crm.core.scoping import current_scope

__all__ = [
    "SLOTS", "IGNORED_TABLES", "SnapshotBackend", "write_version", "snapshot_store", "read_write_version",
    "bump_write_version", "install",
]

log = logging.getLogger(__name__)

VERSION_TABLE = "dashboard_write_version"
STORE_TABLE = "dashboard_snapshot"
#: counter rows; a committing writer picks one at random (see the module docstring)
SLOTS = 16

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

#: tables no dashboard number reads: writes to them never invalidate (every other table does)
IGNORED_TABLES = frozenset({
    VERSION_TABLE, STORE_TABLE, "alembic_version", "audit_entry", "api_token", "follow_up", "contact", "export_column_set",
})
#: tables of which only some columns matter: an UPDATE that sets none of these does not invalidate
#: (signing in updates ``user.last_login_at``; staff counts read ``user.bank_id`` only)
COLUMN_SENSITIVE = {"user": frozenset({"id", "bank_id"})}

_DIRTY = "crm_dashboard_dirty"  #: in Connection.info (the pooled DBAPI connection's): this transaction wrote
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
_SET = re.compile(r"\bSET\s+(.*?)(?:\s+WHERE\b|\s+FROM\b|\s+RETURNING\b|$)", re.I | re.S)
_SET_COLUMN = re.compile(r'(?:^|,)\s*(?:"([^"]+)"|(\w+))\s*=')
_DML = {"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "TRUNCATE", "COPY", "WITH", "UPSERT"}
_DDL = {"CREATE", "DROP", "ALTER", "RENAME"}

#: outcomes of :func:`classify`
IGNORE, WRITE, DDL = 0, 1, 2


def _table_name(raw: str) -> str:
    name = re.split(r"\s*\.\s*", raw)[-1]
    return name.strip('"`[]').lower()


def _update_is_relevant(statement: str, table: str) -> bool:
    sensitive = COLUMN_SENSITIVE.get(table)
    if sensitive is None:
        return True
    m = _SET.search(statement)
    if not m:
        return True
    cols = {(a or b).lower() for a, b in _SET_COLUMN.findall(m.group(1))}
    return not cols or bool(cols & sensitive)


def classify(statement: str) -> int:
    """IGNORE, WRITE (a data change that may move a dashboard number) or DDL, for one SQL statement."""
    return _classify_cached(statement) if len(statement) <= 4000 else _classify(statement)


def _classify(statement: str) -> int:
    m = _FIRST_WORD.match(statement)
    if not m:
        return IGNORE
    word = m.group(1).upper()
    if word in _DDL:
        return DDL
    if word not in _DML:
        return IGNORE
    targets = list(_TARGET.finditer(statement)) if word == "WITH" else [_TARGET.search(statement)]
    targets = [t for t in targets if t is not None]
    if not targets:
        return IGNORE if word == "WITH" else WRITE  # a write we cannot place: count it
    for t in targets:
        table = _table_name(t.group(2))
        if table in IGNORED_TABLES:
            continue
        if t.group(1).upper().startswith("UPDATE") and not _update_is_relevant(statement, table):
            continue
        return WRITE
    return IGNORE


_classify_cached = lru_cache(maxsize=2048)(_classify)  # the same few hundred statements come back all the time


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


def _bump(dbapi_connection, dialect_name: str, info: dict) -> None:
    """Add one to a random slot through the raw DBAPI connection (inside its open transaction)."""
    if not _has_table(dbapi_connection, dialect_name, info):
        return  # a database not migrated to 0008 yet (or being migrated): nothing caches against it
    slot = random.randrange(SLOTS)
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"INSERT INTO {VERSION_TABLE} (slot, n) VALUES ({slot:d}, 1) "
                    f"ON CONFLICT (slot) DO UPDATE SET n = {VERSION_TABLE}.n + 1")
    finally:
        cur.close()


def _after_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    kind = classify(statement)
    if kind == IGNORE:
        return
    if kind == DDL:
        global _schema_generation
        _schema_generation += 1
    if conn._is_autocommit_isolation():  # the statement is committed already: bump on its own
        _bump(conn.connection.dbapi_connection, conn.dialect.name, conn.info)
        return
    conn.info[_DIRTY] = True


def _on_commit(conn) -> None:
    if conn.info.pop(_DIRTY, False):
        _bump(conn.connection.dbapi_connection, conn.dialect.name, conn.info)


def _on_rollback(conn) -> None:
    conn.info.pop(_DIRTY, None)


def _on_pool_reset(dbapi_connection, connection_record, reset_state) -> None:
    info = getattr(connection_record, "info", None)
    if info is not None:
        info.pop(_DIRTY, None)


def _listen() -> None:
    for target, name, fn in ((Engine, "after_cursor_execute", _after_cursor_execute), (Engine, "commit", _on_commit),
                             (Engine, "rollback", _on_rollback), (Pool, "reset", _on_pool_reset)):
        if not event.contains(target, name, fn):
            event.listen(target, name, fn)


_listen()  # on import (create_app imports this module): every worker, CLI command and script built on the app


def bump_write_version(bind) -> None:
    """Invalidate every snapshot: for code that wrote through a raw DBAPI connection (no SQLAlchemy events)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.begin() as conn:
        conn.info[_DIRTY] = True


def read_write_version(conn: sa.Connection) -> Optional[int]:
    """The committed write version this connection sees, or None without the table (database before 0008)."""
    if not _has_table(conn.connection.dbapi_connection, conn.dialect.name, conn.info):
        return None
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(write_version.c.n), 0))).scalar_one())


def transaction_has_written(session) -> bool:
    """Whether the session's transaction holds writes (flushed or pending) that are not committed yet."""
    if session.new or session.dirty or session.deleted:
        return True
    return bool(session.connection().info.get(_DIRTY))


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


def _save_shared(engine: Engine, key: str, version: int, payload: str) -> bool:
    """Write a snapshot row in a transaction of its own; drop rows of older versions. False when skipped."""
    t = snapshot_store
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
                    cur.execute("SET LOCAL lock_timeout = '250ms'")
                conn.execute(sa.delete(t).where(t.c.version < version))
                stmt = upsert_insert(t, conn.dialect.name).values(key=key, version=version, payload=payload)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[t.c.key], set_={"version": stmt.excluded.version, "payload": stmt.excluded.payload},
                    where=t.c.version < stmt.excluded.version))
            finally:
                if previous is not None:
                    cur.execute(f"PRAGMA busy_timeout = {previous:d}")
                cur.close()
        return True
    except sa.exc.DBAPIError as exc:  # busy or locked: the snapshot stays in this worker's memory only
        log.warning("dashboard snapshot not shared (%s)", type(exc.orig).__name__)
        return False


# ---------------------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------------------


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
        from crm.dashboard.fastsql import FastSqlBackend

        self.inner = inner if inner is not None else FastSqlBackend()
        self.max_entries = max_entries
        self.shared = shared
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._newest: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "shared_hits": 0, "misses": 0, "bypassed": 0, "shared_skipped": 0}

    # the MetricsBackend protocol, for anyone aggregating directly
    def aggregate(self, ctx, dim):
        return self.inner.aggregate(ctx, dim)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._newest.clear()

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
        version = read_write_version(conn)
        if version is None:
            self.stats["bypassed"] += 1
            return compute(f, dims, self.inner)
        scope = current_scope()
        database = conn.engine.url.render_as_string(hide_password=True)
        key = (database, version, scope.bank_id, scope.all_banks, _lang_is_zh(), f, dims)
        # a result with more breakdowns (the dashboard page's, the full one) holds this one too
        keys = [key] + [key[:-1] + (covering,) for covering in _covering(dims)]
        cached = next((c for c in map(self._lookup, keys) if c is not None), None)
        if cached is None and self.shared:
            stored = {_store_key(k): k for k in keys}
            found = _load_shared(conn, version, list(stored))
            campaign = session.get(Campaign, f.campaign_id) if found is not None else None
            if campaign is not None:
                cached = decode_result(found[1], f, None)
                self._store(stored[found[0]], cached)
                self.stats["shared_hits"] += 1
                return _copy_result(cached, campaign, dims)
        if cached is not None:
            campaign = session.get(Campaign, f.campaign_id)
            if campaign is not None:
                self.stats["hits"] += 1
                return _copy_result(cached, campaign, dims)
        self.stats["misses"] += 1
        result = compute(f, dims, self.inner)
        if self._store(key, _copy_result(result, None)) and self.shared:
            if not _save_shared(conn.engine, _store_key(key), version, encode_result(result)):
                self.stats["shared_skipped"] += 1
        return result

    def _lookup(self, key: tuple):
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
            return cached

    def _store(self, key: tuple, value) -> bool:
        """File ``value`` under ``key``; False when a newer version is known (nobody would ask for it)."""
        database, version = key[0], key[1]
        with self._lock:
            newest = self._newest.get(database, -1)
            if version < newest:
                return False  # a reader on an older snapshot: its result is of no use to anyone later
            if version > newest:
                self._newest[database] = version
                for k in [k for k in self._cache if k[0] == database and k[1] < version]:
                    del self._cache[k]
            self._cache[key] = value
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return True


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
