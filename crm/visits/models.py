"""Visits (走访) with companions and financing needs, and follow-up tasks."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import SoftDeleteMixin, TimestampMixin, UTCDateTime, VersionMixin, enum_type, fk
from crm.core.scoping import tenant_model
from crm.extensions import db

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.firms.models import Contact, Firm
    from crm.orgs.models import Campaign, Organisation


@tenant_model
class Visit(TimestampMixin, VersionMixin, SoftDeleteMixin, db.Model):
    """A visit to a firm by a bank's RM, possibly with companions (a joint visit with the bureau)."""

    __tablename__ = "visit"
    __repr_keys__ = ("firm_id", "visited_on")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    branch_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    campaign_id: Mapped[int] = fk("campaign.id")
    firm_id: Mapped[int] = fk("firm.id")
    rm_id: Mapped[int] = fk("user.id")
    visited_on: Mapped[date] = mapped_column(index=True)
    mode_code: Mapped[str] = fk("visit_mode.code")
    contact_id: Mapped[Optional[int]] = fk("contact.id", nullable=True)
    #: confidential to the bank (and the visit's companions)
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    willingness_code: Mapped[Optional[str]] = fk("willingness_level.code", nullable=True)
    need_amount_fen: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    need_term_months: Mapped[Optional[int]]
    need_purpose: Mapped[str] = mapped_column(sa.String(200), default="")
    need_guarantee: Mapped[str] = mapped_column(sa.String(100), default="")
    wants_subsidy: Mapped[bool] = mapped_column(default=False)
    wants_risk_compensation: Mapped[bool] = mapped_column(default=False)
    next_step: Mapped[str] = mapped_column(sa.String(300), default="")
    next_step_owner_id: Mapped[Optional[int]] = fk("user.id", nullable=True)
    next_step_due_on: Mapped[Optional[date]]
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    firm: Mapped["Firm"] = relationship()
    rm: Mapped["User"] = relationship(foreign_keys=[rm_id])
    branch: Mapped[Optional["Organisation"]] = relationship(foreign_keys=[branch_id])
    campaign: Mapped["Campaign"] = relationship()
    contact: Mapped[Optional["Contact"]] = relationship()
    next_step_owner: Mapped[Optional["User"]] = relationship(foreign_keys=[next_step_owner_id])
    companions: Mapped[list["User"]] = relationship(secondary="visit_companion")

    __table_args__ = (
        sa.CheckConstraint("need_amount_fen IS NULL OR need_amount_fen >= 0", name="need_not_negative"),
        sa.CheckConstraint("need_term_months IS NULL OR need_term_months > 0", name="term_positive"),
        # a bank's visits to a firm, newest first (account refresh on save, firm filters, timeline); 0009
        sa.Index("ix_visit_bank_firm_visited_on", "bank_id", "firm_id", "visited_on"),
        # a campaign's visits by date with every column the dashboard reads, so it never reads the table; 0010
        # (and the id, which SQLite's entries hold anyway; 0012)
        sa.Index("ix_visit_dashboard", "campaign_id", "visited_on", "is_deleted", "bank_id", "branch_id", "firm_id",
                 "rm_id", "need_amount_fen", postgresql_include=["id"]),
        # the same by firm and by RM: the dashboard's statements for one shard of firms or of users; 0013
        sa.Index("ix_visit_firm_shard", "campaign_id", "firm_id", "visited_on", "is_deleted", "bank_id", "branch_id",
                 "rm_id", "need_amount_fen", postgresql_include=["id"]),
        sa.Index("ix_visit_rm_shard", "campaign_id", "rm_id", "visited_on", "is_deleted", "bank_id", "branch_id",
                 "firm_id", postgresql_include=["id"]),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id

    def can_read_notes(self, user) -> bool:
        """The summary is the bank's: its own users, the admin, and companions on the visit."""
        if user.is_admin or (user.bank_id is not None and user.bank_id == self.bank_id):
            return True
        return any(c.id == user.id for c in self.companions)


visit_companion = sa.Table(
    "visit_companion",
    db.metadata,
    sa.Column("visit_id", sa.ForeignKey("visit.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user.id"), primary_key=True, index=True),
)


class FollowUpStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


@tenant_model
class FollowUp(TimestampMixin, VersionMixin, db.Model):
    """A task on a firm with an assignee and a due date."""

    __tablename__ = "follow_up"
    __repr_keys__ = ("title", "due_on", "status")
    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = fk("organisation.id")
    firm_id: Mapped[int] = fk("firm.id")
    visit_id: Mapped[Optional[int]] = fk("visit.id", nullable=True)
    assignee_id: Mapped[int] = fk("user.id")
    title: Mapped[str] = mapped_column(sa.String(300))
    due_on: Mapped[date] = mapped_column(index=True)
    status: Mapped[FollowUpStatus] = mapped_column(
        enum_type(FollowUpStatus, "follow_up_status"), default=FollowUpStatus.OPEN
    )
    done_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    firm: Mapped["Firm"] = relationship()
    visit: Mapped[Optional[Visit]] = relationship()
    assignee: Mapped["User"] = relationship(foreign_keys=[assignee_id])

    __table_args__ = (sa.Index("ix_follow_up_assignee_status_due", "assignee_id", "status", "due_on"),
                      # a bank's overdue follow-ups and their count per branch (migration 0017)
                      sa.Index("ix_follow_up_bank_status_due", "bank_id", "status", "due_on", "assignee_id",
                               postgresql_include=["id"]))

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return cls.bank_id == bank_id
