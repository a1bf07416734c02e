"""Usage statistics over any window, exact, at the cost of the buckets it spans.

Every statistic is a sum (or max) of the rollup measures over a window
`[start, end)`. The window is split into whole hourly buckets, answered from the
rollups, and the partial hours at its edges, answered from the raw rows with the
very aggregates the rollups are built from (`usage.rollups`), so the answer is
exactly what a scan of the raw rows would give. When the answer is a daily
series in a time zone whose midnight falls inside a UTC hour (India, Nepal, …),
the hours that hold a midnight are read raw too, so no bucket straddles two days.

Results are aggregated in the database; Python only merges the few grouped
rows of the two parts.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.db.models import Max, Q, Sum
from django.db.models.functions import TruncDate, TruncHour

from usage.models import LATENCY_BOUNDS_MS, latency_field_names
from usage.rollups import HOUR, ceil_hour, floor_hour, spec

SERIES = ("hour", "day")


def stats_zone() -> tzinfo:
    return zoneinfo.ZoneInfo(settings.STATS_TIME_ZONE)


@dataclass(frozen=True)
class Split:
    """A window cut into ranges answered by rollup buckets and ranges answered by raw rows."""

    rollup: tuple[tuple[datetime, datetime], ...]
    raw: tuple[tuple[datetime, datetime], ...]


def local_midnights(start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
    """The instants in [start, end) at which a new day begins in TZ."""
    day = start.astimezone(tz).date()
    out = []
    while True:
        midnight = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
        if midnight >= end:
            return out
        if midnight >= start:
            out.append(midnight)
        day += timedelta(days=1)


def split_window(start: datetime, end: datetime, *, cuts: Iterable[datetime] = ()) -> Split:
    """[start, end) as whole UTC hours (rollups) and the rest (raw rows). An hour with a
    CUT strictly inside it is read raw, so results can be split exactly at the cuts."""
    if start >= end:
        return Split((), ())
    first, last = ceil_hour(start), floor_hour(end)
    if first >= last:
        return Split((), ((start, end),))
    raw: list[tuple[datetime, datetime]] = []
    if start < first:
        raw.append((start, first))
    split_hours = sorted({floor_hour(c) for c in cuts if first <= c < last and floor_hour(c) != c})
    rollup: list[tuple[datetime, datetime]] = []
    cursor = first
    for hour in split_hours:
        if cursor < hour:
            rollup.append((cursor, hour))
        raw.append((hour, hour + HOUR))
        cursor = hour + HOUR
    if cursor < last:
        rollup.append((cursor, last))
    if last < end:
        raw.append((last, end))
    return Split(tuple(rollup), tuple(_merged(sorted(raw))))


def _merged(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in ranges:
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _ranges_q(field: str, ranges: Sequence[tuple[datetime, datetime]]) -> Q:
    query = Q()
    for lo, hi in ranges:
        query |= Q(**{f"{field}__gte": lo, f"{field}__lt": hi})
    return query


def pick_grain(kind: str, dimensions: Iterable[str]) -> str | None:
    """The smallest grain of KIND that holds every one of DIMENSIONS, or None."""
    wanted = set(dimensions)
    fitting = [(len(cols), name) for name, cols in spec(kind).grains.items() if wanted <= set(cols)]
    return min(fitting)[1] if fitting else None


def usage(
    kind: str,
    *,
    start: datetime,
    end: datetime,
    group_by: Sequence[str] = (),
    filters: dict[str, Any] | None = None,
    series: str | None = None,
    tz: tzinfo | None = None,
) -> list[dict[str, Any]]:
    """Sums of KIND's rollup measures ("llm" or "tools") over [START, END), one dict per
    group: the GROUP_BY dimension values, then `bucket` (series="hour": the UTC hour) or
    `day` (series="day": the date in TZ, default STATS_TIME_ZONE), then every measure.
    FILTERS are exact matches on dimensions. Sorted by the group keys."""
    rollup = spec(kind)
    filters = dict(filters or {})
    if series not in (None, *SERIES):
        raise ValueError(f"series must be one of {SERIES}")
    tz = tz or stats_zone()
    unknown = (set(group_by) | set(filters)) - set(rollup.dimensions)
    if unknown:
        raise ValueError(f"unknown dimensions for {kind}: {sorted(unknown)}")

    cuts = local_midnights(start, end, tz) if series == "day" else []
    grain = pick_grain(kind, [*group_by, *filters])
    split = split_window(start, end, cuts=cuts)
    if grain is None:
        # No rollup holds this combination of dimensions: the raw rows answer it all.
        split = Split((), ((start, end),) if start < end else ())

    measures = rollup.measures
    series_key = {"hour": "bucket", "day": "day"}.get(series or "")
    keys = [*group_by, *([series_key] if series_key else [])]
    merged: dict[tuple, dict[str, Any]] = {}

    def absorb(rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            ident = tuple(_normal(row[k], rollup.dimensions.get(k)) for k in keys)
            if series_key == "bucket":
                ident = ident[:-1] + (_as_utc(row["bucket"]),)
            current = merged.get(ident)
            if current is None:
                merged[ident] = {m.name: row[m.name] for m in measures}
                continue
            for m in measures:
                value = row[m.name]
                if m.merge == "max":
                    if value is not None and (current[m.name] is None or value > current[m.name]):
                        current[m.name] = value
                else:
                    current[m.name] += value

    if split.rollup:
        rows = rollup.table.objects.filter(_ranges_q("bucket", split.rollup), grain=grain, **filters)
        if series == "day":
            rows = rows.annotate(day=TruncDate("bucket", tzinfo=tz))
        aggregates = {m.name: (Max(m.name) if m.merge == "max" else Sum(m.name)) for m in measures}
        absorb(rows.values(*keys).annotate(**aggregates).order_by())
    if split.raw:
        facts = rollup.facts().filter(_ranges_q("created_at", split.raw))
        for name, value in filters.items():
            facts = facts.filter(_dimension_q(rollup, name, value))
        annotations: dict[str, Any] = {}
        if series == "hour":
            annotations["bucket"] = TruncHour("created_at", tzinfo=UTC)
        elif series == "day":
            annotations["day"] = TruncDate("created_at", tzinfo=tz)
        if annotations:
            facts = facts.annotate(**annotations)
        absorb(facts.values(*keys).annotate(**{m.name: m.aggregate() for m in measures}).order_by())

    out = []
    for ident in sorted(merged, key=_sort_key):
        out.append({**dict(zip(keys, ident)), **merged[ident]})
    return out


def _dimension_q(rollup, name: str, value: Any) -> Q:
    """A filter on a fact column, where the rollups' neutral value (0, "") also means NULL."""
    neutral = rollup.dimensions[name][2]
    if value == neutral and neutral == 0:
        return Q(**{f"{name}__isnull": True}) | Q(**{name: 0})
    return Q(**{name: value})


def _normal(value: Any, dimension) -> Any:
    if value is None and dimension is not None:
        return dimension[2]
    return value


def _as_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _sort_key(ident: tuple) -> tuple:
    return tuple((0, v) if not isinstance(v, (date, datetime)) else (1, v.isoformat()) for v in ident)


def totals(kind: str, **kwargs) -> dict[str, Any]:
    """The measures of KIND over a window, ungrouped (zeros when nothing happened)."""
    rows = usage(kind, **kwargs)
    if rows:
        return rows[0]
    return {m.name: (None if m.merge == "max" else 0) for m in spec(kind).measures}


def latency_percentile(row: dict[str, Any], fraction: float) -> int | None:
    """An estimate of the latency below which FRACTION of the calls in ROW fall, from its
    histogram: the bucket holding that rank, interpolated linearly inside it (the open
    last bucket reports its lower bound). None when no call reported a latency."""
    counts = [int(row[name]) for name in latency_field_names()]
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    lower = 0
    for index, count in enumerate(counts):
        upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else None
        if count and seen + count >= rank:
            if upper is None:
                return lower
            return round(lower + (upper - lower) * (rank - seen) / count)
        seen += count
        lower = upper if upper is not None else lower
    return lower
