"""Consistent online backups and restores of the whole database.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot while
the app keeps running, which a file copy of a WAL database does not; the copy is checked with
``PRAGMA integrity_check`` before it replaces the target. PostgreSQL: ``pg_dump --format=custom``
and ``pg_restore --clean --single-transaction`` from the PostgreSQL binaries of this machine.

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
    """pg_dump / pg_restore: from PG_BIN_DIR, else Debian's newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = []
    if bin_dir:
        candidates.append(Path(bin_dir) / name)

    def version(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(p).parent.name)) or (0,)

    candidates += [Path(p) / name for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(f"{name} not found (install the PostgreSQL client, or set PG_BIN_DIR)")


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    args = []
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = url.password  # never on the command line, where `ps` shows it
    return args, env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def backup_postgresql(url: URL, target: Path, bin_dir: str | None = None) -> BackupResult:
    args, env = _pg_args(url)
    fd, tmp_name = tempfile.mkstemp(prefix=".backup-", suffix=".dump", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # one REPEATABLE READ snapshot for the whole dump: consistent while the app keeps writing
        _run([find_pg_tool("pg_dump", bin_dir), "--format=custom", "--no-password", f"--file={tmp}", *args,
              "--dbname", url.database or "postgres"], env)
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
    args, env = _pg_args(url)
    _run([find_pg_tool("pg_restore", bin_dir), "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
          "--no-owner", "--no-password", *args, "--dbname", url.database or "postgres", str(source)], env)
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
