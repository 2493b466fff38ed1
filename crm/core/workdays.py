"""Working-day calendar for SLA deadlines (pure functions; callers pass admin overrides).

Rules, in order of precedence:

1. admin overrides (``Mapping[date, bool]``: True = working day, False = day off);
2. the PRC State Council schedule from the ``chinese_calendar`` library (make-up 调休 weekend
   working days count as working days) for the years it covers;
3. otherwise the fallback: Monday-Friday on, Saturday/Sunday off.

Results carry ``rule``: ``"fallback"`` if any day examined lies in a year the library does not
cover (the result is provisional and must be shown as such), else ``"prc"``. An override day
reports the rule of its year, because an admin entry for one day does not make the rest of an
uncovered year official.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Optional

import chinese_calendar

__all__ = [
    "CALENDAR_RULE_PRC",
    "CALENDAR_RULE_FALLBACK",
    "FEN_PER_WAN",
    "SLA_TIERS",
    "WorkdayResult",
    "WorkdayCount",
    "covered_years",
    "is_workday",
    "add_workdays",
    "workdays_between",
    "calendar_is_stale",
    "sla_tier_days",
    "sla_deadline",
]

CALENDAR_RULE_PRC = "prc"
CALENDAR_RULE_FALLBACK = "fallback"

Overrides = Optional[Mapping[_dt.date, bool]]


@dataclass(frozen=True)
class WorkdayResult:
    """A computed working day and the calendar rule it relied on."""

    day: _dt.date
    rule: str

    @property
    def provisional(self) -> bool:
        """True when the fallback (weekends-only) rule was used."""
        return self.rule == CALENDAR_RULE_FALLBACK


@dataclass(frozen=True)
class WorkdayCount:
    """A count of working days and the calendar rule it relied on."""

    count: int
    rule: str

    @property
    def provisional(self) -> bool:
        """True when the fallback (weekends-only) rule was used."""
        return self.rule == CALENDAR_RULE_FALLBACK


def _as_date(d: _dt.date) -> _dt.date:
    if isinstance(d, _dt.datetime):
        return d.date()
    if not isinstance(d, _dt.date):
        raise TypeError(f"expected a date, got {type(d).__name__}")
    return d


@lru_cache(maxsize=1)
def covered_years() -> range:
    """Return the range of years the installed chinese_calendar covers (2004-2026 for 1.11.0)."""
    years = [d.year for d in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


@lru_cache(maxsize=8192)
def _library_is_workday(d: _dt.date) -> Optional[bool]:
    """The library's answer for ``d``, or None when its year is not covered."""
    if d.year not in covered_years():
        return None
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:  # pragma: no cover - covered_years() already guards this
        return None


def is_workday(d: _dt.date, overrides: Overrides = None) -> tuple[bool, str]:
    """Return (is_working_day, rule) for ``d``; overrides win, then the PRC calendar, then Mon-Fri."""
    d = _as_date(d)
    lib = _library_is_workday(d)
    rule = CALENDAR_RULE_FALLBACK if lib is None else CALENDAR_RULE_PRC
    if overrides and d in overrides:
        return bool(overrides[d]), rule
    if lib is None:
        return d.weekday() < 5, rule
    return lib, rule


def add_workdays(start: _dt.date, n: int, overrides: Overrides = None) -> WorkdayResult:
    """Return the n-th working day strictly after ``start`` (n=0 returns ``start``)."""
    start = _as_date(start)
    if n < 0:
        raise ValueError("n must be >= 0")
    rule = CALENDAR_RULE_PRC
    d = start
    found = 0
    one = _dt.timedelta(days=1)
    while found < n:
        d += one
        ok, r = is_workday(d, overrides)
        if r == CALENDAR_RULE_FALLBACK:
            rule = CALENDAR_RULE_FALLBACK
        if ok:
            found += 1
    return WorkdayResult(d, rule)


@lru_cache(maxsize=64)
def _year_counts(year: int) -> tuple[tuple[int, ...], bool]:
    """``(counts, covered)`` for ``year`` without overrides: ``counts[i]`` is the number of working days among its
    first ``i`` days (``counts[0] == 0``); ``covered`` is whether the PRC calendar covers the year."""
    day = _dt.date(year, 1, 1)
    one = _dt.timedelta(days=1)
    counts = [0]
    while day.year == year:
        counts.append(counts[-1] + is_workday(day)[0])
        day += one
    return tuple(counts), year in covered_years()


def workdays_between(start: _dt.date, end: _dt.date, overrides: Overrides = None) -> WorkdayCount:
    """Count working days from the day after ``start`` to ``end`` inclusive (0 if end <= start).

    The same count as asking :func:`is_workday` day by day, from running totals per year (the SLA of every row of
    the credit list, however long ago the application was accepted): the years' counts without overrides, then
    each override in the range replaces its day's own answer."""
    start, end = _as_date(start), _as_date(end)
    if end <= start:
        return WorkdayCount(0, CALENDAR_RULE_PRC)
    first = start + _dt.timedelta(days=1)
    count, covered = 0, True
    for year in range(first.year, end.year + 1):
        counts, year_covered = _year_counts(year)
        covered = covered and year_covered
        upto = counts[end.timetuple().tm_yday] if year == end.year else counts[-1]
        before = counts[first.timetuple().tm_yday - 1] if year == first.year else 0
        count += upto - before
    if overrides:
        for day, working in overrides.items():  # (a datetime key is no day's override, as in is_workday)
            if isinstance(day, _dt.date) and not isinstance(day, _dt.datetime) and first <= day <= end:
                count += bool(working) - is_workday(day)[0]
    return WorkdayCount(count, CALENDAR_RULE_PRC if covered else CALENDAR_RULE_FALLBACK)


def calendar_is_stale(today: Optional[_dt.date] = None) -> bool:
    """True from Dec 15 on if next year is not covered (time to upgrade chinesecalendar)."""
    today = _as_date(today or _dt.date.today())
    needed = today.year + 1 if (today.month, today.day) >= (12, 15) else today.year
    return needed not in covered_years()


# --------------------------------------------------------------------------------------------------
# Approval SLA tiers (DOMAIN.md): <= 1000万 -> 3 working days, <= 3000万 -> 5, larger -> 10.
# --------------------------------------------------------------------------------------------------

FEN_PER_WAN = 1_000_000  # 1 万元 = 10,000 元 = 1,000,000 fen
SLA_TIERS: tuple[tuple[Optional[int], int], ...] = (
    (1000 * FEN_PER_WAN, 3),  # up to and including 1000万元
    (3000 * FEN_PER_WAN, 5),  # up to and including 3000万元
    (None, 10),  # anything larger
)


def sla_tier_days(requested_fen: int) -> int:
    """Return the approval SLA in working days for a requested amount in integer fen."""
    if isinstance(requested_fen, bool) or not isinstance(requested_fen, int):
        raise TypeError("requested_fen must be an int (fen), never a float")
    if requested_fen < 0:
        raise ValueError("requested_fen must be >= 0")
    for limit, days in SLA_TIERS:
        if limit is None or requested_fen <= limit:
            return days
    raise AssertionError("unreachable")  # pragma: no cover


def sla_deadline(accepted: _dt.date, requested_fen: int, overrides: Overrides = None) -> WorkdayResult:
    """Return the SLA decision deadline: the tier's n-th working day after acceptance."""
    return add_workdays(accepted, sla_tier_days(requested_fen), overrides)
