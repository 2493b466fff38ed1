"""The visits ledger (走访台账): registered with the import framework.

A row is one visit of the importing user's bank in the chosen campaign, keyed by (credit code, visit date,
visiting RM, mode). A known visit is updated from the ledger's columns (fields the ledger does not carry keep
their values); a 下次跟进日期 books a follow-up for the RM. Re-importing the same file changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import sqlalchemy as sa

from crm.auth.models import Role, User, normalize_username
from crm.core.models import VisitMode, WillingnessLevel
from crm.extensions import db
from crm.firms import lookups
from crm.firms.services import FirmError
from crm.i18n import lazy_gettext as _l
from crm.imports.framework import ImportContext, Ledger, Row, RowError, register_ledger
from crm.visits import services
from crm.visits.models import Visit

COLUMNS = {
    "credit_code": ("统一社会信用代码", "信用代码", "credit code", "uscc"),
    "visited_on": ("走访日期", "日期", "visit date", "date"),
    "mode": ("走访方式", "方式", "mode", "visit mode"),
    "rm": ("走访人", "客户经理", "走访人员", "rm", "visitor", "username"),
    "companions": ("陪同人员", "陪同", "companions"),
    "willingness": ("意愿等级", "意愿", "willingness"),
    "need_amount": ("融资需求金额(万元)", "融资需求金额", "融资需求(万元)", "需求金额(万元)", "need amount",
                    "financing need"),
    "need_purpose": ("融资用途", "用途", "purpose"),
    "summary": ("走访纪要", "纪要", "走访情况", "summary", "notes"),
    "next_due": ("下次跟进日期", "跟进日期", "next follow-up", "follow-up date"),
}
ERROR_FIELDS = {
    "visited_on": "visited_on", "campaign_id": "visited_on", "mode_code": "mode", "rm_id": "rm",
    "companion_ids": "companions", "willingness_code": "willingness", "need_amount_wan": "need_amount",
    "need_purpose": "need_purpose", "summary": "summary", "next_step_due_on": "next_due",
    "next_step_owner_id": "rm", "contact_id": "credit_code",
}


@dataclass
class VisitRow:
    credit_code: str
    firm_id: int
    visited_on: Any
    mode_code: str
    rm: User
    data: dict = field(default_factory=dict)

    @property
    def key(self):
        return (self.credit_code, self.visited_on, self.rm.id, self.mode_code)


def _user(row: Row, ctx: ImportContext, name: str, key: str, *, bureau_ok: bool = False) -> Optional[User]:
    cache = ctx.cache.setdefault("users", {})
    norm = normalize_username(name)
    if norm not in cache:
        cache[norm] = db.session.scalar(sa.select(User).where(User.username == norm))
    user = cache[norm]
    if user is None or not user.is_active or not (
            user.bank_id == ctx.bank_id or (bureau_ok and user.role == Role.BUREAU)):
        where = "本行或区科创局" if bureau_ok else "本行"
        row.error(key, f"未知的用户名：{name}（须为{where}的有效账号）", value=name)
        return None
    return user


def prefetch(values: list[dict], ctx: ImportContext) -> None:
    """The file's firms (one ``IN`` query per chunk of credit codes), users and code lists, read once."""
    ctx.prefetch_firms(values)
    ctx.prefetch_users({normalize_username(n) for v in values for key in ("rm", "companions")
                        if v.get(key) is not None for n in Row.split_items(v[key])})
    for model in (VisitMode, WillingnessLevel):
        ctx.cache[model] = list(db.session.scalars(sa.select(model)))


def _code(ctx: ImportContext, model, text) -> Optional[str]:
    """:func:`crm.firms.lookups.find_code` over the code list read once per file."""
    items = ctx.cache.get(model)
    if items is None:
        return lookups.find_code(model, text)
    key = str(text).strip().casefold()
    for item in items:
        if any(n is not None and str(n).strip().casefold() == key for n in (item.code, item.name_zh, item.name_en)):
            return item.code
    return None


def parse(row: Row, ctx: ImportContext) -> Optional[VisitRow]:
    code = row.credit_code("credit_code")
    firm = None
    if code:
        firm = ctx.firm(code)
        if firm is None:
            row.error("credit_code", "系统中没有该企业，请先导入企业台账或登记企业")
    visited_on = row.date("visited_on", required=True)
    mode_text = row.text("mode")
    mode = "on_site"
    if mode_text is not None:
        mode = _code(ctx, VisitMode, mode_text)
        if mode is None:
            row.error("mode", f"未知的走访方式：{mode_text}（实地走访、电话、线上、活动现场或企业来访）")
    rm_name = row.text("rm", required=True)
    rm = _user(row, ctx, rm_name, "rm") if rm_name else None
    companions = []
    for name in row.items("companions"):
        u = _user(row, ctx, name, "companions", bureau_ok=True)
        if u is not None:
            companions.append(u.id)
    willingness = None
    text = row.text("willingness")
    if text is not None:
        willingness = _code(ctx, WillingnessLevel, text)
        if willingness is None:
            row.error("willingness", f"未知的意愿等级：{text}（意愿强烈、有一定意愿、观望、明确拒绝或无法联系）")
    need = row.wan_to_fen("need_amount")
    purpose = row.text("need_purpose", max_length=200)
    summary = row.text("summary", max_length=services.MAX_SUMMARY)
    next_due = row.date("next_due")
    if row.errors or firm is None or rm is None or visited_on is None or mode is None:
        return None
    data = {
        "campaign_id": ctx.campaign.id if ctx.campaign else None, "visited_on": visited_on, "mode_code": mode,
        "rm_id": rm.id, "companion_ids": companions, "willingness_code": willingness, "need_amount_fen": need,
        "need_purpose": purpose or "", "summary": summary or "", "next_step_due_on": next_due,
        "next_step_owner_id": rm.id if next_due else None,
    }
    return VisitRow(code, firm.id, visited_on, mode, rm, data)


def _merged(visit: Visit, data: dict) -> dict:
    """The visit's current values, overridden by the ledger's columns."""
    current = {key: getattr(visit, key) for key in services.VISIT_FIELDS}
    current["companion_ids"] = [c.id for c in visit.companions]
    current.update(data)
    if data.get("next_step_due_on") is None:
        current["next_step_due_on"] = visit.next_step_due_on
        current["next_step_owner_id"] = visit.next_step_owner_id
    return current


def apply(parsed: VisitRow, ctx: ImportContext) -> str:
    from crm.firms.models import Firm

    firm = db.session.get(Firm, parsed.firm_id)
    existing = db.session.scalar(sa.select(Visit).where(
        Visit.bank_id == ctx.bank_id, Visit.firm_id == parsed.firm_id, Visit.visited_on == parsed.visited_on,
        Visit.rm_id == parsed.rm.id, Visit.mode_code == parsed.mode_code, Visit.is_deleted.is_(False),
    ).order_by(Visit.id).limit(1))
    try:
        if existing is None:
            services.create_visit(firm, parsed.data, user=ctx.user)
            return "created"
        return "updated" if services.update_visit(existing, _merged(existing, parsed.data), user=ctx.user) \
            else "unchanged"
    except FirmError as exc:
        raise RowError(exc.field, str(exc)) from None


VISITS_LEDGER = register_ledger(Ledger(
    kind="visits",
    label=_l("Visits ledger"),
    description=_l("One row per visit of your bank in the chosen campaign; the firm must already be registered."),
    columns=COLUMNS,
    required=("credit_code", "visited_on", "rm"),
    parse_row=parse,
    key=lambda p: p.key,
    apply=apply,
    prefetch=prefetch,
    roles=frozenset({"rm", "bank_manager"}),
    needs_campaign=True,
    needs_bank=True,
    error_fields=ERROR_FIELDS,
    example={"credit_code": "91440300MA5000001X", "visited_on": "2026-03-02", "mode": "实地走访", "rm": "rm_a",
             "companions": "bureau", "willingness": "意愿强烈", "need_amount": 500, "need_purpose": "流动资金",
             "summary": "了解企业融资需求", "next_due": "2026-03-16"},
))
