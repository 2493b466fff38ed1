"""Credit views: applications and their stages, SLA watch, IP pledges and valuations, pools, the calendar.

Bank users (rm, bank_manager) write their bank's records; the bureau and the admin read every bank's
(scoping is automatic); only the admin manages the calendar overrides.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.auth.decorators import bank_user_required, role_required
from crm.auth.forms import EmptyForm
from crm.auth.models import Role
from crm.core.formatting import fen_to_wan, today_local
from crm.core.forms import perform, save_form
from crm.core.models import CreditProduct, DeclineReason, HolidayOverride
from crm.core.navigation import add_nav
from crm.core.scoping import get_or_404
from crm.core.workdays import calendar_is_stale, covered_years
from crm.credit import bp, queries, services
from crm.credit import stages as sm
from crm.credit.forms import (
    OWNER_RELATIONS, PATENT_KIND_LABELS, ApplicationForm, ApproveForm, CompleteValuationForm, DeclineForm,
    DisburseForm, MoveForm,
    OverrideForm, PledgeForm, PoolAddForm, PoolForm, RegisterPledgeForm, ValuationForm,
)
from crm.credit.models import CreditApplication, Pledge, SecuritisationPool, Stage, Valuation
from crm.credit.services import LEGAL_STATUSES
from crm.credit.sla import application_sla, load_overrides, valuation_promise
from crm.extensions import db
from crm.firms.models import Firm
from crm.i18n import lazy_gettext as _l

add_nav("credit.index", _l("Credit"), "cash-coin", order=40)
add_nav("credit.calendar", _l("Working-day calendar"), "calendar3", roles={"admin"}, order=90, profile=True)


@bp.context_processor
def _helpers():
    def pct(bp_value):
        if bp_value is None:
            return ""
        return f"{Decimal(bp_value) / 100:.2f}%"

    return {
        "stage_label": lambda s: sm.STAGE_LABELS.get(Stage(s), s) if s else "",
        "action_label": lambda s: sm.ACTION_LABELS.get(Stage(s), s),
        "relation_label": lambda r: OWNER_RELATIONS.get(r, r),
        "legal_label": lambda code: LEGAL_STATUSES.get(code, code),
        "patent_display": services.display_patent_no,
        "kind_label": lambda k: PATENT_KIND_LABELS.get(k, k),
        "pct": pct,
        "can_write_credit": current_user.is_authenticated and current_user.is_bank_user,
        "FILTER_PARAMS": queries.FILTER_PARAMS,
    }


def _user():
    return current_user._get_current_object()


# ---------------------------------------------------------------------------------------------------------
# applications
# ---------------------------------------------------------------------------------------------------------


def _filter_choices():
    """The lists' filter choices. The rows' products, branches, industries, areas and (for the bureau) banks are
    among them: read before a row's are asked for, the session finds each by key without a statement
    (queries._LIST_LOADS)."""
    from crm.core.models import Area, Industry
    from crm.orgs.models import Campaign, Organisation, OrgKind

    banks = []
    if not current_user.is_bank_user:
        banks = list(db.session.scalars(sa.select(Organisation).where(
            Organisation.kind == OrgKind.BANK, Organisation.parent_id.is_(None)).order_by(Organisation.code)))
    bank_id = current_user.bank_id
    branch_q = sa.select(Organisation).where(Organisation.kind == OrgKind.BANK, Organisation.parent_id.is_not(None))
    if bank_id:
        branch_q = branch_q.where(Organisation.parent_id == bank_id)
    return {
        "campaigns": list(db.session.scalars(sa.select(Campaign).order_by(Campaign.start_on.desc()))),
        "banks": banks,
        "branches": list(db.session.scalars(branch_q.order_by(Organisation.code))),
        "industries": list(db.session.scalars(sa.select(Industry).order_by(Industry.sort_order))),
        "areas": list(db.session.scalars(sa.select(Area).order_by(Area.sort_order))),
        "products": list(db.session.scalars(sa.select(CreditProduct).order_by(CreditProduct.sort_order))),
        "stages": [(s.value, sm.STAGE_LABELS[s]) for s in Stage],
    }


@bp.route("/")
@login_required
def index():
    """Applications (filterable), each open one with its deadline and working days left."""
    filters = queries.Filters.from_args(request.args)
    choices = _filter_choices()  # the rows' products and branches are among them (queries._LIST_LOADS)
    page = queries.application_page(filters, request.args.get("after"))
    today = today_local()
    overrides = load_overrides()
    rows = [(a, application_sla(a, today, overrides)) for a in page.items]
    filter_args = {k: request.args[k] for k in queries.FILTER_PARAMS if request.args.get(k)}
    return render_template("credit/index.html", rows=rows, filters=filters, today=today, page=page,
                           filter_args=filter_args, provisional=any(p and p.provisional for _a, p in rows),
                           **choices)


def _firm_lookup_url():
    """The firms package's type-ahead (one look-up mechanism for the whole app), if it is there."""
    from werkzeug.routing import BuildError

    try:
        return url_for("firms.lookup")
    except BuildError:
        return None


def _fill_application_choices(form: ApplicationForm, user) -> None:
    products = db.session.scalars(sa.select(CreditProduct).order_by(CreditProduct.sort_order))
    form.product_code.choices = [(p.code, p.name_zh if _locale_zh() else p.name_en) for p in products]
    form.campaign_id.choices = [(c.id, f"{c.code} {c.name}") for c in services.bank_campaigns(user.bank_id)]
    form.branch_id.choices = [(0, _("— none —"))] + [
        (b.id, b.display_name) for b in services.bank_branches(user.bank_id)]
    form.rm_id.choices = [(u.id, u.display_name) for u in services.bank_staff(user.bank_id)]


def _locale_zh() -> bool:
    from flask_babel import get_locale

    loc = get_locale()
    return loc is None or loc.language == "zh"


def _application_data(form: ApplicationForm) -> services.ApplicationData:
    return services.ApplicationData(
        firm=services.find_firm(form.firm.data), product_code=form.product_code.data,
        requested_fen=form.requested_wan.fen, accepted_on=form.accepted_on.data, campaign_id=form.campaign_id.data,
        branch_id=form.branch_id.data or None, rm_id=form.rm_id.data,
        requested_term_months=form.requested_term_months.data, guarantee=form.guarantee.data or "",
        is_first_loan=form.is_first_loan.data, in_risk_pool=form.in_risk_pool.data, has_subsidy=form.has_subsidy.data,
        remarks=form.remarks.data or "",
    )


@bp.route("/new", methods=["GET", "POST"])
@bank_user_required
def new():
    user = _user()
    form = ApplicationForm()
    _fill_application_choices(form, user)
    if request.method == "GET":
        today = today_local()
        form.accepted_on.data = today
        form.rm_id.data = user.id
        form.branch_id.data = user.org_id if user.org and user.org.is_branch else 0
        camp = services.campaign_for(user.bank_id, today)
        if camp:
            form.campaign_id.data = camp.id
        if request.args.get("firm"):
            firm = db.session.get(Firm, request.args.get("firm", type=int) or 0)
            if firm:
                form.firm.data = f"{firm.name} · {firm.credit_code}"
    return save_form(
        form, lambda: services.create_application(user, _application_data(form)),
        render=lambda status: (render_template("credit/form.html", form=form, app=None,
                                               lookup_url=_firm_lookup_url()), status),
        saved=_("Application recorded."), next_url=lambda app: url_for("credit.detail", app_id=app.id))


@bp.route("/<int:app_id>/edit", methods=["GET", "POST"])
@bank_user_required
def edit(app_id):
    user = _user()
    app = get_or_404(CreditApplication, app_id)
    form = ApplicationForm(obj=None)
    _fill_application_choices(form, user)
    if request.method == "GET":
        form.firm.data = f"{app.firm.name} · {app.firm.credit_code}"
        form.product_code.data = app.product_code
        form.requested_wan.data = str(fen_to_wan(app.requested_fen))
        form.requested_term_months.data = app.requested_term_months
        form.accepted_on.data = app.accepted_on
        form.campaign_id.data = app.campaign_id
        form.branch_id.data = app.branch_id or 0
        form.rm_id.data = app.rm_id
        form.guarantee.data = app.guarantee
        form.is_first_loan.data = app.is_first_loan
        form.in_risk_pool.data = app.in_risk_pool
        form.has_subsidy.data = app.has_subsidy
        form.remarks.data = app.remarks
        form.version.data = app.version
    return save_form(
        form, lambda: services.update_application(app, user, _application_data(form), version=form.version.data),
        render=lambda status: (render_template("credit/form.html", form=form, app=app,
                                               lookup_url=_firm_lookup_url()), status),
        saved=_("Application saved."), next_url=lambda _r: url_for("credit.detail", app_id=app.id))


@bp.route("/<int:app_id>")
@login_required
def detail(app_id):
    app = get_or_404(CreditApplication, app_id)
    today = today_local()
    overrides = load_overrides()
    sla = application_sla(app, today, overrides)
    valuations = [(v, valuation_promise(v, today, overrides)) for v in app.valuations]
    return render_template(
        "credit/detail.html", app=app, sla=sla, valuations=valuations, today=today,
        next_stages=sm.next_stages(app.stage, app.product), path=sm.post_approval_path(app.product),
        registered_fen=queries.registered_fen(app), maturity=services.expected_maturity(app),
        provisional=(sla is not None and sla.provisional) or any(p.provisional for _v, p in valuations),
        has_pledge_stage=sm.has_pledge_stage(app.product), final=app.stage in sm.FINAL_STAGES,
        release_form=EmptyForm(),
    )


_MOVE_FORMS = {Stage.APPROVED: ApproveForm, Stage.DECLINED: DeclineForm, Stage.DISBURSED: DisburseForm}


@bp.route("/<int:app_id>/move/<stage>", methods=["GET", "POST"])
@bank_user_required
def move(app_id, stage):
    """One stage change: the form of the target stage (a decision, a disbursement or just a date)."""
    user = _user()
    app = get_or_404(CreditApplication, app_id)
    try:
        to = Stage(stage)
    except ValueError:
        abort(404)
    if to not in sm.next_stages(app.stage, app.product):
        flash(_("An application cannot move from “%(a)s” to “%(b)s”.", a=sm.STAGE_LABELS[Stage(app.stage)],
                b=sm.STAGE_LABELS[to]), "danger")
        return redirect(url_for("credit.detail", app_id=app.id))
    form = _MOVE_FORMS.get(to, MoveForm)()
    if to == Stage.DECLINED:
        form.decline_reason_code.choices = [("", _("— choose —"))] + [
            (r.code, r.name_zh if _locale_zh() else r.name_en)
            for r in db.session.scalars(sa.select(DeclineReason).order_by(DeclineReason.sort_order))]
    if request.method == "GET":
        form.to.data = to.value
        form.changed_on.data = today_local()
        form.version.data = app.version
        if to == Stage.APPROVED:
            form.approved_wan.data = str(fen_to_wan(app.requested_fen))
            form.term_months.data = app.requested_term_months
    if request.method == "POST" and form.to.data != to.value:
        abort(400)

    def move_it():
        decision = services.Decision()
        if to == Stage.APPROVED:
            decision = services.Decision(approved_fen=form.approved_wan.fen, rate_bp=form.rate_pct.bp,
                                         discount_bp=form.discount_bp.data, term_months=form.term_months.data)
        elif to == Stage.DECLINED:
            decision = services.Decision(decline_reason_code=form.decline_reason_code.data)
        elif to == Stage.DISBURSED:
            decision = services.Decision(disbursed_fen=form.disbursed_wan.fen)
        return services.move(app, to, user, form.changed_on.data, form.note.data or "", decision,
                             version=form.version.data)

    return save_form(
        form, move_it,
        render=lambda status: (render_template("credit/move.html", app=app, form=form, to=to,
                                               sla=application_sla(app, today_local(), load_overrides())), status),
        saved=_("Stage changed to “%(stage)s”.", stage=sm.STAGE_LABELS[to]),
        next_url=lambda _r: url_for("credit.detail", app_id=app.id))


# ---------------------------------------------------------------------------------------------------------
# pledges and valuations
# ---------------------------------------------------------------------------------------------------------


@bp.route("/<int:app_id>/pledges/new", methods=["GET", "POST"])
@bank_user_required
def new_pledge(app_id):
    app = get_or_404(CreditApplication, app_id)
    form = PledgeForm()
    def add():
        return services.add_pledge(app, _user(), services.PledgeData(
            patent_no=form.patent_no.data, title=form.title.data or "", granted_on=form.granted_on.data,
            expires_on=form.expires_on.data, legal_status=form.legal_status.data,
            owner_name=form.owner_name.data or "", owner_relation=form.owner_relation.data,
            licence_no=form.licence_no.data or "", licence_note=form.licence_note.data or ""))

    return save_form(
        form, add, render=lambda status: (render_template("credit/pledge_form.html", app=app, form=form), status),
        saved=_("Pledged patent added."), next_url=lambda _r: url_for("credit.detail", app_id=app.id) + "#pledges")


@bp.route("/pledges/<int:pledge_id>/register", methods=["GET", "POST"])
@bank_user_required
def register_pledge(pledge_id):
    pledge = get_or_404(Pledge, pledge_id)
    form = RegisterPledgeForm()
    if pledge.ip_asset.granted_on is not None and pledge.ip_asset.expires_on is not None:
        del form.granted_on, form.expires_on  # only asked for a patent recorded without them (a ledger import)
    if request.method == "GET":
        form.version.data = pledge.version
        form.registration_no.data = pledge.registration_no
        form.registered_on.data = pledge.registered_on or today_local()
        if pledge.secured_fen is not None:
            form.secured_wan.data = str(fen_to_wan(pledge.secured_fen))
    return save_form(
        form, lambda: services.register_pledge(
            pledge, _user(), form.registration_no.data, form.registered_on.data, form.secured_wan.fen,
            version=form.version.data, granted_on=form.granted_on.data if "granted_on" in form else None,
            expires_on=form.expires_on.data if "expires_on" in form else None),
        render=lambda status: (render_template("credit/register_pledge.html", pledge=pledge, app=pledge.application,
                                               form=form), status),
        saved=_("Pledge registration saved."),
        next_url=lambda _r: url_for("credit.detail", app_id=pledge.application_id) + "#pledges")


@bp.route("/pledges/<int:pledge_id>/release", methods=["POST"])
@bank_user_required
def release_pledge(pledge_id):
    pledge = get_or_404(Pledge, pledge_id)
    back = url_for("credit.detail", app_id=pledge.application_id) + "#pledges"
    if not EmptyForm().validate_on_submit():
        return redirect(back)
    return perform(lambda: services.release_pledge(pledge, _user()), saved=_("Pledge released."),
                   back=lambda: redirect(back))


@bp.route("/<int:app_id>/valuations/new", methods=["GET", "POST"])
@bank_user_required
def new_valuation(app_id):
    app = get_or_404(CreditApplication, app_id)
    form = ValuationForm()
    form.ip_asset_id.choices = [(0, _("All pledged patents"))] + [
        (p.ip_asset_id, services.display_patent_no(p.ip_asset.patent_no)) for p in app.pledges]
    if request.method == "GET":
        form.requested_on.data = today_local()
    return save_form(
        form, lambda: services.add_valuation(app, _user(), form.valuer.data, form.requested_on.data,
                                             form.completed_on.data, form.amount_wan.fen, form.ip_asset_id.data or None),
        render=lambda status: (render_template("credit/valuation_form.html", app=app, form=form), status),
        saved=_("Valuation recorded."), next_url=lambda _r: url_for("credit.detail", app_id=app.id) + "#valuations")


@bp.route("/valuations/<int:valuation_id>/complete", methods=["GET", "POST"])
@bank_user_required
def complete_valuation(valuation_id):
    valuation = get_or_404(Valuation, valuation_id)
    form = CompleteValuationForm()
    if request.method == "GET":
        form.completed_on.data = today_local()
    return save_form(
        form, lambda: services.complete_valuation(valuation, _user(), form.completed_on.data, form.amount_wan.fen),
        render=lambda status: (render_template("credit/complete_valuation.html", valuation=valuation,
                                               app=valuation.application, form=form), status),
        saved=_("Valuation recorded."),
        next_url=lambda _r: url_for("credit.detail", app_id=valuation.application_id) + "#valuations")


# ---------------------------------------------------------------------------------------------------------
# lists: SLA watch, IP-pledge deals
# ---------------------------------------------------------------------------------------------------------


@bp.route("/sla")
@login_required
def sla():
    """Open applications due soon or breached, per bank and branch."""
    filters = queries.Filters.from_args(request.args)
    choices = _filter_choices()  # first: sla_watch groups the rows by their banks and branches, among these
    today = today_local()
    groups = queries.sla_watch(today, load_overrides(), filters)
    provisional = any(p.provisional for g in groups for _a, p in g.rows)
    return render_template("credit/sla.html", groups=groups, today=today, filters=filters, provisional=provisional,
                           **choices)


@bp.route("/ip-pledges")
@login_required
def ip_pledges():
    """Approved IP-pledge deals: the bureau sees every bank's, a bank user their own."""
    filters = queries.Filters.from_args(request.args)
    # first, for the page and the file alike: the deals' products, banks, branches, industries and areas are among
    # the filters' choices (queries._LIST_LOADS)
    choices = _filter_choices()
    deals = queries.ip_pledge_deals(filters)
    totals = queries.deal_totals(deals)
    if request.args.get("format") == "xlsx":
        from crm.core.spreadsheets import send_xlsx

        from crm.core.audit import record

        headers, rows = _deal_rows(deals)
        record("export", object_type="credit_application", detail=f"IP-pledge deals (xlsx): {len(rows)} rows")
        db.session.commit()
        return send_xlsx(f"知识产权质押业务_{today_local().isoformat()}.xlsx", headers, rows, sheet_title="知识产权质押")
    return render_template("credit/ip_pledges.html", deals=deals, totals=totals, filters=filters,
                           registered_fen=queries.registered_fen, **choices)


def _deal_rows(deals):
    headers = ["银行", "经营机构", "企业名称", "统一社会信用代码", "所属区", "重点产业", "业务品种", "阶段", "受理日期",
               "审批日期", "授信金额(万元)", "登记担保金额(万元)", "执行利率(%)", "优惠BP", "期限(月)", "高新技术企业(审批时)",
               "质押专利号", "证券化产品"]
    rows = []
    for a in deals:
        bank = a.bank
        rows.append({
            "银行": bank.name if bank else "", "经营机构": a.branch.name if a.branch else "",
            "企业名称": a.firm.name, "统一社会信用代码": a.firm.credit_code,
            "所属区": a.firm.area.name if a.firm.area else "", "重点产业": a.firm.industry.name_zh,
            "业务品种": a.product.name_zh, "阶段": str(sm.STAGE_LABELS[Stage(a.stage)]),
            "受理日期": a.accepted_on, "审批日期": a.decided_on,
            "授信金额(万元)": fen_to_wan(a.approved_fen), "登记担保金额(万元)": fen_to_wan(queries.registered_fen(a)),
            "执行利率(%)": Decimal(a.rate_bp) / 100 if a.rate_bp is not None else None, "优惠BP": a.discount_bp,
            "期限(月)": a.term_months, "高新技术企业(审批时)": a.high_tech_at_decision,
            "质押专利号": [services.display_patent_no(p.ip_asset.patent_no) for p in a.pledges],
            "证券化产品": a.pool.name if a.pool else "",
        })
    return headers, rows


# ---------------------------------------------------------------------------------------------------------
# securitisation pools
# ---------------------------------------------------------------------------------------------------------


@bp.route("/pools", methods=["GET", "POST"])
@login_required
def pools():
    form = PoolForm()
    if request.method == "POST" and not current_user.is_bank_user:
        abort(403)

    def page(status):
        rows = [(p, services.pool_summary(p)) for p in db.session.scalars(sa.select(SecuritisationPool).order_by(
            SecuritisationPool.issue_on.desc(), SecuritisationPool.id.desc()))]
        return render_template("credit/pools.html", rows=rows, form=form), status

    return save_form(
        form, lambda: services.create_pool(_user(), form.name.data, form.exchange.data, form.issue_on.data),
        render=page, saved=_("Pool created."), next_url=lambda pool: url_for("credit.pool", pool_id=pool.id))


@bp.route("/pools/<int:pool_id>", methods=["GET", "POST"])
@login_required
def pool(pool_id):
    pool_ = get_or_404(SecuritisationPool, pool_id)
    form = PoolAddForm()
    candidates = services.pool_candidates(pool_)
    form.application_id.choices = [
        (a.id, f"{a.firm.name} · {fen_to_wan(a.approved_fen)} 万元 · {a.decided_on}") for a in candidates]
    if request.method == "POST" and not current_user.is_bank_user:
        abort(403)
    return save_form(
        form, lambda: services.add_to_pool(pool_, get_or_404(CreditApplication, form.application_id.data), _user()),
        render=lambda status: (render_template("credit/pool.html", pool=pool_, summary=services.pool_summary(pool_),
                                               form=form, candidates=candidates, remove_form=EmptyForm(),
                                               today=today_local()), status),
        saved=_("Loan added to the pool."), next_url=lambda _r: url_for("credit.pool", pool_id=pool_.id))


@bp.route("/pools/<int:pool_id>/remove/<int:app_id>", methods=["POST"])
@bank_user_required
def pool_remove(pool_id, app_id):
    pool_ = get_or_404(SecuritisationPool, pool_id)
    app = get_or_404(CreditApplication, app_id)
    back = url_for("credit.pool", pool_id=pool_.id)
    if not EmptyForm().validate_on_submit():
        return redirect(back)
    return perform(lambda: services.remove_from_pool(pool_, app, _user()), saved=_("Loan removed from the pool."),
                   back=lambda: redirect(back))


POOL_HEADERS = ["序号", "企业名称", "统一社会信用代码", "所属区", "重点产业", "经营机构", "授信金额(万元)", "执行利率(%)", "优惠BP",
                "期限(月)", "审批日期", "放款日期", "到期日", "质押专利号", "登记担保金额(万元)", "权利人关系"]


def pool_rows(pool_: SecuritisationPool) -> list[dict]:
    rows = []
    for i, a in enumerate(sorted(pool_.loans, key=lambda a: (a.decided_on or date.min, a.id)), start=1):
        active = [p for p in a.pledges]
        rows.append({
            "序号": i, "企业名称": a.firm.name, "统一社会信用代码": a.firm.credit_code,
            "所属区": a.firm.area.name if a.firm.area else "", "重点产业": a.firm.industry.name_zh,
            "经营机构": a.branch.name if a.branch else "", "授信金额(万元)": fen_to_wan(a.approved_fen),
            "执行利率(%)": Decimal(a.rate_bp) / 100 if a.rate_bp is not None else None, "优惠BP": a.discount_bp,
            "期限(月)": a.term_months, "审批日期": a.decided_on, "放款日期": a.disbursed_on, "到期日": a.matures_on,
            "质押专利号": [services.display_patent_no(p.ip_asset.patent_no) for p in active],
            "登记担保金额(万元)": fen_to_wan(queries.registered_fen(a)),
            "权利人关系": sorted({str(OWNER_RELATIONS[p.owner_relation]) for p in active}),
        })
    return rows


@bp.route("/pools/<int:pool_id>/export.xlsx")
@login_required
def pool_export(pool_id):
    from crm.core.audit import record
    from crm.core.spreadsheets import Sheet, send_xlsx

    pool_ = get_or_404(SecuritisationPool, pool_id)
    summary = services.pool_summary(pool_)
    summary_rows = [
        {"项目": "产品名称", "值": pool_.name}, {"项目": "交易所", "值": pool_.exchange},
        {"项目": "发行日期", "值": pool_.issue_on}, {"项目": "入池规模(万元)", "值": fen_to_wan(summary.size_fen)},
        {"项目": "贷款笔数", "值": summary.loan_count}, {"项目": "企业户数", "值": summary.firm_count},
        {"项目": "所属区", "值": summary.areas},
    ]
    record("export", pool_, detail="securitisation pool composition (xlsx)")
    db.session.commit()
    return send_xlsx(f"{pool_.name}_入池明细.xlsx", [], [], sheets=[
        Sheet("入池明细", POOL_HEADERS, pool_rows(pool_)), Sheet("概况", ["项目", "值"], summary_rows)])


# ---------------------------------------------------------------------------------------------------------
# the working-day calendar (admin)
# ---------------------------------------------------------------------------------------------------------


@bp.route("/calendar", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def calendar():
    """The admin's overrides of the PRC calendar, and which years the library covers."""
    form = OverrideForm()

    def page(status):
        rows = list(db.session.scalars(sa.select(HolidayOverride).order_by(HolidayOverride.day.desc())))
        return render_template("credit/calendar.html", form=form, rows=rows, years=covered_years(),
                               stale=calendar_is_stale(today_local()), delete_form=EmptyForm(),
                               today=today_local()), status

    return save_form(
        form, lambda: services.set_override(_user(), form.day.data, form.is_workday.data == "1", form.note.data or ""),
        render=page, saved=_("Calendar override saved."), next_url=lambda _r: url_for("credit.calendar"))


@bp.route("/calendar/<int:override_id>/delete", methods=["POST"])
@role_required(Role.ADMIN)
def calendar_delete(override_id):
    row = db.session.get(HolidayOverride, override_id) or abort(404)
    if EmptyForm().validate_on_submit():
        services.delete_override(row, _user())
        db.session.commit()
        flash(_("Calendar override removed."), "success")
    return redirect(url_for("credit.calendar"))


from crm.credit import ledger  # noqa: E402,F401  (registers the credits ledger with the import framework)
