"""The metrics API: ``GET /api/v1/metrics`` for a personal bearer token, and its OpenAPI document.

Only ``Authorization: Bearer <token>`` authenticates here: a browser's session cookie never does, so a page on
another site cannot make a signed-in user's browser read the API. Requests are GET-only (nothing to forge).
The token's owner sets the tenant scope, exactly as if they had signed in.
"""
from __future__ import annotations

from flask import g, jsonify, request

from crm.api import bp
from crm.api.openapi import openapi_document
from crm.api.services import touch, verify_bearer
from crm.core import scoping
from crm.dashboard.filters import parse_filters
from crm.dashboard.metrics import API_DIMENSIONS, compute_metrics

PUBLIC_ENDPOINTS = {"api.openapi"}


def _problem(status: int, error: str, message: str):
    resp = jsonify(error=error, message=message)
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="crm"'
    return resp


@bp.before_request
def _authenticate():
    """Every API endpoint but the OpenAPI document needs a usable bearer token; cookies are ignored."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    token = verify_bearer(request.headers.get("Authorization"))
    if token is None:
        return _problem(401, "unauthorized", "A valid personal API token is required (Authorization: Bearer ...).")
    g.api_user = token.user
    g.api_token = token
    # Replace the scope the app set from the cookie (if any) with the token owner's; teardown restores it.
    scoping.set_scope(scoping.scope_for(token.user))
    touch(token)
    return None


@bp.route("/metrics")
def metrics():
    """Every campaign metric with breakdowns by industry, district, bank and month, for the token's owner."""
    if not request.args.get("campaign"):
        return _problem(400, "bad_request", "The campaign parameter is required.")
    parsed = parse_filters(request.args, user=g.api_user, default=False)
    if parsed.campaign is None:
        return _problem(404, "not_found", "; ".join(parsed.errors))
    if parsed.errors:
        return _problem(400, "bad_request", "; ".join(parsed.errors))
    result = compute_metrics(parsed.metric_filter, API_DIMENSIONS)
    return jsonify(result.to_json())


@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API (public)."""
    return jsonify(openapi_document())
