"""PIPL (SECURITY.md §12) PI-6: no personal data in URLs, so none in access logs, proxies or browser history.

A mobile typed into a GET form lands in the query string, hence in every access log on the way. These walks
render every page the signed-in roles reach on a world whose contacts and registrations have known mobiles,
and check: no link, form action, script source or redirect names an 11-digit mainland mobile; no form that
submits by GET has a field for a mobile number; creating or revealing a contact redirects to a URL without
it. Requests follow only links and redirects the app generates, so the access log then holds no mobile.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.security_payloads import (
    collection_app, find_rule, fuzz_url, fuzz_world, parse_forms, rules,
)

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
URL_ATTRS = {"href", "src", "action", "formaction", "data-url", "data-href", "data-src", "data-endpoint", "poster"}
MOBILE_FIELD = re.compile(r"mobile|phone|tel|手机", re.I)
ROLES = ["rm_a", "mgr_a", "bureau", "admin"]
#: endpoints outside the walk: downloads and token pages are not HTML pages with links
SKIP = {"static", "main.favicon", "api.metrics", "api.openapi"}


class _Urls(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name in URL_ATTRS or name.endswith("-url")):
                self.urls.append(value)


def urls_in(html: str) -> list[str]:
    p = _Urls()
    p.feed(html)
    return p.urls


def _pages():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if "GET" not in methods or endpoint in SKIP or endpoint.startswith("events.public"):
            continue
        out.append(pytest.param(rule.rule, endpoint, id=rule.rule))
    return out


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    yield from fuzz_world(databases, tmp_path_factory)


@pytest.mark.parametrize("path,endpoint", _pages())
def test_no_page_puts_a_mobile_in_a_url_or_asks_for_one_by_get(shared, path, endpoint):
    rule = find_rule(shared.app, path, endpoint)
    url = fuzz_url(rule, shared)
    for role in ROLES:
        resp = shared.client_for(role).get(url)
        location = resp.headers.get("Location", "")
        assert not MOBILE.search(location), f"GET {url} as {role} redirects to a URL with a mobile: {location}"
        if resp.mimetype != "text/html":
            resp.close()
            continue
        html = resp.get_data(as_text=True)
        leaked = [u for u in urls_in(html) if MOBILE.search(u)]
        assert leaked == [], f"GET {url} as {role}: a link or action carries a mobile: {leaked[:3]}"
        for form in parse_forms(html):
            if form.method != "get":
                continue
            asks = [n for n, kind in form.kinds.items() if kind == "tel" or MOBILE_FIELD.search(n)]
            assert asks == [], f"GET {url} as {role}: a GET form asks for {asks}: it would put them in the URL"


def test_the_seeded_mobiles_are_on_the_pages_so_the_walk_could_catch_a_leak(shared):
    """The walk's world has contacts and registrations with known mobiles, shown masked or (revealed) in full."""
    contact = shared.own.rows["contact"]
    client = shared.client_for("rm_a")
    page = client.get(f"/firms/{contact.firm_id}").get_data(as_text=True)
    assert "139****5678" in page  # the seeded contact's mobile, masked on the firm page
    reveal = client.post(f"/firms/contacts/{contact.id}/reveal")
    assert reveal.status_code == 200 and "13912345678" in reveal.get_data(as_text=True)
    assert not MOBILE.search(reveal.headers.get("Location", ""))


def test_saving_a_contact_redirects_to_a_url_without_the_mobile(shared):
    client = shared.client_for("rm_a")
    firm = shared.world.firm
    resp = client.post(f"/firms/{firm.id}/contacts/new", data={"name": "新联系人", "mobile": "13700001111"})
    assert resp.status_code == 302
    assert "13700001111" not in resp.headers["Location"] and not MOBILE.search(resp.headers["Location"])


def test_the_mobile_pattern_catches_what_it_must():
    assert MOBILE.search("/firms/?q=13812345678") and MOBILE.search("tel:13912345678")
    assert not MOBILE.search("/events/12345678901234") and not MOBILE.search("/firms/1")
    assert urls_in('<a href="/x?m=13812345678">x</a><form action="/y"></form>') == ["/x?m=13812345678", "/y"]
