"""Reference data, calendar overrides and the audit trail."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import UTCDateTime, fk, utcnow
from crm.core.scoping import tenant_model
from crm.extensions import db


class Industry(db.Model):
    """Industry tag of a firm: the six priority industries, plus ``other``."""

    __tablename__ = "industry"
    __repr_keys__ = ("code",)
    code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    name_zh: Mapped[str] = mapped_column(sa.String(40))
    name_en: Mapped[str] = mapped_column(sa.String(60))
    is_priority: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)


class IndustrySection(db.Model):
    """GB/T 4754-2017 section (门类) A–T with its two-digit division range."""

    __tablename__ = "industry_section"
    __repr_keys__ = ("code",)
    code: Mapped[str] = mapped_column(sa.String(1), primary_key=True)
    name_zh: Mapped[str] = mapped_column(sa.String(60))
    first_division: Mapped[int]
    last_division: Mapped[int]
    __table_args__ = (sa.CheckConstraint("first_division <= last_division", name="division_range"),)


class Area(db.Model):
    """A Shenzhen district, functional area or cooperation zone."""

    __tablename__ = "area"
    __repr_keys__ = ("code", "name")
    code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  #: district / functional / cooperation
    gb2260_code: Mapped[Optional[str]] = mapped_column(sa.String(6))
    sort_order: Mapped[int] = mapped_column(default=0)
    streets: Mapped[list["Street"]] = relationship(back_populates="area", order_by="Street.sort_order")


class Street(db.Model):
    """A sub-district (街道) or town inside an area."""

    __tablename__ = "street"
    __repr_keys__ = ("name",)
    id: Mapped[int] = mapped_column(primary_key=True)
    area_code: Mapped[str] = fk("area.code")
    name: Mapped[str] = mapped_column(sa.String(40))
    sort_order: Mapped[int] = mapped_column(default=0)
    area: Mapped[Area] = relationship(back_populates="streets")
    __table_args__ = (sa.UniqueConstraint("area_code", "name"),)


class CodeItem:
    """Columns shared by the small code lists."""

    code: Mapped[str] = mapped_column(sa.String(30), primary_key=True)
    name_zh: Mapped[str] = mapped_column(sa.String(60))
    name_en: Mapped[str] = mapped_column(sa.String(80))
    sort_order: Mapped[int] = mapped_column(default=0)


class CreditProduct(CodeItem, db.Model):
    """Credit product (业务品种)."""

    __tablename__ = "credit_product"
    #: stage order after approval: pledge registration before disbursement, or the reverse
    pledge_before_disbursement: Mapped[bool] = mapped_column(default=True)
    is_ip_pledge: Mapped[bool] = mapped_column(default=False)


class DeclineReason(CodeItem, db.Model):
    """Why an application was declined."""

    __tablename__ = "decline_reason"


class VisitMode(CodeItem, db.Model):
    """How a visit happened."""

    __tablename__ = "visit_mode"


class WillingnessLevel(CodeItem, db.Model):
    """The firm's willingness to borrow after a visit; rank 1 is the strongest."""

    __tablename__ = "willingness_level"
    rank: Mapped[int] = mapped_column(default=0)


class HolidayOverride(db.Model):
    """An admin-entered working day or day off that wins over the PRC calendar library."""

    __tablename__ = "holiday_override"
    __repr_keys__ = ("day", "is_workday")
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(unique=True)
    is_workday: Mapped[bool]
    note: Mapped[str] = mapped_column(sa.String(200), default="")
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@tenant_model
class AuditEntry(db.Model):
    """One audited event: who, when, from where, what, before and after. Append-only."""

    __tablename__ = "audit_entry"
    __repr_keys__ = ("action", "object_type", "object_id")
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    #: the bank whose data this is (None: shared or system data)
    bank_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    action: Mapped[str] = mapped_column(sa.String(40), index=True)
    object_type: Mapped[str] = mapped_column(sa.String(40), default="")
    object_id: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    #: JSON texts; never a password or a full mobile number
    before: Mapped[Optional[str]] = mapped_column(sa.Text)
    after: Mapped[Optional[str]] = mapped_column(sa.Text)
    detail: Mapped[str] = mapped_column(sa.String(500), default="")
    __table_args__ = (sa.Index("ix_audit_entry_object", "object_type", "object_id", "bank_id"),)

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id
