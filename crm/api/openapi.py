"""The OpenAPI 3.1 document of ``/api/v1``, generated from the metric definitions so it cannot drift."""
from __future__ import annotations

from crm.dashboard.definitions import AMOUNT, BP, METRIC_BY_KEY, METRIC_KEYS, RATE
from crm.dashboard.metrics import API_DIMENSIONS, keys_for_dimension

_DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}


def _metric_schema(key: str) -> dict:
    m = METRIC_BY_KEY[key]
    description = f"{m.label_zh} / {m.label_en}. {m.definition_zh} {m.definition_en}"
    if m.kind == AMOUNT:
        return {**_DECIMAL, "description": description + " Exact decimal in 10k CNY (万元), as a string."}
    if m.kind == RATE:
        return {"oneOf": [_DECIMAL, {"type": "null"}],
                "description": description + " A ratio between 0 and 1 (4 decimals), null when nothing was decided."}
    if m.kind == BP:
        return {"oneOf": [_DECIMAL, {"type": "null"}],
                "description": description + " Basis points (2 decimals), null when no approved amount has a discount."}
    return {"type": "integer", "minimum": 0, "description": description}


def _param(name: str, description: str, schema: dict | None = None, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def openapi_document() -> dict:
    metric_props = {k: {"$ref": f"#/components/schemas/Metric_{k}"} for k in METRIC_KEYS}
    group_schemas = {}
    for dim in API_DIMENSIONS:
        keys = [k for k in keys_for_dimension(dim) if k in METRIC_KEYS]
        group_schemas[f"Group_{dim}"] = {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "Display name of the group."},
                           **{k: {"$ref": f"#/components/schemas/Metric_{k}"} for k in keys}},
            "required": ["name", *keys],
        }
    metrics_schema = {
        "type": "object",
        "properties": {
            "campaign": {"type": "string", "description": "Campaign code."},
            "window": {"type": "object", "properties": {"from": {"type": "string", "format": "date"},
                                                        "to": {"type": "string", "format": "date"}},
                       "required": ["from", "to"],
                       "description": "The campaign's dates intersected with from/to: what was counted."},
            **metric_props,
            **{f"by_{dim}": {"type": "object",
                              "additionalProperties": {"$ref": f"#/components/schemas/Group_{dim}"},
                              "description": f"The metrics that make sense per {dim}; keys are "
                                             + {"industry": "industry codes", "district": "area codes",
                                                "bank": "bank codes", "month": "YYYY-MM"}[dim]
                                             + "; '_none' holds records without a value."}
               for dim in API_DIMENSIONS},
            "funnel": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "firms reached → with a financing need → applied → approved → disbursed."},
            "meta": {"type": "object", "description": "sla_decided, sla_hits, calendar_provisional."},
        },
        "required": ["campaign", "window", *METRIC_KEYS, *[f"by_{d}" for d in API_DIMENSIONS]],
    }
    error = {"type": "object", "properties": {"error": {"type": ["string", "integer"]},
                                              "message": {"type": "string"}}, "required": ["error", "message"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tech-finance outreach CRM metrics API",
            "version": "1.0.0",
            "description": "Campaign metrics exactly as the dashboard computes them (DOMAIN.md, 'The numbers'). "
                           "A token sees what its owner sees: a bank user's token counts only that bank.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/metrics": {
                "get": {
                    "operationId": "getMetrics",
                    "summary": "Every campaign metric with breakdowns by industry, district, bank and month",
                    "parameters": [
                        _param("campaign", "Campaign code (or id).", required=True),
                        _param("bank", "Bank code (or id); a bank user's token is always limited to its bank."),
                        _param("branch", "Branch code (or id)."),
                        _param("industry", "Industry code: ai, low_altitude, smart_driving, electronic_info, "
                                           "biomedicine, low_carbon, other."),
                        _param("district", "District (area) code or name, e.g. longgang or 龙岗区."),
                        _param("street", "Street id, or its name within the district."),
                        _param("from", "First day counted (YYYY-MM-DD).", {"type": "string", "format": "date"}),
                        _param("to", "Last day counted (YYYY-MM-DD).", {"type": "string", "format": "date"}),
                    ],
                    "responses": {
                        "200": {"description": "The metrics.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Metrics"}}}},
                        "400": {"description": "A parameter is missing or not understood.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                        "401": {"description": "No valid token (missing, unknown, revoked or expired).",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                        "404": {"description": "Unknown campaign.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document.",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A personal API token created on the profile page (/profile/tokens)."}
            },
            "schemas": {
                "Metrics": metrics_schema,
                "Error": error,
                **group_schemas,
                **{f"Metric_{k}": _metric_schema(k) for k in METRIC_KEYS},
            },
        },
    }
