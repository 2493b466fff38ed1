"""Migrations create the whole schema and reference data, round-trip, and match the models, on both engines."""
import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crm.extensions import db
from tests.conftest import make_app

REFERENCE_COUNTS = {"industry": 7, "industry_section": 20, "area": 11, "credit_product": 5, "visit_mode": 5,
                    "willingness_level": 5}


def _declared_for(dialect_name):
    """Alembic ignores ``.ddl_if(dialect=...)``: an index declared for one engine only is not expected on another."""
    def include_object(obj, name, type_, reflected, compare_to):
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return reflected or only is None or only == dialect_name
    return include_object


def _round_trip(url):
    app = make_app(url)
    with app.app_context():
        flask_migrate.upgrade()
        tables_at_head = set(sa.inspect(db.engine).get_table_names())
        flask_migrate.downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        insp = sa.inspect(db.engine)
        assert set(insp.get_table_names()) == tables_at_head
        assert set(db.metadata.tables) <= tables_at_head
        with db.engine.connect() as conn:
            for table, n in REFERENCE_COUNTS.items():
                assert conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) == n, table
            longgang = conn.scalar(sa.text("SELECT count(*) FROM street WHERE area_code = 'longgang'"))
            assert longgang == 11
            priority = conn.scalars(sa.text("SELECT code FROM industry WHERE is_priority ORDER BY sort_order")).all()
            assert priority == ["ai", "low_altitude", "smart_driving", "electronic_info", "biomedicine", "low_carbon"]
            opts = {"compare_type": True, "include_object": _declared_for(conn.dialect.name)}
            diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), db.metadata)
        assert diffs == [], f"models and migrations differ: {diffs}"
        db.session.remove()
        db.engine.dispose()


def test_migrations_round_trip_on_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'rt.sqlite3'}")


def test_migrations_round_trip_on_postgresql(pg_server):
    _round_trip(pg_server.create_database("crm_roundtrip"))


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


@pytest.mark.parametrize("sql", [
    "INSERT INTO campaign (code, name, district, start_on, end_on, description, created_at, modified_at) "
    "VALUES ('X', 'x', 'd', '2026-02-01', '2026-01-01', '', '2026-01-01', '2026-01-01')",
    "INSERT INTO firm (name, credit_code, industry_code, sme_tier, is_tech_sme, invention_patents, utility_models, "
    "design_patents, software_copyrights, is_cross_border, version, created_at, modified_at) VALUES "
    "('f', 'SHORT', 'ai', 'none', false, 0, 0, 0, 0, false, 1, '2026-01-01', '2026-01-01')",
])
def test_database_refuses_rows_that_break_check_constraints(app, sql):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("literal SQL written for SQLite")
    with pytest.raises(sa.exc.IntegrityError):
        with db.engine.begin() as conn:
            conn.exec_driver_sql(sql)
