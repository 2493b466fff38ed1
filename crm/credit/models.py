"""Credit applications (授信) with stage history, IP assets, pledges, valuations and securitisation pools."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import TimestampMixin, UTCDateTime, VersionMixin, enum_type, fk, utcnow
from crm.core.scoping import tenant_model
from crm.extensions import db

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.core.models import CreditProduct, DeclineReason
    from crm.firms.models import Firm
    from crm.orgs.models import Campaign, Organisation


class Stage(enum.StrEnum):
    ACCEPTED = "accepted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    CONTRACTED = "contracted"
    PLEDGE_REGISTERED = "pledge_registered"
    DISBURSED = "disbursed"
    REPAID = "repaid"


#: stages at which the application has been approved (it counts as granted credit)
APPROVED_STAGES = frozenset(
    {Stage.APPROVED, Stage.CONTRACTED, Stage.PLEDGE_REGISTERED, Stage.DISBURSED, Stage.REPAID}
)
DECIDED_STAGES = APPROVED_STAGES | {Stage.DECLINED}
OPEN_STAGES = frozenset({Stage.ACCEPTED, Stage.UNDER_REVIEW})


@tenant_model
class SecuritisationPool(TimestampMixin, db.Model):
    """An exchange-listed product pooling many IP-pledge loans."""

    __tablename__ = "securitisation_pool"
    __repr_keys__ = ("name",)
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    name: Mapped[str] = mapped_column(sa.String(200))
    exchange: Mapped[str] = mapped_column(sa.String(60))
    issue_on: Mapped[Optional[date]]
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    loans: Mapped[list["CreditApplication"]] = relationship(back_populates="pool")
    __table_args__ = (sa.UniqueConstraint("bank_id", "name"),)

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id


@tenant_model
class CreditApplication(TimestampMixin, VersionMixin, db.Model):
    """A firm's credit application at a bank, from acceptance to repayment."""

    __tablename__ = "credit_application"
    __repr_keys__ = ("firm_id", "stage")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    branch_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    rm_id: Mapped[int] = fk("user.id")
    campaign_id: Mapped[int] = fk("campaign.id")
    firm_id: Mapped[int] = fk("firm.id")
    product_code: Mapped[str] = fk("credit_product.code")
    requested_fen: Mapped[int] = mapped_column(sa.BigInteger)
    #: materials complete: the SLA clock starts the next day
    accepted_on: Mapped[date] = mapped_column(index=True)
    #: the term the firm asked for (months); lets pledges be checked against the expected maturity early
    requested_term_months: Mapped[Optional[int]]
    stage: Mapped[Stage] = mapped_column(enum_type(Stage, "credit_stage"), default=Stage.ACCEPTED, index=True)
    decided_on: Mapped[Optional[date]] = mapped_column(index=True)
    approved_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    #: executed annual rate in basis points (3.45% = 345)
    rate_bp: Mapped[Optional[int]]
    discount_bp: Mapped[Optional[int]]
    term_months: Mapped[Optional[int]]
    guarantee: Mapped[str] = mapped_column(sa.String(200), default="")
    is_first_loan: Mapped[bool] = mapped_column(default=False)
    in_risk_pool: Mapped[bool] = mapped_column(default=False)
    has_subsidy: Mapped[bool] = mapped_column(default=False)
    decline_reason_code: Mapped[Optional[str]] = fk("decline_reason.code", nullable=True)
    #: the firm's high-tech status on the decision day, frozen at the decision
    high_tech_at_decision: Mapped[Optional[bool]]
    disbursed_on: Mapped[Optional[date]]
    disbursed_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    matures_on: Mapped[Optional[date]]
    pool_id: Mapped[Optional[int]] = fk("securitisation_pool.id", nullable=True)
    remarks: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    firm: Mapped["Firm"] = relationship()
    bank: Mapped["Organisation"] = relationship(foreign_keys=[bank_id])
    rm: Mapped["User"] = relationship(foreign_keys=[rm_id])
    branch: Mapped[Optional["Organisation"]] = relationship(foreign_keys=[branch_id])
    campaign: Mapped["Campaign"] = relationship()
    product: Mapped["CreditProduct"] = relationship()
    decline_reason: Mapped[Optional["DeclineReason"]] = relationship()
    pool: Mapped[Optional[SecuritisationPool]] = relationship(back_populates="loans")
    history: Mapped[list["StageChange"]] = relationship(
        back_populates="application", order_by="StageChange.id", cascade="all, delete-orphan"
    )
    pledges: Mapped[list["Pledge"]] = relationship(back_populates="application", order_by="Pledge.id")
    valuations: Mapped[list["Valuation"]] = relationship(back_populates="application", order_by="Valuation.id")

    __table_args__ = (
        sa.CheckConstraint("requested_fen > 0", name="requested_positive"),
        sa.CheckConstraint("approved_fen IS NULL OR approved_fen >= 0", name="approved_not_negative"),
        sa.CheckConstraint("disbursed_fen IS NULL OR disbursed_fen >= 0", name="disbursed_not_negative"),
        sa.CheckConstraint("discount_bp IS NULL OR (discount_bp >= 0 AND discount_bp <= 20)", name="discount_range"),
        sa.CheckConstraint("rate_bp IS NULL OR (rate_bp >= 0 AND rate_bp <= 5000)", name="rate_range"),
        sa.CheckConstraint("term_months IS NULL OR term_months > 0", name="term_positive"),
        sa.CheckConstraint("decided_on IS NULL OR decided_on >= accepted_on", name="decided_after_accepted"),
        sa.Index("ix_credit_application_bank_stage", "bank_id", "stage"),
        # the dashboard's decided / disbursed in a campaign and date range (0009)
        sa.Index("ix_credit_application_campaign_decided_on", "campaign_id", "decided_on"),
        sa.Index("ix_credit_application_campaign_disbursed_on", "campaign_id", "disbursed_on"),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id

    @property
    def is_approved(self) -> bool:
        return self.stage in APPROVED_STAGES

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_STAGES


@tenant_model
class StageChange(db.Model):
    """One transition of an application: from, to, the business date, who and when."""

    __tablename__ = "stage_change"
    __repr_keys__ = ("from_stage", "to_stage")
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = fk("credit_application.id", ondelete="CASCADE")
    bank_id: Mapped[int] = fk("organisation.id")
    from_stage: Mapped[Optional[Stage]] = mapped_column(enum_type(Stage, "stage_change_from"))
    to_stage: Mapped[Stage] = mapped_column(enum_type(Stage, "stage_change_to"))
    changed_on: Mapped[date]
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    note: Mapped[str] = mapped_column(sa.String(300), default="")

    application: Mapped[CreditApplication] = relationship(back_populates="history")
    by: Mapped[Optional["User"]] = relationship()

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id


class PatentKind(enum.StrEnum):
    INVENTION = "invention"
    UTILITY_MODEL = "utility_model"
    DESIGN = "design"
    PCT_INVENTION = "pct_invention"
    PCT_UTILITY_MODEL = "pct_utility_model"


class OwnerRelation(enum.StrEnum):
    SELF = "self"
    PARENT = "parent"
    SUBSIDIARY = "subsidiary"
    CONTROLLING_SHAREHOLDER = "controlling_shareholder"
    HK_AFFILIATE = "hk_affiliate"


class IpAsset(TimestampMixin, db.Model):
    """A patent as CNIPA records it; public data, shared by every bank."""

    __tablename__ = "ip_asset"
    __repr_keys__ = ("patent_no",)
    id: Mapped[int] = mapped_column(primary_key=True)
    #: canonical application number, YYYYTNNNNNNN.C (shown with the ZL prefix)
    patent_no: Mapped[str] = mapped_column(sa.String(20), unique=True)
    kind: Mapped[PatentKind] = mapped_column(enum_type(PatentKind, "patent_kind"))
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    granted_on: Mapped[Optional[date]]
    expires_on: Mapped[Optional[date]]
    legal_status: Mapped[str] = mapped_column(sa.String(40), default="")
    owner_name: Mapped[str] = mapped_column(sa.String(200), default="")
    __table_args__ = (
        sa.CheckConstraint("expires_on IS NULL OR granted_on IS NULL OR expires_on > granted_on", name="expiry_after_grant"),
    )


class PledgeStatus(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


@tenant_model
class Pledge(TimestampMixin, VersionMixin, db.Model):
    """A patent pledged for an application; at most one active pledge per patent."""

    __tablename__ = "pledge"
    __repr_keys__ = ("ip_asset_id", "status")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    application_id: Mapped[int] = fk("credit_application.id")
    ip_asset_id: Mapped[int] = fk("ip_asset.id")
    owner_relation: Mapped[OwnerRelation] = mapped_column(enum_type(OwnerRelation, "owner_relation"))
    #: licence from the owner to the borrower (cross-border cases)
    licence_no: Mapped[str] = mapped_column(sa.String(60), default="")
    licence_note: Mapped[str] = mapped_column(sa.String(300), default="")
    #: CNIPA pledge registration number and date
    registration_no: Mapped[str] = mapped_column(sa.String(60), default="")
    registered_on: Mapped[Optional[date]]
    secured_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    status: Mapped[PledgeStatus] = mapped_column(enum_type(PledgeStatus, "pledge_status"), default=PledgeStatus.ACTIVE)
    released_on: Mapped[Optional[date]]

    application: Mapped[CreditApplication] = relationship(back_populates="pledges")
    ip_asset: Mapped[IpAsset] = relationship()

    __table_args__ = (
        sa.CheckConstraint("secured_fen IS NULL OR secured_fen >= 0", name="secured_not_negative"),
        sa.Index("uq_pledge_active_asset", "ip_asset_id", unique=True,
                 postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'")),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id


@tenant_model
class Valuation(TimestampMixin, db.Model):
    """A valuation of pledged IP, with the 3-working-day promise tracked like the SLA."""

    __tablename__ = "valuation"
    __repr_keys__ = ("valuer", "amount_fen")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    application_id: Mapped[int] = fk("credit_application.id")
    ip_asset_id: Mapped[Optional[int]] = fk("ip_asset.id", nullable=True)
    valuer: Mapped[str] = mapped_column(sa.String(120))
    amount_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    requested_on: Mapped[date]
    completed_on: Mapped[Optional[date]]

    application: Mapped[CreditApplication] = relationship(back_populates="valuations")
    ip_asset: Mapped[Optional[IpAsset]] = relationship()

    __table_args__ = (
        sa.CheckConstraint("amount_fen IS NULL OR amount_fen >= 0", name="amount_not_negative"),
        sa.CheckConstraint("completed_on IS NULL OR completed_on >= requested_on", name="completed_after_requested"),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id
