"""No query per row: list pages, exports and the dashboard issue as many SQL statements for 40 rows as for 5.

Two databases are generated with crm.perf.generate at a few rows and at several times as many; each endpoint is
requested once to warm up, then once more while a before_cursor_execute listener counts statements. An endpoint
that does not exist (yet) is skipped, naming it.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from crm.extensions import db
from crm.perf import generate as gen
from tests.conftest import login, make_app

#: how much the count may differ between the sizes (conditional look-ups such as "if any ids: fetch their
#: labels"); a query per row differs by the number of extra rows (35+)
SLACK = 3

SMALL = gen.Plan(scale=0, banks=5, branches=5, firms=6, visits=8, events=3, registrations=8, credits=6,
                 rms_per_branch=1, bureau_users=1)
LARGE = gen.Plan(scale=0, banks=5, branches=5, firms=45, visits=60, events=12, registrations=90, credits=45,
                 rms_per_branch=1, bureau_users=1)

#: (endpoint, URL values, who asks). ``BIG_EVENT`` is the event with the most registrations.
BIG_EVENT = "<big event>"
CASES = [
    ("firms.index", {}, "manager"),
    ("firms.index", {"per": 200}, "bureau"),
    ("firms.export", {"fmt": "csv"}, "manager"),
    ("visits.index", {}, "manager"),
    ("visits.my_followups", {}, "rm"),
    ("visits.overdue", {}, "manager"),
    ("events.index", {}, "bureau"),
    ("events.detail", {"event_id": BIG_EVENT}, "bureau"),
    ("events.export", {"event_id": BIG_EVENT, "fmt": "csv"}, "bureau"),
    ("events.export", {"event_id": BIG_EVENT, "fmt": "xlsx"}, "bureau"),
    ("events.desk_rows", {"event_id": BIG_EVENT}, "bureau"),
    ("credit.index", {}, "manager"),
    ("credit.index", {}, "bureau"),
    ("credit.ip_pledges", {}, "bureau"),
    ("credit.sla", {}, "manager"),
    ("dashboard.index", {}, "bureau"),
    ("dashboard.index", {}, "manager"),
    ("dashboard.records", {}, "bureau"),
    ("dashboard.report", {}, "bureau"),
    ("dashboard.report_xlsx", {}, "bureau"),
]
USERS = {"bureau": "bureau1", "manager": "mgr1_1", "rm": "rm1_01_1"}


class Site:
    def __init__(self, url: str, plan: gen.Plan):
        self.app = make_app(url)
        with self.app.app_context():
            gen.generate(db.engine, 0, seed=11, plan=plan, analyze=False,
                         password_hash=_password_hash())
            self.engine = db.engine
            self.big_event = db.session.execute(sa.text(
                "SELECT event_id FROM registration GROUP BY event_id ORDER BY COUNT(*) DESC, event_id LIMIT 1")).scalar()
            self.rules = {r.endpoint for r in self.app.url_map.iter_rules()}
            db.session.remove()
        self.statements = 0
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        self.clients = {}

    def _count(self, *args):
        self.statements += 1

    def client(self, who: str):
        if who not in self.clients:
            c = self.app.test_client()
            resp = login(c, USERS[who])
            assert resp.status_code == 302, f"login as {USERS[who]} failed"
            self.clients[who] = c
        return self.clients[who]

    def count(self, who: str, url: str) -> tuple[int, int]:
        c = self.client(who)
        first = c.get(url)
        first.get_data()
        before = self.statements
        resp = c.get(url)
        resp.get_data()
        return resp.status_code, self.statements - before


def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    from tests.factories import TEST_PASSWORD

    return generate_password_hash(TEST_PASSWORD, method="pbkdf2:sha256:1000")


@pytest.fixture(scope="module")
def sites(databases, tmp_path_factory):
    urls = [databases.new(tmp_path_factory.mktemp(name)) for name in ("small", "large")]
    small, large = Site(urls[0], SMALL), Site(urls[1], LARGE)
    yield small, large
    for site, url in zip((small, large), urls):
        site.engine.dispose()
        databases.drop(url)


def _url(site: Site, endpoint: str, values: dict) -> str:
    values = {k: (site.big_event if v == BIG_EVENT else v) for k, v in values.items()}
    with site.app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **values)


@pytest.mark.parametrize("endpoint,values,who", CASES,
                         ids=[f"{e}{'-' + '-'.join(f'{k}={v}' for k, v in vals.items()) if vals else ''}-{w}"
                              for e, vals, w in CASES])
def test_statement_count_does_not_grow_with_rows(sites, endpoint, values, who):
    small, large = sites
    if endpoint not in small.rules:
        pytest.skip(f"endpoint {endpoint} does not exist yet")
    status_s, n_small = small.count(who, _url(small, endpoint, values))
    status_l, n_large = large.count(who, _url(large, endpoint, values))
    if status_s != 200 or status_l != 200:
        pytest.skip(f"{endpoint} answered {status_s}/{status_l} to {who}")
    assert n_large <= n_small + SLACK, (
        f"{endpoint} as {who}: {n_small} statements with few rows, {n_large} with many (a query per row?)")
