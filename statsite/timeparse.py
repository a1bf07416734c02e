"""Parsing of the time arguments that commands take: an age ("30d") and an instant (ISO 8601)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.utils import dateparse, timezone

_AGE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """A duration written as N followed by h (hours), d (days) or w (weeks): 12h, 30d, 2w.

    Zero is refused: "older than 0d" would mean everything up to this instant, which
    is never what someone cleaning up old rows means and is easy to type by mistake.
    """
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age; write a whole number and a unit, e.g. 12h, 30d or 2w")
    amount = int(match.group(1))
    if amount < 1:
        raise ValueError(f"{text!r} must be at least 1{match.group(2).lower()}")
    try:
        return timedelta(**{_UNITS[match.group(2).lower()]: amount})
    except OverflowError as exc:
        raise ValueError(f"{text!r} is too long ago") from exc


def parse_instant(text: str) -> datetime:
    """An aware datetime from ISO 8601: a full timestamp (with or without offset) or a
    bare date (its midnight). Values without an offset are in the current time zone
    (settings.TIME_ZONE, UTC by default), as everywhere else in Django."""
    value = text.strip()
    try:
        parsed: datetime | date | None = dateparse.parse_datetime(value)
        if parsed is None:
            day = dateparse.parse_date(value)
            parsed = datetime.combine(day, time.min) if day is not None else None
    except ValueError as exc:  # well formed but impossible, e.g. 2024-02-30
        raise ValueError(f"{text!r} is not a valid date or time: {exc}") from exc
    if parsed is None:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time, e.g. 2024-01-31 or 2024-01-31T12:00:00Z")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def iso_utc(moment: datetime) -> str:
    """MOMENT in UTC as ISO 8601 with a Z (microseconds only when there are any)."""
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
