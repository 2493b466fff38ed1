"""Saving a visit loads each row once: the POSTs that create and edit a visit issue a fixed, small number of SQL
statements (counted with a before_cursor_execute listener on the engine, the way tests/test_query_counts.py does).

A save used to select the campaign, the user's campaigns, the visit modes, the willingness levels and the people
again after the form had loaded them, to select the bureau staff, the contacts and a second campaign list the
saved page never shows, to look for a follow-up of a visit inserted a moment before, and to load the visit and
the firm again after the commit for the message and the redirect: 26 statements for a create, 23 for an edit.
A bound here fails as soon as one of those comes back.
"""
from __future__ import annotations

import re

import sqlalchemy as sa

from crm.extensions import db
from crm.firms.models import FirmAccount
from crm.visits.models import FollowUp, Visit
from tests import factories
from tests.factories_firms import audit_actions, form_visit
from tests.sqlcount import statements

#: the visit-create POST of a relationship manager whose bank already has an account with the firm (the common
#: case), no companions, a next step with a due date:
#:   1 SELECT user           the signed-in user by session token (Flask-Login's user loader)
#:   2 SELECT firm           the chosen firm
#:   3 SELECT campaign       the user's campaigns (choices; the save checks the chosen one against this list)
#:   4 SELECT user.id, name  the bank's active users (choices; the RM, the signed-in user, and their branch
#:                           came with statement 1)
#:   5 SELECT visit_mode     choices
#:   6 SELECT willingness    choices
#:   7 INSERT visit
#:   8 INSERT audit_entry    create visit
#:   9 INSERT follow_up      the next step
#:  10 INSERT audit_entry    create follow-up
#:  11 SELECT firm_account   the bank's account with the firm
#:  12 SELECT visit          the bank's latest visit to the firm
#:  13 UPDATE firm_account   last visit, willingness, open need
#:  14 INSERT audit_entry    update account
CREATE_STATEMENTS = 14

#: a first visit of the bank to the firm with a bureau companion adds 5 to the above: SELECT user (the companion,
#: who is not a colleague the form loaded), INSERT visit_companion, and for the new account INSERT firm_account
#: ... ON CONFLICT DO NOTHING, SELECT firm_account (the row just made) and INSERT audit_entry (create account)
FIRST_VISIT_WITH_COMPANION_STATEMENTS = 19

#: the visit-edit POST changing the summary (the follow-up and the account stay as they are):
#:   1 SELECT user           session token
#:   2 SELECT visit          the visit (scoped to the bank)
#:   3 SELECT campaign       choices
#:   4 SELECT user.id, name  choices
#:   5 SELECT visit_mode     choices
#:   6 SELECT willingness    choices
#:   7 SELECT user           the visit's companions (before-image of the audit entry)
#:   8 SELECT firm           the visit's firm
#:   9 UPDATE visit          ... WHERE version = ? (stale edits fail here)
#:  10 INSERT audit_entry    update visit
#:  11 SELECT follow_up      the visit's follow-up, kept in step
#:  12 SELECT firm_account   the bank's account with the firm
#:  13 SELECT visit          the bank's latest visit to the firm
EDIT_STATEMENTS = 13


#: the visit page a relationship manager opens from a firm's page (GET /visits/new?firm_id=...), most often on a
#: phone at the firm's door:
#:   1 SELECT user           session token (with the organisation)
#:   2 SELECT firm           the firm
#:   3 SELECT campaign       the user's campaigns (choices, and the one running today preselected from them)
#:   4 SELECT user.id, name  the bank's active users (choices)
#:   5 SELECT visit_mode     choices
#:   6 SELECT willingness    choices
#:   7 SELECT contact        the firm's contacts the bank recorded (choices)
#:   8 SELECT user + org     the bureau's staff (companions from the bureau)
NEW_PAGE_STATEMENTS = 8


def _statements_of(request):
    """Run ``request()`` and return its response and the SQL statements it issued."""
    with statements() as seen:
        resp = request()
    return resp, seen


def _summary(sqls) -> str:
    """One line per statement: the verb and the table (``SELECT firm_account``), for a readable failure."""
    out = []
    for n, sql in enumerate(sqls, 1):
        sql = " ".join(sql.split())
        verb = sql.split(" ", 1)[0]
        m = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", sql)
        out.append(f"{n:3} {verb} {m.group(1) if m else sql[:60]}")
    return "\n".join(out)


def test_creating_a_visit_loads_each_row_once(world, login_as):
    factories.account(world.firm, world.bank_a, owner=world.rm_a)
    db.session.commit()
    client = login_as("rm_a")
    data = form_visit(world.firm, world.campaign)  # read before counting: the test's own session reloads them
    resp, statements = _statements_of(lambda: client.post("/visits/new", data=data))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    assert len(statements) <= CREATE_STATEMENTS, (
        f"the visit-create POST issued {len(statements)} statements (at most {CREATE_STATEMENTS}):\n"
        + _summary(statements))
    # and it still did the whole job
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Visit)) == 1
    assert db.session.scalar(sa.select(FollowUp)).due_on.isoformat() == "2026-11-30"
    assert db.session.scalar(sa.select(FirmAccount)).last_visit_on.isoformat() == "2026-11-20"
    assert audit_actions()[-3:] == ["create", "create", "update"]


def test_the_visit_page_reads_each_row_once_and_preselects_todays_campaign(world, login_as):
    client = login_as("rm_a")
    firm_id, campaign_id = world.firm.id, world.campaign.id  # read before counting (the test's session reloads them)
    resp, statements = _statements_of(lambda: client.get(f"/visits/new?firm_id={firm_id}"))
    assert resp.status_code == 200
    assert len(statements) <= NEW_PAGE_STATEMENTS, (
        f"the visit page issued {len(statements)} statements (at most {NEW_PAGE_STATEMENTS}):\n"
        + _summary(statements))
    html = resp.get_data(as_text=True)
    campaign = re.search(r'<select[^>]*name="campaign_id".*?</select>', html, re.S).group(0)
    assert re.search(rf'<option selected value="{campaign_id}"|<option value="{campaign_id}" selected', campaign), campaign


def test_first_visit_with_a_bureau_companion_adds_only_the_companion_and_the_account(world, login_as):
    client = login_as("rm_a")
    data = form_visit(world.firm, world.campaign, companion_ids=[str(world.bureau_user.id)])
    resp, statements = _statements_of(lambda: client.post("/visits/new", data=data))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    assert len(statements) <= FIRST_VISIT_WITH_COMPANION_STATEMENTS, (
        f"the first visit-create POST issued {len(statements)} statements "
        f"(at most {FIRST_VISIT_WITH_COMPANION_STATEMENTS}):\n" + _summary(statements))
    assert [c.username for c in db.session.scalar(sa.select(Visit)).companions] == ["bureau"]
    assert audit_actions("firm_account") == ["create", "update"]


def test_editing_a_visit_loads_each_row_once(world, login_as):
    client = login_as("rm_a")
    assert client.post("/visits/new", data=form_visit(world.firm, world.campaign)).status_code == 302
    visit = db.session.scalar(sa.select(Visit))
    url = f"/visits/{visit.id}/edit"
    data = form_visit(world.firm, world.campaign, summary="补充：已约定下周面谈", version=str(visit.version))
    resp, statements = _statements_of(lambda: client.post(url, data=data))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    assert len(statements) <= EDIT_STATEMENTS, (
        f"the visit-edit POST issued {len(statements)} statements (at most {EDIT_STATEMENTS}):\n"
        + _summary(statements))
    assert db.session.scalar(sa.select(Visit)).summary == "补充：已约定下周面谈"
    assert audit_actions("visit") == ["create", "update"]


def test_malformed_people_and_contact_ids_are_refused_with_a_message_not_an_error(world, login_as):
    """The relationship manager, the next step's owner and the contact are checked by the save, not by the form's
    choices: a value that is not a row id is the same clear refusal as another bank's id, and saves nothing."""
    client = login_as("rm_a")
    base = form_visit(world.firm, world.campaign)
    for field in ("rm_id", "next_step_owner_id", "contact_id"):
        for value in ("abc", "1.5", "99999999999999999999999", "-1", "0x10"):
            resp = client.post("/visits/new", data={**base, field: value})
            assert resp.status_code == 422, (field, value, resp.status_code)
            assert "invalid-feedback" in resp.get_data(as_text=True), (field, value)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Visit)) == 0
