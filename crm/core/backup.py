"""Consistent online backups and restores of the whole database.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot while
the app keeps running, which a file copy of a WAL database does not; the copy is checked with
``PRAGMA integrity_check`` before it replaces the target. PostgreSQL: ``pg_dump --format=custom``
and ``pg_restore --clean --single-transaction`` from the PostgreSQL binaries of this machine,
connecting with every parameter of the app's URL and environment (TLS included, :func:`pg_connection`).

This module works below the ORM on purpose (whole database, system scope); it is allowlisted in
the raw-SQL check of tests/test_security_routes.py for that reason.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says why."""


@dataclass
class BackupResult:
    path: Path
    dialect: str
    tables: dict[str, int]
    size: int


# -- shared --------------------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database).resolve()


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def _sqlite_check(conn: sqlite3.Connection, label: str) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{label} failed the integrity check: {result}")


# -- SQLite --------------------------------------------------------------------------------------


def backup_sqlite(url: URL, target: Path) -> BackupResult:
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise BackupError(f"database file not found: {source_path}")
    fd, tmp_name = tempfile.mkstemp(prefix=".backup-", suffix=".sqlite3", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src = sqlite3.connect(str(source_path), timeout=30)
        dst = sqlite3.connect(str(tmp))
        try:
            src.execute("PRAGMA busy_timeout=30000")
            src.backup(dst)  # pages=-1: one step, one read transaction, one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            _sqlite_check(dst, "the backup")
            tables = _sqlite_counts(dst)
        finally:
            dst.close()
            src.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupResult(target, "sqlite", tables, target.stat().st_size)


def restore_sqlite(url: URL, source: Path) -> BackupResult:
    target_path = _sqlite_path(url)
    with open(source, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"not an SQLite backup: {source}")
    bak = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _sqlite_check(bak, "the backup")
        tables = _sqlite_counts(bak)
        live = sqlite3.connect(str(target_path), timeout=30)
        try:
            live.execute("PRAGMA busy_timeout=30000")
            bak.backup(live)  # replaces every page of the live database in one write transaction
            live.execute("PRAGMA journal_mode=WAL")
            _sqlite_check(live, "the restored database")
        finally:
            live.close()
    finally:
        bak.close()
    return BackupResult(source, "sqlite", tables, source.stat().st_size)  # path: the backup restored from


# -- PostgreSQL ----------------------------------------------------------------------------------


def find_pg_tool(name: str, bin_dir: str | None = None) -> str:
    """pg_dump / pg_restore: from PG_BIN_DIR when it is set (and only there), else Debian's newest
    /usr/lib/postgresql/*/bin, else the PATH."""
    if bin_dir:
        # chosen on purpose (a client as new as the server): a version found elsewhere instead would be a surprise
        candidate = Path(bin_dir) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
        raise BackupError(f"{name} not found in PG_BIN_DIR ({bin_dir}); correct it, or unset it to use "
                          f"the newest installed client")

    def version(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(p).parent.name)) or (0,)

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(f"{name} not found (install the PostgreSQL client, or set PG_BIN_DIR)")


#: pg_dump and pg_restore show up under this name in pg_stat_activity unless the URL sets application_name; it
#: also keeps the connection string from being empty, so pg_restore always gets a --dbname (without one it
#: would print the SQL instead of restoring)
FALLBACK_APPLICATION_NAME = "crm backup"


def pg_connection(url: URL) -> tuple[str, dict[str, str]]:
    """(libpq connection string for ``--dbname``, environment) for pg_dump and pg_restore.

    The parameters are those SQLAlchemy's dialect hands psycopg for this URL, so the tools connect the way the app
    does: host(s), port, user, database and every libpq parameter in the query string (``sslmode``,
    ``sslrootcert``, ``sslcert``, ``sslkey``, ``connect_timeout``, ``target_session_attrs``, ...); psycopg's own
    arguments (``prepare_threshold``) are left out. The process environment is passed on unchanged, so
    ``PGSSLMODE``, ``PGSSLROOTCERT``, ``PGPASSFILE`` and the other variables libpq reads apply to the tools as they
    apply to the app (for both, a parameter in the URL wins over its variable).

    Secrets never reach the command line, which ``ps`` shows to every user: the password goes in ``PGPASSWORD``,
    and a secret libpq takes only in the connection string (``sslpassword``) is refused.
    """
    from psycopg import pq
    from psycopg.conninfo import make_conninfo

    _args, params = url.get_dialect()().create_connect_args(url)
    known = {option.keyword.decode(): option for option in pq.Conninfo.get_defaults()}
    env = dict(os.environ)
    conninfo = {"fallback_application_name": FALLBACK_APPLICATION_NAME}
    for key, value in params.items():
        option = known.get(key)
        if option is None:
            continue
        if option.dispchar == b"*":  # libpq's mark of a secret: password, sslpassword, ...
            if not option.envvar:
                raise BackupError(f"{key} in DATABASE_URL would be visible on the command line of pg_dump and "
                                  f"pg_restore; use a client key without a passphrase, readable by this user only")
            env[option.envvar.decode()] = str(value)
        else:
            conninfo[key] = str(value)
    return make_conninfo("", **conninfo), env


def pg_dump_command(url: URL, file: Path, bin_dir: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the pg_dump that writes ``file``: one snapshot of the whole database."""
    conninfo, env = pg_connection(url)
    return [find_pg_tool("pg_dump", bin_dir), "--format=custom", "--no-password", f"--file={file}",
            f"--dbname={conninfo}"], env


def pg_restore_command(url: URL, source: Path, bin_dir: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the pg_restore that replaces the database with ``source``, all or nothing."""
    conninfo, env = pg_connection(url)
    return [find_pg_tool("pg_restore", bin_dir), "--clean", "--if-exists", "--single-transaction",
            "--exit-on-error", "--no-owner", "--no-password", f"--dbname={conninfo}", str(source)], env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def backup_postgresql(url: URL, target: Path, bin_dir: str | None = None) -> BackupResult:
    fd, tmp_name = tempfile.mkstemp(prefix=".backup-", suffix=".dump", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # one REPEATABLE READ snapshot for the whole dump: consistent while the app keeps writing
        _run(*pg_dump_command(url, tmp, bin_dir))
        with open(tmp, "rb") as f:
            if f.read(5) != b"PGDMP":
                raise BackupError("pg_dump did not write a custom-format archive")
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupResult(target, "postgresql", {}, target.stat().st_size)


def restore_postgresql(url: URL, source: Path, bin_dir: str | None = None) -> BackupResult:
    with open(source, "rb") as f:
        if f.read(5) != b"PGDMP":
            raise BackupError(f"not a pg_dump custom-format archive: {source}")
    _run(*pg_restore_command(url, source, bin_dir))
    return BackupResult(source, "postgresql", {}, source.stat().st_size)


# -- entry points ----------------------------------------------------------------------------------


def backup(database_url: str | URL, target: str | Path, *, bin_dir: str | None = None) -> BackupResult:
    """Write a consistent backup of the database to ``target`` (which must not exist)."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    target = Path(target).resolve()
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"folder not found: {target.parent}")
    if url.get_backend_name() == "sqlite":
        return backup_sqlite(url, target)
    if url.get_backend_name() == "postgresql":
        return backup_postgresql(url, target, bin_dir)
    raise BackupError(f"unsupported database: {url.get_backend_name()}")


def restore(database_url: str | URL, source: str | Path, *, bin_dir: str | None = None) -> BackupResult:
    """Replace the whole database with the backup at ``source``. Stop the app servers first."""
    url = make_url(database_url) if isinstance(database_url, str) else database_url
    source = Path(source).resolve()
    if not source.is_file():
        raise BackupError(f"backup not found: {source}")
    if url.get_backend_name() == "sqlite":
        return restore_sqlite(url, source)
    if url.get_backend_name() == "postgresql":
        return restore_postgresql(url, source, bin_dir)
    raise BackupError(f"unsupported database: {url.get_backend_name()}")
