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
    entry = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "db.restore")).one()
    assert entry.detail == f"restored from {target.name}"  # so does the audit entry
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


# -- PostgreSQL: the tools connect the way the app does (TLS included), secrets stay off the command line ---------


@pytest.fixture
def fake_pg_bin(tmp_path):
    """A PG_BIN_DIR whose pg_dump and pg_restore exist (never run): the commands are built, not executed."""
    folder = tmp_path / "pgbin"
    folder.mkdir()
    for name in ("pg_dump", "pg_restore"):
        (folder / name).write_text("#!/bin/sh\nexit 99\n")
        (folder / name).chmod(0o755)
    return str(folder)


def _dbname(argv: list[str]) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    [value] = [a.split("=", 1)[1] for a in argv if a.startswith("--dbname=")]
    return conninfo_to_dict(value)


TLS_URL = ("postgresql+psycopg://crm_owner:s3cr%40t%20pw@db.example:5433/crm"
           "?sslmode=verify-full&sslrootcert=/etc/crm/db-ca.crt&connect_timeout=7&prepare_threshold=0")


@pytest.mark.parametrize("build", [backup.pg_dump_command, backup.pg_restore_command])
def test_pg_tools_get_every_libpq_parameter_of_the_url_and_never_the_password(build, fake_pg_bin, tmp_path,
                                                                               monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    argv, env = build(sa.engine.make_url(TLS_URL), tmp_path / "crm.dump", fake_pg_bin)
    params = _dbname(argv)
    assert params == {"host": "db.example", "port": "5433", "user": "crm_owner", "dbname": "crm",
                      "sslmode": "verify-full", "sslrootcert": "/etc/crm/db-ca.crt", "connect_timeout": "7",
                      "fallback_application_name": backup.FALLBACK_APPLICATION_NAME}  # not psycopg's own options
    assert env["PGPASSWORD"] == "s3cr@t pw"
    assert not any("s3cr" in a for a in argv)  # `ps` shows argv to every user
    assert argv[0].startswith(fake_pg_bin + "/") and "--no-password" in argv


def test_pg_tools_keep_the_libpq_variables_of_the_environment(fake_pg_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    monkeypatch.setenv("PGSSLROOTCERT", "/etc/crm/db-ca.crt")
    monkeypatch.setenv("PGPASSWORD", "from-the-environment")
    argv, env = backup.pg_dump_command(sa.engine.make_url("postgresql+psycopg://crm_owner@db.example/crm"),
                                       tmp_path / "crm.dump", fake_pg_bin)
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"]) == ("verify-full", "/etc/crm/db-ca.crt")
    assert env["PGPASSWORD"] == "from-the-environment"  # no password in the URL: libpq's own, as for the app
    assert "sslmode" not in _dbname(argv)  # left to the variable


def test_pg_tools_refuse_a_secret_that_would_have_to_go_on_the_command_line(fake_pg_bin, tmp_path):
    url = sa.engine.make_url("postgresql+psycopg://crm_owner@db.example/crm?sslkey=/k.pem&sslpassword=hunter2")
    with pytest.raises(backup.BackupError, match="sslpassword") as refused:
        backup.pg_dump_command(url, tmp_path / "crm.dump", fake_pg_bin)
    assert "hunter2" not in str(refused.value)


def test_pg_restore_always_names_a_database_to_restore_into(fake_pg_bin, tmp_path):
    argv, _env = backup.pg_restore_command(sa.engine.make_url("postgresql+psycopg://"), tmp_path / "x.dump",
                                           fake_pg_bin)
    assert _dbname(argv)  # without --dbname pg_restore would print SQL and "succeed"


def test_pg_bin_dir_is_used_alone_when_set(tmp_path):
    with pytest.raises(backup.BackupError, match="PG_BIN_DIR"):
        backup.find_pg_tool("pg_dump", str(tmp_path))  # not another version found elsewhere


def _cli_on(url: str, *args: str):
    """Run `flask --app wsgi crm ARGS` on a second app over the same database, built now (after the test's
    environment changes) and with its context pushed, so the command runs on it and not on the test's app."""
    from tests.conftest import make_app

    other = make_app(url)
    with other.app_context():
        try:
            return other.test_cli_runner().invoke(args=list(args))
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize("any_app", ["postgresql"], indirect=True)
def test_backup_requires_tls_when_the_url_does(any_app, tmp_path):
    """The throwaway server has no TLS: a URL asking for it must make pg_dump fail, not quietly go without."""
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    refused = _cli_on(url + "?sslmode=require", "crm", "backup", str(tmp_path / "tls.dump"))
    assert refused.exit_code == 1 and "SSL" in refused.output, refused.output
    assert not (tmp_path / "tls.dump").exists()
    plain = _cli_on(url + "?sslmode=disable&application_name=crm-backup-test", "crm", "backup",
                    str(tmp_path / "plain.dump"))
    assert plain.exit_code == 0, plain.output
    assert (tmp_path / "plain.dump").read_bytes()[:5] == b"PGDMP"


@pytest.mark.parametrize("any_app", ["postgresql"], indirect=True)
def test_backup_and_restore_honour_libpq_variables(any_app, tmp_path, monkeypatch):
    runner = any_app.test_cli_runner()
    dump = tmp_path / "crm.dump"
    monkeypatch.setenv("PGSSLMODE", "require")
    refused = runner.invoke(args=["crm", "backup", str(dump)])
    assert refused.exit_code == 1 and "SSL" in refused.output, refused.output
    monkeypatch.delenv("PGSSLMODE")
    assert runner.invoke(args=["crm", "backup", str(dump)]).exit_code == 0
    monkeypatch.setenv("PGSSLMODE", "require")
    refused = runner.invoke(args=["crm", "restore", str(dump), "--yes"])
    assert refused.exit_code == 1 and "SSL" in refused.output, refused.output


@pytest.mark.parametrize("any_app", ["postgresql"], indirect=True)
def test_pg_bin_dir_comes_from_the_environment(any_app, tmp_path, monkeypatch):
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))  # no pg_dump in it
    result = _cli_on(any_app.config["SQLALCHEMY_DATABASE_URI"], "crm", "backup", str(tmp_path / "crm.dump"))
    assert result.exit_code == 1 and f"PG_BIN_DIR ({tmp_path})" in result.output, result.output
