"""Bad query strings at volume (issue 7, item 8): every GET route found in url_map, as a signed-in user of each
role (and the API with a bearer token), gets generated query parameters: page=-1, from=abc, bank=999999,
unicode, NUL, huge values, and every name the page's own filter forms use. Never a 500, and a GET writes
nothing but the audit trail (SECURITY.md CS-6).
"""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm import security
from crm.extensions import db
from tests.security_payloads import (
    BAD_STRINGS, WriteSpy, blueprint_of, collection_app, find_rule, fuzz_url, fuzz_world, parse_forms, rules,
)

ROLES = ["rm_a", "mgr_a", "bureau", "admin"]
COMMON_PARAMS = ["page", "per_page", "from", "to", "start", "end", "bank", "bank_id", "branch", "campaign", "q",
                 "sort", "order", "status", "stage", "year", "month", "kind", "fmt", "format", "id", "industry",
                 "area", "rm", "owner", "next", "limit", "offset", "date", "scope", "columns", "attendance"]
#: (role, endpoint) -> reason: a known 500, xfailed until its owner fixes it. Keep empty.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}
TOTAL_EXAMPLES = 400


def _targets():
    out = []
    for rule, endpoint, methods in rules(collection_app()):
        if "GET" not in methods or endpoint in ("static", "main.favicon"):
            continue
        roles = ["api"] if blueprint_of(endpoint) in security.TOKEN_AUTH_BLUEPRINTS else ROLES
        for role in roles:
            marks = []
            if (role, endpoint) in KNOWN_FINDINGS:
                marks.append(pytest.mark.xfail(reason=KNOWN_FINDINGS[(role, endpoint)], strict=False))
            out.append(pytest.param(role, rule.rule, endpoint, id=f"{role} GET {rule.rule}", marks=marks))
    return out


TARGETS = _targets()
EXAMPLES = max(3, math.ceil(TOTAL_EXAMPLES / max(1, len(TARGETS))))


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    for sh in fuzz_world(databases, tmp_path_factory):
        sh.token = None
        try:
            from crm.api.services import create_token

            _row, sh.token = create_token(sh.world.rm_a, "fuzz")
            db.session.commit()
        except ImportError:
            pass
        yield sh


value = st.one_of(
    st.sampled_from(BAD_STRINGS + ["-1", "999999", "2147483648", "9" * 30, "abc", "0", "", "1,2,3", "[]", "{}"]),
    st.text(max_size=20),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
)


def query_strategy(names):
    return st.dictionaries(st.sampled_from(names) | st.text(min_size=1, max_size=8), value | st.lists(value, max_size=3),
                           max_size=5)


@pytest.mark.parametrize("role,path,endpoint", TARGETS)
def test_no_query_string_gives_a_500_or_a_write(shared, role, path, endpoint):
    rule = find_rule(shared.app, path, endpoint)
    url = fuzz_url(rule, shared)
    headers = {}
    if role == "api":
        client = shared.app.test_client()
        if shared.token:
            headers["Authorization"] = f"Bearer {shared.token}"
    else:
        client = shared.client_for(role)
    names = list(COMMON_PARAMS)
    first = client.get(url, headers=headers)
    if first.status_code == 200 and first.mimetype == "text/html":
        for form in parse_forms(first.get_data(as_text=True)):
            if form.method == "get":
                names += [n for n in form.fields if n not in names]
    first.close()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(query=query_strategy(names))
    def get_junk(query):
        with WriteSpy(db.engine) as spy:
            resp = client.get(url, query_string=query, headers=headers)
        resp.close()
        assert resp.status_code != 500, f"500 from {role} GET {url} with {query!r}"
        writes = spy.committed(ignore={"audit_entry"})
        assert writes == [], f"{role} GET {url} wrote {writes}"

    get_junk()


def test_the_fuzz_budget_is_at_least_400_query_cases():
    assert len(TARGETS) * EXAMPLES >= 400
