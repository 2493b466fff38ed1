"""PostgreSQL connections keep their prepared statements across the rollback that ends every request
(crm/core/pgconn.py), and forget them, as psycopg does, after a failed transaction."""
from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from crm.core import pgconn
from crm.extensions import db
from tests.conftest import make_app

QUERY = sa.text("SELECT n FROM pgconn_probe WHERE n = :n")


@pytest.fixture
def engine(pg_server):
    url = pg_server.create_database("crm_pgconn")
    app = make_app(url)
    with app.app_context():
        eng = db.engine
        with eng.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE pgconn_probe (n integer PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO pgconn_probe SELECT generate_series(1, 10)")
        yield eng
        eng.dispose()
    pg_server.drop_database("crm_pgconn")


def _prepared(conn) -> dict[str, int]:
    """The server's prepared statements of this connection: statement text -> times executed."""
    return {row.statement: row.generic_plans + row.custom_plans for row in conn.exec_driver_sql(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")}


def test_the_apps_engine_opens_connections_that_keep_prepared_statements(engine):
    with engine.connect() as conn:
        assert type(conn.connection.driver_connection) is pgconn.Connection


def test_a_clean_transaction_rolled_back_keeps_its_prepared_statements(engine):
    with engine.connect() as conn:
        for n in range(1, 8):  # psycopg prepares at the sixth run (prepare_threshold 5)
            assert conn.execute(QUERY, {"n": n}).scalar() == n
        conn.rollback()  # what ends every request
        prepared = _prepared(conn)
        conn.rollback()
        (text, runs), = [(t, r) for t, r in prepared.items() if "pgconn_probe" in t]
        assert runs == 2
        assert conn.execute(QUERY, {"n": 9}).scalar() == 9  # served by the same prepared statement
        assert _prepared(conn)[text] == 3
        conn.rollback()


def test_a_failed_transaction_forgets_them_and_nothing_breaks(engine):
    """After a failed transaction the rollback is psycopg's own: it forgets every prepared statement (one it sent
    for preparing in a failed transaction may not exist on the server) and the next runs prepare again."""
    with engine.connect() as conn:
        for n in range(1, 8):
            conn.execute(QUERY, {"n": n})
        assert any("pgconn_probe" in t for t in _prepared(conn))
        with pytest.raises(sa.exc.DataError):
            conn.exec_driver_sql("SELECT 1 / 0")
        with pytest.raises(sa.exc.InternalError):  # in the aborted transaction
            conn.execute(QUERY, {"n": 6})
        conn.rollback()
        assert not any("pgconn_probe" in t for t in _prepared(conn))
        for n in range(1, 9):
            assert conn.execute(QUERY, {"n": n}).scalar() == n
        assert any("pgconn_probe" in t for t in _prepared(conn))
        conn.rollback()


def test_a_rollback_on_a_lost_connection_raises_as_psycopg_does(engine):
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with pgconn.Connection.connect(dsn) as raw, psycopg.connect(dsn, autocommit=True) as other:
        raw.execute("SELECT 1")  # in a transaction, every command succeeded
        other.execute("SELECT pg_terminate_backend(%s)", (raw.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            raw.rollback()


def test_a_cursors_description_is_psycopgs_built_when_read_and_stays_with_its_result(engine):
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with pgconn.Connection.connect(dsn) as ours, psycopg.connect(dsn) as theirs:
        query = "SELECT n, n::text AS label, now() AS at, 1.5::numeric(4, 2) AS price FROM pgconn_probe LIMIT 2"
        cur, ref = ours.execute(query), theirs.execute(query)
        assert type(cur) is pgconn.Cursor
        desc = cur.description
        assert isinstance(desc, pgconn.Description) and len(desc) == 4 and desc._columns is None  # not built yet
        cur.execute("SELECT 1 AS other")  # the cursor moves on; the description kept describes its own result
        assert [tuple(c) for c in desc] == [tuple(c) for c in ref.description]
        assert [c.name for c in desc[1:3]] == ["label", "at"] and desc[0].type_code == ref.description[0].type_code
        assert [c.name for c in cur.description] == ["other"]
        cur.execute("SET LOCAL work_mem = '4MB'")
        assert cur.description is None and theirs.execute("SET LOCAL work_mem = '4MB'").description is None
        assert len(cur.execute("SELECT").description) == 0 == len(theirs.execute("SELECT").description)


def _plans(conn) -> tuple[int, int]:
    (generic, custom), = [(r.generic_plans, r.custom_plans) for r in conn.exec_driver_sql(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements") if "pgconn_probe" in r.statement]
    return generic, custom


def test_each_run_is_planned_for_its_values_unless_the_transaction_allows_generic_plans(engine):
    """A generic plan can be far worse for a statement whose best plan depends on its values (a search, a range):
    connections plan every run (force_custom_plan); a page of look-ups by key opts in for its transaction."""
    from crm.core.db import generic_plans
    from crm.dashboard.fastsql import FastSqlBackend

    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
        for n in range(1, 11):
            conn.execute(QUERY, {"n": n})
        assert _plans(conn) == (0, 5)  # prepared at the sixth run, planned for its values at each run since
        conn.rollback()
    assert db.session.execute(sa.text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    generic_plans(db.session)
    assert db.session.execute(sa.text("SHOW plan_cache_mode")).scalar() == "auto"
    for n in range(1, 12):
        db.session.execute(QUERY, {"n": n})
    generic, custom = _plans(db.session.connection())
    assert generic > 0  # a look-up by key: PostgreSQL keeps one plan for any value
    FastSqlBackend._tune()  # the dashboard's statements never take one, even in such a transaction
    settings = dict(db.session.execute(sa.text("SELECT name, setting FROM pg_settings "
                                               "WHERE name IN ('plan_cache_mode', 'work_mem', 'random_page_cost')"))
                    .all())
    assert settings == {"plan_cache_mode": "force_custom_plan", "work_mem": "32768", "random_page_cost": "1.1"}
    db.session.rollback()
    assert db.session.execute(sa.text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    db.session.rollback()


def test_the_connections_options_keep_those_of_the_url_or_of_pgoptions(engine, monkeypatch):
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with pgconn.connect((dsn,), {"options": "-c statement_timeout=4321"}) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
        assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=1234")
    with pgconn.connect((dsn,), {}) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1234ms"
        assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
