"""Dashboard views: the campaign at a glance, the records behind every number, targets and progress reports."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from crm.auth.forms import EmptyForm
from crm.core.models import Area, Industry, Street, VisitMode
from crm.core.navigation import add_nav
from crm.dashboard import bp
from crm.dashboard.definitions import (
    AMOUNT, BP, COUNT, FUNNEL_KEYS, METRIC_BY_KEY, METRIC_KEYS, METRICS, RATE, TARGET_KEYS,
)
from crm.dashboard.filters import ArgsBuilder, parse_filters, visible_campaigns
from crm.dashboard.metrics import (
    DIMENSIONS, NONE_KEY, compute_metrics, count_records, dimension_filter, get_backend, keys_for_dimension,
    page_dimensions, records_statement, registered_secured_fen, sla_outcomes,
)
from crm.dashboard.services import (
    LEAGUE_KEYS, TargetError, branch_split_warnings, display_target, league,
    parse_target_value, progress, save_targets, target_levels, targets_map,
)
from crm.extensions import db
from crm.i18n import lazy_gettext as _l
from crm.orgs.models import Campaign, Organisation, OrgKind, campaign_org

add_nav("dashboard.index", _l("Dashboard"), "speedometer2", order=70)
add_nav("dashboard.targets", _l("Targets"), "bullseye", order=71)

PER_PAGE = 100
DIMENSION_LABELS = {
    "industry": _l("By industry"), "district": _l("By district"), "street": _l("By street"),
    "bank": _l("By bank"), "branch": _l("By branch"), "month": _l("By month"),
}


def format_metric(key: str, value: Any) -> str:
    """A metric value for people: counts with separators, 万元 with two decimals, rates in percent."""
    if value is None:
        return "—"
    kind = METRIC_BY_KEY[key].kind
    if kind == AMOUNT:
        return format(Decimal(value), ",.2f")
    if kind == RATE:
        return format(Decimal(value) * 100, ".1f") + "%"
    if kind == BP:
        return format(Decimal(value), ".2f")
    return format(int(value), ",")


def raw_value(value: Any) -> str:
    """The exact value for data- attributes (tests and scripts read these)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def records_href(metric: str, args: dict[str, str]) -> str:
    """The URL of a number's records, as ``url_for("dashboard.records", metric=..., **args)`` would build it.

    The dashboard links thousands of numbers (every breakdown cell), mostly with the same few filter sets: the
    path is resolved once per request and each filter set's query string encoded once (url_for and urlencode for
    every cell were most of a cached page's time). Metric keys are plain identifiers and need no encoding.
    """
    path, query = _records_link(args)
    return f"{path}?metric={metric}&{query}" if query else f"{path}?metric={metric}"


def _records_link(args: dict[str, str]) -> tuple[str, str]:
    """(the records page's path, ``args`` as a query string), each worked out once per request (records_href)."""
    cache = g.get("dashboard_records_hrefs")
    if cache is None:
        cache = g.dashboard_records_hrefs = {None: url_for("dashboard.records")}
    key = tuple(args.items())
    query = cache.get(key)
    if query is None:
        query = cache[key] = urlencode(args)
    return cache[None], query


def metric_link(key: str, value: Any, args: dict[str, str] | None, testid: str | None = None) -> Markup:
    """A number linked to its records (``args``: the filters behind it; None: not linked). A headline number
    (``testid``) carries its definition as a tooltip; table cells rely on their column header's (``metric_label``)."""
    return Markup(_number(key, value, None if args is None else escape(records_href(key, args)), testid))


def _number(key: str, value: Any, href: str | None, testid: str | None = None) -> str:
    """The HTML of :func:`metric_link`, given its escaped ``href``."""
    attrs = f'data-metric="{key}" data-value="{escape(raw_value(value))}"'
    text = escape(format_metric(key, value))
    if href is None:
        return f'<span {attrs}>{text}</span>'
    if testid:
        attrs += f' data-testid="{escape(testid)}" title="{escape(METRIC_BY_KEY[key].definition())}"'
    return f'<a href="{href}" class="metric-link" {attrs}>{text}</a>'


def metric_cells(keys, values: dict, args: dict[str, str] | None, targets: dict | None = None) -> Markup:
    """The ``<td>`` cells of one breakdown or league row: each number linked to its records (:func:`metric_link`,
    without the tooltip), then, with ``targets`` (a league row's cells: {metric: {"target", "progress"}}), its
    target and progress when one is set. Built here rather than by a macro per cell: a page has hundreds (the
    league table's macros were half of a cached page's rendering)."""
    out = []
    if args is not None:  # the row's href but for the metric, escaped once (records_href)
        path, query = _records_link(args)
        path, query = escape(path), escape("&" + query) if query else ""
    for key in keys:
        number = _number(key, values.get(key), None if args is None else f"{path}?metric={key}{query}")
        cell = targets.get(key) if targets is not None else None
        if cell is not None and cell["target"] is not None:
            number += f' <span class="text-muted small">/ {escape(format_metric(key, cell["target"]))}</span>'
            if cell["progress"] is not None:
                number += f'<div class="small">{escape(cell["progress"])}%</div>'
        out.append(f'<td class="text-end">{number}</td>')
    return Markup("".join(out))


#: (metric, language) -> its label with its definition as a tooltip: the same few dozen on every page
_LABELS: dict[tuple[str, str], Markup] = {}


def metric_label(key: str) -> Markup:
    """A metric's name for a column header or a headline card, its definition as a tooltip (a page has dozens)."""
    from crm.dashboard.definitions import _lang

    lang = _lang(None)
    html = _LABELS.get((key, lang))
    if html is None:
        m = METRIC_BY_KEY[key]
        html = _LABELS[(key, lang)] = Markup(
            '<span class="metric-label" data-bs-toggle="tooltip" tabindex="0" title="{}">{} '
            '<i class="bi bi-info-circle small text-muted" aria-hidden="true"></i></span>').format(
                m.definition(lang), m.label(lang))
    return html


@bp.context_processor
def _helpers():
    return {"metric_def": METRIC_BY_KEY, "format_metric": format_metric, "raw_value": raw_value,
            "dimension_labels": DIMENSION_LABELS, "NONE_KEY": NONE_KEY, "stage_label": stage_label,
            "records_href": records_href, "metric_cells": metric_cells, "metric_label": metric_label,
            "metric_link": metric_link}


STAGE_LABELS = {
    "accepted": ("已受理", "Accepted"), "under_review": ("审批中", "Under review"), "approved": ("已通过", "Approved"),
    "declined": ("已否决", "Declined"), "withdrawn": ("已撤回", "Withdrawn"), "contracted": ("已签约", "Contracted"),
    "pledge_registered": ("已质押登记", "Pledge registered"), "disbursed": ("已放款", "Disbursed"),
    "repaid": ("已还款", "Repaid"),
}


def stage_label(stage, lang: str | None = None) -> str:
    """A credit stage's name in the page language (the report is always Chinese)."""
    from crm.dashboard.definitions import _lang

    zh, en = STAGE_LABELS.get(str(getattr(stage, "value", stage)), (str(stage), str(stage)))
    return en if _lang(lang) == "en" else zh


def _filter_options(parsed, rows: dict) -> dict:
    """Choices for the filter bar, as ``visible_campaigns``, ``campaign_banks`` and ``branches_of`` choose them, from
    :func:`_filter_rows`."""
    user_bank = current_user.bank_id
    campaigns = [c for c in rows["campaigns"] if user_bank is None or user_bank in c.org_ids]
    banks, branches = [], []
    if parsed.campaign is not None:
        campaign = next((c for c in rows["campaigns"] if c.id == parsed.campaign.id), None)
        top = [o for o in rows["organisations"] if o.parent_id is None]
        banks = [o for o in top if campaign is not None and o.id in campaign.org_ids] or top
        banks = [b for b in banks if user_bank is None or b.id == user_bank]
        branches = [o for b in banks for o in rows["organisations"] if o.parent_id == b.id]
    return {"campaigns": campaigns, "banks": banks, "branches": branches, "industries": rows["industries"],
            "areas": rows["areas"], "streets": rows["streets"]}


def _filter_rows() -> dict:
    """The reference rows behind the filter bar: campaigns (newest first, with the organisations taking part), banks
    and their branches (by code), industries, districts and streets (in their order), as plain read-only rows.

    Every write to these tables moves the dashboard's global write count, so they are kept with the backend's other
    facts read under that count (``ShardedBackend.known``) and read again only after such a write: they were six of
    a cached page's twelve statements. Without a backend that keeps facts, they are read for each page.
    """
    known = getattr(get_backend(), "known", None)
    facts = known("filter_bar") if known is not None else {}
    rows = facts.get("rows")
    if rows is None:
        rows = facts["rows"] = _read_filter_rows()
    return rows


def _read_filter_rows() -> dict:
    org_ids: dict[int, set[int]] = {}
    for campaign_id, org_id in db.session.execute(sa.select(campaign_org.c.campaign_id, campaign_org.c.org_id)):
        org_ids.setdefault(campaign_id, set()).add(org_id)
    campaigns = [SimpleNamespace(id=c.id, code=c.code, name=c.name, org_ids=frozenset(org_ids.get(c.id, ())))
                 for c in db.session.execute(sa.select(Campaign.id, Campaign.code, Campaign.name)
                                             .order_by(Campaign.start_on.desc(), Campaign.code))]
    organisations = [SimpleNamespace(id=o.id, code=o.code, parent_id=o.parent_id, display_name=o.short_name or o.name)
                     for o in db.session.execute(
                         sa.select(Organisation.id, Organisation.code, Organisation.parent_id, Organisation.name,
                                   Organisation.short_name)
                         .where(Organisation.kind == OrgKind.BANK).order_by(Organisation.code))]
    by_id = {o.id: o for o in organisations}
    for o in organisations:
        o.parent = by_id.get(o.parent_id)
    return {
        "campaigns": campaigns, "organisations": organisations,
        "industries": [SimpleNamespace(code=i.code, name_zh=i.name_zh, name_en=i.name_en) for i in db.session.execute(
            sa.select(Industry.code, Industry.name_zh, Industry.name_en).order_by(Industry.sort_order))],
        "areas": [SimpleNamespace(code=a.code, name=a.name) for a in db.session.execute(
            sa.select(Area.code, Area.name).order_by(Area.sort_order))],
        "streets": [SimpleNamespace(id=st.id, area_code=st.area_code, name=st.name) for st in db.session.execute(
            sa.select(Street.id, Street.area_code, Street.name).order_by(Street.area_code, Street.sort_order))],
    }


def _level_org_id(f) -> Any:
    """Whose targets the headline cards show: the branch, else the bank (a bank user's own), else the campaign."""
    if f.branch_id is not None:
        return f.branch_id
    if f.bank_id is not None:
        return f.bank_id
    return current_user.bank_id


@bp.route("/")
@login_required
def index():
    """The campaign dashboard: headline numbers against targets, funnel, breakdowns, league table."""
    parsed = parse_filters(request.args, user=current_user)
    rows = _filter_rows()
    options = _filter_options(parsed, rows)
    f = parsed.metric_filter
    if f is None:
        return render_template("dashboard/index.html", parsed=parsed, options=options, result=None)
    tab = request.args.get("tab")
    tab = tab if tab in DIMENSIONS else DIMENSIONS[0]
    # the charts' and league table's breakdowns, and the open table's: by district or street only when open
    result = compute_metrics(f, page_dimensions(tab))
    args = ArgsBuilder(parsed.campaign, org_codes={o.id: o.code for o in rows["organisations"]})
    base_args = args(f)
    targets = targets_map(parsed.campaign)
    level = _level_org_id(f)
    cards = []
    for m in METRICS:
        if not m.headline:
            continue
        actual = result.totals[m.key]
        target = display_target(m.key, targets.get((level, m.key))) if m.targetable else None
        campaign_target = display_target(m.key, targets.get((None, m.key))) if m.targetable and level else None
        cards.append({"def": m, "value": actual, "target": target, "progress": progress(actual, target),
                      "campaign_target": campaign_target})

    def cell_args(dim: str, key: str):
        narrowed = dimension_filter(f, dim, key, (result.window_from, result.window_to))
        return args(narrowed) if narrowed is not None else None

    # One breakdown table at a time (the tabs are links): the six tables held ~2,600 linked numbers, most of the
    # page's weight on a phone and of its render time.
    here = request.args.to_dict()
    breakdowns = []
    for dim in DIMENSIONS:
        entry = {"dim": dim, "active": dim == tab, "href": url_for("dashboard.index", **{**here, "tab": dim})}
        if dim == tab:
            entry["metric_keys"] = [k for k in keys_for_dimension(dim) if k in METRIC_KEYS]
            entry["rows"] = [{"key": key, "label": result.labels[dim].get(key, key), "values": values,
                              "args": cell_args(dim, key)} for key, values in result.breakdowns[dim].items()]
        breakdowns.append(entry)

    funnel = [{"key": k, "label": METRIC_BY_KEY[k].label(), "value": result.totals[k]} for k in FUNNEL_KEYS]
    branches: dict[int, list] = {bank.id: [] for bank in options["banks"]}
    for branch in options["branches"]:
        branches[branch.parent_id].append(branch)
    league_rows = league(result, parsed.campaign, current_user, targets, orgs=(options["banks"], branches))
    chart_data = _chart_data(result, funnel)
    return render_template(
        "dashboard/index.html", parsed=parsed, options=options, result=result, cards=cards, base_args=base_args,
        breakdowns=breakdowns, tab=tab, open_breakdown=next(b for b in breakdowns if b["active"]), funnel=funnel, league_rows=league_rows, league_keys=LEAGUE_KEYS,
        league_args=lambda org: args(f.replace(bank_id=org.parent_id or org.id,
                                               branch_id=org.id if org.parent_id else None)),
        chart_data=chart_data)


def _chart_data(result, funnel) -> dict:
    """Plain data for crm/static/js/dashboard.js (amounts as exact strings)."""
    def series(dim, keys):
        groups = result.breakdowns[dim]
        return {
            "categories": [result.labels[dim].get(k, k) for k in groups],
            "series": [{"name": METRIC_BY_KEY[key].label(),
                        "data": [raw_value(values.get(key)) for values in groups.values()]} for key in keys],
        }

    return {
        "funnel": [{"name": s["label"], "value": s["value"]} for s in funnel],
        "industry": series("industry", ("firms_reached", "credit_firms", "ip_pledge_deals")),
        "bank": series("bank", ("credit_amount_wan", "ip_pledge_amount_wan", "disbursed_amount_wan")),
        "month": series("month", ("visits", "firms_reached", "firm_attendances", "credit_firms")),
    }


# ---------------------------------------------------------------------------------------------------------
# Drill-down
# ---------------------------------------------------------------------------------------------------------


def load_records(kind: str, stmt, *, page: int = 1, per_page: int = PER_PAGE) -> list:
    """One page of a drill-down statement, with related rows loaded in a fixed number of queries."""
    from sqlalchemy.orm import selectinload

    from crm.auth.models import User
    from crm.credit.models import CreditApplication, Pledge
    from crm.events.models import Event
    from crm.firms.models import Firm
    from crm.visits.models import Visit

    stmt = stmt.limit(per_page).offset((page - 1) * per_page)
    if kind == "firms":
        return list(db.session.scalars(stmt.options(
            selectinload(Firm.industry), selectinload(Firm.area), selectinload(Firm.street))))
    if kind == "visits":
        return list(db.session.scalars(stmt.options(
            selectinload(Visit.firm), selectinload(Visit.rm), selectinload(Visit.branch))))
    if kind == "events":
        return list(db.session.scalars(stmt.options(selectinload(Event.organisers))))
    if kind == "staff":
        return list(db.session.scalars(stmt.options(selectinload(User.org))))
    if kind == "applications":
        return list(db.session.scalars(stmt.options(
            selectinload(CreditApplication.firm), selectinload(CreditApplication.product),
            selectinload(CreditApplication.branch),
            selectinload(CreditApplication.pledges).selectinload(Pledge.ip_asset))))
    if kind == "attendances":
        rows = db.session.execute(stmt).all()
        events = {e.id: e for e in db.session.scalars(sa.select(Event).where(Event.id.in_({r[0] for r in rows})))}
        firms = {x.id: x for x in db.session.scalars(sa.select(Firm).where(Firm.id.in_({r[1] for r in rows})))}
        return [{"event": events.get(r[0]), "firm": firms.get(r[1]), "people": r[2]} for r in rows]
    raise ValueError(kind)


def bank_names() -> dict[int, str]:
    return {oid: short or name for oid, name, short in db.session.execute(
        sa.select(Organisation.id, Organisation.name, Organisation.short_name)
        .where(Organisation.kind == OrgKind.BANK))}


@bp.route("/records")
@login_required
def records():
    """The records behind one number, filtered exactly as the dashboard was; as many rows as the number says."""
    key = request.args.get("metric", "")
    if key not in METRIC_BY_KEY:
        abort(404)
    parsed = parse_filters(request.args, user=current_user)
    f = parsed.metric_filter
    if f is None:
        abort(404)
    try:
        page = max(1, min(int(request.args.get("page", "1")), 10**6))
    except ValueError:
        page = 1
    value = compute_metrics(f).totals[key]  # from the dashboard's snapshot when it is current
    kind, stmt = records_statement(key, f, rows=page * PER_PAGE, total=value)
    # a count is, by definition, the number of its records (tests/test_dashboard.py holds them to it): no second
    # count of them (0.7 s for the firms reached at scale 1); amounts and rates count their records
    total = value if METRIC_BY_KEY[key].kind == COUNT else count_records(stmt)
    rows = load_records(kind, stmt, page=page)
    extra: dict[str, Any] = {}
    if kind == "applications":
        extra["registered"] = registered_secured_fen([a.id for a in rows])
        extra["sla"] = sla_outcomes(rows) if key == "sla_hit_rate" else {}
    if kind == "visits":
        extra["modes"] = {code: (zh, en) for code, zh, en in db.session.execute(
            sa.select(VisitMode.code, VisitMode.name_zh, VisitMode.name_en))}
    args = ArgsBuilder(parsed.campaign)(f)
    return render_template("dashboard/records.html", key=key, definition=METRIC_BY_KEY[key], kind=kind,
                           rows=rows, total=total, page=page, per_page=PER_PAGE, parsed=parsed, args=args,
                           value=value, banks=bank_names(), extra=extra)


# ---------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------


@bp.route("/targets", methods=["GET", "POST"])
@login_required
def targets():
    """Campaign and bank targets (bureau, admin) and their split across branches (bank managers)."""
    parsed = parse_filters(request.args, user=current_user)
    campaign = parsed.campaign
    if campaign is None:
        abort(404)
    levels = target_levels(campaign, current_user)
    form = EmptyForm()
    errors: list[str] = []
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        values = {}
        for lv in levels:
            if not lv.editable:
                continue
            for metric in TARGET_KEYS:
                name = f"t-{lv.key}-{metric}"
                if name not in request.form:
                    continue
                try:
                    values[(lv.org.id if lv.org else None, metric)] = parse_target_value(metric, request.form[name])
                except TargetError as exc:
                    errors.append(f"{lv.org.display_name if lv.org else _('Whole campaign')}: {exc}")
        if not errors:
            try:
                changed = save_targets(campaign, values, user=current_user)
            except TargetError as exc:
                db.session.rollback()
                abort(403, description=str(exc))
            db.session.commit()
            flash(_("%(n)s targets saved.", n=changed), "success")
            return redirect(url_for("dashboard.targets", campaign=campaign.code))
        db.session.rollback()
    stored = targets_map(campaign)
    if errors:
        current = {}
        for lv in levels:
            for metric in TARGET_KEYS:
                current[(lv.key, metric)] = request.form.get(f"t-{lv.key}-{metric}", "")
    else:
        current = {(lv.key, metric): raw_value(display_target(metric, stored.get((lv.org.id if lv.org else None,
                                                                                   metric))))
                   for lv in levels for metric in TARGET_KEYS}
    return render_template("dashboard/targets.html", campaign=campaign, levels=levels, form=form,
                           metrics=[METRIC_BY_KEY[k] for k in TARGET_KEYS], current=current, errors=errors,
                           campaigns=visible_campaigns(current_user),
                           warnings=branch_split_warnings(campaign, levels),
                           can_edit=any(lv.editable for lv in levels))


from crm.dashboard import reports_views  # noqa: E402,F401
from crm.dashboard import commands  # noqa: E402,F401
