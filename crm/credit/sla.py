"""Working-day promises: the approval SLA of an application and the 3-day valuation promise.

One definition everywhere (DOMAIN.md): the count runs from the day after the start (acceptance, or the
valuation request) to the decision (or completion) day inclusive, in PRC working days (make-up days count,
holidays do not; years the calendar library lacks fall back to Monday-Friday plus admin overrides, and the
result is *provisional*). A promise is met when that count is at most the promised number of days.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Mapping, Optional

import sqlalchemy as sa

from crm.core.models import HolidayOverride
from crm.core.workdays import CALENDAR_RULE_FALLBACK, add_workdays, sla_tier_days, workdays_between
from crm.extensions import db

#: the valuer's promise (ICBC case): a valuation within 3 working days of the request
VALUATION_PROMISE_DAYS = 3
#: an open item with this many working days left, or fewer, is "due soon"
DUE_SOON_DAYS = 1

Overrides = Mapping[date, bool]


def load_overrides() -> dict[date, bool]:
    """The admin's calendar overrides as the ``{date: is_workday}`` mapping the workday functions take."""
    rows = db.session.execute(sa.select(HolidayOverride.day, HolidayOverride.is_workday)).all()
    return {day: bool(is_workday) for day, is_workday in rows}


@dataclass(frozen=True)
class Promise:
    """The state of a working-day promise on a given day."""

    days: int  #: promised working days
    start: date
    deadline: date  #: the last working day that still meets the promise
    finished_on: Optional[date]  #: decision / completion day, None while open
    elapsed: int  #: working days used (to the finish, or to today while open)
    provisional: bool  #: the fallback calendar was used somewhere

    @property
    def is_open(self) -> bool:
        return self.finished_on is None

    @property
    def days_left(self) -> int:
        """Working days left after today (0: due today; negative: working days overdue)."""
        return self.days - self.elapsed

    @property
    def met(self) -> Optional[bool]:
        """True/False once finished; None while open."""
        if self.finished_on is None:
            return None
        return self.elapsed <= self.days

    @property
    def breached(self) -> bool:
        return self.elapsed > self.days

    @property
    def due_soon(self) -> bool:
        return self.is_open and not self.breached and self.days_left <= DUE_SOON_DAYS

    @property
    def state(self) -> str:
        """open / due_soon / breached (open) or met / missed (finished)."""
        if self.finished_on is not None:
            return "met" if self.met else "missed"
        if self.breached:
            return "breached"
        return "due_soon" if self.due_soon else "open"


def promise(start: date, days: int, finished_on: Optional[date], today: date,
            overrides: Optional[Overrides] = None) -> Promise:
    """Evaluate a promise of ``days`` working days counted from the day after ``start``."""
    deadline = add_workdays(start, days, overrides)
    end = finished_on if finished_on is not None else today
    count = workdays_between(start, end, overrides)
    provisional = deadline.provisional or count.provisional
    return Promise(days, start, deadline.day, finished_on, count.count, provisional)


def application_sla(app, today: date, overrides: Optional[Overrides] = None) -> Optional[Promise]:
    """The approval SLA of an application; None once it was withdrawn (never decided, nothing to measure)."""
    from crm.credit.models import Stage

    if app.stage == Stage.WITHDRAWN:
        return None
    days = sla_tier_days(int(app.requested_fen))
    finished = app.decided_on if not app.is_open else None
    return promise(app.accepted_on, days, finished, today, overrides)


def sla_met(accepted_on: date, decided_on: date, requested_fen: int, overrides: Optional[Overrides] = None) -> bool:
    """Was a decision within the tier's working days? (the SLA hit-rate definition)"""
    return workdays_between(accepted_on, decided_on, overrides).count <= sla_tier_days(int(requested_fen))


def valuation_promise(valuation, today: date, overrides: Optional[Overrides] = None) -> Promise:
    return promise(valuation.requested_on, VALUATION_PROMISE_DAYS, valuation.completed_on, today, overrides)


def uses_fallback(rule: str) -> bool:
    return rule == CALENDAR_RULE_FALLBACK
