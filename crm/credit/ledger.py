"""The credits ledger (授信台账): registered with the import framework.

A row is one credit application of the importing user's bank in the chosen campaign, keyed by (credit code,
product, acceptance date). A new row records the application and walks it through the stage machine to the
ledger's result (审批中 → under review; 通过 → approved; 否决 → declined; 撤回 → withdrawn), with the decision's
amount, rate, discount and term, and pledges its patents (a ``ZL`` number is a granted patent; its grant and
expiry dates are completed before the pledge registration). A known application is moved on when the ledger
says it was decided since, gains the patents it lacks, and is otherwise left as it is: re-importing the same
file changes nothing. Each row is applied in a savepoint, so a refused row changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Optional

import sqlalchemy as sa

from crm.auth.models import BANK_ROLES, User, normalize_username
from crm.core.formatting import today_local
from crm.core.models import CreditProduct, DeclineReason
from crm.core.validators import ValidationError, normalize_credit_code, normalize_patent_number
from crm.credit import services
from crm.credit.models import CreditApplication, Pledge, PledgeStatus, Stage
from crm.extensions import db
from crm.firms.models import Firm
from crm.i18n import lazy_gettext as _l
from crm.imports.framework import ImportContext, Ledger, Row, RowError, register_ledger

COLUMNS = {
    "credit_code": ("统一社会信用代码", "信用代码", "credit code", "uscc"),
    "product": ("业务品种", "产品", "product"),
    "requested": ("申请金额(万元)", "申请金额", "requested amount", "requested"),
    "accepted_on": ("受理日期", "accepted on", "acceptance date"),
    "decided_on": ("审批日期", "decided on", "decision date"),
    "result": ("审批结果", "结果", "result", "decision"),
    "approved": ("授信金额(万元)", "授信金额", "approved amount", "approved"),
    "rate": ("执行利率(%)", "执行利率", "rate", "rate (%)"),
    "discount": ("优惠BP", "优惠(BP)", "利率优惠BP", "discount", "discount bp"),
    "term": ("期限(月)", "期限", "term", "term (months)"),
    "first_loan": ("首贷户", "first loan"),
    "patents": ("质押专利号", "专利号", "patents", "pledged patents"),
    "rm": ("经办客户经理", "客户经理", "经办人", "rm", "username"),
    "decline_reason": ("否决原因", "decline reason"),
}
ERROR_FIELDS = {
    "firm": "credit_code", "product_code": "product", "requested_wan": "requested", "accepted_on": "accepted_on",
    "changed_on": "decided_on", "approved_wan": "approved", "rate_pct": "rate", "discount_bp": "discount",
    "term_months": "term", "decline_reason_code": "decline_reason", "rm_id": "rm", "patent_no": "patents",
    "granted_on": "patents", "expires_on": "patents", "licence_no": "patents", "campaign_id": "accepted_on",
    "branch_id": "rm", "requested_term_months": "term",
}
RESULTS = {
    "通过": Stage.APPROVED, "批准": Stage.APPROVED, "approved": Stage.APPROVED,
    "否决": Stage.DECLINED, "拒绝": Stage.DECLINED, "declined": Stage.DECLINED,
    "撤回": Stage.WITHDRAWN, "撤销": Stage.WITHDRAWN, "withdrawn": Stage.WITHDRAWN,
    "审批中": Stage.UNDER_REVIEW, "审查中": Stage.UNDER_REVIEW, "受理": Stage.UNDER_REVIEW,
    "under review": Stage.UNDER_REVIEW, "pending": Stage.UNDER_REVIEW,
}


@dataclass
class CreditRow:
    credit_code: str
    firm_id: int
    product_code: str
    requested_fen: int
    accepted_on: date
    result: Stage
    rm: User
    is_first_loan: Optional[bool] = None
    decided_on: Optional[date] = None
    decision: services.Decision = field(default_factory=services.Decision)
    patents: list[tuple[str, str]] = field(default_factory=list)  #: (as typed, canonical)

    @property
    def key(self):
        return (self.credit_code, self.product_code, self.accepted_on)


def prefetch(values: list[dict], ctx: ImportContext) -> None:
    """The file's firms (one ``IN`` query per chunk of credit codes), its users and the code lists, read once."""
    ctx.prefetch_firms(values)
    ctx.prefetch_users({normalize_username(str(v["rm"]).strip()) for v in values if v.get("rm") is not None})
    for model in (CreditProduct, DeclineReason):
        ctx.cache[model] = list(db.session.scalars(sa.select(model)))


def _find(model, text: str, ctx: Optional[ImportContext] = None) -> Optional[str]:
    key = text.strip().casefold()
    items = ctx.cache.get(model) if ctx is not None else None  # read once per file by prefetch
    for item in (items if items is not None else db.session.scalars(sa.select(model))):
        if key in {item.code.casefold(), item.name_zh.casefold(), item.name_en.casefold()}:
            return item.code
    return None


def _rm(row: Row, ctx: ImportContext, name: str) -> Optional[User]:
    cache = ctx.cache.setdefault("users", {})
    norm = normalize_username(name)
    if norm not in cache:
        cache[norm] = db.session.scalar(sa.select(User).where(User.username == norm))
    user = cache[norm]
    if user is None or not user.is_active or user.bank_id != ctx.bank_id or user.role not in BANK_ROLES:
        row.error("rm", f"未知的用户名：{name}（须为本行的有效客户经理账号）", value=name)
        return None
    return user


def parse(row: Row, ctx: ImportContext) -> Optional[CreditRow]:
    code = row.credit_code("credit_code")
    firm = None
    if code:
        firm = ctx.firm(normalize_credit_code(code))
        if firm is None:
            row.error("credit_code", "系统中没有该企业，请先导入企业台账或登记企业")
    product = None
    product_text = row.text("product", required=True)
    if product_text is not None:
        product = _find(CreditProduct, product_text, ctx)
        if product is None:
            row.error("product", f"未知的业务品种：{product_text}（知识产权质押、技术设备更新、流动资金、研发贷或其他）")
    requested = row.wan_to_fen("requested", required=True)
    if requested is not None and requested <= 0:
        row.error("requested", "申请金额必须大于零")
    accepted_on = row.date("accepted_on", required=True)
    result = Stage.UNDER_REVIEW
    result_text = row.text("result")
    if result_text:
        result = RESULTS.get(result_text.strip().casefold())
        if result is None:
            row.error("result", f"未知的审批结果：{result_text}（通过、否决、撤回或审批中）")
    decided_on = row.date("decided_on", required=result in (Stage.APPROVED, Stage.DECLINED))
    if decided_on and accepted_on and decided_on < accepted_on:
        row.error("decided_on", "审批日期不能早于受理日期")
    decision = services.Decision()
    if result == Stage.APPROVED:
        decision.approved_fen = row.wan_to_fen("approved", required=True)
        rate = row.decimal("rate", required=True)
        if rate is not None:
            bp = rate * 100
            if bp != bp.to_integral_value() or not Decimal(0) <= bp <= Decimal(services.MAX_RATE_BP):
                row.error("rate", "执行利率应为 0 至 50 之间、最多两位小数的百分数，例如 3.45")
            else:
                decision.rate_bp = int(bp)
        decision.discount_bp = row.integer("discount", required=True, minimum=0, maximum=services.MAX_DISCOUNT_BP)
        decision.term_months = row.integer("term", required=True, minimum=1, maximum=services.MAX_TERM_MONTHS)
    elif result == Stage.DECLINED:
        reason_text = row.text("decline_reason")
        decision.decline_reason_code = _find(DeclineReason, reason_text, ctx) if reason_text else "other"
        if decision.decline_reason_code is None:
            row.error("decline_reason", f"未知的否决原因：{reason_text}")
    first_loan = row.boolean("first_loan")
    patents = []
    for typed in row.items("patents"):
        try:
            patents.append((typed, normalize_patent_number(typed).canonical))
        except ValidationError as exc:
            row.error("patents", f"{typed}：{exc}", value=typed)
    if patents and product is not None and product != "ip_pledge" and not db.session.get(
            CreditProduct, product).is_ip_pledge:
        row.error("patents", "只有知识产权质押类业务可以填写质押专利号")
    rm_name = row.text("rm", required=True)
    rm = _rm(row, ctx, rm_name) if rm_name else None
    if row.errors or None in (firm, product, requested, accepted_on, rm, result):
        return None
    return CreditRow(code, firm.id, product, requested, accepted_on, result, rm, first_loan, decided_on, decision,
                     patents)


def _decision_matches(app: CreditApplication, row: CreditRow) -> bool:
    d = row.decision
    if row.result == Stage.APPROVED:
        return (app.is_approved and app.decided_on == row.decided_on and app.approved_fen == d.approved_fen
                and app.rate_bp == d.rate_bp and app.discount_bp == d.discount_bp and app.term_months == d.term_months)
    if row.result == Stage.DECLINED:
        return app.stage == Stage.DECLINED and app.decided_on == row.decided_on
    return app.stage == row.result


def _advance(app: CreditApplication, row: CreditRow, user: User, today: date) -> bool:
    """Move an open application to the ledger's result; True when it moved."""
    if row.result == Stage.WITHDRAWN:
        if app.stage == Stage.WITHDRAWN:
            return False
        services.move(app, Stage.WITHDRAWN, user, row.decided_on or services.last_change_on(app), "台账导入",
                      today=today)
        return True
    moved = False
    if app.stage == Stage.ACCEPTED:
        services.move(app, Stage.UNDER_REVIEW, user, row.accepted_on, "台账导入", today=today)
        moved = True
    if row.result in (Stage.APPROVED, Stage.DECLINED):
        services.move(app, row.result, user, row.decided_on, "台账导入", decision=row.decision, today=today)
        moved = True
    return moved


def _apply(row: CreditRow, ctx: ImportContext, today: date) -> str:
    user = ctx.user
    firm = db.session.get(Firm, row.firm_id)
    app = db.session.scalar(sa.select(CreditApplication).where(
        CreditApplication.bank_id == ctx.bank_id, CreditApplication.firm_id == row.firm_id,
        CreditApplication.product_code == row.product_code, CreditApplication.accepted_on == row.accepted_on,
        CreditApplication.campaign_id == ctx.campaign.id).order_by(CreditApplication.id).limit(1))
    outcome = "unchanged"
    if app is None:
        data = services.ApplicationData(
            firm=firm, product_code=row.product_code, requested_fen=row.requested_fen, accepted_on=row.accepted_on,
            campaign_id=ctx.campaign.id, rm_id=row.rm.id, is_first_loan=bool(row.is_first_loan),
            requested_term_months=row.decision.term_months)
        app = services.create_application(user, data, today=today)
        outcome = "created"
    else:
        changed = (app.requested_fen != row.requested_fen or app.rm_id != row.rm.id
                   or (row.is_first_loan is not None and app.is_first_loan != row.is_first_loan))
        if changed:
            data = services.ApplicationData(
                firm=firm, product_code=app.product_code, requested_fen=row.requested_fen,
                accepted_on=app.accepted_on, campaign_id=app.campaign_id, branch_id=app.branch_id, rm_id=row.rm.id,
                requested_term_months=app.requested_term_months, guarantee=app.guarantee,
                is_first_loan=app.is_first_loan if row.is_first_loan is None else row.is_first_loan,
                in_risk_pool=app.in_risk_pool, has_subsidy=app.has_subsidy, remarks=app.remarks)
            services.update_application(app, user, data, today=today)
            outcome = "updated"
    if not _decision_matches(app, row):
        if not app.is_open and not (row.result == Stage.UNDER_REVIEW):
            raise RowError("result", "与系统中已记录的审批结果不一致，请在授信申请页面核对后修改")
        if app.is_open and _advance(app, row, user, today) and outcome == "unchanged":
            outcome = "updated"
    pledged = {p.ip_asset.patent_no for p in app.pledges if p.status == PledgeStatus.ACTIVE}
    for typed, canonical in row.patents:
        if canonical in pledged:
            continue
        if app.stage in (Stage.DECLINED, Stage.WITHDRAWN, Stage.REPAID):
            break
        services.add_pledge(app, user, services.PledgeData(patent_no=typed, dates_later=True), today=today)
        pledged.add(canonical)
        if outcome == "unchanged":
            outcome = "updated"
    return outcome


def _precheck(row: CreditRow, ctx: ImportContext, today: date) -> None:
    """Refusals the services would make half-way through a row, found before anything changes
    (the framework does not savepoint rows)."""
    from crm.credit.models import IpAsset

    if ctx.campaign is None:
        raise RowError(None, "请选择专项活动")
    if all(o.id != ctx.bank_id for o in ctx.campaign.organisations):
        raise RowError("accepted_on", "本行未参加该专项活动")
    for key, day in (("accepted_on", row.accepted_on), ("decided_on", row.decided_on)):
        if day is not None and day > today:
            raise RowError(key, "日期不能晚于今天", day)
    mine = set()
    existing = db.session.scalar(sa.select(CreditApplication.id).where(
        CreditApplication.bank_id == ctx.bank_id, CreditApplication.firm_id == row.firm_id,
        CreditApplication.product_code == row.product_code, CreditApplication.accepted_on == row.accepted_on,
        CreditApplication.campaign_id == ctx.campaign.id).limit(1))
    for typed, canonical in row.patents:
        asset = db.session.scalar(sa.select(IpAsset).where(IpAsset.patent_no == canonical))
        if asset is None:
            if not typed.strip().upper().startswith("ZL"):
                raise RowError("patents", f"{typed}：只有以 ZL 开头的已授权专利号可以质押", typed)
            continue
        if existing is not None:
            mine = {p.ip_asset_id for p in db.session.scalars(sa.select(Pledge).where(
                Pledge.application_id == existing, Pledge.status == PledgeStatus.ACTIVE))}
        if asset.id not in mine and services._patent_is_actively_pledged(asset.id):
            raise RowError("patents", f"{typed}：{services.ALREADY_PLEDGED}", typed)


def apply(row: CreditRow, ctx: ImportContext) -> str:
    today = today_local()
    _precheck(row, ctx, today)
    try:
        return _apply(row, ctx, today)
    except services.CreditError as exc:
        raise RowError(ERROR_FIELDS.get(exc.field or "", exc.field), str(exc)) from None


CREDITS_LEDGER = register_ledger(Ledger(
    kind="credits",
    label=_l("Credits ledger"),
    description=_l("One row per credit application of your bank in the chosen campaign; the firm must already be "
                   "registered. Pledged patents are ZL numbers separated by semicolons."),
    columns=COLUMNS,
    required=("credit_code", "product", "requested", "accepted_on", "rm"),
    parse_row=parse,
    key=lambda p: p.key,
    apply=apply,
    prefetch=prefetch,
    roles=frozenset({"rm", "bank_manager"}),
    needs_campaign=True,
    needs_bank=True,
    error_fields=ERROR_FIELDS,
    example={"credit_code": "91440300MA5000001X", "product": "知识产权质押", "requested": 800,
             "accepted_on": "2026-03-02", "decided_on": "2026-03-04", "result": "通过", "approved": 800,
             "rate": "3.45", "discount": 15, "term": 12, "first_loan": "是",
             "patents": "ZL202010123456.2; ZL202020123456.8", "rm": "rm_a"},
))
