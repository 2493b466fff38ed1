"""Fixtures: a migrated template database copied per test, an isolated client, factories."""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """An SQLite file migrated to head once per session (reference data included)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        flask_migrate.upgrade()
        db.session.remove()
        db.engine.dispose()
    return path


@pytest.fixture
def app_overrides():
    """Tests override config by redefining this fixture or parametrizing it."""
    return {}


@pytest.fixture
def app(template_db, tmp_path, app_overrides):
    """A fresh database per test (a copy of the migrated template) with the app context pushed."""
    path = tmp_path / "crm.sqlite3"
    shutil.copy(template_db, path)
    app = make_app(f"sqlite:///{path}", **app_overrides)
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
    def _login(user_or_name, password=TEST_PASSWORD):
        name = getattr(user_or_name, "username", user_or_name)
        resp = login(client, name, password)
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
        return client

    return _login
