"""The load balancer's probes: /healthz (the process answers) and /readyz (it can serve: database and rate-limit
storage reachable). Both are public, answer JSON without any detail, and /readyz turns 503 when a dependency is
down so the balancer stops sending that server requests it could only answer with 500s."""
from __future__ import annotations

import pytest

from tests.conftest import make_app


def test_a_working_server_is_live_and_ready_without_signing_in(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}
    assert resp.headers["Cache-Control"].startswith("no-store") or "no-store" in resp.headers["Cache-Control"]


def test_a_server_whose_database_is_gone_is_live_but_not_ready(tmp_path, caplog):
    app = make_app(f"sqlite:///{tmp_path}/no/such/folder/crm.sqlite3")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # the process itself still answers
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "unavailable"}  # the reason is in the log, not in the answer
    assert "the database does not answer" in caplog.text


@pytest.mark.parametrize("app_overrides", [{"RATELIMIT_ENABLED": True}])
def test_the_rate_limit_storage_in_use_is_checked(client):
    assert client.get("/readyz").status_code == 200  # memory storage: always reachable


def test_a_server_that_cannot_reach_its_rate_limit_storage_is_not_ready(app, caplog):
    """Redis (the production storage of the sign-in limits) refusing connections: every sign-in would fail."""
    broken = make_app(app.config["SQLALCHEMY_DATABASE_URI"], RATELIMIT_ENABLED=True,
                      RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")  # port 1: nothing listens, refused at once
    resp = broken.test_client().get("/readyz")
    assert resp.status_code == 503 and resp.get_json() == {"status": "unavailable"}
    assert "rate-limit storage" in caplog.text
