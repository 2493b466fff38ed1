"""The campaign outreach CRM: application factory."""
from __future__ import annotations

import logging

from flask import Flask, g, request, session
from sqlalchemy import event
from sqlalchemy.engine import Engine

from crm.extensions import babel, csrf, db, limiter, login_manager, migrate

log = logging.getLogger(__name__)


def freeze_loaded_objects() -> int:
    """Exempt every object alive now (the loaded code, the app, its extensions) from garbage collection; returns
    how many were frozen. For a server process, once the app is built: gunicorn's master before it forks its
    workers (gunicorn.conf.py ``when_ready``), and the benchmark's in-process app, which stands for a worker.

    A full collection walks every tracked object, and a built app holds about 120,000 that live as long as the
    process: one in every ten requests or so paid 80 ms for it (the p95 of pages whose median is 15-50 ms).
    Frozen, they are never walked again (nor written to, so forked workers keep sharing their memory pages).
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


_survivors = {"pending": False}  #: a full collection ran since the last settle_heap(): its survivors are not frozen


def _note_full_collection(phase: str, info: dict) -> None:
    if phase == "stop" and info["generation"] == 2:
        _survivors["pending"] = True


def freeze_survivors() -> None:
    """In a worker: note each full collection, so that :func:`settle_heap` freezes its survivors between requests.

    A worker's heap keeps growing after the fork: SQLAlchemy's compiled statements (about 90,000 objects once the
    pages have been seen), the dashboard's cached results. A full collection walked all of them again every
    dozen requests or so: 50-70 ms pauses, the p95 of pages whose median is 15 ms. Frozen, they are walked no
    more. Idempotent. (On an interpreter whose collector never reports a generation 2, nothing changes.)
    """
    import gc

    if _note_full_collection not in gc.callbacks:
        gc.callbacks.append(_note_full_collection)


def settle_heap() -> bool:
    """Between two requests (gunicorn's ``post_request``, after the response was sent; the benchmark after each
    timed request): when a full collection has run since the last call, collect once more, now that no request's
    objects are alive, and freeze every survivor. Returns whether it did.

    Only what came since the last freeze is walked, so this costs little, and nothing of a request is frozen: a
    request's objects are garbage by then, collected now. The price is what the cache keeps and later drops inside a
    reference cycle (an evicted compiled statement): frozen, it is never collected; ``max_requests`` recycles the
    worker, which bounds it. Measured in the benchmark's process over its page reads at scale 0.1: without it, ten
    full collections took 553 ms, the longest pause 74 ms; with it, 18 (half of them here, between requests) took
    122 ms, the longest pause 24 ms (docs/performance.md 4.8).
    """
    if not _survivors["pending"]:
        return False
    import gc

    gc.collect()
    gc.freeze()
    _survivors["pending"] = False  # (after: the collection above reported itself too)
    return True


#: SQLite's automatic checkpoint, in pages of the write-ahead log: the commit that takes the log past it copies the
#: log into the database file and syncs it, inside that commit (scale 1: 1,000 pages took 325 ms, the p95 of the
#: dashboard after a new visit). Servers checkpoint between requests instead (:func:`settle_wal`); this is the bound
#: for processes that do not (a command, an import), and for a burst of writes within one interval.
WAL_AUTOCHECKPOINT_PAGES = 10_000
#: the least time between two checkpoints of one worker (:func:`settle_wal`)
WAL_SETTLE_SECONDS = 1.0
_wal = {"paths": set(), "pid": None, "connections": {}, "last": 0.0}  #: the SQLite files seen, one connection each


def settle_wal(now: float | None = None) -> int:
    """Between two requests (gunicorn's ``post_request``, after the response was sent; the benchmark after each
    timed request), at most once every :data:`WAL_SETTLE_SECONDS`: copy what SQLite's write-ahead log holds into
    the database file (a passive checkpoint, through a connection of its own: it never waits for a reader or a
    writer, and leaves what they hold for the next time). So no request's commit pays for it. Returns how many
    databases it checkpointed (none with PostgreSQL, or before the interval)."""
    import os
    import sqlite3
    import time
    import urllib.parse

    now = time.monotonic() if now is None else now
    if not _wal["paths"] or now - _wal["last"] < WAL_SETTLE_SECONDS:
        return 0
    _wal["last"] = now
    if _wal["pid"] != os.getpid():  # (a forked worker opens its own)
        _wal["pid"], _wal["connections"] = os.getpid(), {}
    done = 0
    for path in sorted(_wal["paths"]):
        try:
            conn = _wal["connections"].get(path)
            if conn is None:  # (read-write, never created: a file gone since is forgotten, not made again)
                conn = _wal["connections"][path] = sqlite3.connect(
                    f"file:{urllib.parse.quote(path)}?mode=rw", uri=True, timeout=0, check_same_thread=False,
                    isolation_level=None)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            done += 1
        except sqlite3.Error as exc:  # (a file moved or locked: the next commit past the bound checkpoints)
            log.warning("write-ahead log of %s not checkpointed (%s)", path, exc)
            stale = _wal["connections"].pop(path, None)
            if stale is not None:
                stale.close()
            if not os.path.exists(path):
                _wal["paths"].discard(path)
    return done


def create_app(config_class: str = "config.Config", overrides: dict | None = None) -> Flask:
    """Build the app; importing or calling this has no side effects on any database."""
    app = Flask(__name__, template_folder="../templates", instance_relative_config=False)
    app.config.from_object(config_class)
    if overrides:
        app.config.update(overrides)
    from crm.security import check_config

    check_config(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_request_hooks(app)
    register_template_helpers(app)
    register_commands(app)
    register_shellcontext(app)
    return app


def register_extensions(app: Flask) -> None:
    import crm.models  # noqa: F401  (all models known to metadata and the scoping hook)
    from crm.dashboard import snapshots  # the write-version table and the hooks that bump it on every write

    db.init_app(app)
    snapshots.install(app)  # dashboard results cached as snapshots (issue 8); SqlBackend stays the reference
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"), render_as_batch=True,
                     compare_type=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    from crm import i18n

    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    i18n.register(app)
    limiter.init_app(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: foreign keys on, WAL (checkpointed between requests: :func:`settle_wal`), and a busy timeout so
    writers wait instead of failing.

    SQLite's default page cache and no memory map: a larger cache and a map saved 12% of a dashboard miss's CPU
    but made the 50,000-row CSV export 50% slower and grow the worker by 23 MiB (docs/performance.md 4.8).
    """
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES:d}")
    cur.execute("PRAGMA database_list")
    path = next((file for _seq, name, file in cur.fetchall() if name == "main"), "")
    if path:  # (not an in-memory database)
        _wal["paths"].add(path)
    cur.close()


@event.listens_for(Engine, "do_connect")
def _postgresql_connection(dialect, conn_rec, cargs, cparams):
    """PostgreSQL (psycopg): connections that keep their prepared statements across requests (crm.core.pgconn)."""
    if dialect.driver == "psycopg":
        from crm.core import pgconn

        return pgconn.connect(cargs, cparams)
    return None


#: (package, URL prefix) of every blueprint
BLUEPRINTS = [
    ("crm.auth", None),
    ("crm.main", None),
    ("crm.orgs", "/admin"),
    ("crm.firms", "/firms"),
    ("crm.visits", "/visits"),
    ("crm.events", "/events"),
    ("crm.credit", "/credit"),
    ("crm.dashboard", "/dashboard"),
    ("crm.imports", "/imports"),
    ("crm.api", "/api/v1"),
    ("crm.privacy", "/privacy"),
]


def register_blueprints(app: Flask) -> None:
    import importlib

    for package, prefix in BLUEPRINTS:
        importlib.import_module(package + ".views")  # routes register on import
        app.register_blueprint(importlib.import_module(package).bp, url_prefix=prefix)


def register_errorhandlers(app: Flask) -> None:
    from crm.errors import register

    register(app)


def register_request_hooks(app: Flask) -> None:
    from crm.security import register as register_security

    register_security(app)


def register_template_helpers(app: Flask) -> None:
    from crm.core.formatting import register

    register(app)


def register_commands(app: Flask) -> None:
    from crm.commands import crm_cli

    import crm.perf  # noqa: F401  (registers `crm gen-data`)

    app.cli.add_command(crm_cli)


def register_shellcontext(app: Flask) -> None:
    def shell_context():
        import crm.models as m

        return {"db": db, "m": m}

    app.shell_context_processor(shell_context)
