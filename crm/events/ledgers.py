"""The events (活动) and attendance (签到) ledgers, registered with the import framework.

Events are keyed by 活动编号: a new code creates an event organised by the importing user's organisation in
the chosen campaign; a known code (of an event the user may see) is updated from the ledger's columns, the
other fields keeping their values. A code used by an event the user cannot see is refused without saying whose.

Attendance rows are keyed by (活动编号, 联系电话): a new person is registered (the firm is created from a valid
credit code when new); a 签到时间 checks them in (method: paper), an empty one leaves them registered and never
undoes a check-in. Re-importing the same file changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Optional

import sqlalchemy as sa

from crm.auth.models import Role, User, normalize_username
from crm.core.formatting import LOCAL_TZ
from crm.core.models import Industry
from crm.events import services
from crm.events.models import CheckinMethod, Event, EventKind, EventStatus, Registration, RegistrationStatus
from crm.extensions import db
from crm.i18n import lazy_gettext as _l
from crm.imports.framework import ImportContext, Ledger, Row, RowError, register_ledger

#: bank users import (rows carry the importing user's bank, as in every ledger); the /imports page stays closed
#: to the bureau
IMPORT_ROLES = frozenset({"rm", "bank_manager"})

KIND_NAMES = {"园区专场": EventKind.PARK, "行业专场": EventKind.INDUSTRY, "银行专场": EventKind.BANK,
              "线上对接": EventKind.ONLINE, "政策宣讲": EventKind.POLICY}
STATUS_NAMES = {"已举办": EventStatus.HELD, "筹备中": EventStatus.PLANNED, "已取消": EventStatus.CANCELLED}

EVENT_COLUMNS = {
    "code": ("活动编号", "编号", "event code", "code"),
    "title": ("活动名称", "名称", "title", "event"),
    "kind": ("活动类型", "类型", "kind", "type"),
    "held_on": ("举办日期", "日期", "活动日期", "date", "held on"),
    "venue": ("地点", "活动地点", "venue"),
    "status": ("状态", "status"),
    "industries": ("重点产业", "产业", "industries", "industry"),
    "staff": ("工作人员", "参与人员", "staff"),
}
ATTENDANCE_COLUMNS = {
    "code": ("活动编号", "编号", "event code", "code"),
    "credit_code": ("统一社会信用代码", "信用代码", "credit code", "uscc"),
    "firm_name": ("单位名称", "企业名称", "firm", "company"),
    "person_name": ("姓名", "name"),
    "person_title": ("职务", "title", "position"),
    "mobile": ("联系电话", "手机号码", "手机", "mobile", "phone"),
    "checked_in_at": ("签到时间", "签到", "check-in time", "checked in at"),
}


def _enum(row: Row, key: str, names: dict, enum_cls, default):
    text = row.text(key)
    if text is None:
        return default
    value = names.get(text)
    if value is None:
        try:
            value = enum_cls(text.lower())
        except ValueError:
            row.error(key, f"无法识别：{text}（可选：{'、'.join(names)}）")
    return value


def _industries(row: Row, ctx: ImportContext) -> list[str]:
    cache = ctx.cache.setdefault("industries", None)
    if cache is None:
        cache = {}
        for ind in db.session.scalars(sa.select(Industry)):
            cache[ind.code] = ind.code
            cache[ind.name_zh] = ind.code
            cache[ind.name_en.lower()] = ind.code
        ctx.cache["industries"] = cache
    codes = []
    for item in row.items("industries"):
        code = cache.get(item) or cache.get(item.lower())
        if code is None:
            row.error("industries", f"未知的产业：{item}", value=item)
        elif code not in codes:
            codes.append(code)
    return codes


def _staff(row: Row, ctx: ImportContext) -> list[int]:
    ids = []
    users = ctx.cache.setdefault("users", {})  # each username is looked up once per file
    for name in row.items("staff"):
        norm = normalize_username(name)
        if norm not in users:
            users[norm] = db.session.scalar(sa.select(User).where(User.username == norm))
        user = users[norm]
        ok = user is not None and user.is_active and user.role in (Role.RM, Role.BANK_MANAGER) and (
            ctx.bank_id is None or user.bank_id == ctx.bank_id)
        if not ok:
            row.error("staff", f"未知的用户名：{name}（须为{'本行' if ctx.bank_id else '银行'}的有效账号）", value=name)
        elif user.id not in ids:
            ids.append(user.id)
    return ids


@dataclass
class EventRow:
    code: str
    title: str
    kind: EventKind
    held_on: date
    venue: Optional[str]
    status: EventStatus
    industries: Optional[list[str]]
    staff: Optional[list[int]]


def parse_event(row: Row, ctx: ImportContext) -> Optional[EventRow]:
    code = row.text("code", required=True, max_length=40)
    if code:
        try:
            code = services.normalize_event_code(code)
        except services.EventError as exc:
            row.error("code", str(exc))
    title = row.text("title", required=True, max_length=200)
    kind = _enum(row, "kind", KIND_NAMES, EventKind, EventKind.INDUSTRY)
    held_on = row.date("held_on", required=True)
    venue = row.text("venue", max_length=200)
    status = _enum(row, "status", STATUS_NAMES, EventStatus, EventStatus.PLANNED)
    industries = _industries(row, ctx) if row.present("industries") else None
    staff = _staff(row, ctx) if row.present("staff") else None
    if row.errors:
        return None
    return EventRow(code, title, kind, held_on, venue, status, industries, staff)


def _visible_event(code: str) -> Optional[Event]:
    return db.session.scalar(sa.select(Event).where(sa.func.upper(Event.code) == code.upper()))


def apply_event(parsed: EventRow, ctx: ImportContext) -> str:
    event = _visible_event(parsed.code)
    if event is None and services.code_taken(parsed.code):
        raise RowError("code", "活动编号已被其他机构的活动使用", parsed.code)
    if event is None and ctx.campaign is None:
        raise RowError("code", "请选择专项活动", parsed.code)
    base = {
        "organiser_ids": [o.id for o in event.organisers] if event else [ctx.user.org_id],
        "industry_codes": [i.code for i in event.industries] if event else [],
        "staff_ids": [u.id for u in event.staff] if event else [],
    }
    data = services.EventData(
        code=parsed.code, title=parsed.title, kind=parsed.kind, held_on=parsed.held_on,
        campaign_id=event.campaign_id if event else ctx.campaign.id,
        start_time=event.start_time if event else None, end_time=event.end_time if event else None,
        venue=parsed.venue if parsed.venue is not None else (event.venue if event else ""),
        capacity=event.capacity if event else None, status=parsed.status,
        description=event.description if event else "",
        organiser_ids=base["organiser_ids"],
        industry_codes=parsed.industries if parsed.industries is not None else base["industry_codes"],
        staff_ids=parsed.staff if parsed.staff is not None else base["staff_ids"],
        deals_signed=event.deals_signed if event else 0, deals_signed_fen=event.deals_signed_fen if event else 0,
        intentions=event.intentions if event else 0, intentions_fen=event.intentions_fen if event else 0,
    )
    try:
        if event is None:
            services.create_event(data, ctx.user)
            return "created"
        if _unchanged(event, data):
            return "unchanged"
        services.update_event(event, data, ctx.user)
        return "updated"
    except services.EventError as exc:
        raise RowError(_EVENT_FIELDS.get(exc.field or "", "code"), str(exc)) from None


_EVENT_FIELDS = {"code": "code", "title": "title", "held_on": "held_on", "capacity": "code", "organisers": "code",
                 "end_time": "held_on", "deals_signed": "code"}


def _unchanged(event: Event, data: services.EventData) -> bool:
    return (event.title == data.title.strip() and event.kind == data.kind and event.held_on == data.held_on
            and event.venue == (data.venue or "").strip() and event.status == data.status
            and sorted(i.code for i in event.industries) == sorted(data.industry_codes)
            and sorted(u.id for u in event.staff) == sorted(data.staff_ids))


@dataclass
class AttendanceRow:
    code: str
    credit_code: str
    firm_name: str
    person_name: str
    person_title: str
    mobile: str
    checked_in_at: Optional[datetime]

    @property
    def key(self):
        return (self.code.upper(), self.mobile)


def parse_attendance(row: Row, ctx: ImportContext) -> Optional[AttendanceRow]:
    code = row.text("code", required=True, max_length=40)
    credit_code = row.credit_code("credit_code")
    firm_name = row.text("firm_name", max_length=120)
    person_name = row.text("person_name", required=True, max_length=60)
    person_title = row.text("person_title", max_length=60)
    mobile = row.mobile("mobile", required=True)
    checked_in_at = None
    if row.present("checked_in_at"):
        from crm.core.spreadsheets import parse_datetime_cell

        try:
            local = parse_datetime_cell(row.raw("checked_in_at"))
        except ValueError as exc:
            row.error("checked_in_at", str(exc))
        else:
            checked_in_at = local if local.tzinfo is not None else local.replace(tzinfo=LOCAL_TZ)
    if row.errors:
        return None
    return AttendanceRow(code, credit_code, firm_name or "", person_name, person_title or "", mobile, checked_in_at)


def _same_instant(a: Optional[datetime], b: Optional[datetime]) -> bool:
    if a is None or b is None:
        return a is b
    return a.replace(microsecond=0) == b.replace(microsecond=0)


def apply_attendance(parsed: AttendanceRow, ctx: ImportContext) -> str:
    events = ctx.cache.setdefault("events", {})  # each event code is looked up once per file
    if parsed.code.upper() not in events:
        events[parsed.code.upper()] = _visible_event(parsed.code)
    event = events[parsed.code.upper()]
    if event is None:
        raise RowError("code", "未找到该活动（活动编号不存在，或不是本机构主办的活动）", parsed.code)
    when = parsed.checked_in_at.astimezone(timezone.utc) if parsed.checked_in_at else None
    reg = db.session.scalar(sa.select(Registration).where(Registration.event_id == event.id,
                                                          Registration.mobile == parsed.mobile))
    try:
        firm = services.get_or_create_firm(parsed.credit_code, parsed.firm_name, ctx.user)
        if reg is None:
            reg = services.add_registration(event, firm, services.PersonData(
                person_name=parsed.person_name, person_title=parsed.person_title, mobile=parsed.mobile,
                status=RegistrationStatus.CONFIRMED if when else RegistrationStatus.REGISTERED), ctx.user)
            if when:
                _set_checkin(reg, when, ctx)
            return "created"
    except services.EventError as exc:
        raise RowError({"credit_code": "credit_code", "firm_name": "firm_name", "mobile": "mobile",
                        "person_name": "person_name"}.get(exc.field or "", "code"), str(exc)) from None
    changed = False
    if (reg.firm_id, reg.person_name, reg.person_title) != (firm.id, parsed.person_name, parsed.person_title):
        from crm.core import audit

        before = audit.snapshot(reg)
        reg.firm_id, reg.person_name, reg.person_title = firm.id, parsed.person_name, parsed.person_title
        db.session.flush()
        audit.record_update(reg, before, user=ctx.user, bank_id=ctx.bank_id)
        changed = True
    if when and not _same_instant(reg.checked_in_at, when):
        _set_checkin(reg, when, ctx)
        changed = True
    return "updated" if changed else "unchanged"


def _set_checkin(reg: Registration, when: datetime, ctx: ImportContext) -> None:
    from crm.core import audit

    reg.checked_in_at = when
    reg.checkin_method = reg.checkin_method or CheckinMethod.PAPER
    if reg.status == RegistrationStatus.CANCELLED:
        reg.status = RegistrationStatus.CONFIRMED
    db.session.flush()
    audit.record("registration.checkin", reg, user=ctx.user, bank_id=ctx.bank_id,
                 after={"checkin_method": reg.checkin_method.value, "source": "ledger"})


EVENTS_LEDGER = register_ledger(Ledger(
    kind="events",
    label=_l("Events ledger"),
    description=_l("One row per event, keyed by its event code; new events are organised by your organisation."),
    columns=EVENT_COLUMNS,
    required=("code", "title", "held_on"),
    parse_row=parse_event,
    key=lambda p: p.code.upper(),
    apply=apply_event,
    roles=IMPORT_ROLES,
    needs_campaign=True,
    needs_bank=True,
    example={"code": "EV-2026-0001", "title": "坂田街道人工智能专场对接会", "kind": "园区专场",
             "held_on": "2026-06-18", "venue": "天安云谷", "status": "筹备中", "industries": "人工智能;低空经济",
             "staff": "rm_a"},
))

ATTENDANCE_LEDGER = register_ledger(Ledger(
    kind="attendance",
    label=_l("Attendance ledger"),
    description=_l("One row per person at an event you organise, keyed by event code and mobile; an empty "
                   "check-in time means registered, not attended."),
    columns=ATTENDANCE_COLUMNS,
    required=("code", "credit_code", "person_name", "mobile"),
    parse_row=parse_attendance,
    key=lambda p: p.key,
    apply=apply_attendance,
    roles=IMPORT_ROLES,
    needs_campaign=False,
    needs_bank=True,
    error_fields={"firm_id": "credit_code"},
    example={"code": "EV-2026-0001", "credit_code": "91440300MA5000001X", "firm_name": "深圳市示例科技有限公司",
             "person_name": "张三", "person_title": "财务总监", "mobile": "13800138000",
             "checked_in_at": "2026-06-18 14:05"},
))
