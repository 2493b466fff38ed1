"""Sign-in rate limits (SECURITY.md AU-6, RL-1..RL-4), with Flask-Limiter switched on as in production:
per address and per account, 429 with Retry-After on the 6th try in a minute, no lock-out of other people, and
client addresses taken only from our own proxy's hop.
"""
from __future__ import annotations

import pytest

from tests.conftest import TEST_PASSWORD


@pytest.fixture
def app_overrides():
    return {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"}


def attempt(client, username, password="Wrong-Password-9", ip="10.0.0.1", xff=None):
    environ = {"REMOTE_ADDR": ip}
    headers = {"X-Forwarded-For": xff} if xff else {}
    return client.post("/login", data={"username": username, "password": password}, environ_base=environ,
                       headers=headers)


def test_the_sixth_attempt_from_one_address_in_a_minute_gets_429_with_retry_after(app, client, world):
    for i in range(5):
        assert attempt(client, f"guess{i}").status_code == 200
    resp = attempt(client, "guess5")
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    assert "请稍后" in resp.get_data(as_text=True) or "Too many" in resp.get_data(as_text=True)
    # even the right password is refused from that address for now
    assert attempt(client, "rm_a", TEST_PASSWORD).status_code == 429


def test_the_sixth_attempt_on_one_account_from_rotating_addresses_gets_429(app, client, world):
    for i in range(5):
        assert attempt(client, "rm_a", ip=f"10.0.1.{i}").status_code == 200
    assert attempt(client, "rm_a", ip="10.0.1.99").status_code == 429
    assert attempt(client, " RM_A ", ip="10.0.1.98").status_code == 429  # normalised: a look-alike is the same key


def test_another_person_from_another_address_is_not_locked_out(app, client, world):
    for i in range(6):
        attempt(client, "rm_a", ip="10.0.2.1")
    assert attempt(client, "rm_a", ip="10.0.2.1").status_code == 429
    other = app.test_client()
    resp = attempt(other, "rm_b", TEST_PASSWORD, ip="10.0.2.2")
    assert resp.status_code == 302


@pytest.mark.parametrize("app_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://",
                                            "PROXY_FIX_HOPS": 1}])
def test_behind_the_proxy_a_spoofed_forwarded_for_does_not_reset_the_counter(app, client, world, app_overrides):
    for i in range(5):
        resp = attempt(client, f"guess{i}", ip="192.168.0.10", xff=f"1.2.3.{i}, 10.9.9.9")
        assert resp.status_code == 200
    resp = attempt(client, "guess5", ip="192.168.0.10", xff="6.6.6.6, 10.9.9.9")
    assert resp.status_code == 429  # keyed by 10.9.9.9, the address our proxy saw
    assert attempt(client, "rm_b", TEST_PASSWORD, ip="192.168.0.10", xff="10.9.9.8").status_code == 302


def test_rate_limits_are_configured_per_address_and_account():
    from config import Config, TestConfig

    assert Config.LOGIN_RATE_LIMIT.startswith("5/minute")
    assert Config.RATELIMIT_HEADERS_ENABLED is True
    assert TestConfig.RATELIMIT_ENABLED is False  # which is why this module turns it back on
