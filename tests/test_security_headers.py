"""Output and transport (SECURITY.md §5, §10, SE-8, CS-6, IV-4): on every page a signed-in user of each role can
open, the CSP and security headers are sent, no inline script or handler appears, private pages are not cached,
and a GET writes nothing (except the audit trail). Oversized requests get 413.

The walk reads url_map at collection time: every GET rule without URL parameters, for three roles.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm import security
from crm.extensions import db
from tests.conftest import login
from tests.security_payloads import (
    WriteSpy, blueprint_of, collection_app, find_rule, inline_code, parse_forms, rules, sample_url, shared_app,
)

ROOT = Path(__file__).resolve().parent.parent
ROLES = ["admin", "rm_a", "bureau"]

#: (role, rule) -> reason, for a known failing page (an xfail naming the endpoint). Keep empty.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}


def _get_params():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if "GET" not in methods or rule.arguments or endpoint == "static":
            continue
        if blueprint_of(endpoint) in security.TOKEN_AUTH_BLUEPRINTS and not security.is_public_endpoint(endpoint):
            continue  # bearer-token JSON: covered by the API's own tests and the fuzz walk
        for role in ROLES:
            marks = []
            if (role, rule.rule) in KNOWN_FINDINGS:
                marks.append(pytest.mark.xfail(reason=KNOWN_FINDINGS[(role, rule.rule)], strict=False))
            out.append(pytest.param(role, rule.rule, endpoint, id=f"{role} {rule.rule}", marks=marks))
    return out


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_security_headers(resp, *, private: bool = True) -> None:
    csp = csp_directives(resp.headers.get("Content-Security-Policy", ""))
    assert csp.get("default-src") == ["'self'"]
    assert csp.get("object-src") == ["'none'"]
    assert csp.get("base-uri") == ["'none'"]
    assert csp.get("frame-ancestors") == ["'none'"]
    assert csp.get("form-action") == ["'self'"]
    assert "'unsafe-inline'" not in csp.get("script-src", []) and "'unsafe-eval'" not in csp.get("script-src", [])
    assert "'unsafe-inline'" not in csp.get("style-src", [])
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    assert resp.headers.get("Referrer-Policy") in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")
    assert resp.headers.get("Cross-Origin-Opener-Policy") == "same-origin"
    assert resp.headers.get("X-Frame-Options") == "DENY"
    if private:
        assert "no-store" in resp.headers.get("Cache-Control", "")
        assert "Cookie" in resp.headers.get("Vary", "")


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    yield from shared_app(databases, tmp_path_factory)


@pytest.mark.parametrize("role,path,endpoint", _get_params())
def test_every_page_has_the_csp_no_inline_code_no_caching_and_writes_nothing(shared, role, path, endpoint):
    client = shared.client_for(role)
    rule = find_rule(shared.app, path, endpoint)
    with WriteSpy(db.engine) as spy:
        resp = client.get(sample_url(rule))
        resp.close()
    assert resp.status_code != 500, f"GET {path} ({endpoint}) as {role} answered 500"
    assert resp.status_code in (200, 302, 403, 404), f"GET {path} as {role}: {resp.status_code}"
    assert_security_headers(resp, private=endpoint not in ("static", "main.favicon"))
    assert spy.committed(ignore={"audit_entry"}) == [], f"GET {path} wrote: {spy.committed(ignore={'audit_entry'})}"
    if resp.mimetype == "text/html":
        html = resp.get_data(as_text=True)
        assert inline_code(html) == [], f"GET {path}: inline code (the CSP blocks it): {inline_code(html)}"
        assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", html, re.I), (
            f"GET {path} loads something from another site")


@pytest.mark.parametrize("path", ["/login", "/no-such-page"])
def test_anonymous_pages_and_errors_carry_the_same_headers(client, path):
    resp = client.get(path)
    assert_security_headers(resp)
    assert inline_code(resp.get_data(as_text=True)) == []


def test_static_files_carry_nosniff_and_the_csp_but_may_be_cached(client):
    resp = client.get("/static/js/app.js")
    assert resp.status_code == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in resp.headers.get("Cache-Control", "")
    resp.close()


def test_templates_and_app_assets_load_nothing_from_other_sites():
    offenders = []
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("crm/static/css/*.css"), *ROOT.glob("crm/static/js/*.js")]:
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"""(src|href)\s*=\s*["'](https?:)?//|@import\s+url\(["']?https?:|url\(["']?https?://""",
                             text):
            offenders.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert offenders == []


def test_templates_use_no_safe_filter_markup_or_template_strings_on_user_data():
    offenders = []
    for path in ROOT.glob("templates/**/*.html"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\|\s*safe\b", line) and "safe-ok" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    for path in ROOT.glob("crm/**/*.py"):
        text = path.read_text(encoding="utf-8")
        if "render_template_string(" in text:
            offenders.append(f"{path.relative_to(ROOT)}: render_template_string")
    assert offenders == [], "review each for user data, or mark the line `safe-ok` with a reason"


# -- IV-4 size limits ---------------------------------------------------------------------------------------


def test_an_oversized_sign_in_post_gets_413(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    resp = client.post("/login", data={"username": "x", "password": "y" * (limit + 1)})
    assert resp.status_code == 413
    resp = client.post("/login", data={"username": "x", "password": "y" * (app.config["MAX_BODY_WITHOUT_FILES"] + 1)})
    assert resp.status_code == 413
    resp = client.post("/login", json={"username": "x", "password": "y" * (app.config["MAX_BODY_WITHOUT_FILES"] + 1)})
    assert resp.status_code == 413


def upload_forms(app, client) -> dict[str, str]:
    """action URL -> file field name, for every form with a file input on a page the signed-in user can open."""
    found = {}
    for rule, endpoint, methods in rules(app):
        if "GET" not in methods or rule.arguments or endpoint in ("static", "main.favicon"):
            continue
        page = client.get(sample_url(rule))
        if page.status_code != 200 or page.mimetype != "text/html":
            page.close()
            continue
        for form in parse_forms(page.get_data(as_text=True)):
            files = [n for n, kind in form.kinds.items() if kind == "file"]
            if files and form.method == "post":
                found[form.action or sample_url(rule)] = files[0]
    return found


@pytest.mark.parametrize("user", ["rm_a", "admin"])
def test_an_oversized_upload_gets_413_and_writes_nothing(app, client, world, user):
    """Every form with a file input (found by walking the pages) gets a body 1 byte over MAX_CONTENT_LENGTH."""
    import io

    login(client, user)
    forms = upload_forms(app, client)
    if not forms:
        pytest.skip(f"no upload form for {user}")
    limit = app.config["MAX_CONTENT_LENGTH"]
    for action, field_name in forms.items():
        boundary = "----crm-oversize"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"big.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        body = head + b"a" * (limit + 1) + tail  # built in memory: the test client would spool it to a file
        with WriteSpy(db.engine) as spy:
            resp = client.post(action, input_stream=io.BytesIO(body), content_length=len(body),
                               content_type=f"multipart/form-data; boundary={boundary}")
        assert resp.status_code == 413, f"POST {action}: {resp.status_code}"
        assert spy.committed(ignore={"audit_entry"}) == []
