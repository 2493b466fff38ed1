"""The firms ledger (企业台账): registered with the import framework.

Keyed by the credit code: a known firm is updated from the non-empty cells only (an empty cell keeps the stored
value), a new one is created. The contact columns add a contact for the importing organisation when no contact
with the same name and mobile exists. Re-importing the same file changes nothing.

Written in bulk: the code lists are read once per file, the file's firms in one look-up per chunk of 1,000 codes,
and each chunk of rows is validated first, then written with one INSERT per table (firms, accounts, contacts,
their audit entries; ``crm.imports.framework.insert_rows``), so a 10,000-row file costs a few dozen statements,
not 30 per row. The audit snapshots of new rows are made from the inserted values (no read-back). A preview
writes nothing: every outcome is known from the checks and the chunk's look-ups.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from crm.core import audit
from crm.core.models import Area, Industry, IndustrySection, Street
from crm.core.validators import ValidationError, validate_industry_section
from crm.dashboard import snapshots
from crm.extensions import db
from crm.firms import services
from crm.firms.models import Contact, Firm, FirmAccount, SmeTier
from crm.i18n import lazy_gettext as _l
from crm.imports.framework import (AuditBatch, ImportContext, Ledger, Row, RowError, in_values, insert_rows,
                                   register_ledger)

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


class _Refs:
    """The code lists a firm row refers to, read once per import (and kept referenced, so the services'
    ``session.get`` of an area, street, industry or section finds it in the identity map: no query per row)."""

    def __init__(self) -> None:
        self.rows: list = []
        self.codes: dict[type, dict[str, str]] = {}
        #: (model, primary key) -> row: ``services.clean_firm_data``'s look-ups, without a ``session.get`` each
        self.by_key: dict[tuple, Any] = {}
        for model in (Area, Industry, IndustrySection):
            names: dict[str, str] = {}
            for item in db.session.scalars(sa.select(model)):
                self.rows.append(item)
                self.by_key[(model, item.code)] = item
                for n in (getattr(item, "name_en", None), getattr(item, "name_zh", None),
                          getattr(item, "name", None), item.code):
                    if n is not None and str(n).strip():
                        names.setdefault(str(n).strip().casefold(), item.code)  # the first row wins, as in lookups
            self.codes[model] = names
        self.streets: dict[str, list[Street]] = {}
        for street in db.session.scalars(sa.select(Street)):
            self.rows.append(street)
            self.by_key[(Street, street.id)] = street
            self.streets.setdefault(street.name, []).append(street)

    def get(self, model, key) -> Optional[Any]:
        """The code-list row, as ``db.session.get(model, key)`` would find it (the tables read at the start)."""
        return self.by_key.get((model, key))

    def code(self, model, text: str) -> Optional[str]:
        """Like :func:`crm.firms.lookups.find_code`: by code, Chinese or English name, case-insensitive."""
        return self.codes[model].get(str(text).strip().casefold()) if text is not None else None


def _refs(ctx: ImportContext) -> _Refs:
    refs = ctx.cache.get("firm_refs")
    if refs is None:
        refs = ctx.cache["firm_refs"] = _Refs()
    return refs


def _area(row: Row, ctx: ImportContext) -> Optional[str]:
    text = row.text("area")
    if text is None:
        return None
    refs = _refs(ctx)
    code = refs.code(Area, text) or refs.code(Area, text + "区")
    if code is None:
        row.error("area", f"未知的区：{text}（请填写深圳市的区名，如 龙岗区）")
    return code


def _street(row: Row, ctx: ImportContext, area_code: Optional[str]) -> Optional[int]:
    text = row.text("street")
    if text is None:
        return None
    names = [text, text + "街道", text + "镇"]
    refs = _refs(ctx)
    streets = [s for n in dict.fromkeys(names) for s in refs.streets.get(n, ())
               if not area_code or s.area_code == area_code]
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
    area_code = _area(row, ctx)
    if area_code:
        values["area_code"] = area_code
    street_id = _street(row, ctx, area_code)
    if street_id:
        values["street_id"] = street_id
    industry = row.text("industry")
    if industry is not None:
        code_ = _refs(ctx).code(Industry, industry)
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


def prefetch(values: list[dict], ctx: ImportContext) -> None:
    """Read the code lists and every firm of the file (one ``IN`` query per chunk of credit codes)."""
    _refs(ctx)
    ctx.prefetch_firms(values)


def _firms_of(rows: list[FirmRow], ctx: ImportContext) -> dict[str, Firm]:
    if not ctx.cache.get("firms_complete"):  # apply_batch without prefetch (a caller of the ledger's functions)
        known = ctx.cache.get("firms", {})
        ctx.prefetch_firms(({"credit_code": r.credit_code} for r in rows if r.credit_code not in known),
                           whole_file=False)
    return ctx.cache["firms"]


def apply_batch(rows: list[FirmRow], ctx: ImportContext) -> list:
    """Apply a chunk of rows: check every row first (a refused row changes nothing), then write in bulk."""
    user = ctx.user
    refs = _refs(ctx)
    known = _firms_of(rows, ctx)
    existing_ids = [known[r.credit_code].id for r in rows if r.credit_code in known]
    with_account: set[int] = set()
    contacts: set[tuple[int, str, str]] = set()
    org_id = services.contact_org_id(user)
    if existing_ids and ctx.bank_id is not None:
        with_account = set(db.session.scalars(sa.select(FirmAccount.firm_id).where(
            in_values(FirmAccount.firm_id, existing_ids), FirmAccount.bank_id == ctx.bank_id)))
    if existing_ids and org_id is not None and any(r.contact_name for r in rows):
        contacts = {tuple(c) for c in db.session.execute(sa.select(Contact.firm_id, Contact.name, Contact.mobile).where(
            in_values(Contact.firm_id, existing_ids), Contact.bank_id == org_id, Contact.is_deleted.is_(False)))}

    # 1. validate every row; nothing is changed yet
    outcomes: list = [None] * len(rows)
    plans = []  # (index, firm or None, values, changes, contact values or None)
    for i, row in enumerate(rows):
        firm = known.get(row.credit_code)
        try:
            if firm is None:
                values = services.clean_firm_data(row.values, lookup=refs.get)  # no credit_code key: no look-up
                values.setdefault("industry_code", "other")
                changes = values
            else:
                values = services.clean_firm_data(row.values, current=firm, lookup=refs.get)
                changes = {k: v for k, v in values.items() if getattr(firm, k) != v}
            contact = None
            if row.contact_name and (firm is None or (firm.id, row.contact_name, row.contact_mobile or "")
                                     not in contacts):
                contact = services.clean_contact_data({"name": row.contact_name, "mobile": row.contact_mobile or ""})
        except services.FirmError as exc:
            outcomes[i] = RowError(exc.field, str(exc))
            continue
        plans.append((i, firm, changes, contact))

    # 2. write: new firms with one INSERT for the chunk, changed ones with one UPDATE per set of changed columns
    trail = AuditBatch(user, dry_run=ctx.dry_run)
    new_ids: dict[int, int] = {}  # row index -> id of the firm created for it
    inserts = []
    updated: list[tuple[Firm, dict]] = []
    for i, firm, changes, _contact in plans:
        if firm is None:
            inserts.append((i, dict(_FIRM_DEFAULTS, **changes, credit_code=rows[i].credit_code,
                                    created_by_id=getattr(user, "id", None))))
            outcomes[i] = "created"
        elif changes:
            updated.append((firm, changes))
            outcomes[i] = "updated"
        else:
            outcomes[i] = "unchanged"
    # A preview (dry run) is rolled back: it writes nothing, as every outcome is known from the checks above and
    # the look-ups of the chunk (what it skips is what a concurrent import could change before the commit anyway)
    write = not ctx.dry_run
    if updated and write:
        _update_firms(updated, user, trail)
    if inserts and write:
        # each row comes back completed (defaults, id), which is what the audit snapshot is made of: no read-back
        insert_rows(Firm, [values for _i, values in inserts], key=("credit_code",))
        for i, values in inserts:
            new_ids[i] = values["id"]
            trail.create_values(Firm, values)

    # 3. the importing bank's accounts with new firms and with known firms it had none with
    if ctx.bank_id is not None:
        owner = user if user.role == "rm" else None
        branch_id = owner.org_id if owner is not None and owner.org is not None and owner.org.is_branch else None
        wanted = {}  # row index -> firm id (None: the firm a preview did not create)
        for i, firm, _changes, _contact in plans:
            if firm is None or firm.id not in with_account:
                wanted[i] = new_ids.get(i) if firm is None else firm.id
        created = list(wanted)  # the rows whose account is created
        if wanted and write:
            # an account another request created meanwhile is left alone (and not audited twice), as in
            # services.ensure_account: INSERT ... ON CONFLICT (bank_id, firm_id) DO NOTHING
            row_of = {firm_id: i for i, firm_id in wanted.items()}
            accounts = insert_rows(FirmAccount, [
                {"bank_id": ctx.bank_id, "firm_id": firm_id, "owner_id": getattr(owner, "id", None),
                 "branch_id": branch_id} for firm_id in wanted.values()], key=("bank_id", "firm_id"),
                skip_conflicts=True)
            created = [row_of[account["firm_id"]] for account in accounts]
            for account in accounts:
                trail.create_values(FirmAccount, account)
        for i in created:
            if outcomes[i] == "unchanged":
                outcomes[i] = "updated"

    # 4. contacts for the importing organisation: each row's (firm, name, mobile) was checked above not to exist
    # for this organisation yet
    contact_rows = []
    for i, firm, _changes, contact in plans:
        if contact is None:
            continue
        firm_id = new_ids.get(i) if firm is None else firm.id
        contact_rows.append(dict(contact, firm_id=firm_id, bank_id=org_id, created_by_id=user.id))
        if outcomes[i] == "unchanged":
            outcomes[i] = "updated"
    if contact_rows and write:
        insert_rows(Contact, contact_rows, key=("firm_id", "name", "mobile"))
        for values in contact_rows:
            trail.create_values(Contact, values)
    trail.write()
    return outcomes


def _update_firms(updated: list[tuple[Firm, dict]], user, trail: AuditBatch) -> None:
    """Write changed firms with one executemany UPDATE per set of changed columns, keeping the optimistic lock
    (``WHERE version = :seen``, ``version + 1``) and ``modified_at`` as a unit-of-work flush would. The dashboard
    places each statement in its firms' shards, as a flush would place the firms (a correction of an industry,
    district or street recomputes those shards, not every view; other columns move nothing)."""
    from crm.core.db import utcnow

    now = utcnow()
    groups: dict[tuple, list[tuple[Firm, dict]]] = {}
    for firm, changes in updated:
        groups.setdefault(tuple(sorted(changes)), []).append((firm, changes))
    table = Firm.__table__
    for keys, members in groups.items():
        stmt = (sa.update(table).where(table.c.id == sa.bindparam("_id"), table.c.version == sa.bindparam("_seen"))
                .values({k: sa.bindparam(k) for k in (*keys, "modified_at", "version")}))
        params = [dict(changes, _id=firm.id, _seen=firm.version, modified_at=now, version=firm.version + 1)
                  for firm, changes in members]
        with snapshots.placed_writes("firm", firm_ids=[firm.id for firm, _changes in members]):
            result = db.session.connection().execute(stmt, params)
        if result.rowcount != len(params):
            raise sa.orm.exc.StaleDataError("a firm of the ledger was changed by someone else during the import")
        for (firm, changes), values in zip(members, params):
            before = trail.snapshot(firm)
            for key in (*keys, "modified_at", "version"):
                set_committed_value(firm, key, values[key])
            b, a = audit.diff(before, trail.snapshot(firm))
            trail.add("update", firm, before=b, after=a)


def _scalar_defaults(model, keys) -> dict:
    """Each column's own default for the keys a ledger may leave out, so every row of a multi-row INSERT has
    the same keys (one statement per chunk, not one per combination of filled-in cells)."""
    out = {}
    for key in keys:
        col = model.__table__.c[key]
        if col.default is not None and col.default.is_scalar:
            out[key] = col.default.arg
        elif col.nullable and col.server_default is None:
            out[key] = None
    return out


_FIRM_DEFAULTS = _scalar_defaults(Firm, [k for k in services.FIRM_FIELDS if k not in ("name", "credit_code")])


FIRMS_LEDGER = register_ledger(Ledger(
    kind="firms",
    label=_l("Firms ledger"),
    description=_l("One row per firm, keyed by the unified social credit code. Empty cells keep stored values."),
    columns=COLUMNS,
    required=("name", "credit_code"),
    parse_row=parse,
    key=lambda p: p.credit_code,
    apply=apply,
    prefetch=prefetch,
    apply_batch=apply_batch,
    roles=frozenset({"rm", "bank_manager", "admin"}),
    needs_campaign=False,
    needs_bank=False,
    error_fields=ERROR_FIELDS,
    example={"name": "深圳市示例科技有限公司", "credit_code": "91440300MA5000001X", "area": "龙岗区", "street": "坂田街道",
             "industry": "人工智能", "section": "I", "high_tech": "是", "cert_no": "GR202344000001",
             "cert_date": "2023-12-01", "sme_tier": "专精特新中小企业", "invention": 3, "utility": 5, "design": 0,
             "software": 2, "contact_name": "张三", "contact_mobile": "13800138000"},
))
