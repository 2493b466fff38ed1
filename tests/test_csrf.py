"""CSRF (SECURITY.md §4) with protection ON, as in production: the bad-token matrix on every state-changing
route found in url_map (CS-1, CS-2), HTTPS Referer checks (CS-3), sign-in protected (CS-4), the settings (CS-5)
and the exemption list (CS-7). Each refused request answers 400 and writes nothing.
"""
from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from crm import security
from crm.extensions import csrf, db
from tests.conftest import TEST_PASSWORD
from tests.security_payloads import (
    WriteSpy, blueprint_of, collection_app, csrf_token_in, find_rule, rules, sample_url, shared_app,
)

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def app_overrides():
    return {"WTF_CSRF_ENABLED": True}


def csrf_token_of(client, path="/login", **kw):
    token = csrf_token_in(client.get(path, **kw).get_data(as_text=True))
    assert token, f"no CSRF token on {path}"
    return token


def sign_in(client, username="rm_a"):
    token = csrf_token_of(client)
    resp = client.post("/login", data={"username": username, "password": TEST_PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return csrf_token_of(client, "/")


def _mutating_params():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if blueprint_of(endpoint) in security.TOKEN_AUTH_BLUEPRINTS:
            continue
        for method in methods:
            if method in MUTATING:
                out.append(pytest.param(rule.rule, endpoint, method, id=f"{method} {rule.rule}"))
    return out


def _bad_tokens(app, client, other_token, stale_token):
    foreign = URLSafeTimedSerializer("not-our-secret-key", salt="wtf-csrf-token").dumps("f" * 40)
    return {
        "missing": None,
        "empty": "",
        "16a": "a" * 16,
        "64star": "*" * 64,
        "well-formed-wrong-key": foreign,
        "other-session": other_token,
        "stale-before-sign-in": stale_token,
    }


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    """One CSRF-protected app for the matrix: a signed-in browser, its pre-sign-in token, another session's token."""
    for sa_ in shared_app(databases, tmp_path_factory, WTF_CSRF_ENABLED=True):
        client = sa_.app.test_client()
        sa_.stale = csrf_token_of(client)  # this browser's token before it signs in
        sa_.other_token = csrf_token_of(sa_.app.test_client())  # a valid token of another (anonymous) session
        sign_in(client)
        sa_.client = client
        yield sa_


@pytest.mark.parametrize("path,endpoint,method", _mutating_params())
def test_every_state_changing_route_refuses_every_bad_csrf_token(shared, path, endpoint, method):
    """14 cases per route: 7 bad tokens, each in the form field and in the X-CSRFToken header."""
    app, client = shared.app, shared.client
    rule = find_rule(app, path, endpoint)
    url = sample_url(rule)
    failures = []
    with WriteSpy(db.engine) as spy:
        for label, token in _bad_tokens(app, client, shared.other_token, shared.stale).items():
            for where in ("form", "header"):
                data = {"username": "rm_a", "password": TEST_PASSWORD, "name": "x", "summary": "x"}
                headers = {}
                if token is not None and where == "form":
                    data["csrf_token"] = token
                if token is not None and where == "header":
                    headers["X-CSRFToken"] = token
                resp = client.open(url, method=method, data=data, headers=headers)
                if resp.status_code != 400:
                    failures.append(f"{label}/{where}: {resp.status_code}")
    assert failures == [], f"{method} {path} accepted bad CSRF tokens: {failures}"
    assert spy.committed() == [], f"{method} {path} wrote on a refused request: {spy.committed()}"
    assert client.get("/").status_code == 200  # still signed in: the refusals changed nothing


def test_sign_in_needs_a_csrf_token_and_works_with_one(app, client, world):
    resp = client.post("/login", data={"username": "rm_a", "password": TEST_PASSWORD})
    assert resp.status_code == 400
    assert client.get("/").status_code == 302
    sign_in(client)
    assert client.get("/").status_code == 200


def test_a_valid_token_in_the_header_is_accepted(app, client, world):
    token = sign_in(client)
    resp = client.post("/language/en", headers={"X-CSRFToken": token}, data={"next": "/"})
    assert resp.status_code == 302


@pytest.mark.parametrize("referer,status", [
    (None, 400), ("https://evil.example/login", 400), ("http://crm.example.cn/login", 400),
    ("https://crm.example.cn/login", 302),
])
def test_over_https_the_referer_must_be_this_site(app, client, world, referer, status):
    base = "https://crm.example.cn"
    token = csrf_token_of(client, "/login", base_url=base)
    headers = {"Referer": referer} if referer else {}
    resp = client.post("/login", base_url=base, headers=headers,
                       data={"username": "rm_a", "password": TEST_PASSWORD, "csrf_token": token})
    assert resp.status_code == status


def test_csrf_protection_is_on_in_production_and_by_default():
    from config import Config, ProdConfig, TestConfig

    assert Config.WTF_CSRF_ENABLED is True and ProdConfig.WTF_CSRF_ENABLED is True
    assert TestConfig.WTF_CSRF_ENABLED is False  # which is why this module turns it back on
    assert getattr(ProdConfig, "WTF_CSRF_SSL_STRICT", True) is True


def test_only_token_authenticated_blueprints_are_exempt_from_csrf(app):
    exempt_views = {v for v in csrf._exempt_views}
    exempt_blueprints = set(csrf._exempt_blueprints)
    assert exempt_blueprints <= set(security.TOKEN_AUTH_BLUEPRINTS)
    for view in exempt_views:
        module = view.split(".")[1] if view.startswith("crm.") else view
        assert module in security.TOKEN_AUTH_BLUEPRINTS, f"CSRF exemption outside the API: {view}"


def _api_mutating_params():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if blueprint_of(endpoint) not in security.TOKEN_AUTH_BLUEPRINTS or security.is_public_endpoint(endpoint):
            continue
        for method in methods:
            if method in MUTATING:
                out.append(pytest.param(rule.rule, endpoint, method, id=f"{method} {rule.rule}"))
    return out


@pytest.mark.parametrize("path,endpoint,method", _api_mutating_params())
def test_the_api_never_accepts_a_browser_session_cookie_for_writes(app, client, world, path, endpoint, method):
    """The API is CSRF-exempt only because it ignores cookies: a signed-in browser without a token gets 401."""
    sign_in(client)
    rule = find_rule(app, path, endpoint)
    with WriteSpy(db.engine) as spy:
        resp = client.open(sample_url(rule), method=method, json={"name": "x"})
    assert resp.status_code in (400, 401), f"{method} {path}: {resp.status_code}"
    assert spy.committed(ignore={"audit_entry"}) == []


def test_every_form_of_a_list_carries_the_requests_token_and_each_one_posts(app, client, world):
    """The follow-up list has a form per item, each with the token the page's render asked for once: the same
    token in every form, and the one of the session (a form posted with it is accepted)."""
    import re
    from datetime import timedelta

    from crm.core.formatting import today_local
    from tests import factories

    items = [factories.follow_up(world.firm, world.rm_a, today_local() + timedelta(days=i), title=f"事项{i}")
             for i in range(3)]
    db.session.commit()
    sign_in(client)
    html = client.get("/visits/followups/mine").get_data(as_text=True)
    tokens = re.findall(r'<form method="post" action="/visits/followups/\d+/done"[^>]*>\s*'
                        r'<input type="hidden" name="csrf_token" value="([^"]+)"', html)
    assert len(tokens) == len(items) and len(set(tokens)) == 1
    resp = client.post(f"/visits/followups/{items[1].id}/done",
                       data={"csrf_token": tokens[0], "outcome": "已办", "version": "1"})
    assert resp.status_code == 302
    client.get("/")  # a new request: a new render asks again and gets the session's token, which still posts
    token = csrf_token_of(client, "/visits/followups/mine")
    assert client.post(f"/visits/followups/{items[2].id}/done",
                       data={"csrf_token": token, "outcome": "已办", "version": "1"}).status_code == 302
