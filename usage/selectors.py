"""Usage statistics over any window, exact, at the cost of the buckets it spans.

Every statistic is a sum (or max) of the rollup measures over a window
`[start, end)`. The window is cut into whole UTC days (answered from day rows),
whole UTC hours (hour rows) and the partial hours at its edges (the raw rows, with
the very aggregates the rollups are built from, `usage.rollups`), so the answer is
exactly what a scan of the raw rows would give, at the cost of a few dozen buckets
per group whatever the window. A window from the beginning of time up to about now
is answered from the all-time rows, less what lies after its end. When the answer
is a daily series in a time zone whose midnight is not a UTC midnight, days are
read by the hour, and the hours that hold a midnight (India, Nepal, …) raw, so no
bucket straddles two days.

Results are aggregated in the database; Python only merges the few grouped rows of
the parts.
"""

from __future__ import annotations

import zoneinfo
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import partial, reduce
from operator import add, itemgetter
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import BigIntegerField, Case, CharField, Expression, F, Func, Q, Sum, Value, When
from django.db.models.functions import Cast, Collate, TruncDate, TruncHour
from django.utils import timezone

from statsite.ingest import rows_among
from statsite.querysets import rows_by_shape
from usage.models import LATENCY_BOUNDS_MS, SERIES_COLUMNS, SERIES_GRAINS, Channel, latency_field_names
from usage.rollups import (
    ALL_BUCKET,
    DAY,
    HOUR,
    WEEK,
    by_code_point,
    ceil_day,
    ceil_hour,
    ceil_week,
    floor_day,
    floor_hour,
    floor_week,
    horizon,
    key_text,
    spec,
    stored_grain,
)

SERIES = ("hour", "day")
# Where rows of facts purged before the horizon are concerned: "counted" (statistics:
# the rollups still count them) or "excluded" (totals of the rows still stored).
Purged = Literal["counted", "excluded"]
# The end of every window that runs "to the end of time" (facts are never more than a
# day in the future; far enough that no date arithmetic overflows).
FOREVER = datetime(9000, 1, 1, tzinfo=UTC)
# A window from ALL_BUCKET on is read from the all-time rows when it ends this close to
# now or later: what lies after its end, the raw rows to take away, is that short.
ALL_TIME_SLACK = timedelta(hours=1)

Range = tuple[datetime, datetime]
# The key of an hourly series' hour while its rows are merged (unix seconds).
HOUR_KEY = "hour_start"


class UnixSeconds(Func):
    """A time as whole unix seconds, in the database.

    On PostgreSQL through date_part (double precision: exact for whole seconds, and
    for microseconds until the year 2255) rather than EXTRACT, whose numeric result is
    slower to compute: 2.3 ms more over a month of hourly usage by model (35,000 rows,
    7.2 against 4.9 ms in the server)."""

    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="CAST(floor(date_part('epoch', %(expressions)s)) AS bigint)"
        )

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS integer)")


def stats_zone() -> tzinfo:
    return zoneinfo.ZoneInfo(settings.STATS_TIME_ZONE)


@dataclass(frozen=True)
class Plan:
    """Ranges of time answered by raw rows, hour buckets, day buckets and week buckets."""

    raw: tuple[Range, ...] = ()
    hours: tuple[Range, ...] = ()
    days: tuple[Range, ...] = ()
    weeks: tuple[Range, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        return Plan(
            tuple(_merged([*self.raw, *other.raw])),
            tuple(_merged([*self.hours, *other.hours])),
            tuple(_merged([*self.days, *other.days])),
            tuple(_merged([*self.weeks, *other.weeks])),
        )

    def __bool__(self) -> bool:
        return bool(self.raw or self.hours or self.days or self.weeks)


@dataclass(frozen=True)
class Planned:
    """How usage() reads a window: the sums over POSITIVE less those over NEGATIVE (the
    outside parts of edge hours, days and weeks read whole), from HOUR_GRAIN's hour
    rows, DAY_GRAIN's day rows, WEEK_GRAIN's week rows and the raw rows."""

    positive: Plan
    negative: Plan = Plan()
    hour_grain: str | None = None
    day_grain: str | None = None
    week_grain: str | None = None


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


def plan_window(
    start: datetime, end: datetime, *, cuts: Iterable[datetime] = (), days: bool = True, weeks: bool = False
) -> Plan:
    """[start, end) as whole UTC weeks (with WEEKS), whole UTC days (with DAYS), whole
    UTC hours and the partial hours at its edges (raw). A CUT inside an hour makes that
    hour raw; a cut inside a day makes that day hours, so results can be split exactly
    at the cuts."""
    if start >= end:
        return Plan()
    first, last = ceil_hour(start), floor_hour(end)
    if first >= last:
        return Plan(raw=((start, end),))
    raw: list[Range] = []
    if start < first:
        raw.append((start, first))
    if last < end:
        raw.append((last, end))
    cuts = [c for c in cuts if first <= c < last]
    split_hours = sorted({floor_hour(c) for c in cuts if floor_hour(c) != c})
    split_days = {floor_day(c) for c in cuts if floor_day(c) != c}
    hours, whole_days = _days_within(first, last, split_days if days else None)
    # An hour holding a cut lies in a day holding it, which is read by the hour.
    raw += [(hour, hour + HOUR) for hour in split_hours]
    whole_days, whole_weeks = _weeks_within(_merged(whole_days)) if weeks else (whole_days, [])
    return Plan(
        tuple(_merged(raw)), tuple(_merged(_without(hours, split_hours))), tuple(_merged(whole_days)),
        tuple(whole_weeks),
    )


def _weeks_within(days: list[Range]) -> tuple[list[Range], list[Range]]:
    """Day-aligned DAYS (sorted, merged) as (day ranges, whole-week ranges)."""
    left: list[Range] = []
    weeks: list[Range] = []
    for lo, hi in days:
        first, last = ceil_week(lo), floor_week(hi)
        if first >= last:
            left.append((lo, hi))
            continue
        weeks.append((first, last))
        left += [(a, b) for a, b in ((lo, first), (last, hi)) if a < b]
    return left, weeks


def by_complement(plan: Plan, cuts: Iterable[datetime] = (), *, after: datetime | None = None) -> tuple[Plan, Plan]:
    """(PLAN with each partial edge hour whose outside part is the smaller read as its
    bucket, the outside parts to take away): a window ending now reads the rows after
    now (none, or a few stamped in the future) instead of those since the hour began.
    Hours holding a CUT stay raw (their bucket straddles two days). AFTER: only
    outside parts from that instant on (the future, where there is seldom anything to
    take away)."""
    raw, hours, minus = [], list(plan.hours), []
    for lo, hi in plan.raw:
        hour = floor_hour(lo)
        outside = [(a, b) for a, b in ((hour, lo), (hi, hour + HOUR)) if a < b]
        whole = hi <= hour + HOUR and (lo, hi) != (hour, hour + HOUR)
        if whole and _outside_smaller(outside, hi - lo, after) and not _cut_inside(hour, hour + HOUR, cuts):
            hours.append((hour, hour + HOUR))
            minus += outside
        else:
            raw.append((lo, hi))
    return Plan(tuple(raw), tuple(_merged(hours)), plan.days, plan.weeks), Plan(raw=tuple(_merged(minus)))


def _outside_smaller(outside: list[Range], inside: timedelta, after: datetime | None) -> bool:
    """Whether the OUTSIDE parts of a bucket are shorter than its INSIDE part, and (with
    AFTER) all from that instant on. Only their past counts: the future holds no facts
    (or the few stamped ahead), so taking it away reads next to nothing. A window
    ending now thus reads today's day row, and this week's row, whole."""
    now = timezone.now()
    past = sum((min(b, now) - a for a, b in outside if a < now), timedelta())
    return past < inside and (after is None or all(a >= after for a, _ in outside))


def _cut_inside(lo: datetime, hi: datetime, cuts: Iterable[datetime]) -> bool:
    return any(lo < c < hi for c in cuts)


def _without(ranges: list[Range], holes: list[datetime]) -> list[Range]:
    """Hour-aligned RANGES (sorted) less the sorted hours HOLES."""
    out: list[Range] = []
    i = 0
    for lo, hi in ranges:
        cursor = lo
        while i < len(holes) and holes[i] < hi:
            if holes[i] >= lo:
                if cursor < holes[i]:
                    out.append((cursor, holes[i]))
                cursor = holes[i] + HOUR
            i += 1
        if cursor < hi:
            out.append((cursor, hi))
    return out


def _days_within(lo: datetime, hi: datetime, split_days: set[datetime] | None) -> tuple[list[Range], list[Range]]:
    """Hour-aligned [lo, hi) as (hour ranges, whole-day ranges); days in SPLIT_DAYS, and
    every day when SPLIT_DAYS is None, stay hours."""
    if split_days is None:
        return [(lo, hi)], []
    first_day, last_day = ceil_day(lo), floor_day(hi)
    if first_day >= last_day:
        return [(lo, hi)], []
    hours: list[Range] = []
    days: list[Range] = []
    if lo < first_day:
        hours.append((lo, first_day))
    day = first_day
    for split in sorted(d for d in split_days if first_day <= d < last_day):
        if day < split:
            days.append((day, split))
        hours.append((split, split + DAY))
        day = split + DAY
    if day < last_day:
        days.append((day, last_day))
    if last_day < hi:
        hours.append((last_day, hi))
    return hours, days


def _merged(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _with_history(plan: Plan, purged_until: datetime | None) -> Plan:
    """PLAN with the raw ranges before PURGED_UNTIL answered by their whole hour buckets.

    Raw rows there may have been purged while the bucket still counts them: the bucket
    is the only full record left. Such windows are answered to the hour (the edge hour
    counted whole), not to the second."""
    if purged_until is None or not plan.raw or plan.raw[0][0] >= purged_until:
        return plan
    hours, raw = list(plan.hours), []
    for lo, hi in plan.raw:
        if lo < purged_until:
            hours.append((floor_hour(lo), ceil_hour(hi)))
        else:
            raw.append((lo, hi))
    return Plan(tuple(raw), tuple(_merged(set(hours))), plan.days, plan.weeks)


def _ranges_q(field: str, ranges: Sequence[Range]) -> Q:
    query = Q()
    for lo, hi in ranges:
        query |= Q(**{f"{field}__gte": lo, f"{field}__lt": hi})
    return query


def pick_grain(kind: str, dimensions: Iterable[str], tier: str = "hour") -> str | None:
    """The smallest grain of KIND kept at TIER that holds every one of DIMENSIONS, or None."""
    return spec(kind).pick(dimensions, tier)


@dataclass(frozen=True)
class _SumOf:
    """A measure read as the sum of integer measures of its rollup (an item's tokens:
    prompt + completion), added up in the database, so that one column instead of
    several crosses to the driver and is converted there: a month of hourly usage by
    model is 35,000 rows. Merged by sum, as its parts are."""

    parts: tuple  # of rollups.Measure, each a sum of integers
    merge: ClassVar[str] = "sum"

    @property
    def name(self) -> str:
        return "+".join(part.name for part in self.parts)

    def row_value(self) -> Expression:
        """Its value in one rollup row."""
        return reduce(add, (F(part.name) for part in self.parts))

    def over_rollups(self) -> Expression:
        return Cast(Sum(self.row_value()), BigIntegerField())

    def aggregate(self) -> Expression:
        """Its value over fact rows: the sum of its parts' own aggregates."""
        return Cast(reduce(add, (part.aggregate() for part in self.parts)), BigIntegerField())


@dataclass(frozen=True)
class _Query:
    """What one usage() call asks, resolved against its rollup spec."""

    kind: str
    group_by: tuple[str, ...]
    filters: dict[str, Any]
    series: str | None
    tz: tzinfo
    measures: tuple  # of rollups.Measure
    order: tuple[int, ...] | None = None  # the rows' order: positions in keys (default: keys' order)

    @property
    def rollup(self):
        return spec(self.kind)

    @property
    def shape(self) -> tuple:
        """What, besides the conditions, decides this query's SQL (statsite.querysets.rows_by_shape)."""
        measures = tuple(m.name for m in self.measures)
        return self.kind, self.group_by, self.series, self.tz if self.series == "day" else None, measures, self.order

    @property
    def keys(self) -> list[str]:
        """The group keys: the dimensions, then the series' (an hour as unix seconds,
        `HOUR_KEY`, while merging: an integer is cheaper to read and compare than a time)."""
        series_key = {"hour": HOUR_KEY, "day": "day"}.get(self.series or "")
        return [*self.group_by, *([series_key] if series_key else [])]


def usage(
    kind: str,
    *,
    start: datetime | None,
    end: datetime | None,
    group_by: Sequence[str] = (),
    filters: dict[str, Any] | None = None,
    series: str | None = None,
    tz: tzinfo | None = None,
    measures: Sequence[str] | None = None,
    purged: Purged = "counted",
) -> list[dict[str, Any]]:
    """Sums of KIND's rollup measures (a rollups.ROLLUP_KINDS kind) over [START, END)
    (None: from the first possible fact, ALL_BUCKET, or to the end of time), one dict
    per group: the GROUP_BY dimension values, then `bucket` (series="hour": the UTC
    hour) or `day` (series="day": the date in TZ, default STATS_TIME_ZONE), then the
    MEASURES asked for (default every one; asking for fewer saves work in the database
    and here). FILTERS are exact matches on dimensions. PURGED says whether facts
    purged before the horizon still count (statistics) or not (totals of stored rows).
    Sorted by the group keys."""
    query = _query(kind, group_by, filters, series, tz, measures)
    names = [*query.keys, *(m.name for m in query.measures)]
    rows = [dict(zip(names, row)) for row in _merged_rows(query, start, end, purged)]
    if series == "hour":
        for row in rows:
            row["bucket"] = datetime.fromtimestamp(row.pop(HOUR_KEY), UTC)
    return rows


def _query(
    kind: str, group_by: Sequence[str], filters: dict[str, Any] | None, series: str | None, tz: tzinfo | None,
    measures: Sequence[str] | None, order: tuple[int, ...] | None = None, summed: Sequence[Sequence[str]] = (),
) -> _Query:
    """The query of one usage() call. SUMMED: further measures, each the sum of the
    integer measures it names, after those of MEASURES."""
    rollup = spec(kind)
    filters = dict(filters or {})
    if series not in (None, *SERIES):
        raise ValueError(f"series must be one of {SERIES}")
    unknown = (set(group_by) | set(filters)) - set(rollup.dimensions)
    if unknown:
        raise ValueError(f"unknown dimensions for {kind}: {sorted(unknown)}")
    query = _Query(
        kind, tuple(group_by), filters, series, tz or stats_zone(),
        (*_chosen_measures(rollup, measures), *_sums_of(rollup, summed)), order,
    )
    if order is not None and sorted(order) != list(range(len(query.keys))):
        raise ValueError("order must name every group key once")
    return query


def _merged_rows(query: _Query, start: datetime | None, end: datetime | None, purged: Purged) -> list[Sequence[Any]]:
    """usage()'s rows as sequences of the group keys (hours in unix seconds) then the
    measures, sorted by the group keys (in query.order, if given)."""
    # No fact is older than ALL_BUCKET (a constraint of every fact table).
    start = max(start or ALL_BUCKET, ALL_BUCKET)
    if end is not None and start >= end:
        return []
    merged: dict[tuple, list[Any]] = {}
    if not _from_all_time(query, start, end, purged, merged):
        planned = _plan(query, start, end or FOREVER, purged)
        adding, removing, ordered = _read(query, planned)
        outside: dict[tuple, list[Any]] = {}
        _absorb(query, outside, removing)
        if outside and any(m.merge == "max" for m in query.measures):
            # The newest fact of an edge may lie outside: read the edges as they are.
            outside = {}
            adding, _, ordered = _read(query, _plan(query, start, end or FOREVER, purged, complement=False))
        if ordered:
            return _in_order(query, adding[0], adding[1:], outside)
        _absorb(query, merged, adding)
        _subtract(query, merged, outside)
    # Group keys are of one type per position (dates, or hours, or one column's values).
    return [merged[ident] for ident in sorted(merged, key=_order_key(query))]


def _order_key(query: _Query) -> Callable[[Sequence[Any]], Any]:
    """The sort key of a row (or of its group key) in the order usage() gives rows in."""
    positions = query.order or range(len(query.keys))
    return itemgetter(*positions) if positions else _no_key


def _no_key(row: Sequence[Any]) -> tuple:
    return ()


def _in_order(
    query: _Query, rows: list[tuple], others: list[list[tuple]], outside: dict[tuple, Sequence[Any]]
) -> list[Sequence[Any]]:
    """ROWS (distinct groups, already in the order usage() gives them: rollup rows read
    as they are) with the groups of OTHERS added and those of OUTSIDE taken away. The
    few edge groups are found by bisection, so that a month of hours is neither hashed
    nor sorted again (35,000 rows of hourly usage by model: 2 ms instead of 21)."""
    extra: dict[tuple, Sequence[Any]] = {}
    _absorb(query, extra, others)
    if not extra and not outside:
        return rows
    width, key = len(query.keys), _order_key(query)
    sums, maxima = _merging(query)
    rows = list(rows)
    for ident, row in extra.items():
        at = bisect_left(rows, key(row), key=key)
        if at < len(rows) and rows[at][:width] == ident:
            rows[at] = _added(list(rows[at]), row, sums, maxima)
        else:
            rows.insert(at, row)
    for ident, row in outside.items():
        at = bisect_left(rows, key(row), key=key)
        if at < len(rows) and rows[at][:width] == ident:
            rest = _less(rows[at], row, width)
            if rest is None:
                del rows[at]
            else:
                rows[at] = rest
    return rows


def _sums_of(rollup, summed: Sequence[Sequence[str]]) -> tuple[_SumOf, ...]:
    by_name = {m.name: m for m in rollup.measures}
    for parts in summed:
        if not parts or not set(parts) <= rollup.integer_sums:
            raise ValueError(f"only integer sums of {rollup.kind} can be summed: {sorted(rollup.integer_sums)}")
    return tuple(_SumOf(tuple(by_name[part] for part in parts)) for parts in summed)


def _chosen_measures(rollup, measures: Sequence[str] | None) -> tuple:
    if measures is None:
        return rollup.measures
    missing = set(measures) - set(rollup.measure_names)
    if missing:
        raise ValueError(f"unknown measures for {rollup.kind}: {sorted(missing)}")
    # The counting measure always comes first: it tells an empty aggregate apart.
    wanted = {rollup.measures[0].name, *measures}
    return tuple(m for m in rollup.measures if m.name in wanted)


def _plan(query: _Query, start: datetime, end: datetime, purged: Purged, *, complement: bool = True) -> Planned:
    """How to read [START, END) for QUERY. With COMPLEMENT, an edge day or hour may be
    read whole, less its outside part, where that part is the smaller (`by_complement`,
    `_whole_edge_days`): for a query of a max measure, only where that part is in the
    future (else the newest fact of the edge might lie outside the window)."""
    after = timezone.now() if any(m.merge == "max" for m in query.measures) else None
    rollup = query.rollup
    dimensions = [*query.group_by, *query.filters]
    hour_grain = rollup.pick(dimensions, "hour")
    day_grain = rollup.pick(dimensions, "day") if query.series != "hour" else None
    # Week rows where the day grain keeps them (a coarser grain's weeks would hold more
    # rows than its days), and for no series (a day series needs its days, in any zone).
    weekly = query.series is None and day_grain is not None and "week" in rollup.grains[day_grain].tiers
    week_grain = day_grain if weekly else None
    if hour_grain is None and day_grain is None:
        # No rollup holds this combination of dimensions: the raw rows answer it all.
        return Planned(Plan(raw=((start, end),)))
    edge = horizon(query.kind, cached=True)
    if hour_grain is None:
        return _days_and_raw(query, start, end, purged, day_grain, edge, after if complement else False)
    cuts = _series_cuts(query, start, end)
    early = Plan()
    if purged == "excluded" and edge is not None and start < edge:
        # Stored rows only: everything before the horizon is read raw (most of it is gone).
        early, start = Plan(raw=((start, min(edge, end)),)), min(edge, end)
        if start == end:
            return Planned(early, Plan(), hour_grain, day_grain, week_grain)
    outer, minus = start, Plan()
    if complement and day_grain is not None:
        # An edge day read whole must hold no midnight of the series' zone, in or out of the window.
        outer, end, minus = _whole_edge_days(start, end, _edge_day_cuts(query, start, end), after, edge)
        if week_grain is not None:
            outer, end, outside = _whole_edge_weeks(outer, end, after, edge)
            minus = minus + outside
    plan = plan_window(outer, end, cuts=cuts, days=day_grain is not None, weeks=week_grain is not None)
    if purged == "counted":
        plan = _with_history(plan, edge)
    if complement:
        # An edge hour read whole must hold no midnight of the series' zone, in or out of
        # the window: its bucket would date the part outside by the other day.
        hour_cuts = (
            [c for lo, _ in plan.raw for c in local_midnights(floor_hour(lo), floor_hour(lo) + HOUR, query.tz)]
            if query.series == "day" else []
        )
        plan, outside = by_complement(plan, [*cuts, *hour_cuts], after=after)
        minus = minus + outside
    return Planned(early + plan, minus, hour_grain, day_grain, week_grain)


def _days_and_raw(
    query: _Query, start: datetime, end: datetime, purged: Purged, day_grain: str, edge: datetime | None,
    after: datetime | None | Literal[False],
) -> Planned:
    """How to read [START, END) from a grain kept by the day alone (`days_from_facts`):
    its whole UTC days from the day rows, the rest from the raw rows. With AFTER (not
    False), an edge day whose outside part is the smaller is read whole, less that
    part's raw rows (`_whole_edge_days`). A UTC day that a midnight of a daily series'
    zone splits is read raw. Where raw rows would be read from before the purge
    horizon (which may have taken them while the day rows still count them), or no
    whole day is left, the raw rows answer it all, as with no grain."""
    everything = Planned(Plan(raw=((start, end),)))
    cuts = _series_cuts(query, start, end)
    minus = Plan()
    if after is not False:
        start, end, minus = _whole_edge_days(start, end, _edge_day_cuts(query, start, end), after, edge)
    plan = plan_window(start, end, cuts=cuts)
    positive = Plan(raw=tuple(_merged([*plan.raw, *plan.hours])), days=plan.days)
    negative = Plan(raw=tuple(_merged([*minus.raw, *minus.hours])))
    if not positive.days:
        return everything
    if purged == "excluded" and edge is not None and positive.days[0][0] < edge:
        return everything
    if edge is not None and any(lo < edge for lo, _ in (*positive.raw, *negative.raw)):
        return everything
    return Planned(positive, negative, None, day_grain, None)


def _series_cuts(query: _Query, start: datetime, end: datetime) -> list[datetime]:
    """The midnights of a daily series' zone inside [START, END), where its days split."""
    return local_midnights(start, end, query.tz) if query.series == "day" and end < FOREVER else []


def _edge_day_cuts(query: _Query, start: datetime, end: datetime) -> list[datetime]:
    """The midnights of a daily series' zone in the UTC days of START and END, in or out
    of the window: an edge day read whole must hold none."""
    if query.series != "day":
        return []
    edge_days = [floor_day(start), *([floor_day(end)] if end < FOREVER else [])]
    return [c for d in edge_days for c in local_midnights(d, d + DAY, query.tz)]


def _whole_edge_days(
    start: datetime, end: datetime, cuts: list[datetime], after: datetime | None, edge: datetime | None
) -> tuple[datetime, datetime, Plan]:
    """[start, end) widened to the UTC day of an edge whose outside part is the smaller
    (a window ending now: the rest of today, from the future), and those outside parts
    (hour rows and raw edges) to take away. A day holding a CUT, or an outside part
    before the purge horizon (whose rows may be gone), is left as it is."""
    minus = Plan()
    first, last = floor_day(start), floor_day(end)
    if first == last:
        return start, end, minus  # one day: its hours suffice
    if start != first and start < ceil_day(start) <= end and (edge is None or first >= edge):
        outside = [(first, start)]
        if _outside_smaller(outside, ceil_day(start) - start, after) and not _cut_inside(first, first + DAY, cuts):
            start, minus = first, minus + plan_window(first, outside[0][1], days=False)
    if end != last and end < FOREVER and (edge is None or end >= edge):
        outside = [(end, last + DAY)]
        if _outside_smaller(outside, end - last, after) and not _cut_inside(last, last + DAY, cuts):
            end, minus = last + DAY, minus + plan_window(end, last + DAY, days=False)
    return start, end, minus


def _whole_edge_weeks(
    start: datetime, end: datetime, after: datetime | None, edge: datetime | None
) -> tuple[datetime, datetime, Plan]:
    """[start, end) widened to the UTC week of an edge that falls on a midnight, where
    the week row and the days outside are fewer rows than the days inside (a window
    ending now: the rest of the week is in the future), and those outside parts (whole
    days) to take away. As with days, a week beginning before the purge horizon is
    left as it is."""
    minus = Plan()
    first = floor_week(start)
    if start == floor_day(start) and start != first and ceil_week(start) <= end and (edge is None or first >= edge):
        # The week row counts as one more day read.
        if _outside_smaller([(first, start)], ceil_week(start) - start - DAY, after):
            start, minus = first, minus + Plan(days=((first, start),))
    last = floor_week(end)
    if end < FOREVER and end == floor_day(end) and end != last and last >= start and (edge is None or end >= edge):
        outside = (end, last + WEEK)
        if _outside_smaller([outside], end - last - DAY, after):
            end, minus = last + WEEK, minus + Plan(days=(outside,))
    return start, end, minus


def _from_all_time(query: _Query, start: datetime, end: datetime | None, purged: Purged, merged: dict) -> bool:
    """Answer a window from the beginning (ALL_BUCKET) to about now from the all-time
    rows, less the raw rows after its end (the last minutes, and facts stamped in the
    future). Returns False, touching nothing, when the all-time rows cannot answer
    it: another window, a series, stored-rows totals, no all-time grain, or a max
    measure (the newest fact) that facts after the end would spoil."""
    rollup = query.rollup
    if query.series is not None or purged != "counted" or start > ALL_BUCKET:
        return False
    if end is not None and end < timezone.now() - ALL_TIME_SLACK:
        return False
    grain = rollup.pick([*query.group_by, *query.filters], "all")
    if grain is None:
        return False
    rest: dict[tuple, list[Any]] = {}
    if end is not None:
        _absorb(query, rest, _read(query, Planned(Plan(raw=((end, FOREVER),))))[0])
    if rest and any(m.merge == "max" for m in query.measures):
        return False
    every = Q(grain=stored_grain(grain, "all"), **_key_filter(rollup, grain, query.filters))
    rows = _rollup_rows(query, every, None)
    _absorb(query, merged, [rows])
    _subtract(query, merged, rest)
    return True


def _key_filter(rollup, grain: str, filters: dict[str, Any]) -> dict[str, Any]:
    """`key=…` when FILTERS fix every dimension of GRAIN: the unique (grain, key, bucket)
    index then finds the group's buckets directly."""
    columns = rollup.grains[grain].columns
    if columns and all(c in filters for c in columns):
        return {"key": key_text([filters[c] for c in columns])}
    return {}


SIGN = "statsite_sign"  # the group key that tells a part to take away (-1) from one to add (1)
NO_GROUP = "statsite_all"  # the constant an ungrouped aggregate is grouped by


def _rollup_rows(query: _Query, where: Q, negative: Q | None, *, ungrouped: str | None = None) -> list[tuple]:
    """The rollup rows WHERE says, summed per group (and per sign, when NEGATIVE says
    which rows are to be taken away: the sign comes first); UNGROUPED: the hour grain
    whose rows WHERE says, each a group of its own already (the group keys and filters
    fix its columns), read as it is."""
    if query.filters:
        where &= Q(**query.filters)
    rows = rows_by_shape(
        ("rollups", query.shape, ungrouped), (where, negative), partial(_rollup_queryset, query, ungrouped=ungrouped)
    )
    return _counted(query, rows, negative)


def _rollup_queryset(query: _Query, where: Q, negative: Q | None, *, ungrouped: str | None):
    rows = _with_series(query, query.rollup.table.objects.filter(where), "bucket", "bucket")
    keys = _signed(query, negative)
    if ungrouped:
        # Tens of thousands of plain columns: read in usage()'s order (the merge keeps it).
        columns = [_in_code_point_order(query, name) for name in (*query.group_by, "bucket")]
        ordered = [columns[i] for i in query.order] if query.order else columns
        read, sums = _row_columns(query, ungrouped)
        rows = _with_sign(rows.annotate(**sums) if sums else rows, negative)
        return rows.values_list(*keys, *read).order_by(*ordered)
    return _grouped(_with_sign(rows, negative), keys, _read_as_they_are(query, "over_rollups"))


def _row_columns(query: _Query, grain: str) -> tuple[list[str], dict[str, Expression]]:
    """The column each measure of QUERY is read from in one hour row of GRAIN, and the
    sums of measures to add up in the row first. In the hour rows of the grains the
    hourly usage series reads, the columns that its covering indexes hold
    (usage.models.SERIES_COLUMNS)."""
    series = SERIES_COLUMNS if query.kind == "llm" and grain in SERIES_GRAINS else {}
    sums = {m.name: m.row_value() for m in query.measures if isinstance(m, _SumOf) and m.name not in series}
    return [series.get(m.name, m.name) for m in query.measures], sums


def _with_series(query: _Query, rows, time: str, hour: Any):
    """ROWS with the series key of QUERY, if any: HOUR (the UTC hour of the row) as unix
    seconds, or the date of TIME in the series' zone."""
    if query.series == "hour":
        return rows.annotate(**{HOUR_KEY: UnixSeconds(hour)})
    if query.series == "day":
        return rows.annotate(day=TruncDate(time, tzinfo=query.tz))
    return rows


def _in_code_point_order(query: _Query, name: str) -> F | Collate:
    """Column NAME of the rollup table to order by as Python orders its values (text by
    code point)."""
    field = query.rollup.table._meta.get_field(name)
    return by_code_point(name) if isinstance(field, CharField) else F(name)


def _read_as_they_are(query: _Query, over: str) -> dict[str, Any]:
    """Each measure's aggregate (OVER: "aggregate", over facts, or "over_rollups"), of
    the type it is read as: a sum of integers cast to bigint (PostgreSQL sums bigints
    as numeric), so that rows come from the driver as they are, with no conversion per
    value by Django (milliseconds over a thousand groups)."""
    aggregates = {}
    for measure in query.measures:
        aggregate = getattr(measure, over)()
        if measure.name in query.rollup.integer_sums:
            aggregate = Cast(aggregate, BigIntegerField())
        aggregates[measure.name] = aggregate
    return aggregates


def _with_sign(rows, negative: Q | None):
    if negative is None:
        return rows
    return rows.annotate(**{SIGN: Case(When(negative, then=Value(-1)), default=Value(1))})


def _signed(query: _Query, negative: Q | None) -> list[str]:
    return [SIGN, *query.keys] if negative is not None else query.keys


def _read(query: _Query, planned: Planned) -> tuple[list[list[tuple]], list[list[tuple]], bool]:
    """(the rows to add, the rows to take away, whether the first rows to add are in
    usage()'s order) of PLANNED, each a list of grouped rows (tuples of the group keys,
    then the measures): rollup buckets (hour and day rows) in one query, raw rows in
    another, whatever the sign."""
    rollup = query.rollup
    adding: list[list[tuple]] = []
    removing: list[list[tuple]] = []
    ungrouped = False
    positive, negative = _buckets_q(query, planned, planned.positive), _buckets_q(query, planned, planned.negative)
    if positive or negative:
        # Hour rows of a grain the group keys and filters fix are their own groups.
        fixed = set(query.group_by) | set(query.filters)
        hour_grain = planned.hour_grain
        ungrouped = (
            query.series == "hour" and not (planned.positive.days or planned.positive.weeks) and hour_grain is not None
            and set(rollup.grains[hour_grain].columns) <= fixed
        )
        rows = _rollup_rows(query, positive | negative, negative or None, ungrouped=hour_grain if ungrouped else None)
        _split(rows, bool(negative), adding, removing)
    raw, raw_negative = planned.positive.raw, planned.negative.raw
    if raw or raw_negative:
        where = _ranges_q("created_at", (*raw, *raw_negative))
        for name, value in query.filters.items():
            where &= _dimension_q(rollup, name, value)
        negative_raw = _ranges_q("created_at", raw_negative) if raw_negative else None
        rows = rows_by_shape(("facts", query.shape), (where, negative_raw), partial(_facts_queryset, query))
        rows = _counted(query, rows, negative_raw)
        _split(_neutral_keys(query, rows, negative_raw is not None), negative_raw is not None, adding, removing)
    return adding, removing, ungrouped


def _facts_queryset(query: _Query, where: Q, negative: Q | None):
    hour = TruncHour("created_at", tzinfo=UTC)
    facts = _with_series(query, query.rollup.facts().filter(where), "created_at", hour)
    return _grouped(_with_sign(facts, negative), _signed(query, negative), _read_as_they_are(query, "aggregate"))


def _neutral_keys(query: _Query, rows: list[tuple], signed: bool) -> list[tuple]:
    """ROWS of facts with a NULL dimension keyed by the rollups' neutral value (0, "")."""
    first = 1 if signed else 0
    neutral = [query.rollup.dimensions[k][1] for k in query.group_by]
    positions = range(first, first + len(neutral))
    if not any(row[i] is None for row in rows for i in positions):
        return rows
    return [
        tuple(neutral[i - first] if i in positions and v is None else v for i, v in enumerate(row)) for row in rows
    ]


def _buckets_q(query: _Query, planned: Planned, plan: Plan) -> Q:
    """The rollup rows answering PLAN's hour, day and week ranges (an empty Q when none)."""
    rollup = query.rollup
    where = Q()
    for tier, grain, ranges in (
        ("hour", planned.hour_grain, plan.hours),
        ("day", planned.day_grain, plan.days),
        ("week", planned.week_grain, plan.weeks),
    ):
        if ranges and grain is not None:
            where |= Q(
                grain=stored_grain(grain, tier), **_key_filter(rollup, grain, query.filters)
            ) & _ranges_q("bucket", ranges)
    return where


def _split(rows: list[tuple], signed: bool, adding: list, removing: list) -> None:
    """ROWS into ADDING and REMOVING by their leading sign (all to ADDING when unsigned)."""
    if not signed:
        adding.append(rows)
        return
    adding.append([row[1:] for row in rows if row[0] > 0])
    removing.append([row[1:] for row in rows if row[0] < 0])


def _absorb(query: _Query, merged: dict[tuple, Sequence[Any]], parts: Iterable[list[tuple]]) -> None:
    """Add the grouped rows of PARTS (tuples of the group keys, then the measures; the
    groups of one part are distinct) into MERGED, by group key. A row is kept as it is
    until another adds to it (then as a list)."""
    width = len(query.keys)
    sums, maxima = _merging(query)
    for part in parts:
        if not merged:
            merged.update({row[:width]: row for row in part})
            continue
        for row in part:
            ident = row[:width]
            current = merged.get(ident)
            if current is None:
                merged[ident] = row
                continue
            if type(current) is tuple:
                current = merged[ident] = list(current)
            _added(current, row, sums, maxima)


def _merging(query: _Query) -> tuple[list[int], list[int]]:
    """The positions, in a row, of the measures merged by sum and of those merged by max."""
    width = len(query.keys)
    sums = [width + i for i, m in enumerate(query.measures) if m.merge != "max"]
    maxima = [width + i for i, m in enumerate(query.measures) if m.merge == "max"]
    return sums, maxima


def _added(current: list[Any], row: Sequence[Any], sums: list[int], maxima: list[int]) -> list[Any]:
    """CURRENT (a row of one group) with ROW (of the same group) added into it."""
    for i in sums:
        current[i] += row[i]
    for i in maxima:
        value = row[i]
        if value is not None and (current[i] is None or value > current[i]):
            current[i] = value
    return current


def _subtract(query: _Query, merged: dict[tuple, Sequence[Any]], rest: dict[tuple, Sequence[Any]]) -> None:
    """Take the sums of REST away from MERGED, group by group; drop groups left with
    no fact."""
    width = len(query.keys)
    for ident, row in rest.items():
        current = merged.get(ident)
        if current is None:
            continue
        left = _less(current, row, width)
        if left is None:
            del merged[ident]
        else:
            merged[ident] = left


def _less(current: Sequence[Any], row: Sequence[Any], width: int) -> list[Any] | None:
    """CURRENT (a row of one group) less ROW (of the same group), or None when no fact
    is left (its counting measure, the first, is 0)."""
    left = list(current)
    for i in range(width, len(row)):
        left[i] -= row[i]
    return left if left[width] else None


def _counted(query: _Query, rows: list[tuple], negative: Q | None) -> list[tuple]:
    """ROWS of `_grouped`, less an ungrouped aggregate that counted nothing (its first
    measure counts facts: none counted, nothing to add)."""
    if query.keys or negative is not None:
        return rows
    return [row for row in rows if row[0]]


def _grouped(rows, keys: list[str], aggregates: dict[str, Any]):
    """ROWS' AGGREGATES per KEYS, as a values_list queryset (keys, then aggregates).
    Without keys, one row of aggregates: grouped by a constant, which is no GROUP BY
    (`values()` with no fields would group by every column: a row per row)."""
    if not keys:
        rows = rows.annotate(**{NO_GROUP: Value(1)})
        return rows.values(NO_GROUP).annotate(**aggregates).values_list(*aggregates).order_by()
    return rows.values(*keys).annotate(**aggregates).values_list(*keys, *aggregates).order_by()


def _dimension_q(rollup, name: str, value: Any) -> Q:
    """A filter on a fact column, where the rollups' neutral value (0, "") also means NULL."""
    neutral = rollup.dimensions[name][1]
    if value == neutral and neutral == 0:
        return Q(**{f"{name}__isnull": True}) | Q(**{name: value})
    return Q(**{name: value})


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
    created_at: int
    user_id: NotRequired[int]
    username: NotRequired[str]


def usage_by_model_hour(
    *, start: datetime, end: datetime, account: AbstractBaseUser | None = None
) -> list[ModelHourUsage]:
    """LLM usage over [START, END) per UTC hour and model (of ACCOUNT only, when given,
    each item then naming it: `user_id`, `username`), as the gateway data endpoints
    answer it: `count` the requests (failed ones too), `quota` the consumed quota,
    `token_used` prompt + completion tokens, `created_at` the hour's start in unix
    seconds. A partial edge hour is summed under its own hour. Ordered by hour, then
    model. A month of hours by model is tens of thousands of items: they are built
    straight from usage()'s merged rows."""
    query = _query(
        "llm", ("model_name",), {"user_id": account.pk} if account is not None else {}, "hour", UTC,
        ("requests", "quota"), order=(1, 0), summed=(("prompt_tokens", "completion_tokens"),),
    )
    named = {"user_id": account.pk, "username": account.username} if account is not None else {}
    # Rows: model, hour, then the measures in the spec's order, then the tokens, summed
    # measures coming last (all integers).
    at = {name: i for i, name in enumerate([*query.keys, *(m.name for m in query.measures)])}
    requests, quota, token_used = at["requests"], at["quota"], at[query.measures[-1].name]
    return [
        {"model_name": row[0], "count": row[requests], "quota": row[quota], "token_used": row[token_used],
         "created_at": row[1], **named}
        for row in _merged_rows(query, start, end, "counted")
    ]  # fmt: skip


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
        names_of = usernames(row["user_id"] for row in rows if row["user_id"])
        names = [names_of.get(row["user_id"]) or UNKNOWN_GROUP for row in rows]
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


def models_containing(text: str) -> list[str]:
    """The model names LLM calls have ever named (those purged since too) that contain
    TEXT in any case, as the database compares text: from the model grain's all-time
    rows, one per model."""
    rows = spec("llm").table.objects.filter(grain=stored_grain("model", "all"), model_name__icontains=text)
    return list(rows.order_by("model_name").values_list("model_name", flat=True))


def tools_containing(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the tool names that contain TEXT, the (tool id, tool name) pairs whose id
    contains it) of every tool call ever recorded (those purged since too), in any case
    as the database compares text: from the tool grain's all-time rows, one per pair."""
    rows = spec("tools").table.objects.filter(grain=stored_grain("tool", "all")).order_by()
    names = rows.filter(tool_name__icontains=text).values_list("tool_name", flat=True).distinct()
    pairs = rows.filter(tool_id__icontains=text).values_list("tool_id", "tool_name").distinct()
    return sorted(names), sorted(pairs)


def usernames(account_ids: Iterable[int]) -> dict[int, str]:
    """The usernames of the accounts ACCOUNT_IDS name (ids of no account are left out),
    each looked up once: a thousand and more bound as one array on PostgreSQL, in
    chunks elsewhere (statsite.ingest.rows_among)."""
    return dict(rows_among(get_user_model(), "pk", sorted(set(account_ids)), "pk", "username"))


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
    # Not the newest call's time: a maximum would keep an edge day from being read whole.
    measures = ("requests", "errors", "prompt_tokens", "completion_tokens", "latency_sum_ms", "latency_count")
    rows = usage("llm", start=start, end=end, group_by=("model_name",), measures=(*measures, *latency_field_names()))
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
    measures = ("calls", "successes", "duration_sum_ms", "duration_count")
    rows = usage("tools", start=start, end=end, group_by=("tool_id", "tool_name"), measures=measures)
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
    measures = ("requests", "errors", "latency_sum_ms", "latency_count", "last_at")
    used = {
        row["channel_id"]: row
        for row in usage("llm", start=start, end=end, group_by=("channel_id",), measures=measures)
    }
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
    measures = ("calls", "successes", "failures", "cost")
    window = {"start": start, "end": end, "filters": filters, "tz": tz, "measures": measures}

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
