"""Tests for crm.core.workdays: PRC calendar with 调休, fallback years, overrides, SLA tiers."""

from datetime import date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.core.workdays import (
    CALENDAR_RULE_FALLBACK,
    CALENDAR_RULE_PRC,
    FEN_PER_WAN,
    WorkdayCount,
    WorkdayResult,
    add_workdays,
    calendar_is_stale,
    covered_years,
    is_workday,
    sla_deadline,
    sla_tier_days,
    workdays_between,
)

# --------------------------------------------------------------------------------------------------
# Coverage and single days
# --------------------------------------------------------------------------------------------------


def test_covered_years_match_installed_library():
    years = covered_years()
    assert years[0] == 2004
    assert 2025 in years and 2026 in years
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(years[-1] + 1, 3, 1))


def test_spring_festival_2025_make_up_sunday_and_saturday_are_working_days():
    assert is_workday(date(2025, 1, 26)) == (True, CALENDAR_RULE_PRC)  # Sunday, 调休
    assert is_workday(date(2025, 2, 8)) == (True, CALENDAR_RULE_PRC)  # Saturday, 调休


def test_spring_festival_2025_weekday_holidays_are_days_off():
    for d in [date(2025, 1, 28), date(2025, 1, 31), date(2025, 2, 3), date(2025, 2, 4)]:
        assert is_workday(d) == (False, CALENDAR_RULE_PRC)


def test_national_day_2025_make_up_days_on_and_golden_week_off():
    assert is_workday(date(2025, 9, 28)) == (True, CALENDAR_RULE_PRC)  # Sunday, 调休
    assert is_workday(date(2025, 10, 11)) == (True, CALENDAR_RULE_PRC)  # Saturday, 调休
    for day in range(1, 9):
        assert is_workday(date(2025, 10, day)) == (False, CALENDAR_RULE_PRC)
    assert is_workday(date(2025, 10, 9)) == (True, CALENDAR_RULE_PRC)


def test_national_day_2025_deadline_skips_golden_week():
    # Accepted Fri 2025-09-26: Sun 28 (1, make-up), Mon 29 (2), Tue 30 (3); Oct 1-8 off; Thu Oct 9 (4),
    # Fri Oct 10 (5), Sat Oct 11 (6, make-up).
    assert add_workdays(date(2025, 9, 26), 3) == WorkdayResult(date(2025, 9, 30), CALENDAR_RULE_PRC)
    assert add_workdays(date(2025, 9, 26), 5) == WorkdayResult(date(2025, 10, 10), CALENDAR_RULE_PRC)
    assert add_workdays(date(2025, 9, 26), 6) == WorkdayResult(date(2025, 10, 11), CALENDAR_RULE_PRC)


def test_is_workday_agrees_with_library_for_every_day_of_2025():
    d = date(2025, 1, 1)
    while d.year == 2025:
        assert is_workday(d) == (chinese_calendar.is_workday(d), CALENDAR_RULE_PRC)
        d += timedelta(days=1)


def test_is_workday_accepts_datetime():
    assert is_workday(datetime(2025, 1, 26, 9, 30)) == (True, CALENDAR_RULE_PRC)


def test_uncovered_year_uses_weekend_fallback_and_reports_it():
    assert is_workday(date(2027, 3, 5)) == (True, CALENDAR_RULE_FALLBACK)  # Friday
    assert is_workday(date(2027, 3, 6)) == (False, CALENDAR_RULE_FALLBACK)  # Saturday
    assert is_workday(date(2003, 6, 7)) == (False, CALENDAR_RULE_FALLBACK)  # Saturday, before coverage


# --------------------------------------------------------------------------------------------------
# Counting and deadlines
# --------------------------------------------------------------------------------------------------


def test_worked_example_counts_sixteen_working_days_including_make_up_days():
    # VALIDATORS.md: 2025-01-20..2025-02-14 inclusive = 20 Mon-Fri - 6 holiday weekdays + 2 make-up days.
    # Our count starts the day after `start`, so start on Sun 2025-01-19 to include Mon 2025-01-20.
    assert workdays_between(date(2025, 1, 19), date(2025, 2, 14)) == WorkdayCount(16, CALENDAR_RULE_PRC)
    assert len(chinese_calendar.get_workdays(date(2025, 1, 20), date(2025, 2, 14))) == 16


def test_workdays_between_excludes_start_day():
    # Mon 2025-01-20 itself is a working day, but counting runs from the day after.
    assert workdays_between(date(2025, 1, 20), date(2025, 2, 14)).count == 15


def test_workdays_between_is_zero_when_end_not_after_start():
    assert workdays_between(date(2025, 2, 14), date(2025, 2, 14)) == WorkdayCount(0, CALENDAR_RULE_PRC)
    assert workdays_between(date(2025, 2, 14), date(2025, 1, 1)).count == 0


def test_add_workdays_across_spring_festival_2025():
    # Accepted Fri 2025-01-24. Sat 25 is off; Sun 26 is a make-up working day (1); Mon 27 (2);
    # Tue 28 .. Tue Feb 4 are the Spring Festival break (Sat/Sun Feb 1-2 included); Wed Feb 5 (3).
    assert add_workdays(date(2025, 1, 24), 3) == WorkdayResult(date(2025, 2, 5), CALENDAR_RULE_PRC)
    assert add_workdays(date(2025, 1, 24), 3).day == chinese_calendar.find_workday(3, date(2025, 1, 24))


def test_add_workdays_matches_library_worked_example():
    assert add_workdays(date(2025, 1, 27), 1).day == date(2025, 2, 5)


def test_add_workdays_zero_returns_start():
    assert add_workdays(date(2025, 1, 25), 0) == WorkdayResult(date(2025, 1, 25), CALENDAR_RULE_PRC)
    with pytest.raises(ValueError):
        add_workdays(date(2025, 1, 25), -1)


def test_add_workdays_in_uncovered_year_uses_fallback_and_reports_it():
    # Fri 2027-03-05: Mon 8 (1), Tue 9 (2), Wed 10 (3).
    result = add_workdays(date(2027, 3, 5), 3)
    assert result == WorkdayResult(date(2027, 3, 10), CALENDAR_RULE_FALLBACK)
    assert result.provisional


def test_deadline_crossing_into_uncovered_year_is_reported_as_fallback():
    # Thu 2026-12-31 is a covered working day; Fri 2027-01-01 is counted by the fallback rule.
    result = add_workdays(date(2026, 12, 30), 2)
    assert result.day == date(2027, 1, 1)
    assert result.rule == CALENDAR_RULE_FALLBACK
    assert workdays_between(date(2026, 12, 30), date(2026, 12, 31)).rule == CALENDAR_RULE_PRC
    assert workdays_between(date(2026, 12, 30), date(2027, 1, 4)) == WorkdayCount(3, CALENDAR_RULE_FALLBACK)


def test_override_turning_2027_weekday_into_day_off_shifts_deadline():
    overrides = {date(2027, 3, 9): False}  # admin: Tue 2027-03-09 is a day off
    assert is_workday(date(2027, 3, 9), overrides) == (False, CALENDAR_RULE_FALLBACK)
    # Mon 8 (1), Tue 9 off, Wed 10 (2), Thu 11 (3).
    assert add_workdays(date(2027, 3, 5), 3, overrides) == WorkdayResult(date(2027, 3, 11), CALENDAR_RULE_FALLBACK)
    assert workdays_between(date(2027, 3, 5), date(2027, 3, 11), overrides).count == 3


def test_override_making_2027_saturday_a_working_day_counts_it():
    overrides = {date(2027, 3, 6): True}
    assert is_workday(date(2027, 3, 6), overrides) == (True, CALENDAR_RULE_FALLBACK)
    assert add_workdays(date(2027, 3, 5), 1, overrides).day == date(2027, 3, 6)


def test_overrides_win_inside_covered_years():
    # Mon 2025-01-27 declared off; Tue 2025-01-28 (Spring Festival) declared a working day.
    assert is_workday(date(2025, 1, 27), {date(2025, 1, 27): False}) == (False, CALENDAR_RULE_PRC)
    assert is_workday(date(2025, 1, 28), {date(2025, 1, 28): True}) == (True, CALENDAR_RULE_PRC)
    # Fri 2025-01-24 + 3 with Mon 27 off: Sun 26 (1), Wed Feb 5 (2), Thu Feb 6 (3).
    overrides = {date(2025, 1, 27): False}
    assert add_workdays(date(2025, 1, 24), 3, overrides) == WorkdayResult(date(2025, 2, 6), CALENDAR_RULE_PRC)
    assert workdays_between(date(2025, 1, 19), date(2025, 2, 14), overrides).count == 15


def test_empty_overrides_change_nothing():
    assert add_workdays(date(2025, 1, 24), 3, {}) == add_workdays(date(2025, 1, 24), 3)


@given(
    st.dates(min_value=date(2004, 1, 1), max_value=date(2028, 6, 30)),
    st.integers(min_value=1, max_value=15),
)
def test_add_workdays_and_workdays_between_are_inverse(start, n):
    result = add_workdays(start, n)
    assert result.day > start
    assert is_workday(result.day)[0]
    assert workdays_between(start, result.day).count == n
    assert workdays_between(start, result.day - timedelta(days=1)).count == n - 1


def _count_day_by_day(start, end, overrides=None):
    """The definition: ask is_workday for every day after ``start`` up to ``end``."""
    count, rule, d = 0, CALENDAR_RULE_PRC, start + timedelta(days=1)
    while d <= end:
        ok, r = is_workday(d, overrides)
        count += ok
        if r == CALENDAR_RULE_FALLBACK:
            rule = CALENDAR_RULE_FALLBACK
        d += timedelta(days=1)
    return WorkdayCount(count, rule)


@settings(deadline=None)  # (a first, cache-cold example builds whole years' running totals)
@given(
    st.dates(min_value=date(2003, 6, 1), max_value=date(2029, 6, 30)),
    st.integers(min_value=-3, max_value=1200),
    st.dictionaries(st.dates(min_value=date(2003, 1, 1), max_value=date(2029, 12, 31)), st.booleans(), max_size=12),
)
def test_workdays_between_counts_what_is_workday_says_day_by_day(start, days, overrides):
    """The running totals per year give the day-by-day count and rule, across years, the library's last covered
    year, uncovered years, and overrides inside, outside and at the ends of the range."""
    end = start + timedelta(days=days)
    edges = {start: True, end: False, start + timedelta(days=1): False}  # overrides at the range's ends
    for extra in ({}, edges):
        got = workdays_between(start, end, {**overrides, **extra})
        assert got == _count_day_by_day(start, end, {**overrides, **extra})


def test_workdays_between_ignores_an_override_keyed_by_a_datetime():
    """is_workday looks days up by date, so a datetime key overrides nothing there, nor in the count."""
    monday = date(2025, 3, 3)
    assert workdays_between(monday, monday + timedelta(days=7), {datetime(2025, 3, 4): False}).count == 5


# --------------------------------------------------------------------------------------------------
# Calendar freshness
# --------------------------------------------------------------------------------------------------


def test_calendar_is_stale_from_december_15_when_next_year_missing():
    last = covered_years()[-1]
    assert not calendar_is_stale(date(last, 12, 14))
    assert calendar_is_stale(date(last, 12, 15))
    assert not calendar_is_stale(date(last - 1, 12, 15))
    assert calendar_is_stale(date(last + 1, 1, 10))


# --------------------------------------------------------------------------------------------------
# SLA tiers
# --------------------------------------------------------------------------------------------------

WAN = FEN_PER_WAN


def test_fen_per_wan():
    assert FEN_PER_WAN == 10_000 * 100


@pytest.mark.parametrize(
    "fen, days",
    [
        (0, 3),
        (500 * WAN, 3),
        (1000 * WAN, 3),  # exactly 1000万: inclusive
        (1000 * WAN + 1, 5),  # one fen more
        (3000 * WAN, 5),  # exactly 3000万: inclusive
        (3000 * WAN + 1, 10),  # one fen more
        (100_000 * WAN, 10),  # 10亿
    ],
)
def test_sla_tier_days_boundaries(fen, days):
    assert sla_tier_days(fen) == days


@pytest.mark.parametrize("bad", [1000.0, 1.5, "1000", None, True])
def test_sla_tier_days_refuses_non_integer_amounts(bad):
    with pytest.raises(TypeError):
        sla_tier_days(bad)


def test_sla_tier_days_refuses_negative_amounts():
    with pytest.raises(ValueError):
        sla_tier_days(-1)


def test_sla_deadline_uses_tier_and_calendar():
    # 1000万 -> 3 working days from Fri 2025-01-24 -> Wed 2025-02-05 (see the Spring Festival test).
    assert sla_deadline(date(2025, 1, 24), 1000 * WAN) == WorkdayResult(date(2025, 2, 5), CALENDAR_RULE_PRC)
    # 1000万 + 1 fen -> 5 working days: Thu Feb 6 (4), Fri Feb 7 (5).
    assert sla_deadline(date(2025, 1, 24), 1000 * WAN + 1).day == date(2025, 2, 7)
