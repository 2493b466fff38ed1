"""Isolation (SECURITY.md §1): route inventory (AC-1), other bank = missing (AC-3), one scoping mechanism in the
ORM and no raw SQL around it (AC-6), changes take effect now (AC-9), fail closed (AC-10).

The walks are generic: they read ``app.url_map`` at collection time, so a new route is covered (or fails)
without editing this file. A 500 is always a failure; a known one may be listed in KNOWN_FINDINGS with the
endpoint named in the reason, which turns it into an xfail until the owner fixes it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_login import login_required

from crm import security
from crm.core import scoping
from crm.core.scoping import get_or_404, scope_for, scoped, tenant_models
from crm.extensions import db
from tests.conftest import login
from tests.security_payloads import (
    TENANT_BUILDERS, TenantRows, WriteSpy, assert_looks_missing, blueprint_of, collection_app, find_rule, rules,
    sample_url, shared_app, tenant_params,
)

ROOT = Path(__file__).resolve().parent.parent

#: (METHOD, rule) -> reason; each turns a known failure into an xfail naming the endpoint. Keep empty.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}


def _route_params():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        for method in methods:
            marks = []
            if (method, rule.rule) in KNOWN_FINDINGS:
                marks.append(pytest.mark.xfail(reason=KNOWN_FINDINGS[(method, rule.rule)], strict=False))
            out.append(pytest.param(rule.rule, endpoint, method, id=f"{method} {rule.rule}", marks=marks))
    return out


ROUTES = _route_params()


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    """One database for the walks of this module: the World plus one bank-B row of every bank-owned table."""
    for sa_ in shared_app(databases, tmp_path_factory):
        w = sa_.world
        sa_.rows = TenantRows(w.bank_b, w.rm_b, w.campaign, w.firm).build_all()
        db.session.commit()
        yield sa_


# -- AC-1 route inventory ------------------------------------------------------------------------------


@pytest.mark.parametrize("path,endpoint,method", ROUTES)
def test_every_route_is_public_by_allowlist_or_demands_sign_in(shared, path, endpoint, method):
    rule = find_rule(shared.app, path, endpoint)
    resp = shared.app.test_client().open(sample_url(rule), method=method)
    resp.close()
    assert resp.status_code != 500, f"{method} {path} ({endpoint}) answered 500 to an anonymous request"
    if security.is_public_endpoint(endpoint):
        return
    if blueprint_of(endpoint) in security.TOKEN_AUTH_BLUEPRINTS:
        assert resp.status_code == 401, f"API {method} {path} ({endpoint}) gave {resp.status_code} anonymously"
        return
    assert resp.status_code == 302, (
        f"{method} {path} ({endpoint}) gave {resp.status_code} to an anonymous request: add a sign-in check, "
        f"or add the endpoint to crm.security.PUBLIC_ENDPOINTS with a reason"
    )
    assert resp.headers["Location"].startswith("/login"), resp.headers["Location"]


def test_route_inventory_covers_every_rule_and_the_allowlist_is_explained(app):
    seen = {(p.values[0], p.values[2]) for p in ROUTES}
    for rule, endpoint, methods in rules(app):
        for method in methods:
            assert (rule.rule, method) in seen, f"{method} {rule.rule} was not walked"
    assert all(reason.strip() for reason in security.PUBLIC_ENDPOINTS.values())
    assert security.is_public_endpoint("events.public_register")
    assert not security.is_public_endpoint("events.publish")  # a prefix rule, not a substring rule
    assert not security.is_public_endpoint("main.home")


def test_public_endpoints_reveal_no_data_to_anonymous_users(client, world):
    body = client.get("/healthz").get_json()
    assert body == {"status": "ok"}
    page = client.get("/login").get_data(as_text=True)
    assert world.firm.name not in page and "李经理" not in page


# -- AC-3 another bank's record looks missing ----------------------------------------------------------


def _tenant_route_params():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if not tenant_params(rule):
            continue
        for method in methods:
            if method in ("GET", "POST"):
                out.append(pytest.param(rule.rule, endpoint, method, id=f"{method} {rule.rule}"))
    return out


@pytest.mark.parametrize("path,endpoint,method", _tenant_route_params())
def test_another_banks_record_answers_exactly_like_a_missing_one(shared, path, endpoint, method):
    rule = find_rule(shared.app, path, endpoint)
    params = tenant_params(rule)
    other_ids = {name: shared.rows.rows[table].id for name, table in params.items()}
    other_ids.update({"firm_id": shared.world.firm.id})
    missing_ids = {name: 2_147_483_000 + i for i, name in enumerate(params)}
    missing_ids.update({"firm_id": shared.world.firm.id})
    client = shared.client_for("rm_a")
    with WriteSpy(db.engine) as spy:
        assert_looks_missing(client, sample_url(rule, other_ids), sample_url(rule, missing_ids), method=method)
    assert spy.committed(ignore={"audit_entry"}) == []


def test_the_looks_missing_helper_catches_a_leaky_loader(app, client, world):
    """The helper itself can fail: a loader that answers 403 for another bank's visit is caught."""
    from flask import abort

    from crm.visits.models import Visit

    @login_required
    def good(visit_id):
        return f"visit {get_or_404(Visit, visit_id).id}"

    @login_required
    def leaky(visit_id):
        with scoped(scoping.SYSTEM):
            v = db.session.get(Visit, visit_id)
        abort(404 if v is None else 403)

    app.add_url_rule("/_probe/good/<int:visit_id>", "probe_good", good)
    app.add_url_rule("/_probe/leaky/<int:visit_id>", "probe_leaky", leaky)
    rows = TenantRows(world.bank_b, world.rm_b, world.campaign, world.firm)
    visit = rows.row("visit")
    db.session.commit()
    login(client, "rm_a")
    assert_looks_missing(client, f"/_probe/good/{visit.id}", "/_probe/good/999999")
    with pytest.raises(AssertionError):
        assert_looks_missing(client, f"/_probe/leaky/{visit.id}", "/_probe/leaky/999999")
    owner = app.test_client()
    login(owner, "rm_b")  # the owner does see it: the probe can tell the difference
    assert owner.get(f"/_probe/good/{visit.id}").status_code == 200


# -- AC-6 one mechanism in the ORM ----------------------------------------------------------------------

TENANT_TABLES = sorted(m.__tablename__ for m in tenant_models())


def test_every_tenant_model_has_a_row_builder_for_these_tests():
    assert set(TENANT_TABLES) <= set(TENANT_BUILDERS), "add a builder to tests/security_payloads.py"


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_orm_hook_hides_another_banks_rows_from_select_get_update_and_delete(app, world, table):
    rows = TenantRows(world.bank_b, world.rm_b, world.campaign, world.firm)
    obj = rows.row(table)
    db.session.commit()
    model, pk = type(obj), obj.id
    scope_a, scope_b, scope_bureau = scope_for(world.rm_a), scope_for(world.rm_b), scope_for(world.bureau_user)
    db.session.expunge_all()

    with scoped(scope_a):
        assert db.session.scalars(sa.select(model).where(model.id == pk)).all() == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        assert db.session.get(model, pk) is None
        updated = db.session.execute(sa.update(model).where(model.id == pk).values(id=model.id))
        assert updated.rowcount == 0
        deleted = db.session.execute(sa.delete(model).where(model.id == pk))
        assert deleted.rowcount == 0
        db.session.rollback()
    db.session.expunge_all()
    with scoped(scope_b):  # the owner sees it, so the assertions above can fail
        assert db.session.get(model, pk) is not None
    db.session.expunge_all()
    with scoped(scope_bureau):  # bureau and admin see every bank
        assert db.session.get(model, pk) is not None


def test_relationship_loads_of_a_shared_firm_hide_another_banks_rows(app, world):
    from crm.firms.models import Firm

    rows = TenantRows(world.bank_b, world.rm_b, world.campaign, world.firm)
    rows.row("firm_account")
    rows.row("contact")
    db.session.commit()
    scope_a, scope_b, firm_id = scope_for(world.rm_a), scope_for(world.rm_b), world.firm.id
    db.session.expunge_all()
    with scoped(scope_a):
        firm = db.session.get(Firm, firm_id)
        assert firm is not None  # the firm itself is shared
        assert list(firm.accounts) == [] and list(firm.contacts) == []
    db.session.expunge_all()
    with scoped(scope_b):
        firm = db.session.get(Firm, firm_id)
        assert len(firm.accounts) == 1 and len(firm.contacts) == 1


def test_inside_a_request_the_scope_defaults_to_nobody(app):
    with app.test_request_context("/"):
        assert scoping.current_scope() is scoping.NOBODY
    assert scoping.current_scope() is scoping.SYSTEM


#: file -> reason: the only places allowed to write SQL by hand
RAW_SQL_ALLOWLIST = {
    "crm/core/backup.py": "whole-database backup and restore below the ORM (system scope, CLI only)",
    "crm/core/security_commands.py": "the audit purge gate (SET LOCAL); no bank-owned table is named",
    "scripts/loadtest.py": "the load test's own invariant checks against the database after the run",
    "crm/perf/generate.py": "the benchmark data generator: bulk loads with the system scope, CLI only",
    "crm/imports/bulk.py": "the ledgers' bulk INSERT ... SELECT FROM unnest (PostgreSQL, binary arrays): inserts "
                           "only, of rows built under the importing user's scope, every value bound",
}
_Q = r'["`]?'


def _tenant_sql_re(tables: list[str]) -> re.Pattern:
    t = "(?:" + "|".join(tables) + ")"
    return re.compile(
        rf"\bupdate\s+{_Q}{t}{_Q}\b|\bdelete\s+from\s+{_Q}{t}{_Q}\b|\binsert\s+into\s+{_Q}{t}{_Q}\b"
        rf"|\bselect\b[\s\S]*?\b(?:from|join)\s+{_Q}{t}{_Q}(?:\s|$|;|,|\))", re.I)


_SQL_MODULES = {"sa", "sqlalchemy", "sql", "expression"}


def _docstring_nodes(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def raw_sql_findings(source: str, tables: list[str]) -> list[str]:
    """text()/exec_driver_sql/literal SQL that touches a bank-owned table, found with the ast module."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    on_tenant = _tenant_sql_re(tables)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name == "exec_driver_sql":
                findings.append(f"line {node.lineno}: exec_driver_sql")
            is_sql_text = name == "text" and (
                isinstance(fn, ast.Name) or (isinstance(fn.value, ast.Name) and fn.value.id in _SQL_MODULES))
            if is_sql_text and node.args:
                arg = node.args[0]
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    findings.append(f"line {node.lineno}: text() of a computed string")
                elif on_tenant.search(arg.value):
                    findings.append(f"line {node.lineno}: text() on a bank-owned table")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if on_tenant.search(node.value):
                findings.append(f"line {node.lineno}: SQL string on a bank-owned table")
    return findings


def test_no_raw_sql_on_bank_owned_tables_outside_the_allowlist():
    tables = sorted({m.__tablename__ for m in tenant_models()})
    problems = []
    for path in sorted([*ROOT.glob("crm/**/*.py"), *ROOT.glob("scripts/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in RAW_SQL_ALLOWLIST:
            continue
        for finding in raw_sql_findings(path.read_text(encoding="utf-8"), tables):
            problems.append(f"{rel} {finding}")
    assert problems == [], "raw SQL bypasses the tenant scope:\n" + "\n".join(problems)


@pytest.mark.parametrize("snippet,bad", [
    ('db.session.execute(sa.text("SELECT * FROM visit WHERE id = 1"))', True),
    ('conn.exec_driver_sql("select 1")', True),
    ('db.session.execute(text(query))', True),
    ('Q = "delete from contact where 1=1"', True),
    ('db.session.execute(sa.text("UPDATE \\"credit_application\\" SET stage = 1"))', True),
    ('sa.Index("ix", "a", sqlite_where=sa.text("status = \'active\'"))', False),
    ('"""Select the visits of an event: from event to visit."""', False),
    ('value = row.text(key)', False),
    ('msg = "Select a visit from the list"', False),
    ('db.session.execute(sa.select(Visit))', False),
])
def test_the_raw_sql_check_can_fail(snippet, bad):
    tables = sorted({m.__tablename__ for m in tenant_models()})
    assert bool(raw_sql_findings(snippet, tables)) is bad


# -- AC-9 changes take effect now; AC-10 fail closed ---------------------------------------------------


def _add_scope_probe(app):
    @login_required
    def probe():
        return scoping.current_scope().label

    app.add_url_rule("/_probe/scope", "probe_scope", probe)


def test_moving_a_user_to_another_bank_rescopes_the_next_request(app, client, world):
    from crm.auth import services
    from crm.auth.models import User

    _add_scope_probe(app)
    login(client, "rm_a")
    assert client.get("/_probe/scope").get_data(as_text=True) == f"bank:{world.bank_a.id}"
    services.change_role(db.session.get(User, world.rm_a.id), "rm", org=world.branch_b)
    db.session.commit()
    assert client.get("/_probe/scope").get_data(as_text=True) == f"bank:{world.bank_b.id}"
    services.change_role(db.session.get(User, world.rm_a.id), "bureau", org=world.bureau)
    db.session.commit()
    assert client.get("/_probe/scope").get_data(as_text=True) == "bureau"


def test_a_failing_permission_check_fails_closed(app, client, world, monkeypatch):
    login(client, "rm_a")

    def boom(user):
        raise RuntimeError("scope lookup failed")

    monkeypatch.setattr(scoping, "scope_for", boom)
    resp = client.get("/")
    assert resp.status_code == 500
    body = resp.get_data(as_text=True)
    assert world.firm.name not in body and "Traceback" not in body


def test_a_failing_role_check_fails_closed(app, client, world, monkeypatch):
    from crm.auth.decorators import role_required

    @role_required("rm")
    def guarded():
        return "secret data"

    app.add_url_rule("/_probe/guarded", "probe_guarded", guarded)
    login(client, "rm_a")
    assert client.get("/_probe/guarded").get_data(as_text=True) == "secret data"

    class BrokenUser:
        is_authenticated = True

        @property
        def role(self):
            raise RuntimeError("role lookup failed")

    import crm.auth.decorators as decorators

    monkeypatch.setattr(decorators, "current_user", BrokenUser())
    resp = client.get("/_probe/guarded")
    assert resp.status_code == 500
    assert "secret data" not in resp.get_data(as_text=True)
