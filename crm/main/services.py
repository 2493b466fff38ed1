"""Numbers for the home page, through the scoped session."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crm.core.formatting import today_local
from crm.credit.models import OPEN_STAGES, CreditApplication
from crm.events.models import Event, EventStatus
from crm.extensions import db
from crm.visits.models import FollowUp, FollowUpStatus, Visit


@dataclass
class HomeSummary:
    my_overdue: int
    my_due_today: int
    visits_30d: int
    open_applications: int
    upcoming_events: list
    recent_visits: list


def home_summary(user) -> HomeSummary:
    """What the user should see first; all counts go through the tenant scope."""
    today = today_local()
    my_open = sa.and_(FollowUp.assignee_id == user.id, FollowUp.status == FollowUpStatus.OPEN)
    overdue = db.session.scalar(sa.select(sa.func.count()).select_from(FollowUp).where(my_open, FollowUp.due_on < today))
    due_today = db.session.scalar(
        sa.select(sa.func.count()).select_from(FollowUp).where(my_open, FollowUp.due_on == today)
    )
    from datetime import timedelta

    visits_30d = db.session.scalar(
        sa.select(sa.func.count()).select_from(Visit).where(
            Visit.is_deleted.is_(False), Visit.visited_on >= today - timedelta(days=30)
        )
    )
    open_apps = db.session.scalar(
        sa.select(sa.func.count()).select_from(CreditApplication).where(CreditApplication.stage.in_(OPEN_STAGES))
    )
    upcoming = db.session.scalars(
        sa.select(Event).where(Event.held_on >= today, Event.status == EventStatus.PLANNED).order_by(Event.held_on).limit(5)
    ).all()
    recent_q = sa.select(Visit).where(Visit.is_deleted.is_(False))
    if user.is_bank_user and user.role == "rm":
        recent_q = recent_q.where(Visit.rm_id == user.id)
    recent = db.session.scalars(
        recent_q.order_by(Visit.visited_on.desc(), Visit.id.desc()).limit(8).options(sa.orm.selectinload(Visit.firm))
    ).all()
    return HomeSummary(overdue or 0, due_today or 0, visits_30d or 0, open_apps or 0, list(upcoming), list(recent))
