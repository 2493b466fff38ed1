"""Factories and helpers for the firm, visit, follow-up and import tests (tests/factories.py stays untouched)."""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Optional, Sequence

import sqlalchemy as sa

from crm.core.models import AuditEntry
from crm.extensions import db
from tests import factories


def form_firm(name: str = "深圳市新注册科技有限公司", code: Optional[str] = None, **over) -> dict:
    """POST data for the firm form."""
    data = {
        "name": name, "credit_code": code or factories.credit_code(), "area_code": "longgang", "street_id": "",
        "industry_code": "ai", "section_code": "I", "size_class": "small", "founded_on": "2019-05-01",
        "registered_capital_wan": "500", "headcount": "42", "high_tech_cert_no": "", "high_tech_issued_on": "",
        "sme_tier": "none", "invention_patents": "3", "utility_models": "5", "design_patents": "0",
        "software_copyrights": "2",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def form_visit(firm, campaign, **over) -> dict:
    """POST data for the visit form with a financing need and a next step."""
    data = {
        "firm_id": str(firm.id), "visited_on": "2026-11-20", "mode_code": "on_site", "campaign_id": str(campaign.id),
        "summary": "企业计划扩产，需要流动资金", "willingness_code": "strong", "need_amount_wan": "500",
        "need_term_months": "12", "need_purpose": "扩大生产", "need_guarantee": "知识产权质押",
        "next_step": "送达知识产权质押贷款方案", "next_step_due_on": "2026-11-30",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def audit_actions(object_type: Optional[str] = None) -> list[str]:
    stmt = sa.select(AuditEntry.action).order_by(AuditEntry.id).execution_options(skip_tenant_scope=True)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    return list(db.session.scalars(stmt))


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).execution_options(skip_tenant_scope=True))


def csv_bytes(rows: Sequence[Sequence], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    text = buf.getvalue()
    if encoding == "utf-8-sig":
        return text.encode("utf-8-sig")
    return text.encode(encoding)


def xlsx_bytes(rows: Sequence[Sequence], *, date_cells: bool = True) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(list(row))
    if date_cells:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
