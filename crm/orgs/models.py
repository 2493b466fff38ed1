"""Organisations, campaigns, participating organisations and targets."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import TimestampMixin, enum_type, fk
from crm.extensions import db


class OrgKind(enum.StrEnum):
    BANK = "bank"  #: a bank, or a branch (经营机构) when it has a parent bank
    BUREAU = "bureau"
    STREET = "street"
    PARK = "park"


class Organisation(TimestampMixin, db.Model):
    """A bank (branches are banks with a parent), the bureau, a sub-district office or a park."""

    __tablename__ = "organisation"
    __repr_keys__ = ("code", "name")
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    short_name: Mapped[str] = mapped_column(sa.String(40), default="")
    kind: Mapped[OrgKind] = mapped_column(enum_type(OrgKind, "org_kind"))
    parent_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)

    parent: Mapped[Optional["Organisation"]] = relationship(
        remote_side="Organisation.id", back_populates="children"
    )
    children: Mapped[list["Organisation"]] = relationship(back_populates="parent", order_by="Organisation.code")

    __table_args__ = (sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),)

    @property
    def is_branch(self) -> bool:
        return self.kind == OrgKind.BANK and self.parent_id is not None

    @property
    def bank(self) -> Optional["Organisation"]:
        """The top-level bank of a bank or branch; None for other kinds."""
        if self.kind != OrgKind.BANK:
            return None
        org = self
        while org.parent is not None:
            org = org.parent
        return org

    @property
    def display_name(self) -> str:
        return self.short_name or self.name


class Campaign(TimestampMixin, db.Model):
    """An outreach campaign (专项活动) with a window, participants and targets."""

    __tablename__ = "campaign"
    __repr_keys__ = ("code",)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    district: Mapped[str] = mapped_column(sa.String(40))
    start_on: Mapped[date]
    end_on: Mapped[date]
    description: Mapped[str] = mapped_column(sa.Text, default="")

    organisations: Mapped[list[Organisation]] = relationship(secondary="campaign_org", order_by="Organisation.code")
    industries: Mapped[list["Industry"]] = relationship(secondary="campaign_industry")  # noqa: F821
    targets: Mapped[list["Target"]] = relationship(back_populates="campaign", cascade="all, delete-orphan")

    __table_args__ = (sa.CheckConstraint("end_on >= start_on", name="end_after_start"),)


campaign_org = sa.Table(
    "campaign_org",
    db.metadata,
    sa.Column("campaign_id", sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("org_id", sa.ForeignKey("organisation.id"), primary_key=True, index=True),
)

campaign_industry = sa.Table(
    "campaign_industry",
    db.metadata,
    sa.Column("campaign_id", sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("industry_code", sa.ForeignKey("industry.code"), primary_key=True, index=True),
)


class Target(TimestampMixin, db.Model):
    """A target for one metric: campaign-wide (org empty), per bank or per branch.

    Counts are plain numbers; amount metrics are in fen.
    """

    __tablename__ = "target"
    __repr_keys__ = ("metric", "value")
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = fk("campaign.id", ondelete="CASCADE")
    org_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    metric: Mapped[str] = mapped_column(sa.String(40))
    value: Mapped[int] = mapped_column(sa.BigInteger)
    set_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    campaign: Mapped[Campaign] = relationship(back_populates="targets")
    org: Mapped[Optional[Organisation]] = relationship()

    __table_args__ = (
        sa.CheckConstraint("value >= 0", name="value_not_negative"),
        sa.Index("uq_target_campaign_org_metric", "campaign_id", "org_id", "metric", unique=True,
                 postgresql_where=sa.text("org_id IS NOT NULL"), sqlite_where=sa.text("org_id IS NOT NULL")),
        sa.Index("uq_target_campaign_metric", "campaign_id", "metric", unique=True,
                 postgresql_where=sa.text("org_id IS NULL"), sqlite_where=sa.text("org_id IS NULL")),
    )
