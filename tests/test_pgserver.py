"""The throwaway PostgreSQL server that the PostgreSQL-backed tests run on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

try:
    from tests import pgserver
except ImportError:  # tests/ itself on sys.path (pytest's default "prepend" import mode)
    import pgserver  # type: ignore[no-redef]

PgServer, require_pg = pgserver.PgServer, pgserver.require_pg


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net)."""
    found: set[str] = set()
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            if family == 4:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr_hex)[::-1]))
            else:
                raw = b"".join(bytes.fromhex(addr_hex[i : i + 8])[::-1] for i in range(0, 32, 8))
                found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def test_throwaway_postgres_starts_serves_a_new_database_and_cleans_up():
    require_pg()
    server = PgServer()
    server.start()
    try:
        assert server.url.startswith("postgresql+psycopg://")
        url = server.create_database("crm_pgserver_check")
        assert url.endswith("/crm_pgserver_check")

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("select version()")).scalar_one()
                dbname = conn.execute(text("select current_database()")).scalar_one()
                encoding = conn.execute(text("show server_encoding")).scalar_one()
                listen = conn.execute(text("show listen_addresses")).scalar_one()
                fsync = conn.execute(text("show fsync")).scalar_one()
        finally:
            engine.dispose()
        assert version.startswith("PostgreSQL ")
        assert dbname == "crm_pgserver_check"
        assert encoding == "UTF8"
        assert fsync == "off"

        assert listen == "127.0.0.1"
        assert _listening_addresses(server.port) == {"127.0.0.1"}

        data_dir = server.dir
        assert data_dir is not None and data_dir.is_dir()
    finally:
        server.stop()

    assert not server.running
    assert not data_dir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_create_database_rejects_names_that_would_need_quoting():
    with pytest.raises(ValueError):
        PgServer().create_database('x"; drop database postgres; --')


def test_missing_postgres_skips_locally(monkeypatch):
    monkeypatch.setattr(pgserver, "find_bin_dir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL binaries"):
        require_pg()


def test_missing_postgres_fails_on_ci(monkeypatch):
    monkeypatch.setattr(pgserver, "find_bin_dir", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_pg()


def test_dropping_a_database_first_closes_the_connections_engines_left_open_on_it(pg_server):
    """An app or engine a test never disposed must not keep psycopg connections open until the garbage collector
    finds them (a ResourceWarning then fails whichever test is running): dropping the database closes them."""
    left_url = pg_server.create_database("crm_left_open")
    kept_url = pg_server.create_database("crm_kept_open")
    left, kept = create_engine(left_url), create_engine(kept_url)
    try:
        with left.connect() as a, kept.connect() as b:
            a.execute(text("select 1"))
            b.execute(text("select 1"))
            left_conn, kept_conn = a.connection.driver_connection, b.connection.driver_connection
        assert not left_conn.closed and not kept_conn.closed  # back in their pools, still open

        pg_server.drop_database("crm_left_open")

        assert left_conn.closed
        assert not kept_conn.closed  # engines on other databases are left alone
        with kept.connect() as b:
            assert b.execute(text("select current_database()")).scalar_one() == "crm_kept_open"
    finally:
        left.dispose()
        kept.dispose()
        pg_server.drop_database("crm_kept_open")
