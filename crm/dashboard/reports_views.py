"""Progress report views: the print-ready page (always Chinese) and the XLSX workbook."""
from __future__ import annotations

from flask import abort, render_template, request
from flask_babel import force_locale
from flask_login import current_user, login_required

from crm.core.spreadsheets import send_xlsx
from crm.dashboard import bp
from crm.dashboard.filters import ArgsBuilder, parse_filters
from crm.dashboard.reports import PERIOD_KINDS, build_report, parse_period, report_sheets


def _report_from_request():
    parsed = parse_filters(request.args, user=current_user)
    if parsed.campaign is None:
        abort(404)
    period, errors = parse_period(request.args, parsed.campaign)
    f = parsed.metric_filter.replace(date_from=None, date_to=None)
    return parsed, period, errors, f


def _filters_text(parsed) -> str:
    parts = []
    if parsed.bank:
        parts.append(f"银行：{parsed.bank.display_name}")
    if parsed.branch:
        parts.append(f"经营机构：{parsed.branch.display_name}")
    if parsed.industry:
        parts.append(f"产业：{parsed.industry.name_zh}")
    if parsed.area:
        parts.append(f"区：{parsed.area.name}")
    if parsed.street:
        parts.append(f"街道：{parsed.street.name}")
    if current_user.bank_id is not None and not parsed.bank:
        parts.append(f"银行：{current_user.bank.display_name}")
    return "；".join(parts)


def _period_args(period) -> dict:
    if period.kind == "month":
        return {"period": "month", "month": f"{period.start:%Y-%m}"}
    if period.kind == "week":
        return {"period": "week", "date": period.start.isoformat()}
    return {"period": "custom", "from": period.start.isoformat(), "to": period.end.isoformat()}


@bp.route("/report")
@login_required
def report():
    """A progress report for a week, a month or a custom period, print-ready, in Chinese."""
    parsed, period, errors, f = _report_from_request()
    args = ArgsBuilder(parsed.campaign)(f)
    with force_locale("zh"):
        rep = build_report(f, period)
        return render_template("dashboard/report.html", report=rep, parsed=parsed, errors=errors + parsed.errors,
                               args=args, xlsx_args={**args, **_period_args(period)}, kinds=PERIOD_KINDS,
                               filters_text=_filters_text(parsed))


@bp.route("/report.xlsx")
@login_required
def report_xlsx():
    """The same report as an XLSX workbook (summary, by bank, by industry, by street, IP deals, events)."""
    parsed, period, errors, f = _report_from_request()
    if errors or parsed.errors:
        abort(400)
    with force_locale("zh"):
        rep = build_report(f, period)
        sheets = report_sheets(rep, filters_text=_filters_text(parsed))
    filename = f"{parsed.campaign.code}_进展报告_{period.file_stem}.xlsx"
    return send_xlsx(filename, [], [], sheets=sheets)
