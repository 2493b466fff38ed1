"""The firms ledger (企业台账): registered with the import framework.

Keyed by the credit code: a known firm is updated from the non-empty cells only (an empty cell keeps the stored
value), a new one is created. The contact columns add a contact for the importing organisation when no contact
with the same name and mobile exists. Re-importing the same file changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from crm.core.models import Area, Industry, Street
from crm.core.validators import ValidationError, validate_industry_section
from crm.extensions import db
from crm.firms import lookups, services
from crm.firms.models import Contact, SmeTier
from crm.imports.framework import ImportContext, Ledger, Row, RowError, register_ledger

COLUMNS = {
    "name": ("企业名称", "企业", "名称", "单位名称", "firm name", "firm", "company", "name"),
    "credit_code": ("统一社会信用代码", "信用代码", "社会信用代码", "credit code", "uscc", "unified social credit code"),
    "area": ("所属区", "区", "所属区域", "district", "area"),
    "street": ("所属街道", "街道", "street"),
    "industry": ("重点产业", "产业", "priority industry", "industry"),
    "section": ("国民经济行业门类", "行业门类", "门类", "industry section", "section"),
    "high_tech": ("高新技术企业", "是否高新技术企业", "高企", "high-tech", "high tech"),
    "cert_no": ("高企证书编号", "证书编号", "high-tech certificate number", "certificate number"),
    "cert_date": ("高企发证日期", "发证日期", "高企认定日期", "high-tech certificate date", "certificate date"),
    "sme_tier": ("专精特新", "专精特新类别", "sme tier"),
    "invention": ("发明专利数", "发明专利", "invention patents"),
    "utility": ("实用新型数", "实用新型", "utility models"),
    "design": ("外观设计数", "外观设计", "design patents"),
    "software": ("软件著作权数", "软件著作权", "软著", "software copyrights"),
    "contact_name": ("联系人", "contact", "contact name"),
    "contact_mobile": ("联系电话", "手机", "手机号码", "联系手机", "mobile", "phone"),
}
ERROR_FIELDS = {
    "name": "name", "credit_code": "credit_code", "area_code": "area", "street_id": "street",
    "industry_code": "industry", "section_code": "section", "high_tech_cert_no": "cert_no",
    "high_tech_issued_on": "cert_date", "sme_tier": "sme_tier", "invention_patents": "invention",
    "utility_models": "utility", "design_patents": "design", "software_copyrights": "software",
    "mobile": "contact_mobile",
}
SME_WORDS = {
    "创新型中小企业": SmeTier.INNOVATIVE, "创新型": SmeTier.INNOVATIVE, "innovative": SmeTier.INNOVATIVE,
    "专精特新中小企业": SmeTier.SPECIALISED, "专精特新": SmeTier.SPECIALISED, "specialised": SmeTier.SPECIALISED,
    '专精特新"小巨人"': SmeTier.LITTLE_GIANT, "专精特新“小巨人”": SmeTier.LITTLE_GIANT, "小巨人": SmeTier.LITTLE_GIANT,
    "专精特新小巨人": SmeTier.LITTLE_GIANT, "little_giant": SmeTier.LITTLE_GIANT, "little giant": SmeTier.LITTLE_GIANT,
    "否": SmeTier.NONE, "无": SmeTier.NONE, "none": SmeTier.NONE,
}


@dataclass
class FirmRow:
    credit_code: str
    values: dict = field(default_factory=dict)
    contact_name: Optional[str] = None
    contact_mobile: Optional[str] = None


def _area(row: Row) -> Optional[str]:
    text = row.text("area")
    if text is None:
        return None
    code = lookups.find_code(Area, text) or lookups.find_code(Area, text + "区")
    if code is None:
        row.error("area", f"未知的区：{text}（请填写深圳市的区名，如 龙岗区）")
    return code


def _street(row: Row, area_code: Optional[str]) -> Optional[int]:
    text = row.text("street")
    if text is None:
        return None
    names = [text, text + "街道", text + "镇"]
    stmt = sa.select(Street).where(Street.name.in_(names))
    if area_code:
        stmt = stmt.where(Street.area_code == area_code)
    streets = db.session.scalars(stmt).all()
    if len(streets) != 1:
        where = "该区" if area_code else "深圳市"
        row.error("street", f"未知的街道：{text}（{where}没有这个街道）" if not streets else f"街道“{text}”不唯一，请填写所属区")
        return None
    return streets[0].id


def parse(row: Row, ctx: ImportContext) -> Optional[FirmRow]:
    code = row.credit_code("credit_code")
    values: dict[str, Any] = {}
    name = row.text("name", required=True, max_length=120)
    if name:
        values["name"] = name
    area_code = _area(row)
    if area_code:
        values["area_code"] = area_code
    street_id = _street(row, area_code)
    if street_id:
        values["street_id"] = street_id
    industry = row.text("industry")
    if industry is not None:
        code_ = lookups.find_code(Industry, industry)
        if code_ is None:
            row.error("industry", f"未知的重点产业：{industry}（人工智能、低空经济、智能驾驶、电子信息、生物医药、低碳产业或其他）")
        else:
            values["industry_code"] = code_
    section = row.text("section")
    if section is not None:
        try:
            values["section_code"] = validate_industry_section(section[:1] if len(section) > 1 and section[1:2] in " 、." else section)
        except ValidationError as exc:
            row.error("section", str(exc))
    high_tech = row.boolean("high_tech")
    cert_no = row.text("cert_no", max_length=40)
    cert_date = row.date("cert_date")
    if high_tech is False:
        values["high_tech_cert_no"] = None
        values["high_tech_issued_on"] = None
    else:
        if cert_no:
            values["high_tech_cert_no"] = cert_no
        if cert_date:
            values["high_tech_issued_on"] = cert_date
        if high_tech and not cert_no:
            row.error("cert_no", "高新技术企业为“是”时请填写高企证书编号")
    tier = row.text("sme_tier")
    if tier is not None:
        key = tier.replace(" ", "")
        if key.casefold() in SME_WORDS or key in SME_WORDS:
            values["sme_tier"] = SME_WORDS.get(key) or SME_WORDS[key.casefold()]
        else:
            row.error("sme_tier", f"无法识别的专精特新类别：{tier}（创新型中小企业、专精特新中小企业、专精特新“小巨人”或否）")
    for key, attr in (("invention", "invention_patents"), ("utility", "utility_models"), ("design", "design_patents"),
                      ("software", "software_copyrights")):
        n = row.integer(key, minimum=0, maximum=1_000_000)
        if n is not None:
            values[attr] = n
    contact_name = row.text("contact_name", max_length=60)
    contact_mobile = row.mobile("contact_mobile")
    if contact_mobile and not contact_name:
        row.error("contact_name", "填写了联系电话时请同时填写联系人")
    if contact_name and services.contact_org_id(ctx.user) is None:
        row.error("contact_name", "当前账号不能登记联系人")
    if row.errors or code is None:
        return None
    return FirmRow(code, values, contact_name, contact_mobile)


def _raise(exc: services.FirmError):
    raise RowError(exc.field, str(exc))


def apply(parsed: FirmRow, ctx: ImportContext) -> str:
    outcome = "unchanged"
    firm = services.find_firm_by_code(parsed.credit_code)
    try:
        if firm is None:
            data = dict(parsed.values, credit_code=parsed.credit_code)
            if "industry_code" not in data:
                data["industry_code"] = "other"
            firm = services.create_firm(data, user=ctx.user)
            outcome = "created"
        else:
            services.clean_firm_data(parsed.values, current=firm)  # refuse before changing anything
            if ctx.bank_id is not None:
                from crm.firms.models import FirmAccount

                if db.session.scalar(sa.select(FirmAccount.id).where(FirmAccount.firm_id == firm.id,
                                                                      FirmAccount.bank_id == ctx.bank_id)) is None:
                    services.ensure_account(firm, ctx.bank_id, user=ctx.user,
                                            owner=ctx.user if ctx.user.role == "rm" else None)
                    outcome = "updated"
            if services.update_firm(firm, parsed.values, user=ctx.user):
                outcome = "updated"
    except services.FirmError as exc:
        _raise(exc)
    if parsed.contact_name:
        org_id = services.contact_org_id(ctx.user)
        exists = db.session.scalar(sa.select(Contact.id).where(
            Contact.firm_id == firm.id, Contact.bank_id == org_id, Contact.is_deleted.is_(False),
            Contact.name == parsed.contact_name, Contact.mobile == (parsed.contact_mobile or "")))
        if exists is None:
            services.create_contact(firm, {"name": parsed.contact_name, "mobile": parsed.contact_mobile or ""},
                                    user=ctx.user)
            if outcome == "unchanged":
                outcome = "updated"
    return outcome


FIRMS_LEDGER = register_ledger(Ledger(
    kind="firms",
    label=_l("Firms ledger"),
    description=_l("One row per firm, keyed by the unified social credit code. Empty cells keep stored values."),
    columns=COLUMNS,
    required=("name", "credit_code"),
    parse_row=parse,
    key=lambda p: p.credit_code,
    apply=apply,
    roles=frozenset({"rm", "bank_manager", "admin"}),
    needs_campaign=False,
    needs_bank=False,
    error_fields=ERROR_FIELDS,
    example={"name": "深圳市示例科技有限公司", "credit_code": "91440300MA5000001X", "area": "龙岗区", "street": "坂田街道",
             "industry": "人工智能", "section": "I", "high_tech": "是", "cert_no": "GR202344000001",
             "cert_date": "2023-12-01", "sme_tier": "专精特新中小企业", "invention": 3, "utility": 5, "design": 0,
             "software": 2, "contact_name": "张三", "contact_mobile": "13800138000"},
))
