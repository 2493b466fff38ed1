"""Backups (SECURITY.md DB-5): `crm backup PATH` makes a consistent online copy (SQLite backup API, pg_dump), and
`crm restore PATH --yes` brings the data back, on SQLite and PostgreSQL; restore refuses without --yes.
"""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from crm.core import backup
from crm.core.models import AuditEntry
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests.security_payloads import DB_ENGINES, engine_app

_engines: dict = {}


@pytest.fixture(params=DB_ENGINES)
def any_app(request, tmp_path):
    yield from engine_app(request, tmp_path, _engines)


def counts():
    db.session.expire_all()
    return {
        "firm": db.session.scalar(sa.select(sa.func.count()).select_from(Firm)),
        "audit": db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)),
        "names": sorted(db.session.scalars(sa.select(Firm.name)).all()),
    }


def test_backup_and_restore_round_trip(any_app, tmp_path):
    runner = any_app.test_cli_runner()
    factories.World.build()
    factories.firm("备份前的企业")
    db.session.add(AuditEntry(action="test.before-backup"))
    db.session.commit()
    before = counts()
    target = tmp_path / "crm.backup"

    result = runner.invoke(args=["crm", "backup", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_size > 0

    factories.firm("备份后的企业")  # changes after the backup ...
    db.session.add(AuditEntry(action="test.after-backup"))
    db.session.commit()
    db.session.remove()
    assert counts() != before

    refused = runner.invoke(args=["crm", "restore", str(target)])
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert counts()["firm"] == before["firm"] + 1  # nothing was touched

    db.session.remove()
    restored = runner.invoke(args=["crm", "restore", str(target), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert f"restored from {target.resolve()}" in restored.output  # names the backup, not the live database
    db.session.remove()
    after = counts()
    assert after["names"] == before["names"]  # ... are gone, and everything before is back
    assert after["firm"] == before["firm"]
    assert after["audit"] == before["audit"] + 1  # plus the audit entry of the restore itself
    # the restored database is still append-only
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(sa.delete(AuditEntry))
    db.session.rollback()


def test_backup_refuses_to_overwrite_a_file(any_app, tmp_path):
    target = tmp_path / "exists.backup"
    target.write_text("keep me")
    result = any_app.test_cli_runner().invoke(args=["crm", "backup", str(target)])
    assert result.exit_code == 1
    assert target.read_text() == "keep me"


def test_restore_refuses_a_file_that_is_not_a_backup(any_app, tmp_path):
    bogus = tmp_path / "bogus.backup"
    bogus.write_bytes(b"not a backup at all")
    factories.firm("留下的企业")
    db.session.commit()
    result = any_app.test_cli_runner().invoke(args=["crm", "restore", str(bogus), "--yes"])
    assert result.exit_code == 1
    db.session.remove()
    assert "留下的企业" in counts()["names"]


def test_sqlite_backup_is_consistent_while_another_connection_writes(app, tmp_path):
    url = db.engine.url
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite online backup")
    path = url.database
    stop = threading.Event()
    written = []

    def writer():
        conn = sqlite3.connect(path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            with conn:
                conn.execute("INSERT INTO holiday_override (day, is_workday, note, created_at) VALUES "
                             "(date('2000-01-01', ?), 1, 'w', '2026-01-01 00:00:00+00:00')", (f"+{n} days",))
            written.append(n)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(written) < 20 and time.monotonic() < deadline:
            time.sleep(0.001)
        result = backup.backup(url, tmp_path / "online.sqlite3")
    finally:
        stop.set()
        thread.join()
    check = sqlite3.connect(str(result.path))
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = check.execute("SELECT count(*) FROM holiday_override").fetchone()[0]
    finally:
        check.close()
    assert 20 <= copied <= len(written)
    assert result.tables["holiday_override"] == copied


def test_pg_tools_are_found_next_to_the_server_binaries():
    from tests.pgserver import find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries here")
    assert backup.find_pg_tool("pg_dump").endswith("/pg_dump")
    assert backup.find_pg_tool("pg_restore", str(bin_dir)) == str(bin_dir / "pg_restore")


def test_in_memory_databases_cannot_be_backed_up(tmp_path):
    with pytest.raises(backup.BackupError):
        backup.backup("sqlite://", tmp_path / "x.backup")
