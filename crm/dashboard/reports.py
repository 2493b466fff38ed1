"""Progress reports for a week, a month or any period: the numbers the bureau used to type up by hand.

One :class:`Report` feeds both the XLSX workbook (through ``crm.core.spreadsheets``) and the print page.
"Cumulative" runs from the campaign's start to the period's end; "new in the period" is the cumulative at the
period's end minus the cumulative the day before it starts (so a firm reached again is not new), and for the
rate and the average discount it is the period's own value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Mapping, Optional

from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from crm.core.formatting import fen_to_wan, today_local
from crm.core.spreadsheets import Sheet
from crm.credit.models import CreditApplication, Pledge
from crm.dashboard.definitions import AMOUNT, COUNT, METRIC_BY_KEY, METRIC_KEYS
from crm.dashboard.metrics import (
    MetricFilter, MetricsResult, attendance_by_event, compute_metrics, event_list_statement, keys_for_dimension,
    records_statement, registered_secured_fen,
)
from crm.events.models import Event
from crm.extensions import db
from crm.orgs.models import Campaign

REPORT_DIMENSIONS = ("bank", "industry", "street")
PERIOD_KINDS = ("week", "month", "custom")
UNITS_ZH = {"firms": "家", "visits": "次", "events": "场", "attendances": "家次", "staff": "人",
            "applications": "笔"}
EVENT_STATUS_ZH = {"planned": "筹备中", "held": "已举办", "cancelled": "已取消"}


@dataclass(frozen=True)
class Period:
    kind: str
    start: date
    end: date

    @property
    def label_zh(self) -> str:
        if self.kind == "month":
            return f"{self.start.year}年{self.start.month}月"
        if self.kind == "week":
            return f"{self.start.isoformat()} 至 {self.end.isoformat()}（周报）"
        return f"{self.start.isoformat()} 至 {self.end.isoformat()}"

    @property
    def file_stem(self) -> str:
        if self.kind == "month":
            return f"{self.start:%Y-%m}"
        return f"{self.start:%Y%m%d}-{self.end:%Y%m%d}"


def _month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last


def parse_period(args: Mapping[str, str], campaign: Campaign) -> tuple[Period, list[str]]:
    """``period`` = week | month | custom; ``date`` (any day of the week), ``month`` (YYYY-MM), ``from``/``to``."""
    errors: list[str] = []
    kind = (args.get("period") or "month").strip()
    if kind not in PERIOD_KINDS:
        errors.append(_("Unknown period: %(v)s", v=kind))
        kind = "month"
    today = min(max(today_local(), campaign.start_on), campaign.end_on)
    day = today
    raw_day = (args.get("date") or "").strip()
    if raw_day:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            errors.append(_("%(field)s must be a date written YYYY-MM-DD.", field=_("Date")))
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return Period("week", start, start + timedelta(days=6)), errors
    if kind == "month":
        raw_month = (args.get("month") or "").strip()
        if raw_month:
            try:
                day = date.fromisoformat(raw_month + "-01")
            except ValueError:
                errors.append(_("%(field)s must be a month written YYYY-MM.", field=_("Month")))
        return Period("month", *_month_bounds(day)), errors
    try:
        start = date.fromisoformat((args.get("from") or "").strip())
        end = date.fromisoformat((args.get("to") or "").strip())
    except ValueError:
        errors.append(_("A custom period needs both dates, written YYYY-MM-DD."))
        return Period("month", *_month_bounds(today)), errors
    if start > end:
        errors.append(_("The start date is after the end date."))
        start, end = end, start
    return Period("custom", start, end), errors


@dataclass
class Report:
    campaign: Campaign
    period: Period
    filter: MetricFilter
    cumulative: MetricsResult
    in_period: MetricsResult
    new: dict[str, Any]
    ip_deals: list[CreditApplication] = field(default_factory=list)
    ip_registered: dict[int, int] = field(default_factory=dict)
    events: list[tuple[Event, dict[str, int]]] = field(default_factory=list)

    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for key in METRIC_KEYS:
            m = METRIC_BY_KEY[key]
            rows.append({"key": key, "label": m.label("zh"), "unit": _unit(key),
                         "cumulative": self.cumulative.totals[key], "new": self.new[key],
                         "definition": m.definition("zh")})
        return rows

    def breakdown_rows(self, dim: str) -> tuple[list[str], list[dict[str, Any]]]:
        """(metric keys, rows with label, and per key the cumulative and in-period values)."""
        keys = [k for k in keys_for_dimension(dim) if k in METRIC_KEYS]
        cum, per = self.cumulative.breakdowns[dim], self.in_period.breakdowns[dim]
        labels = {**self.cumulative.labels[dim], **self.in_period.labels[dim]}
        rows = []
        for group in list(cum) + [g for g in per if g not in cum]:
            rows.append({"label": labels.get(group, group),
                         "cumulative": {k: cum.get(group, {}).get(k, _zero(k)) for k in keys},
                         "period": {k: per.get(group, {}).get(k, _zero(k)) for k in keys}})
        return keys, rows


def _zero(key: str) -> Any:
    kind = METRIC_BY_KEY[key].kind
    if kind == COUNT:
        return 0
    if kind == AMOUNT:
        return fen_to_wan(0)
    return None


def _unit(key: str) -> str:
    m = METRIC_BY_KEY[key]
    if m.kind == AMOUNT:
        return "万元"
    if m.kind == "rate":
        return "比率"
    if m.kind == "bp":
        return "BP"
    return UNITS_ZH.get(m.records, "")


def build_report(f: MetricFilter, period: Period) -> Report:
    """Everything the report shows, for the current viewer (scoped like the dashboard)."""
    campaign = db.session.get(Campaign, f.campaign_id)
    base = f.replace(date_from=None, date_to=None)
    cumulative = compute_metrics(base.replace(date_to=period.end), REPORT_DIMENSIONS)
    in_period = compute_metrics(base.replace(date_from=period.start, date_to=period.end), REPORT_DIMENSIONS)
    before = compute_metrics(base.replace(date_to=period.start - timedelta(days=1))).totals \
        if period.start > campaign.start_on else None
    new = {}
    for key in METRIC_KEYS:
        kind = METRIC_BY_KEY[key].kind
        if kind in (COUNT, AMOUNT):
            new[key] = cumulative.totals[key] - (before[key] if before else _zero(key))
        else:
            new[key] = in_period.totals[key]
    period_filter = base.replace(date_from=period.start, date_to=period.end)
    _kind, stmt = records_statement("ip_pledge_deals", period_filter)
    deals = list(db.session.scalars(stmt.options(
        selectinload(CreditApplication.firm), selectinload(CreditApplication.branch),
        selectinload(CreditApplication.pledges).selectinload(Pledge.ip_asset))))
    events = list(db.session.scalars(event_list_statement(period_filter).options(selectinload(Event.organisers))))
    attendance = attendance_by_event([e.id for e in events])
    empty = {"registered": 0, "checked_in": 0, "firms": 0}
    return Report(campaign, period, f, cumulative, in_period, new, deals,
                  registered_secured_fen([d.id for d in deals]),
                  [(e, attendance.get(e.id, empty)) for e in events])


def _bank_names() -> dict[int, str]:
    from crm.dashboard.views import bank_names

    return bank_names()


def report_sheets(report: Report, *, filters_text: str = "") -> list[Sheet]:
    """The workbook: summary, by bank, by industry, by street, IP-pledge deals, events (Chinese headers)."""
    summary_headers = ["指标", "单位", "累计（自活动开始）", "本期新增", "定义"]
    summary = [{"指标": r["label"], "单位": r["unit"], "累计（自活动开始）": r["cumulative"], "本期新增": r["new"],
                "定义": r["definition"]} for r in report.summary_rows()]
    summary += [{}, {"指标": "活动", "单位": f"{report.campaign.name}（{report.campaign.code}）"},
                {"指标": "报告期间", "单位": report.period.label_zh},
                {"指标": "统计截至", "单位": report.period.end},
                {"指标": "筛选条件", "单位": filters_text or "全部"}]
    sheets = [Sheet("汇总", summary_headers, summary)]
    for dim, title, first in (("bank", "按银行", "银行"), ("industry", "按产业", "产业"), ("street", "按街道", "街道")):
        keys, rows = report.breakdown_rows(dim)
        headers = [first]
        for k in keys:
            headers += [f"{METRIC_BY_KEY[k].label('zh')}（累计）", f"{METRIC_BY_KEY[k].label('zh')}（本期）"]
        out = []
        for r in rows:
            row = {first: r["label"]}
            for k in keys:
                row[f"{METRIC_BY_KEY[k].label('zh')}（累计）"] = r["cumulative"][k]
                row[f"{METRIC_BY_KEY[k].label('zh')}（本期）"] = r["period"][k]
            out.append(row)
        sheets.append(Sheet(title, headers, out))
    banks = _bank_names()
    deal_headers = ["企业名称", "统一社会信用代码", "银行", "经营机构", "受理日期", "审批日期", "申请金额（万元）",
                    "授信金额（万元）", "质押登记金额（万元）", "优惠BP", "质押专利号", "首贷户", "当前阶段"]
    from crm.dashboard.views import stage_label

    deals = [{"企业名称": a.firm.name, "统一社会信用代码": a.firm.credit_code, "银行": banks.get(a.bank_id, ""),
              "经营机构": a.branch.display_name if a.branch else "", "受理日期": a.accepted_on,
              "审批日期": a.decided_on, "申请金额（万元）": fen_to_wan(a.requested_fen),
              "授信金额（万元）": fen_to_wan(a.approved_fen),
              "质押登记金额（万元）": fen_to_wan(report.ip_registered.get(a.id, 0)),
              "优惠BP": a.discount_bp, "质押专利号": [p.ip_asset.patent_no for p in a.pledges],
              "首贷户": a.is_first_loan, "当前阶段": stage_label(a.stage, "zh")} for a in report.ip_deals]
    sheets.append(Sheet("知识产权质押业务", deal_headers, deals))
    event_headers = ["活动编号", "活动名称", "举办日期", "状态", "主办机构", "报名人数", "签到人数", "签到企业数"]
    events = [{"活动编号": e.code, "活动名称": e.title, "举办日期": e.held_on,
               "状态": EVENT_STATUS_ZH.get(e.status.value, e.status.value),
               "主办机构": [o.display_name for o in e.organisers], "报名人数": a["registered"],
               "签到人数": a["checked_in"], "签到企业数": a["firms"]} for e, a in report.events]
    sheets.append(Sheet("活动及签到", event_headers, events))
    return sheets
