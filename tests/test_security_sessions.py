"""Sign-in and sessions (SECURITY.md §2–3): revocation of every cookie, limits on a controllable clock,
fixation, cookie attributes and the production start-up checks, password rules, enumeration, normalisation.
"""
from __future__ import annotations

import re

import pytest
from flask_login.config import COOKIE_NAME as DEFAULT_REMEMBER_COOKIE

from crm import security
from crm.auth import passwords, services
from crm.auth.models import User
from crm.extensions import db
from tests.conftest import TEST_PASSWORD, make_app
from tests.conftest import login as form_login
from tests.security_payloads import csrf_token_in

STRONG_KEY = "k3y-for-tests-only-9f1c2a7b5e3d4c6a8b0e1f2a3b4c5d6e"


def login(client, username, password=TEST_PASSWORD, remember=False):
    data = {"username": username, "password": password}
    if remember:
        data["remember"] = "y"
    return client.post("/login", data=data)


class Clock:
    """security.now() under the test's control."""

    def __init__(self, monkeypatch, start: float):
        self.t = start
        monkeypatch.setattr(security, "now", lambda: self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock(monkeypatch):
    import time

    return Clock(monkeypatch, time.time())


def cookie_value(client, name):
    c = client.get_cookie(name)
    return c.value if c is not None else None


def replay(app, **cookies):
    """A brand-new browser that only has the captured cookies; True when it is signed in."""
    fresh = app.test_client()
    for name, value in cookies.items():
        fresh.set_cookie(name, value)
    resp = fresh.get("/")
    return resp.status_code == 200


def _capture(app, client):
    session_name = app.config["SESSION_COOKIE_NAME"]
    remember_name = app.config.get("REMEMBER_COOKIE_NAME", DEFAULT_REMEMBER_COOKIE)
    return {session_name: cookie_value(client, session_name)}, {remember_name: cookie_value(client, remember_name)}


# -- SE-2 server-side revocation -------------------------------------------------------------------------


def _ended_by_logout(app, world, c):
    c.post("/logout")


def _ended_by_password_change(app, world, c):
    other = app.test_client()
    login(other, "rm_a")
    resp = other.post("/password", data={"current": TEST_PASSWORD, "new": "Brand-New-Phrase-42",
                                         "confirm": "Brand-New-Phrase-42"})
    assert resp.status_code == 302


def _ended_by_deactivation(app, world, c):
    services.set_active(db.session.get(User, world.rm_a.id), False)
    db.session.commit()


@pytest.mark.parametrize("end", [_ended_by_logout, _ended_by_password_change, _ended_by_deactivation],
                         ids=["logout", "password-change", "deactivation"])
def test_captured_session_and_remember_cookies_stop_working(app, world, end):
    c = app.test_client()
    assert login(c, "rm_a", remember=True).status_code == 302
    session_cookie, remember_cookie = _capture(app, c)
    assert all(session_cookie.values()) and all(remember_cookie.values())
    # before: each captured cookie alone signs a fresh browser in (so the test can fail)
    assert replay(app, **session_cookie)
    assert replay(app, **remember_cookie)
    end(app, world, c)
    assert not replay(app, **session_cookie)
    assert not replay(app, **remember_cookie)
    assert not replay(app, **session_cookie, **remember_cookie)


def test_sign_out_also_deletes_the_remember_cookie_in_the_browser(app, world):
    c = app.test_client()
    login(c, "rm_a", remember=True)
    remember_name = app.config.get("REMEMBER_COOKIE_NAME", DEFAULT_REMEMBER_COOKIE)
    assert c.get_cookie(remember_name) is not None
    c.post("/logout")
    assert c.get_cookie(remember_name) is None
    assert c.get("/").status_code == 302


def test_without_keep_me_signed_in_no_remember_cookie_and_a_browser_session_cookie(app, world):
    c = app.test_client()
    resp = login(c, "rm_a")
    remember_name = app.config.get("REMEMBER_COOKIE_NAME", DEFAULT_REMEMBER_COOKIE)
    assert c.get_cookie(remember_name) is None
    session_header = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session=")][0]
    assert "Expires" not in session_header  # ends when the browser closes
    c2 = app.test_client()
    resp = login(c2, "rm_a", remember=True)
    session_header = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session=")][0]
    assert "Expires" in session_header


# -- SE-4 idle and absolute limits -------------------------------------------------------------------------


def test_idle_limit_29_minutes_ok_31_minutes_signed_out(app, client, world, clock):
    login(client, "rm_a")
    clock.advance(29 * 60)
    assert client.get("/").status_code == 200
    clock.advance(31 * 60)
    resp = client.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    clock.advance(1)
    assert client.get("/").status_code == 302  # and it stays ended


def test_absolute_limit_8_hours_even_when_active(app, client, world, clock):
    login(client, "rm_a")
    for _ in range(19):  # a request every 25 minutes: never idle, 7 h 55 min in total
        clock.advance(25 * 60)
        assert client.get("/").status_code == 200
    clock.advance(4 * 60)  # 7 h 59 min
    assert client.get("/").status_code == 200
    clock.advance(2 * 60)  # 8 h 01 min
    assert client.get("/").status_code == 302


def test_a_remember_cookie_cannot_stretch_the_absolute_limit(app, world, clock):
    c = app.test_client()
    login(c, "rm_a", remember=True)
    _, remember_cookie = _capture(app, c)
    clock.advance(3600)
    assert replay(app, **remember_cookie)  # the browser restarted within the day: restored
    clock.advance(7 * 3600 + 120)  # 8 h 02 min after the password sign-in
    assert not replay(app, **remember_cookie)


def test_session_limits_are_configured_30_minutes_and_8_hours():
    from config import Config, ProdConfig

    assert Config.SESSION_IDLE_MINUTES == 30 and ProdConfig.SESSION_IDLE_MINUTES == 30
    assert Config.SESSION_ABSOLUTE_HOURS == 8
    assert Config.PERMANENT_SESSION_LIFETIME.total_seconds() == 8 * 3600
    assert Config.REMEMBER_COOKIE_DURATION.total_seconds() <= 14 * 86400


# -- SE-3 fixation -------------------------------------------------------------------------------------


def _raw_csrf(client):
    with client.session_transaction() as s:
        return s.get("csrf_token"), dict(s)


@pytest.mark.parametrize("app_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_sign_in_starts_a_new_session_and_rotates_the_csrf_token(app, client, world, app_overrides):
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token_in(page)
    with client.session_transaction() as s:
        s["planted_by_attacker"] = "x"
    before, _ = _raw_csrf(client)
    assert before
    resp = client.post("/login", data={"username": "rm_a", "password": TEST_PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    client.get("/")
    after, data = _raw_csrf(client)
    assert "planted_by_attacker" not in data
    assert after and after != before


@pytest.mark.parametrize("app_overrides", [{"WTF_CSRF_ENABLED": True}])
def test_password_change_rotates_the_csrf_token(app, client, world, app_overrides):
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token_in(page)
    client.post("/login", data={"username": "rm_a", "password": TEST_PASSWORD, "csrf_token": token})
    page = client.get("/password").get_data(as_text=True)
    token = csrf_token_in(page)
    before, _ = _raw_csrf(client)
    resp = client.post("/password", data={"current": TEST_PASSWORD, "new": "Brand-New-Phrase-42",
                                          "confirm": "Brand-New-Phrase-42", "csrf_token": token})
    assert resp.status_code == 302
    assert client.get("/").status_code == 200
    after, _ = _raw_csrf(client)
    assert after and after != before


# -- SE-1, SE-7, AU-10, HD-4: the production configuration -------------------------------------------------


def prod_app(db_url, **overrides):
    cfg = {
        "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": STRONG_KEY,
        "TRUSTED_HOSTS": ["crm.example.cn", "localhost"], "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
        "RATELIMIT_ENABLED": False, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    }
    cfg.update(overrides)
    from crm import create_app
    from tests.conftest import IsolatedClient

    a = create_app("config.ProdConfig", cfg)
    a.test_client_class = IsolatedClient
    return a


def _csrf_from(page: str) -> str:
    return csrf_token_in(page)


def test_production_cookies_are_secure_httponly_lax_and_host_prefixed(app, world):
    prod = prod_app(app.config["SQLALCHEMY_DATABASE_URI"])
    c = prod.test_client()
    base = "https://crm.example.cn"
    page = c.get("/login", base_url=base).get_data(as_text=True)
    resp = c.post("/login", base_url=base, headers={"Referer": base + "/login"},
                  data={"username": "rm_a", "password": TEST_PASSWORD, "remember": "y", "csrf_token": _csrf_from(page)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    headers = {h.split("=", 1)[0]: h for h in resp.headers.getlist("Set-Cookie")}
    assert set(headers) >= {"__Host-session", "__Host-remember"}
    for name in ("__Host-session", "__Host-remember"):
        attrs = [a.strip().lower() for a in headers[name].split(";")[1:]]
        assert "secure" in attrs, name
        assert "httponly" in attrs, name
        assert "samesite=lax" in attrs, name
        assert "path=/" in attrs and not any(a.startswith("domain=") for a in attrs), name  # __Host- rules
    db.session.remove()


def test_production_redirects_plain_http_and_sends_hsts(app):
    prod = prod_app(app.config["SQLALCHEMY_DATABASE_URI"])
    c = prod.test_client()
    resp = c.get("/login", base_url="http://crm.example.cn")
    assert resp.status_code == 308 and resp.headers["Location"].startswith("https://crm.example.cn/login")
    resp = c.get("/login", base_url="https://crm.example.cn")
    assert resp.status_code == 200
    hsts = resp.headers["Strict-Transport-Security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31_536_000 and "includeSubDomains" in hsts
    assert c.get("/healthz", base_url="http://crm.example.cn").status_code == 200  # load-balancer probe


def test_production_refuses_unknown_host_headers(app):
    prod = prod_app(app.config["SQLALCHEMY_DATABASE_URI"])
    c = prod.test_client()
    assert c.get("/login", base_url="https://crm.example.cn").status_code == 200
    resp = c.get("/login", base_url="https://crm.example.cn", headers={"Host": "evil.example"})
    assert resp.status_code == 400
    assert "evil.example" not in resp.headers.get("Location", "")


@pytest.mark.parametrize("key", [None, "", "short-but-random-Kx9", "dev", "changeme", "change-me", "test-not-secret",
                                 "dev-not-secret", "secret"])
def test_production_refuses_to_start_with_a_missing_short_or_known_secret_key(key):
    from crm import create_app

    with pytest.raises(security.InsecureConfigError, match="SECRET_KEY"):
        create_app("config.ProdConfig", {"SECRET_KEY": key, "TRUSTED_HOSTS": ["crm.example.cn"],
                                         "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"})


@pytest.mark.parametrize("overrides,match", [
    ({"SECRET_KEY_FALLBACKS": ["dev"]}, "SECRET_KEY_FALLBACKS"),
    ({"TRUSTED_HOSTS": None}, "TRUSTED_HOSTS"),
    ({"RATELIMIT_STORAGE_URI": "memory://"}, "RATELIMIT_STORAGE_URI"),
    ({"DEBUG": True}, "DEBUG"),
    ({"WTF_CSRF_ENABLED": False}, "CSRF"),
    ({"SESSION_COOKIE_SECURE": False}, "Secure"),
])
def test_production_refuses_other_unsafe_settings(overrides, match):
    from crm import create_app

    cfg = {"SECRET_KEY": STRONG_KEY, "TRUSTED_HOSTS": ["crm.example.cn"],
           "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"}
    cfg.update(overrides)
    with pytest.raises(security.InsecureConfigError, match=match):
        create_app("config.ProdConfig", cfg)


def test_production_starts_with_a_strong_configuration_and_accepts_key_rotation():
    from crm import create_app

    a = create_app("config.ProdConfig", {"SECRET_KEY": STRONG_KEY, "SECRET_KEY_FALLBACKS": [STRONG_KEY[::-1]],
                                          "TRUSTED_HOSTS": ["crm.example.cn"],
                                          "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"})
    assert a.config["SESSION_COOKIE_NAME"] == "__Host-session"
    assert a.config["WTF_CSRF_ENABLED"] is True and not a.debug


def test_a_session_signed_with_a_fallback_key_still_works_after_rotation(app, world):
    old = prod_app(app.config["SQLALCHEMY_DATABASE_URI"],
                   WTF_CSRF_ENABLED=True)
    c = old.test_client()
    base = "https://localhost"
    page = c.get("/login", base_url=base).get_data(as_text=True)
    c.post("/login", base_url=base, headers={"Referer": base + "/login"},
           data={"username": "rm_a", "password": TEST_PASSWORD, "csrf_token": _csrf_from(page)})
    cookie = c.get_cookie("__Host-session", domain="localhost").value
    rotated = prod_app(app.config["SQLALCHEMY_DATABASE_URI"],
                       SECRET_KEY="n3w-" + STRONG_KEY, SECRET_KEY_FALLBACKS=[STRONG_KEY])
    c2 = rotated.test_client()
    c2.set_cookie("__Host-session", cookie, domain="localhost")
    assert c2.get("/", base_url=base).status_code == 200
    dropped = prod_app(app.config["SQLALCHEMY_DATABASE_URI"],
                       SECRET_KEY="n3w-" + STRONG_KEY)
    c3 = dropped.test_client()
    c3.set_cookie("__Host-session", cookie, domain="localhost")
    assert c3.get("/", base_url=base).status_code == 302
    db.session.remove()


# -- AU-3 storage ------------------------------------------------------------------------------------------


def test_production_hash_method_is_used_and_older_hashes_are_upgraded_on_sign_in(app, client, world):
    """The one test that runs the real scrypt N=2^17 (about 0.3 s)."""
    from config import Config, ProdConfig

    app.config["PASSWORD_HASH_METHOD"] = Config.PASSWORD_HASH_METHOD  # the world was made with the fast method
    assert Config.PASSWORD_HASH_METHOD == ProdConfig.PASSWORD_HASH_METHOD == "scrypt:131072:8:1"
    u = db.session.get(User, world.rm_a.id)
    assert u.password_hash.startswith("pbkdf2:sha256:1000$")  # made by the fast test method
    assert login(client, "rm_a").status_code == 302
    stored = db.session.get(User, world.rm_a.id).password_hash
    method, salt, digest = stored.split("$")
    assert method == "scrypt:131072:8:1"
    assert len(salt) == 16
    assert passwords.verify_password(stored, TEST_PASSWORD)
    assert not passwords.needs_rehash(stored)


# -- AU-4 enumeration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("username,password", [
    ("nobody-here", TEST_PASSWORD),  # unknown user
    ("rm_a", "Wrong-Password-9"),  # wrong password
    ("rm_b", TEST_PASSWORD),  # right password, deactivated account
])
def test_failed_sign_in_runs_the_hasher_exactly_once_and_says_the_same(app, client, world, monkeypatch, username,
                                                                       password):
    services.set_active(db.session.get(User, world.rm_b.id), False)
    db.session.commit()
    passwords.dummy_verify("warm-up")  # the dummy hash is made once per process, outside the measurement
    calls = []
    real = passwords.check_password_hash

    def counting(pw_hash, pw):
        calls.append(pw_hash.split("$")[0])
        return real(pw_hash, pw)

    monkeypatch.setattr(passwords, "check_password_hash", counting)
    resp = login(client, username, password)
    assert resp.status_code == 200
    assert "用户名或密码错误" in resp.get_data(as_text=True)
    assert len(calls) == 1
    assert calls[0] == app.config["PASSWORD_HASH_METHOD"]  # the dummy hash costs the same as a real one


# -- AU-5 normalisation, through the CLI -------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", ["admin ", " admin", "ADMIN", "ａｄｍｉｎ", "admin\u200b"])
def test_create_user_refuses_lookalikes_of_an_existing_username(app, runner, world, lookalike):
    before = db.session.scalar(db.select(db.func.count()).select_from(User))
    result = runner.invoke(args=["crm", "create-user", "--username", lookalike, "--role", "rm", "--org", "SZRCB-LG",
                                 "--password-stdin"], input="Unrelated-Long-Phrase-5\n")
    assert result.exit_code == 1, result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == before
    assert login(app.test_client(), lookalike).status_code == 302  # the look-alike signs in to `admin` itself


def test_create_user_accepts_a_genuinely_new_name(app, runner, world):
    result = runner.invoke(args=["crm", "create-user", "--username", "Admin2", "--role", "rm", "--org", "SZRCB-LG",
                                 "--password-stdin"], input="Unrelated-Long-Phrase-5\n")
    assert result.exit_code == 0, result.output
    assert services.find_user("admin2").username == "admin2"


# -- AU-1, AU-2 password rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("pw", ["12345678", "password", "11111111", "qwertyui", "woaini1314", "a123456789",
                                "88888888", "5201314520", "Shenzhen2025", "szrcb123"])
def test_common_and_context_passwords_are_refused(app, world, pw):
    with pytest.raises(services.AccountError):
        services.create_user(username="newcomer", role="rm", org=world.branch_a, password=pw)


@pytest.mark.parametrize("pw", ["x" * 7 + "", "Zq7-" * 16, "Zq7-" * 32, "我的密码很长而且很安全", "Long-Phrase-Here-9 "])
def test_password_length_rules_and_exact_verification(app, world, pw):
    user = db.session.get(User, world.rm_a.id)
    if len(pw) < 8:
        with pytest.raises(services.AccountError):
            services.change_password(user, TEST_PASSWORD, pw)
        return
    services.change_password(user, TEST_PASSWORD, pw)
    db.session.commit()
    assert services.authenticate("rm_a", pw) is not None
    if pw != pw.rstrip():
        assert services.authenticate("rm_a", pw.rstrip()) is None  # a trailing space is kept
    if pw != pw.swapcase():
        assert services.authenticate("rm_a", pw.swapcase()) is None  # case matters
    assert services.authenticate("rm_a", pw[:-1]) is None  # no truncation


# -- LG-6 errors ---------------------------------------------------------------------------------------------


def test_an_unhandled_error_shows_a_generic_page_with_an_incident_id(app, client, world, caplog):
    def broken():
        raise RuntimeError("SELECT secret FROM visit -- internal detail")

    app.add_url_rule("/_probe/broken", "probe_broken", broken)
    form_login(client, "rm_a")
    with caplog.at_level("ERROR"):
        resp = client.get("/_probe/broken")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 500
    assert "Traceback" not in body and "SELECT" not in body and "internal detail" not in body
    incident = re.search(r"([0-9a-f]{8})</p>", body).group(1)
    assert any(incident in r.getMessage() for r in caplog.records)
