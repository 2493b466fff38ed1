"""Firms (one shared master record each), each bank's relationship with a firm, and contacts."""
from __future__ import annotations

import enum
from datetime import date, timedelta
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import SoftDeleteMixin, TimestampMixin, VersionMixin, enum_type, fk
from crm.core.scoping import tenant_model
from crm.extensions import db

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.core.models import Area, Industry, IndustrySection, Street


class SizeClass(enum.StrEnum):
    LARGE = "large"
    MEDIUM = "medium"
    SMALL = "small"
    MICRO = "micro"


class SmeTier(enum.StrEnum):
    NONE = "none"
    INNOVATIVE = "innovative"  #: 创新型中小企业
    SPECIALISED = "specialised"  #: 专精特新中小企业
    LITTLE_GIANT = "little_giant"  #: 专精特新"小巨人"


HIGH_TECH_VALID_YEARS = 3


class Firm(TimestampMixin, VersionMixin, db.Model):
    """A technology firm, keyed by its unified social credit code; shared by every bank."""

    __tablename__ = "firm"
    __repr_keys__ = ("credit_code", "name")
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), index=True)
    #: 统一社会信用代码, normalised, check character verified
    credit_code: Mapped[str] = mapped_column(sa.String(18), unique=True)
    area_code: Mapped[Optional[str]] = fk("area.code", nullable=True)
    street_id: Mapped[Optional[int]] = fk("street.id", nullable=True)
    industry_code: Mapped[str] = fk("industry.code")
    section_code: Mapped[Optional[str]] = fk("industry_section.code", nullable=True)
    size_class: Mapped[Optional[SizeClass]] = mapped_column(enum_type(SizeClass, "size_class"))
    founded_on: Mapped[Optional[date]]
    registered_capital_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    headcount: Mapped[Optional[int]]
    high_tech_cert_no: Mapped[Optional[str]] = mapped_column(sa.String(40))
    #: the certificate's issue date; it is valid for three years from then
    high_tech_issued_on: Mapped[Optional[date]]
    sme_tier: Mapped[SmeTier] = mapped_column(enum_type(SmeTier, "sme_tier"), default=SmeTier.NONE)
    is_tech_sme: Mapped[bool] = mapped_column(default=False)
    invention_patents: Mapped[int] = mapped_column(default=0)
    utility_models: Mapped[int] = mapped_column(default=0)
    design_patents: Mapped[int] = mapped_column(default=0)
    software_copyrights: Mapped[int] = mapped_column(default=0)
    #: HK-related (cross-border) firm
    is_cross_border: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    area: Mapped[Optional["Area"]] = relationship()
    street: Mapped[Optional["Street"]] = relationship()
    industry: Mapped["Industry"] = relationship()
    section: Mapped[Optional["IndustrySection"]] = relationship()
    contacts: Mapped[list["Contact"]] = relationship(back_populates="firm", order_by="Contact.id")
    accounts: Mapped[list["FirmAccount"]] = relationship(back_populates="firm")

    __table_args__ = (
        sa.CheckConstraint("registered_capital_fen IS NULL OR registered_capital_fen >= 0", name="capital_not_negative"),
        sa.CheckConstraint("headcount IS NULL OR headcount >= 0", name="headcount_not_negative"),
        sa.CheckConstraint(
            "invention_patents >= 0 AND utility_models >= 0 AND design_patents >= 0 AND software_copyrights >= 0",
            name="ip_counts_not_negative",
        ),
        sa.CheckConstraint("length(credit_code) = 18", name="credit_code_length"),
        # name search (LIKE '%term%'): trigram GIN indexes on PostgreSQL only (pg_trgm, migration 0009); SQLite
        # scans the table (crm/firms/queries.py, docs/performance.md 4.5)
        sa.Index("ix_firm_name_trgm", "name", postgresql_using="gin",
                 postgresql_ops={"name": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
        sa.Index("ix_firm_credit_code_trgm", "credit_code", postgresql_using="gin",
                 postgresql_ops={"credit_code": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    @property
    def high_tech_expires_on(self) -> Optional[date]:
        if self.high_tech_issued_on is None:
            return None
        d = self.high_tech_issued_on
        try:
            end = d.replace(year=d.year + HIGH_TECH_VALID_YEARS)
        except ValueError:  # 29 February
            end = d.replace(year=d.year + HIGH_TECH_VALID_YEARS, day=28)
        return end - timedelta(days=1)

    def is_high_tech_on(self, day: date) -> bool:
        """High-tech status on a given day: a certificate issued on or before it and not yet expired."""
        expires = self.high_tech_expires_on
        return expires is not None and self.high_tech_issued_on <= day <= expires


@tenant_model
class FirmAccount(TimestampMixin, db.Model):
    """One bank's relationship with a firm: its owner RM and the latest state of the outreach."""

    __tablename__ = "firm_account"
    __repr_keys__ = ("bank_id", "firm_id")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    firm_id: Mapped[int] = fk("firm.id")
    branch_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    owner_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    willingness_code: Mapped[Optional[str]] = fk("willingness_level.code", nullable=True)
    last_visit_on: Mapped[Optional[date]] = mapped_column(index=True)
    #: an open financing need from the latest visit, in fen
    open_need_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)

    firm: Mapped[Firm] = relationship(back_populates="accounts")
    owner: Mapped[Optional["User"]] = relationship(foreign_keys=[owner_id])
    branch: Mapped[Optional["Organisation"]] = relationship(foreign_keys=[branch_id])  # noqa: F821

    __table_args__ = (sa.UniqueConstraint("bank_id", "firm_id"),)

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id


@tenant_model
class Contact(TimestampMixin, VersionMixin, SoftDeleteMixin, db.Model):
    """A person at a firm, recorded by one organisation, which alone sees the full mobile."""

    __tablename__ = "contact"
    __repr_keys__ = ("name",)
    id: Mapped[int] = mapped_column(primary_key=True)
    firm_id: Mapped[int] = fk("firm.id")
    #: the organisation that recorded the contact (a bank, or the bureau)
    bank_id: Mapped[int] = fk("organisation.id")
    name: Mapped[str] = mapped_column(sa.String(60))
    title: Mapped[str] = mapped_column(sa.String(60), default="")
    #: normalised mainland mobile, 11 digits
    mobile: Mapped[str] = mapped_column(sa.String(11), default="")
    email: Mapped[str] = mapped_column(sa.String(120), default="")
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    firm: Mapped[Firm] = relationship(back_populates="contacts")

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id
