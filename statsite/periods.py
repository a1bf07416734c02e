"""Named reporting periods, drawn in the stats time zone.

Every stats endpoint that takes a period gets its window here, so "today" or
"the last 7 days" mean the same thing in every dialect:

- `day`   — today: from local midnight to now;
- `week`  — the last 7 calendar days, today included: from local midnight six
            days ago to now;
- `month` — the last 30 calendar days, today included;
- `all`   — everything: from 2000-01-01 (before which ingest refuses data) to now.

Windows are half-open `[start, end)`; `end` is now.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

from django.utils import timezone

BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
CONSOLE_PERIODS = {"day": 1, "week": 7, "month": 30, "all": None}


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two instants, either of which may be unknown (None)."""
    return max(a, b) if a is not None and b is not None else a or b


def earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two instants, either of which may be unknown (None)."""
    return min(a, b) if a is not None and b is not None else a or b


def local_midnight(day, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def last_calendar_days(days: int, *, tz: tzinfo, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last DAYS calendar days in TZ, today included, ending now."""
    if days < 1:
        raise ValueError("days must be at least 1")
    now = now or timezone.now()
    first_day = now.astimezone(tz).date() - timedelta(days=days - 1)
    return local_midnight(first_day, tz), now


def console_period(name: str, *, tz: tzinfo, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window of a console period name (day, week, month, all)."""
    if name not in CONSOLE_PERIODS:
        raise ValueError(f"period must be one of {', '.join(CONSOLE_PERIODS)}")
    now = now or timezone.now()
    days = CONSOLE_PERIODS[name]
    if days is None:
        return BEGINNING, now
    return last_calendar_days(days, tz=tz, now=now)
