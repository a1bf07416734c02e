"""Named periods are calendar days in the stats time zone."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from statsite import periods

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 3, 1, 30, tzinfo=UTC)  # 09:30 on June 3rd in Shanghai


def test_day_is_today_from_local_midnight():
    assert periods.console_period("day", tz=SHANGHAI, now=NOW) == (datetime(2026, 6, 2, 16, 0, tzinfo=UTC), NOW)


def test_week_is_seven_calendar_days_with_today():
    start, end = periods.console_period("week", tz=SHANGHAI, now=NOW)
    assert start == datetime(2026, 5, 27, 16, 0, tzinfo=UTC) and end == NOW


def test_month_is_thirty_calendar_days_with_today():
    start, _ = periods.console_period("month", tz=UTC, now=NOW)
    assert start == datetime(2026, 5, 5, tzinfo=UTC)


def test_all_starts_at_the_earliest_time_ingest_accepts():
    assert periods.console_period("all", tz=UTC, now=NOW) == (periods.BEGINNING, NOW)


def test_an_unknown_period_or_fewer_than_one_day_is_refused():
    with pytest.raises(ValueError, match="period"):
        periods.console_period("year", tz=UTC, now=NOW)
    with pytest.raises(ValueError, match="at least 1"):
        periods.last_calendar_days(0, tz=UTC, now=NOW)
