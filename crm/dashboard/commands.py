"""`flask --app wsgi crm metrics --campaign CODE [...] --json`: the API's numbers on the command line."""
from __future__ import annotations

import json

import click

from crm.commands import crm_cli, fail


@crm_cli.command("metrics")
@click.option("--campaign", required=True, help="Campaign code.")
@click.option("--bank", default=None, help="Bank code.")
@click.option("--branch", default=None, help="Branch code.")
@click.option("--industry", default=None, help="Industry code (ai, low_altitude, ...).")
@click.option("--district", default=None, help="District name or code (龙岗区 / longgang).")
@click.option("--street", default=None, help="Street name (within --district) or id.")
@click.option("--from", "date_from", default=None, help="YYYY-MM-DD")
@click.option("--to", "date_to", default=None, help="YYYY-MM-DD")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as GET /api/v1/metrics.")
def metrics(campaign, bank, branch, industry, district, street, date_from, date_to, as_json):
    """Print every campaign metric (all banks unless --bank), computed exactly like the dashboard."""
    from crm.dashboard.definitions import METRIC_BY_KEY, METRIC_KEYS
    from crm.dashboard.filters import parse_filters
    from crm.dashboard.metrics import API_DIMENSIONS, compute_metrics

    args = {"campaign": campaign, "bank": bank, "branch": branch, "industry": industry, "district": district,
            "street": street, "from": date_from, "to": date_to}
    parsed = parse_filters({k: v for k, v in args.items() if v}, default=False)
    if parsed.errors:
        fail("; ".join(parsed.errors))
    result = compute_metrics(parsed.metric_filter, API_DIMENSIONS)
    doc = result.to_json()
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    click.echo(f"{result.campaign.name} ({result.campaign.code}) {doc['window']['from']} .. {doc['window']['to']}")
    for key in METRIC_KEYS:
        value = doc[key]
        click.echo(f"  {METRIC_BY_KEY[key].label('zh')} / {key}: {'-' if value is None else value}")
