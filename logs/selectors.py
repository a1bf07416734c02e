"""What the gateway log endpoints ask of the log table, answered from the rollups.

A log list's exact total, where its page lies in time, and the quota of a window
are sums over the rollups (LLM calls in the LLM rollups, every other row in the
event rollups) of the rows still stored (`purged="excluded"`): a few hundred
buckets whatever the number of rows. The rows of a page are then read from the
narrow stretch of time the hourly counts point to, so page 1 and page 5000 cost
about the same, with or without a filter.

Filters a rollup grain holds are answered so: the type, the time window, and one
of account, relay key name, model, channel or group (account and model together
too). Other combinations count and page the raw rows, exactly, on their indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypedDict

from django.db.models import BigIntegerField, Count, F, Sum, Value
from django.db.models.functions import Coalesce

from logs.models import Log
from logs.querysets import CONSUME, ERROR, LogQuerySet
from statsite.periods import earlier, later
from usage.selectors import pick_grain, usage

# rpm and tpm are "per minute" over the live window the gateway log document
# defines: the last 60 seconds, whatever window the quota is summed over.
LIVE_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class LogCriteria:
    """The gateway's log filters, each an exact match; None leaves one open. The window
    is half-open [start, end). `user_id` is the account (an admin's `username`, or the
    caller's own rows); `nobody` marks a username no account has: nothing matches."""

    log_type: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    user_id: int | None = None
    token_name: str | None = None
    model_name: str | None = None
    channel_id: int | None = None
    group: str | None = None
    nobody: bool = False

    def dimensions(self) -> dict[str, Any]:
        """The rollup dimension filters these criteria set."""
        names = ("user_id", "token_name", "model_name", "channel_id", "group")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def apply(self, rows: LogQuerySet) -> LogQuerySet:
        """ROWS narrowed to these criteria."""
        if self.nobody:
            return rows.none()
        if self.log_type:
            rows = rows.of_type(self.log_type)
        return rows.between(self.start, self.end).filter(**self.dimensions())

    def replace(self, **changes: Any) -> LogCriteria:
        return LogCriteria(**{f.name: changes.get(f.name, getattr(self, f.name)) for f in fields(self)})


def _parts(criteria: LogCriteria) -> list[tuple[str, str, dict[str, Any]]]:
    """(rollup kind, count measure, filters) whose sum is the number of rows matching
    CRITERIA: LLM calls of type 2 are the successful ones, of type 4 the failed ones
    (a log row's success is its type, a database constraint says so); every other row
    is an event, counted by type."""
    dims = criteria.dimensions()
    parts: list[tuple[str, str, dict[str, Any]]] = []
    llm_measure = {None: "requests", CONSUME: "successes", ERROR: "errors"}.get(criteria.log_type)
    if llm_measure:
        parts.append(("llm", llm_measure, dims))
    if criteria.log_type != CONSUME:
        parts.append(("events", "rows", {**dims, **({"type": criteria.log_type} if criteria.log_type else {})}))
    return parts


def rollups_answer(criteria: LogCriteria) -> bool:
    """Whether the rollups hold every dimension CRITERIA filter on (else the raw rows answer)."""
    return all(pick_grain(kind, filters) is not None for kind, _, filters in _parts(criteria))


def log_count(criteria: LogCriteria) -> int:
    """How many stored log rows match CRITERIA, exactly."""
    if criteria.nobody:
        return 0
    total = 0
    for kind, measure, filters in _parts(criteria):
        rows = usage(
            kind, start=criteria.start, end=criteria.end, filters=filters, measures=(measure,), purged="excluded"
        )
        total += sum(int(row[measure]) for row in rows)
    return total


def _counts(criteria: LogCriteria, series: str) -> dict[datetime, int]:
    """Stored rows matching CRITERIA per UTC day or hour (SERIES), by its start."""
    counts: dict[datetime, int] = {}
    for kind, measure, filters in _parts(criteria):
        for row in usage(
            kind, start=criteria.start, end=criteria.end, filters=filters, series=series, tz=UTC,
            measures=(measure,), purged="excluded",
        ):
            start = row["bucket"] if series == "hour" else datetime.combine(row["day"], time.min, tzinfo=UTC)
            counts[start] = counts.get(start, 0) + int(row[measure])
    return counts


@dataclass(frozen=True)
class Stretch:
    """Where rows OFFSET.. of a newest-first list lie: within [lower, upper) (None: open),
    after skipping the first `skip` rows of that stretch."""

    lower: datetime | None
    upper: datetime | None
    skip: int


def locate(counts: dict[datetime, int], *, offset: int, limit: int) -> Stretch:
    """The stretch of time holding rows OFFSET to OFFSET + LIMIT of a newest-first list
    with COUNTS[start] rows in the bucket that begins at `start`."""
    buckets = sorted(counts, reverse=True)
    # Whole buckets newer than the page are skipped: the page lies before the last of them.
    above, upper, i = 0, None, 0
    while i < len(buckets) and above + counts[buckets[i]] <= offset:
        above += counts[buckets[i]]
        upper = buckets[i]
        i += 1
    # The page ends in the bucket where the running count reaches OFFSET + LIMIT.
    seen, lower = above, None
    for bucket in buckets[i:]:
        seen += counts[bucket]
        if seen >= offset + limit:
            lower = bucket
            break
    return Stretch(lower, upper, offset - above)


def log_page(rows: LogQuerySet, criteria: LogCriteria, *, offset: int, limit: int) -> tuple[list[Log], int]:
    """(rows OFFSET to OFFSET + LIMIT of ROWS, the total): ROWS are the stored rows
    matching CRITERIA, newest first. With rollups that hold the criteria's dimensions,
    the rows per day give the total and the days the page lies in, the rows per hour
    of those days its hours, and only those hours' rows are read; else the raw rows
    are counted and paged."""
    if criteria.nobody:
        return [], 0
    if not rollups_answer(criteria):
        total = rows.count()
        return (list(rows[offset : offset + limit]) if offset < total else []), total
    days = _counts(criteria, "day")
    total = sum(days.values())
    if offset >= total:
        return [], total
    by_day = locate(days, offset=offset, limit=limit)
    hours = _counts(
        criteria.replace(start=later(criteria.start, by_day.lower), end=earlier(criteria.end, by_day.upper)), "hour"
    )
    by_hour = locate(hours, offset=by_day.skip, limit=limit)
    lower = by_hour.lower or by_day.lower
    upper = by_hour.upper or by_day.upper
    if lower is not None:
        rows = rows.filter(created_at__gte=lower)
    if upper is not None:
        rows = rows.filter(created_at__lt=upper)
    return list(rows[by_hour.skip : by_hour.skip + limit]), total


class LogStat(TypedDict):
    quota: int
    rpm: int
    tpm: int


def log_stat(*, criteria: LogCriteria, now: datetime) -> LogStat:
    """Consumption of the consume rows matching CRITERIA: `quota` summed over the
    window (from the rollups, rows still stored), `rpm` the requests and `tpm` their
    prompt + completion tokens in the 60 seconds up to NOW, whatever the window (read
    raw: one minute of rows)."""
    quota = 0
    if criteria.log_type in (None, CONSUME) and not criteria.nobody:
        found = usage(
            "llm", start=criteria.start, end=criteria.end, filters=criteria.dimensions(), measures=("quota",),
            purged="excluded",
        )
        quota = sum(int(row["quota"]) for row in found)
    live = (
        criteria.replace(start=None, end=None)
        .apply(Log.objects.all())
        .consume()
        .filter(created_at__gte=now - LIVE_WINDOW, created_at__lte=now)
        .aggregate(
            rpm=Count("id"),
            tpm=Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), Value(0), output_field=BigIntegerField()),
        )
    )
    return {"quota": quota, "rpm": int(live["rpm"]), "tpm": int(live["tpm"])}
