"""Personal API tokens, GET /api/v1/metrics, its OpenAPI document, and the `crm metrics` command."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm.auth.models import ApiToken, User
from crm.core.models import AuditEntry
from crm.dashboard.definitions import METRIC_KEYS
from crm.dashboard.metrics import _json_value
from crm.extensions import db
from tests.factories_dashboard import EXPECTED, RANGE, build_known_campaign

TOKEN = re.compile(r'<code[^>]*data-token>(crm_[A-Za-z0-9_\-]+)</code>')


@pytest.fixture
def known(world):
    k = build_known_campaign(world)
    db.session.commit()
    return k


def new_token(client, login_as, username, name="周报表格"):
    login_as(username)
    resp = client.post("/profile/tokens", data={"name": name})
    assert resp.status_code == 200
    raw = TOKEN.search(resp.get_data(as_text=True)).group(1)
    client.post("/logout")
    return raw


def api(client, raw, query="campaign=ZCR2026"):
    return client.get(f"/api/v1/metrics?{query}", headers={"Authorization": f"Bearer {raw}"})


def expected_json(who, rng):
    return {k: _json_value(v) for k, v in EXPECTED[(who, rng)].items() if k in METRIC_KEYS}


def test_a_token_is_shown_once_and_stored_only_as_its_hash(known, client, login_as):
    login_as("rm_a")
    resp = client.post("/profile/tokens", data={"name": "Excel"})
    raw = TOKEN.search(resp.get_data(as_text=True)).group(1)
    token = db.session.scalar(sa.select(ApiToken))
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:12] and raw not in (token.name, token.prefix, token.token_hash)
    listing = client.get("/profile/tokens").get_data(as_text=True)
    assert raw not in listing and token.prefix in listing
    audit = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.object_type == "api_token")).all()
    assert audit and all(raw not in (a.after or "") and token.token_hash not in (a.after or "") for a in audit)


@pytest.mark.parametrize("username,query,who,rng", [
    ("bureau", "campaign=ZCR2026", "all", "full"),
    ("bureau", f"campaign=ZCR2026&from={RANGE[0]}&to={RANGE[1]}", "all", "range"),
    ("bureau", "campaign=ZCR2026&bank=SZRCB", "A", "full"),
    ("admin", f"campaign=ZCR2026&bank=SZRCB&from={RANGE[0]}&to={RANGE[1]}", "A", "range"),
    ("rm_a", "campaign=ZCR2026", "A", "full"),
    ("mgr_b", "campaign=ZCR2026", "B", "full"),
])
def test_the_api_returns_every_metric_exactly_scoped_like_its_owner(known, client, login_as, username, query,
                                                                    who, rng):
    raw = new_token(client, login_as, username)
    resp = api(client, raw, query)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    assert {k: doc[k] for k in METRIC_KEYS} == expected_json(who, rng)
    assert {"by_industry", "by_district", "by_bank", "by_month"} <= set(doc)


def test_a_bank_token_never_sees_another_banks_numbers(known, client, login_as):
    raw = new_token(client, login_as, "rm_a")
    doc = api(client, raw, "campaign=ZCR2026&bank=ICBC-SZ").get_json()
    assert doc["visits"] == 0 and doc["credit_amount_wan"] == "0"
    doc = api(client, raw).get_json()
    assert set(doc["by_bank"]) == {"SZRCB"}


def test_a_signed_in_browser_session_does_not_authenticate_the_api(known, client, login_as):
    login_as("bureau")
    resp = client.get("/api/v1/metrics?campaign=ZCR2026")
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/metrics?campaign=ZCR2026", headers={"Authorization": "Bearer crm_wrong"}).status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer crm_" + "x" * 43,
                                    "Bearer " + "y" * 200, "Token crm_abc"])
def test_missing_or_malformed_tokens_get_401_json(known, client, header):
    resp = client.get("/api/v1/metrics?campaign=ZCR2026", headers={"Authorization": header} if header else {})
    assert resp.status_code == 401 and resp.is_json


def test_a_revoked_token_stops_working_and_only_its_owner_can_revoke(known, client, login_as):
    raw = new_token(client, login_as, "rm_a")
    assert api(client, raw).status_code == 200
    token = db.session.scalar(sa.select(ApiToken))
    login_as("rm_b")
    assert client.post(f"/profile/tokens/{token.id}/revoke").status_code == 404
    assert api(client, raw).status_code == 200
    client.post("/logout")
    login_as("rm_a")
    assert client.post(f"/profile/tokens/{token.id}/revoke").status_code == 302
    assert api(client, raw).status_code == 401
    db.session.refresh(token)
    assert token.revoked_at is not None


def test_an_expired_token_or_a_deactivated_owner_gets_401(known, client, login_as):
    raw = new_token(client, login_as, "bureau")
    token = db.session.scalar(sa.select(ApiToken))
    assert api(client, raw).status_code == 200
    token.created_at = token.created_at - timedelta(days=181)
    db.session.commit()
    assert api(client, raw).status_code == 401
    token.created_at = token.created_at + timedelta(days=181)
    db.session.scalar(sa.select(User).where(User.username == "bureau")).is_active_flag = False
    db.session.commit()
    assert api(client, raw).status_code == 401


def test_using_a_token_records_when_it_was_last_used(known, client, login_as):
    raw = new_token(client, login_as, "bureau")
    api(client, raw)
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiToken)).last_used_at is not None


@pytest.mark.parametrize("query,status", [("", 400), ("campaign=NOPE", 404), ("campaign=ZCR2026&from=2026-02-30", 400),
                                          ("campaign=ZCR2026&bank=NOPE", 400)])
def test_bad_parameters_get_json_errors(known, client, login_as, query, status):
    raw = new_token(client, login_as, "bureau")
    resp = api(client, raw, query)
    assert resp.status_code == status and resp.is_json and resp.get_json()["message"]


def test_a_token_needs_a_name(known, client, login_as):
    login_as("rm_a")
    assert client.post("/profile/tokens", data={"name": " "}).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_the_openapi_document_is_valid_and_public(known, client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = json.loads(resp.get_data(as_text=True))
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    op = doc["paths"]["/metrics"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"campaign", "bank", "branch", "industry", "district", "street", "from", "to"}
    assert params["campaign"]["required"] is True
    assert all(p["in"] == "query" and "schema" in p and p["description"] for p in params.values())
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {**doc["components"]["securitySchemes"]["bearerAuth"],
                                                                  "type": "http", "scheme": "bearer"}
    assert set(op["responses"]) == {"200", "400", "401", "404"}
    assert all(r["description"] for r in op["responses"].values())
    schema = doc["components"]["schemas"]["Metrics"]
    assert set(METRIC_KEYS) <= set(schema["properties"]) and set(METRIC_KEYS) <= set(schema["required"])

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        assert ref.startswith("#/")
        target = doc
        for part in ref[2:].split("/"):
            target = target[part]
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_the_documented_response_matches_a_real_one(known, client, login_as):
    raw = new_token(client, login_as, "bureau")
    body = api(client, raw).get_json()
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    for key in schemas["Metrics"]["required"]:
        assert key in body
    for key in METRIC_KEYS:
        s = schemas[f"Metric_{key}"]
        value = body[key]
        if s.get("type") == "integer":
            assert isinstance(value, int)
        else:
            assert value is None or re.match(s.get("pattern") or s["oneOf"][0]["pattern"], value)
    for dim in ("industry", "district", "bank", "month"):
        for group in body[f"by_{dim}"].values():
            assert set(schemas[f"Group_{dim}"]["required"]) <= set(group)


@pytest.mark.parametrize("args,who,rng", [
    ([], "all", "full"),
    (["--from", str(RANGE[0]), "--to", str(RANGE[1])], "all", "range"),
    (["--bank", "SZRCB"], "A", "full"),
    (["--bank", "SZRCB", "--from", str(RANGE[0]), "--to", str(RANGE[1])], "A", "range"),
    (["--bank", "ICBC-SZ"], "B", "full"),
])
def test_the_command_line_prints_the_same_json(known, runner, args, who, rng):
    result = runner.invoke(args=["crm", "metrics", "--campaign", "ZCR2026", *args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {k: doc[k] for k in METRIC_KEYS} == expected_json(who, rng)


def test_the_command_line_and_the_api_agree_on_the_whole_document(known, client, login_as, runner):
    raw = new_token(client, login_as, "bureau")
    query = "campaign=ZCR2026&industry=ai&district=龙岗区"
    from_api = api(client, raw, query).get_json()
    cli = runner.invoke(args=["crm", "metrics", "--campaign", "ZCR2026", "--industry", "ai", "--district", "龙岗区",
                              "--json"])
    assert json.loads(cli.output) == from_api
    assert from_api["ip_pledge_deals"] == 2


@pytest.mark.parametrize("args", [["--bank", "NOPE"], ["--from", "2026/13/01"], ["--campaign", "NOPE"]])
def test_the_command_line_refuses_bad_input(known, runner, args):
    base = ["crm", "metrics", "--json"]
    if "--campaign" not in args:
        base += ["--campaign", "ZCR2026"]
    result = runner.invoke(args=base + args)
    assert result.exit_code == 1 and "错误" in result.output
