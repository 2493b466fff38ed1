"""Fixtures: a migrated template database copied per test, an isolated client, factories."""
from __future__ import annotations

import itertools
import os
import shutil

import flask_migrate
import pytest
from flask.globals import _cv_app
from flask.testing import FlaskClient

from crm import create_app
from crm.extensions import db
from tests import factories

TEST_PASSWORD = factories.TEST_PASSWORD


def pytest_sessionstart(session):
    """Compile translation catalogues (build output, not committed) before any page renders."""
    from scripts.i18n import compile_catalogs

    compile_catalogs()


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context and database session, as in production.

    The test's own session (outside requests) is expired afterwards so it sees what the request wrote.
    """

    def open(self, *args, **kwargs):
        token = _cv_app.set(None)
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)
            if _cv_app.get(None) is not None:
                db.session.expire_all()


def make_app(db_url: str, **overrides):
    cfg = {"SQLALCHEMY_DATABASE_URI": db_url}
    cfg.update(overrides)
    app = create_app("config.TestConfig", cfg)
    app.test_client_class = IsolatedClient
    return app


def _migrate(url: str) -> None:
    app = make_app(url)
    with app.app_context():
        flask_migrate.upgrade()
        db.session.remove()
        db.engine.dispose()


class SqliteDatabases:
    """Per-test SQLite files copied from one file migrated to head per session."""

    engine = "sqlite"

    def __init__(self, tmp_path_factory):
        self.template = tmp_path_factory.mktemp("template") / "template.sqlite3"
        _migrate(f"sqlite:///{self.template}")

    def new(self, tmp_path) -> str:
        path = tmp_path / f"crm-{next(_db_seq)}.sqlite3"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        pass


class PostgresDatabases:
    """Per-test PostgreSQL databases cloned (CREATE DATABASE ... TEMPLATE) from one migrated template."""

    engine = "postgresql"

    def __init__(self, server):
        self.server = server
        self.template_url = server.create_database("crm_template")
        _migrate(self.template_url)

    def new(self, tmp_path) -> str:
        import psycopg

        name = f"crm_test_{os.getpid()}_{next(_db_seq)}"
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE crm_template')
        return self.server.url_for(name)

    def drop(self, url: str) -> None:
        # closes the pools of every engine this process opened on the database (any app a test built on it),
        # then drops it (tests/pgserver.py)
        self.server.drop_database(url.rsplit("/", 1)[1])


_db_seq = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the session (skipped locally when absent; required under CI)."""
    from tests.pgserver import PgServer, require_pg

    require_pg()
    server = PgServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def databases(request, tmp_path_factory):
    """Where test databases come from: SQLite by default, PostgreSQL with CRM_TEST_DB=postgres."""
    if os.environ.get("CRM_TEST_DB") == "postgres":
        return PostgresDatabases(request.getfixturevalue("pg_server"))
    return SqliteDatabases(tmp_path_factory)


@pytest.fixture
def app_overrides():
    """Tests override config by redefining this fixture or parametrizing it."""
    return {}


@pytest.fixture
def db_url(databases, tmp_path):
    """A fresh migrated database for this test."""
    url = databases.new(tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture
def app(db_url, app_overrides):
    """The app on a fresh database with its context pushed."""
    app = make_app(db_url, **app_overrides)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def world(app):
    """Two banks with branches and staff, the bureau, an admin, a campaign, and a shared firm."""
    w = factories.World.build()
    db.session.commit()
    return w


def login(client, username, password=TEST_PASSWORD, follow=False):
    """Sign in through the real form."""
    return client.post("/login", data={"username": username, "password": password}, follow_redirects=follow)


@pytest.fixture
def login_as(client):
    """Sign the test client in as a user, as a fresh browser would: the previous user's cookies are dropped first
    (the sign-in page sends a signed-in browser home without switching users, so a second login_as on the same
    client would otherwise silently stay the first user)."""
    def _login(user_or_name, password=TEST_PASSWORD):
        name = getattr(user_or_name, "username", user_or_name)
        if client._cookies:
            client._cookies.clear()
        resp = login(client, name, password)
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
        return client

    return _login
