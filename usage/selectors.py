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
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, Q, Sum
from django.db.models.functions import TruncDate, TruncHour

from usage.models import LATENCY_BOUNDS_MS, Channel, latency_field_names
from usage.rollups import HOUR, ceil_hour, floor_hour, horizon, spec

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


def _history_from_rollups(split: Split, purged_until: datetime | None) -> Split:
    """SPLIT with the raw hours before PURGED_UNTIL answered by their whole rollup bucket.

    Raw rows there may have been purged while the bucket still counts them: the bucket
    is the only full record left. Such windows are answered to the hour (the edge hour
    counted whole), not to the second."""
    if purged_until is None or split.raw[0][0] >= purged_until:
        return split
    rollup, raw = list(split.rollup), []
    for lo, hi in split.raw:
        if lo < purged_until:
            rollup.append((floor_hour(lo), ceil_hour(hi)))
        else:
            raw.append((lo, hi))
    return Split(tuple(_merged(sorted(set(rollup)))), tuple(raw))


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
    measures: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Sums of KIND's rollup measures ("llm", "tools" or "messages") over [START, END),
    one dict per group: the GROUP_BY dimension values, then `bucket` (series="hour": the
    UTC hour) or `day` (series="day": the date in TZ, default STATS_TIME_ZONE), then the
    MEASURES asked for (default every one; asking for fewer saves work in the database
    and here). FILTERS are exact matches on dimensions. Sorted by the group keys."""
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
    elif split.raw:
        split = _history_from_rollups(split, horizon(kind, cached=True))

    if measures is None:
        chosen = rollup.measures
    else:
        missing = set(measures) - set(rollup.measure_names)
        if missing:
            raise ValueError(f"unknown measures for {kind}: {sorted(missing)}")
        # The counting measure always comes first: it tells an empty aggregate apart.
        wanted = {rollup.measures[0].name, *measures}
        chosen = tuple(m for m in rollup.measures if m.name in wanted)
    measures = chosen
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
        absorb(_grouped(rows, keys, aggregates))
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
        absorb(_grouped(facts, keys, {m.name: m.aggregate() for m in measures}))

    out = []
    for ident in sorted(merged, key=_sort_key):
        out.append({**dict(zip(keys, ident)), **merged[ident]})
    return out


def _grouped(rows, keys: list[str], aggregates: dict[str, Any]) -> list[dict[str, Any]]:
    """AGGREGATES of ROWS per KEYS, in the database. Without keys, one aggregate row
    (`values()` with no fields would group by every column: a row per row)."""
    if not keys:
        found = rows.aggregate(**aggregates)
        # The first measure of every kind counts facts: none counted, nothing to add.
        return [found] if found[next(iter(aggregates))] else []
    return list(rows.values(*keys).annotate(**aggregates).order_by())


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


# --- gateway data and LLM stats ---


class ModelHourUsage(TypedDict):
    model_name: str
    count: int
    quota: int
    token_used: int
    created_at: datetime


def usage_by_model_hour(*, start: datetime, end: datetime, user_id: int | None = None) -> list[ModelHourUsage]:
    """LLM usage over [START, END) per UTC hour and model (of one account when USER_ID
    is given), as the gateway data endpoints answer it: `count` the requests (failed
    ones too), `quota` the consumed quota, `token_used` prompt + completion tokens,
    `created_at` the hour's start. A partial edge hour is summed under its own hour.
    Ordered by hour, then model."""
    filters = {"user_id": user_id} if user_id is not None else {}
    rows = usage(
        "llm", start=start, end=end, group_by=("model_name",), filters=filters, series="hour",
        measures=("requests", "quota", "prompt_tokens", "completion_tokens"),
    )
    out: list[ModelHourUsage] = [
        {
            "model_name": row["model_name"],
            "count": int(row["requests"]),
            "quota": int(row["quota"]),
            "token_used": int(row["prompt_tokens"]) + int(row["completion_tokens"]),
            "created_at": row["bucket"],
        }
        for row in rows
    ]
    # usage() orders by its group keys (model, hour); the gateway lists hour first.
    out.sort(key=lambda item: (item["created_at"], item["model_name"]))
    return out


# The bot stats dialect's group_by names -> the LLM dimension each one reads.
LLM_STATS_GROUPS = {"model": "model_name", "module": "module", "type": "request_type", "user": "user_id"}
# The group of calls that do not say (no model, module, type or account).
UNKNOWN_GROUP = "unknown"


class LLMGroupStats(TypedDict):
    requests: int
    cost: Decimal
    input_tokens: int
    output_tokens: int
    total_tokens: int


class LLMStats(TypedDict):
    total_requests: int
    total_cost: Decimal
    details_by_group: dict[str, LLMGroupStats]


def llm_stats(*, start: datetime, end: datetime, group_by: str) -> LLMStats:
    """LLM calls over [START, END) grouped by GROUP_BY (a key of LLM_STATS_GROUPS):
    requests, cost and tokens per group, and the totals. `user` groups by account and
    names each group by its username (one more query, for the accounts seen). Groups
    are ordered by requests, most first, then by name."""
    if group_by not in LLM_STATS_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(LLM_STATS_GROUPS)}")
    dimension = LLM_STATS_GROUPS[group_by]
    rows = usage(
        "llm", start=start, end=end, group_by=(dimension,),
        measures=("requests", "cost", "prompt_tokens", "completion_tokens"),
    )
    if group_by == "user":
        ids = {row["user_id"] for row in rows if row["user_id"]}
        usernames = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}
        names = [usernames.get(row["user_id"]) or UNKNOWN_GROUP for row in rows]
    else:
        names = [row[dimension] or UNKNOWN_GROUP for row in rows]

    groups: dict[str, LLMGroupStats] = {}
    for name, row in zip(names, rows):
        # Grouped rows, one per dimension value; two only meet here when a call
        # names a group "unknown" while others name none.
        group = groups.setdefault(
            name, {"requests": 0, "cost": Decimal(0), "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        )
        prompt, completion = int(row["prompt_tokens"]), int(row["completion_tokens"])
        group["requests"] += int(row["requests"])
        group["cost"] += _decimal(row["cost"])
        group["input_tokens"] += prompt
        group["output_tokens"] += completion
        group["total_tokens"] += prompt + completion
    ordered = dict(sorted(groups.items(), key=lambda item: (-item[1]["requests"], item[0])))
    return {
        "total_requests": sum(g["requests"] for g in ordered.values()),
        "total_cost": sum((g["cost"] for g in ordered.values()), Decimal(0)),
        "details_by_group": ordered,
    }


def _decimal(value: Any) -> Decimal:
    # SQLite may hand a sum of decimals back as a float; str() keeps its shortest form.
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


# --- console stats and tool metering ---

CENT = Decimal("0.01")


def _mean_ms(total: int, count: int) -> int:
    """TOTAL / COUNT milliseconds rounded half up to a whole number; 0 when nothing was timed."""
    total, count = int(total), int(count)
    return (2 * total + count) // (2 * count) if count else 0


def _fraction(part: int, whole: int) -> float:
    """PART / WHOLE as a 0..1 fraction to 4 places; 0 when there is no whole."""
    if not whole:
        return 0.0
    return float((Decimal(int(part)) / Decimal(int(whole))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _money(value: Any) -> float:
    """A cost to 2 places (half up), as the tool metering document writes money."""
    exact = value if isinstance(value, Decimal) else Decimal(str(value or 0))
    return float(exact.quantize(CENT, rounding=ROUND_HALF_UP))


class ConsoleModelStat(TypedDict):
    model: str
    requests: int
    tokens: int
    avgLatency: int
    errors: int
    p95Latency: int | None


def console_model_stats(*, start: datetime, end: datetime) -> list[ConsoleModelStat]:
    """LLM calls over [START, END) per model, as the bot console shows them: requests,
    prompt + completion tokens, errors, the mean latency of the calls that reported one
    (0 when none did) and the 95th percentile estimated from the latency histogram
    (None when none did). Most requested first, then by model. Two queries."""
    rows = usage("llm", start=start, end=end, group_by=("model_name",))
    out: list[ConsoleModelStat] = [
        {
            "model": row["model_name"],
            "requests": int(row["requests"]),
            "tokens": int(row["prompt_tokens"]) + int(row["completion_tokens"]),
            "avgLatency": _mean_ms(row["latency_sum_ms"], row["latency_count"]),
            "errors": int(row["errors"]),
            "p95Latency": latency_percentile(row, 0.95),
        }
        for row in rows
    ]
    out.sort(key=lambda item: (-item["requests"], item["model"]))
    return out


class ConsoleToolStat(TypedDict):
    name: str
    calls: int
    avgDuration: int
    successRate: float


def console_tool_stats(*, start: datetime, end: datetime) -> list[ConsoleToolStat]:
    """Tool calls over [START, END) per tool (id and name), as the bot console shows
    them: calls, the mean duration of the calls that reported one (0 when none did) and
    the share that succeeded as a 0..1 fraction. Most called first, then by name (then
    by tool id, when two tools share a name). Two queries."""
    rows = usage("tools", start=start, end=end, group_by=("tool_id", "tool_name"))
    ranked = sorted(rows, key=lambda row: (-int(row["calls"]), row["tool_name"], row["tool_id"]))
    return [
        {
            "name": row["tool_name"],
            "calls": int(row["calls"]),
            "avgDuration": _mean_ms(row["duration_sum_ms"], row["duration_count"]),
            "successRate": _fraction(row["successes"], row["calls"]),
        }
        for row in ranked
    ]


class ConsoleChannelStat(TypedDict):
    id: int
    name: str
    status: str
    requests: int
    errors: int
    avgLatency: int
    lastUsed: datetime | None


def console_channel_stats(*, start: datetime, end: datetime) -> list[ConsoleChannelStat]:
    """Every channel with its LLM calls over [START, END): requests, errors, the mean
    latency of the calls that reported one, and the time of the newest call (None, and
    zeros, when it had no traffic). `status` is "active" for an enabled channel, else
    "disabled". Calls that went through no channel are not listed. Busiest first, then
    by id. Three queries: the channel table is a small dimension table."""
    used = {row["channel_id"]: row for row in usage("llm", start=start, end=end, group_by=("channel_id",))}
    out: list[ConsoleChannelStat] = []
    for channel in Channel.objects.order_by("id").values("id", "name", "status"):
        row = used.get(channel["id"])
        out.append(
            {
                "id": channel["id"],
                "name": channel["name"],
                "status": "active" if channel["status"] == Channel.Status.ENABLED else "disabled",
                "requests": int(row["requests"]) if row else 0,
                "errors": int(row["errors"]) if row else 0,
                "avgLatency": _mean_ms(row["latency_sum_ms"], row["latency_count"]) if row else 0,
                "lastUsed": row["last_at"] if row else None,
            }
        )
    out.sort(key=lambda item: (-item["requests"], item["id"]))
    return out


METERING_GROUPS = ("day", "hour", "tool")
HOUR_LABEL = "%Y-%m-%d %H:%M"


class MeteringPeriod(TypedDict):
    start: str
    end: str


class MeteringSummary(TypedDict):
    total_calls: int
    success_calls: int
    failed_calls: int
    success_rate: float
    total_cost: float
    period: MeteringPeriod


class MeteringTool(TypedDict):
    tool_id: str
    tool_name: str
    calls: int
    success: int
    failed: int
    cost: float


class MeteringBucket(TypedDict):
    date: str
    calls: int
    success: int
    cost: float


class ToolMetering(TypedDict):
    summary: MeteringSummary
    by_tool: list[MeteringTool]
    by_date: list[MeteringBucket]


def _day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def tool_metering(
    *,
    user_id: int,
    start_day: date,
    end_day: date,
    now: datetime,
    tool_id: str | None = None,
    group_by: str = "day",
    tz: tzinfo | None = None,
) -> ToolMetering:
    """One account's tool calls on the calendar days START_DAY..END_DAY (inclusive, in
    TZ, default STATS_TIME_ZONE), up to NOW, optionally of one tool, as the tool
    metering document answers: a summary, the tools (most called first, then by id)
    and a series in which every day of the range has an entry (`group_by` "day" and
    "tool"), or every hour ("hour": UTC hours labelled by their local start,
    "YYYY-MM-DD HH:MM"; where midnight falls inside a UTC hour the day's first entry
    starts at midnight). Days or hours after NOW are listed with zeros.
    Six queries whatever the range."""
    if group_by not in METERING_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(METERING_GROUPS)}")
    tz = tz or stats_zone()
    start = _day_start(start_day, tz)
    range_end = _day_start(end_day + timedelta(days=1), tz)
    # Calls cannot have happened after now: the window stops there.
    end = min(range_end, max(now, start))
    filters: dict[str, Any] = {"user_id": user_id}
    if tool_id:
        filters["tool_id"] = tool_id
    window = {"start": start, "end": end, "filters": filters, "tz": tz}

    total = totals("tools", **window)
    tools = usage("tools", group_by=("tool_id", "tool_name"), **window)
    hourly = group_by == "hour"
    series = usage("tools", series="hour" if hourly else "day", **window)

    if hourly:
        found = {row["bucket"]: row for row in series}
        labels = []
        hour = floor_hour(start)
        while hour < range_end:
            labels.append((hour, max(hour, start).astimezone(tz).strftime(HOUR_LABEL)))
            hour += HOUR
    else:
        found = {row["day"]: row for row in series}
        labels = [
            (start_day + timedelta(days=n), (start_day + timedelta(days=n)).isoformat())
            for n in range((end_day - start_day).days + 1)
        ]

    ranked = sorted(tools, key=lambda row: (-int(row["calls"]), row["tool_id"], row["tool_name"]))
    return {
        "summary": {
            "total_calls": int(total["calls"]),
            "success_calls": int(total["successes"]),
            "failed_calls": int(total["failures"]),
            "success_rate": _fraction(total["successes"], total["calls"]),
            "total_cost": _money(total["cost"]),
            "period": {"start": start_day.isoformat(), "end": end_day.isoformat()},
        },
        "by_tool": [
            {
                "tool_id": row["tool_id"],
                "tool_name": row["tool_name"],
                "calls": int(row["calls"]),
                "success": int(row["successes"]),
                "failed": int(row["failures"]),
                "cost": _money(row["cost"]),
            }
            for row in ranked
        ],
        "by_date": [
            {
                "date": label,
                "calls": int(found[key]["calls"]) if key in found else 0,
                "success": int(found[key]["successes"]) if key in found else 0,
                "cost": _money(found[key]["cost"]) if key in found else 0.0,
            }
            for key, label in labels
        ],
    }
