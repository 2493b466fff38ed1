"""Data integrity (SECURITY.md §11): DB-2 no silent bulk writes on versioned tables, DB-6 concurrent duplicates.

DB-2: SQLAlchemy's ``version_id_col`` guards only unit-of-work flushes; a bulk ``update(Model)`` neither checks
nor bumps the version, so a form loaded before it would overwrite its change unnoticed. The static check finds
every bulk ``update()`` of a versioned model in ``crm/`` and requires it to bump ``Model.version + 1``; the
behavioural test shows why it matters (a check-in, a bulk update, makes an edit form loaded before it stale).

DB-6: two sessions register the same firm (the unified social credit code is unique) at the same moment: one
firm row, the winner gets it, the loser the same clear answer as a sequential duplicate (never a 500). Runs on
the engine of the test run (SQLite by default, PostgreSQL with CRM_TEST_DB=postgres).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm.extensions import db
from tests import factories
from tests.concurrency import race_at_insert

ROOT = Path(__file__).resolve().parent.parent


# -- DB-2 -----------------------------------------------------------------------------------------------------


def versioned_models() -> dict[str, type]:
    out = {}
    for mapper in db.Model.registry.mappers:
        if mapper.version_id_col is not None:
            out[mapper.class_.__name__] = mapper.class_
    return out


def _enclosing_functions(tree):
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def bulk_update_findings(source: str, versioned: set[str]) -> list[str]:
    """Bulk ``update(Model)`` / ``delete(Model)`` of a versioned model whose function does not bump the version."""
    tree = ast.parse(source)
    parents = _enclosing_functions(tree)
    findings = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        if name not in ("update", "delete"):
            continue
        if isinstance(fn, ast.Attribute) and not (isinstance(fn.value, ast.Name) and fn.value.id in ("sa", "sqlalchemy")):
            continue  # dict.update(...), set.update(...), a service called update, ...
        target = node.args[0]
        model = target.id if isinstance(target, ast.Name) else None
        if model not in versioned:
            continue
        if name == "delete":
            findings.append(f"line {node.lineno}: bulk delete of versioned {model}")
            continue
        scope = node
        while scope in parents and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope = parents[scope]
        text = ast.get_source_segment(source, scope) or ""
        if not re.search(rf"\b{model}\.version\s*\+\s*1\b", text):
            findings.append(f"line {node.lineno}: bulk update of versioned {model} without {model}.version + 1")
    return findings


def test_bulk_updates_of_versioned_models_bump_the_version(app):
    versioned = set(versioned_models())
    assert {"Visit", "Contact", "Event", "Registration", "CreditApplication", "FollowUp"} <= versioned
    problems = []
    for path in sorted(ROOT.glob("crm/**/*.py")):
        for finding in bulk_update_findings(path.read_text(encoding="utf-8"), versioned):
            problems.append(f"{path.relative_to(ROOT).as_posix()} {finding}")
    assert problems == [], "bulk writes bypass optimistic locking:\n" + "\n".join(problems)


@pytest.mark.parametrize("snippet,bad", [
    ("def f():\n    db.session.execute(sa.update(Visit).where(Visit.id == 1).values(summary='x'))", True),
    ("def f():\n    db.session.execute(sa.delete(Contact).where(Contact.id == 1))", True),
    ("def f():\n    db.session.execute(update(Registration).values(status='x'))", True),
    ("def f():\n    v = {'version': Registration.version + 1}\n    db.session.execute(sa.update(Registration)"
     ".values(**v))", False),
    ("def f():\n    db.session.execute(sa.update(Visit).values(summary='x', version=Visit.version + 1))", False),
    ("def f():\n    db.session.execute(sa.update(AuditEntry).values(x=1))", False),
    ("def f():\n    out.update(Visit)", False),
])
def test_the_bulk_update_check_can_fail(app, snippet, bad):
    assert bool(bulk_update_findings(snippet, set(versioned_models()))) is bad


def test_a_bulk_update_without_a_bump_goes_unnoticed_so_the_check_in_bumps_it(app, world):
    """Why the rule exists: a bare bulk update leaves the version alone; the check-in's bump makes old forms stale."""
    from crm.core.scoping import scope_for, scoped
    from crm.events import services
    from crm.events.models import Registration
    from tests import factories_events as fe

    e = fe.event([world.bank_a], world.campaign)
    r = fe.registration(e)
    db.session.commit()
    loaded = r.version
    db.session.execute(sa.update(Registration).where(Registration.id == r.id).values(remarks="bulk"))
    db.session.commit()
    db.session.refresh(r)
    assert r.version == loaded  # SQLAlchemy's version_id_col did not see it

    with scoped(scope_for(world.rm_a)):
        assert services.check_in(r, world.rm_a) is True
        db.session.commit()
        assert r.version == loaded + 1
        person = services.PersonData(person_name="改名", mobile=r.mobile)
        with pytest.raises(services.ConflictError):
            services.update_registration(r, person, world.rm_a, version=loaded)  # the form from before the check-in
    db.session.rollback()


# -- DB-6 -----------------------------------------------------------------------------------------------------


def _race_create_firm(app, code: str, user_ids: list[int]):
    """Each thread (own app context, session, connection) registers the same firm; both are held just before the
    INSERT into firm, after both found no firm with the code, and let go together."""
    from crm.auth.models import User
    from crm.core.scoping import scope_for, scoped
    from crm.firms import services

    def worker(i: int):
        def run():
            user = db.session.get(User, user_ids[i])
            with scoped(scope_for(user)):
                try:
                    firm = services.create_firm({"name": f"同时登记科技有限公司{i}", "credit_code": code,
                                                 "industry_code": "ai"}, user=user)
                    db.session.commit()
                    return ("created", firm.id)
                except services.FirmError as exc:
                    db.session.rollback()
                    return ("refused", exc.field, exc.existing.id if exc.existing else None, str(exc))
        return run

    outcomes, errors, _attempts = race_at_insert(app, "firm", [worker(i) for i in range(len(user_ids))])
    return outcomes, errors


def test_two_banks_registering_the_same_firm_at_once_get_one_firm_and_a_clear_refusal(app, world):
    from crm.firms.models import Firm

    code = factories.credit_code()
    outcomes, errors = _race_create_firm(app, code, [world.rm_a.id, world.rm_b.id])
    assert errors == [], errors
    db.session.expire_all()
    firms = list(db.session.scalars(sa.select(Firm).where(Firm.credit_code == code)))
    assert len(firms) == 1
    assert sorted(o[0] for o in outcomes) == ["created", "refused"], outcomes
    refused = next(o for o in outcomes if o[0] == "refused")
    assert refused[1] == "credit_code" and refused[2] == firms[0].id
    assert "已登记" in refused[3]  # the Chinese message of a sequential duplicate


def test_the_loser_of_the_race_sees_the_same_page_as_a_sequential_duplicate(app, world, client, login_as):
    """The web answer for a duplicate code: 422 with a link to the existing firm, no 500 and no second row."""
    from crm.firms.models import Firm
    from tests.factories_firms import form_firm

    existing = factories.firm("深圳市已登记科技有限公司")
    db.session.commit()
    login_as("rm_b")
    resp = client.post("/firms/new", data=form_firm("另一个名字", code=existing.credit_code))
    assert resp.status_code == 422
    assert f'href="/firms/{existing.id}"' in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Firm).where(
        Firm.credit_code == existing.credit_code)) == 1
