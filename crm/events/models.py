"""Matchmaking events (银企对接活动), their organisers and staff, and registrations (报名/签到)."""
from __future__ import annotations

import enum
import secrets
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import TimestampMixin, UTCDateTime, VersionMixin, enum_type, fk
from crm.core.scoping import tenant_model
from crm.extensions import db
from crm.orgs.models import Organisation

if TYPE_CHECKING:
    from crm.auth.models import User
    from crm.core.models import Industry
    from crm.firms.models import Firm
    from crm.orgs.models import Campaign


class EventKind(enum.StrEnum):
    PARK = "park"  #: 园区专场
    INDUSTRY = "industry"  #: 行业专场
    BANK = "bank"  #: 银行专场
    ONLINE = "online"  #: 线上对接
    POLICY = "policy"  #: 政策宣讲


class EventStatus(enum.StrEnum):
    PLANNED = "planned"
    HELD = "held"
    CANCELLED = "cancelled"


def new_public_token() -> str:
    return secrets.token_urlsafe(16)


event_organiser = sa.Table(
    "event_organiser",
    db.metadata,
    sa.Column("event_id", sa.ForeignKey("event.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("org_id", sa.ForeignKey("organisation.id"), primary_key=True, index=True),
)

event_industry = sa.Table(
    "event_industry",
    db.metadata,
    sa.Column("event_id", sa.ForeignKey("event.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("industry_code", sa.ForeignKey("industry.code"), primary_key=True, index=True),
)

event_staff = sa.Table(
    "event_staff",
    db.metadata,
    sa.Column("event_id", sa.ForeignKey("event.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("user.id"), primary_key=True, index=True),
)


#: the tenant condition's own organiser rows: a subquery correlates to any table of its statement with the same name,
#: so with the plain tables a statement joining ``event_organiser`` or ``organisation`` itself would have its own rows
#: tested instead of the event's organisers
_SCOPE_ORGANISER = event_organiser.alias("scope_event_organiser")
_SCOPE_ORG = Organisation.__table__.alias("scope_organisation")


def _organised_by(event_id, bank_id):
    """Whether the event ``event_id`` (a column of the outer statement) is organised by the bank or one of its
    branches.

    A correlated EXISTS, probed per row through the organisers' (event_id, org_id) key: an ``IN (subquery)``
    made SQLite list every organiser row of the campaign (16,000 at scale 1, about 1 ms) to show one firm's
    three registrations on its page.
    """
    return sa.exists().where(
        _SCOPE_ORGANISER.c.event_id == event_id, _SCOPE_ORGANISER.c.org_id == _SCOPE_ORG.c.id,
        sa.or_(_SCOPE_ORG.c.id == bank_id, _SCOPE_ORG.c.parent_id == bank_id))


@tenant_model
class Event(TimestampMixin, VersionMixin, db.Model):
    """A bank–enterprise matchmaking event. A bank sees the events its bank or branches organise."""

    __tablename__ = "event"
    __repr_keys__ = ("code", "title")
    id: Mapped[int] = mapped_column(primary_key=True)
    #: 活动编号, the ledger key
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    campaign_id: Mapped[int] = fk("campaign.id")
    title: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[EventKind] = mapped_column(enum_type(EventKind, "event_kind"))
    held_on: Mapped[date] = mapped_column(index=True)
    start_time: Mapped[Optional[time]]
    end_time: Mapped[Optional[time]]
    venue: Mapped[str] = mapped_column(sa.String(200), default="")
    capacity: Mapped[Optional[int]]
    status: Mapped[EventStatus] = mapped_column(enum_type(EventStatus, "event_status"), default=EventStatus.PLANNED)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    deals_signed: Mapped[int] = mapped_column(default=0)
    deals_signed_fen: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    intentions: Mapped[int] = mapped_column(default=0)
    intentions_fen: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    #: the secret part of the public self-registration link; NULL while unpublished
    public_token: Mapped[Optional[str]] = mapped_column(sa.String(32), unique=True)
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    campaign: Mapped["Campaign"] = relationship()
    organisers: Mapped[list["Organisation"]] = relationship(secondary=event_organiser)
    industries: Mapped[list["Industry"]] = relationship(secondary=event_industry)
    staff: Mapped[list["User"]] = relationship(secondary=event_staff)
    registrations: Mapped[list["Registration"]] = relationship(back_populates="event")

    __table_args__ = (
        sa.CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        sa.CheckConstraint("end_time IS NULL OR start_time IS NULL OR end_time >= start_time", name="end_after_start"),
        sa.CheckConstraint(
            "deals_signed >= 0 AND deals_signed_fen >= 0 AND intentions >= 0 AND intentions_fen >= 0",
            name="outcome_not_negative",
        ),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return _organised_by(cls.id, bank_id)


class RegistrationSource(enum.StrEnum):
    INVITED = "invited"
    SELF = "self"
    BUREAU = "bureau"
    WALK_IN = "walk_in"


class RegistrationStatus(enum.StrEnum):
    REGISTERED = "registered"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class CheckinMethod(enum.StrEnum):
    STAFF = "staff"
    QR = "qr"
    PAPER = "paper"


def new_checkin_token() -> str:
    return secrets.token_urlsafe(12)


@tenant_model
class Registration(TimestampMixin, VersionMixin, db.Model):
    """A person from a firm registered for an event; checked in when they came."""

    __tablename__ = "registration"
    __repr_keys__ = ("event_id", "person_name")
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = fk("event.id", ondelete="CASCADE")
    firm_id: Mapped[int] = fk("firm.id")
    person_name: Mapped[str] = mapped_column(sa.String(60))
    person_title: Mapped[str] = mapped_column(sa.String(60), default="")
    mobile: Mapped[str] = mapped_column(sa.String(11))
    need_summary: Mapped[str] = mapped_column(sa.String(300), default="")
    preferred_bank_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    source: Mapped[RegistrationSource] = mapped_column(enum_type(RegistrationSource, "registration_source"))
    status: Mapped[RegistrationStatus] = mapped_column(
        enum_type(RegistrationStatus, "registration_status"), default=RegistrationStatus.REGISTERED
    )
    checked_in_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    checkin_method: Mapped[Optional[CheckinMethod]] = mapped_column(enum_type(CheckinMethod, "checkin_method"))
    absence_reason: Mapped[str] = mapped_column(sa.String(200), default="")
    remarks: Mapped[str] = mapped_column(sa.String(300), default="")
    #: when the person consented to the processing of personal data (self-registration)
    consent_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    #: printed on the confirmation as a QR code; scanning it checks the person in
    checkin_token: Mapped[str] = mapped_column(sa.String(24), unique=True, default=new_checkin_token)
    created_by_id: Mapped[Optional[int]] = fk("user.id", nullable=True)

    event: Mapped[Event] = relationship(back_populates="registrations")
    firm: Mapped["Firm"] = relationship()
    preferred_bank: Mapped[Optional["Organisation"]] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("event_id", "mobile"),
        sa.CheckConstraint(
            "(checked_in_at IS NULL AND checkin_method IS NULL) OR (checked_in_at IS NOT NULL AND checkin_method IS NOT NULL)",
            name="checkin_complete",
        ),
        # an event's firms and whether they came (the dashboard's attendances read only this index); 0010
        sa.Index("ix_registration_event_firm_checked_in", "event_id", "firm_id", "checked_in_at"),
        # a range of firms' check-ins (the dashboard's statements for one shard of firms); 0013
        sa.Index("ix_registration_firm_event_checked_in", "firm_id", "event_id", "checked_in_at"),
    )

    @classmethod
    def __tenant_criteria__(cls, bank_id):
        return _organised_by(cls.event_id, bank_id)

    @property
    def is_checked_in(self) -> bool:
        return self.checked_in_at is not None


class ExportColumnSet(TimestampMixin, db.Model):
    """A named choice of attendee-list columns saved by a user."""

    __tablename__ = "export_column_set"
    __repr_keys__ = ("name",)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = fk("user.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(sa.String(60))
    #: JSON list of column keys
    columns: Mapped[str] = mapped_column(sa.Text)
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)
