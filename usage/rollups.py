"""Keeping the rollups exact: increments at ingest, rebuild and check.

A rollup row sums the facts of one *grain* (a set of dimensions, e.g. account x
model) over one bucket of time. Each grain is kept at up to three resolutions,
its *tiers*:

- `hour`: one row per UTC hour, stored under the grain's own name;
- `day`:  one row per UTC day, stored as `<grain>:day`;
- `week`: one row per UTC week (from Monday), stored as `<grain>:week`;
- `all`:  one row for all time, stored as `<grain>:all` in the bucket ALL_BUCKET.

A statistic over a long window reads a few day rows instead of 24 hour rows per
day, and one over all time reads one row per group (`usage.selectors` picks the
tiers). Each grain keeps only the tiers its readers need: a grain as large as
account x model is kept by the hour only, the account alone by the day, the week
and for all time. The week tier is for the grains whose many groups a month's
statistic reads (accounts, chat members): four or five week rows per group
instead of thirty day rows.

A `RollupSpec` says, for one fact kind, which grains and tiers exist, and for each
measure its SQL aggregate over the fact table and whether it adds up (`sum`) or
keeps the larger (`max`). The same definitions serve every path:

- ingest: the facts a transaction just inserted (by id) are aggregated in the
  database by every grain and tier and added with one `INSERT … SELECT … ON
  CONFLICT (grain, key, bucket) DO UPDATE SET x = x + excluded.x` — the same SQL on
  SQLite and PostgreSQL — in the ingest transaction, so a committed fact is counted
  exactly once and concurrent writers to one bucket never lose an increment (the
  database serialises the row). Rows go in sorted, so concurrent batches lock
  buckets in one order and cannot deadlock over them. On PostgreSQL, rows the
  transaction is about to insert (a batch's error rows, logs.services) are counted
  from their values;
- rebuild: the hour tier from the facts, the day tier from the hour tier, the week
  and all tiers from the day tier (hour rows outlive purges, so the coarser tiers can
  always be rebuilt whole), a slice of time at a time, with ingest of the kind and
  purges held off until each slice commits. A grain kept by the day with no hourly
  grain to come from (a pair of dimensions whose hours would be nearly as many rows
  as the facts) is counted from the facts by the day, from the first day the purge
  horizon has left whole; its days before that keep what they counted;
- check: each tier compared with what it is rebuilt from, in the database, grain by
  grain, each as of one instant.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from django.core.cache import cache
from django.db import DataError, OperationalError, connection, models, transaction
from django.db.models import Count, Max, Min, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, Collate, Concat, TruncDay, TruncHour, TruncWeek
from django.db.models.sql.datastructures import BaseTable

from usage.models import (
    EARLIEST_FACT,
    LATENCY_BOUNDS_MS,
    EventRollup,
    LLMRollup,
    RawDataHorizon,
    ToolRollup,
    latency_field_names,
)

KEY_SEPARATOR = "\x1f"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
TIERS = ("hour", "day", "week", "all")
# The bucket of the all-time tier: no fact is older.
ALL_BUCKET = EARLIEST_FACT


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_day(moment: datetime) -> datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + DAY


def floor_week(moment: datetime) -> datetime:
    """The start of MOMENT's UTC week: the Monday at midnight."""
    day = floor_day(moment)
    return day - day.weekday() * DAY


def ceil_week(moment: datetime) -> datetime:
    floor = floor_week(moment)
    return floor if floor == moment else floor + WEEK


@dataclass(frozen=True)
class Grain:
    """The dimensions a grain groups by, and the tiers it is kept at."""

    columns: tuple[str, ...]
    tiers: tuple[str, ...] = ("hour", "day")


def stored_grain(grain: str, tier: str) -> str:
    """The `grain` column value of GRAIN's rows at TIER."""
    return grain if tier == "hour" else f"{grain}:{tier}"


@dataclass(frozen=True)
class Measure:
    name: str
    aggregate: Callable[[], models.Expression]  # over the fact table
    merge: str = "sum"  # "sum" adds up; "max" keeps the larger

    def over_rollups(self) -> models.Expression:
        """This measure's aggregate over rollup rows (of a finer tier or grain)."""
        return Max(self.name) if self.merge == "max" else Sum(self.name)


@dataclass(frozen=True)
class RollupSpec:
    kind: str
    table: type[models.Model]
    facts: Callable[[], models.QuerySet]
    grains: dict[str, Grain]
    # dimension column -> (SQL expression over the fact table, neutral value)
    dimensions: dict[str, tuple[Callable[[], models.Expression], Any]]
    # The first measure counts facts: a group whose count is 0 does not exist.
    measures: tuple[Measure, ...]

    @property
    def measure_names(self) -> list[str]:
        return [m.name for m in self.measures]

    @property
    def columns(self) -> list[str]:
        """The rollup table's columns in the order every aggregate query yields them."""
        return ["grain", "key", "bucket", *self.dimensions, *self.measure_names]

    @cached_property
    def integer_sums(self) -> frozenset[str]:
        """The measures that add up integers (kept in 64-bit integer columns)."""
        table = self.table._meta
        return frozenset(
            m.name for m in self.measures
            if m.merge == "sum" and isinstance(table.get_field(m.name), models.IntegerField)
        )  # fmt: skip

    def grains_at(self, tier: str) -> list[str]:
        return [name for name, grain in self.grains.items() if tier in grain.tiers]

    def pick(self, dimensions: Iterable[str], tier: str) -> str | None:
        """The smallest grain kept at TIER that holds every one of DIMENSIONS, or None."""
        wanted = set(dimensions)
        fitting = [
            (len(grain.columns), name)
            for name, grain in self.grains.items()
            if tier in grain.tiers and wanted <= set(grain.columns)
        ]
        return min(fitting)[1] if fitting else None

    def day_source(self, grain: str) -> str | None:
        """The hourly grain GRAIN's day rows are rebuilt from (itself, or a finer one);
        None: they are counted from the facts."""
        return self.pick(self.grains[grain].columns, "hour")

    def days_from_facts(self) -> list[str]:
        """The grains whose day rows no hourly grain adds up to: counted from the facts."""
        return [name for name in self.grains_at("day") if self.day_source(name) is None]

    def validate(self) -> None:
        for name, grain in self.grains.items():
            assert set(grain.tiers) <= set(TIERS) and grain.tiers, (self.kind, name)
            assert set(grain.columns) <= set(self.dimensions), (self.kind, name)
            if "hour" not in grain.tiers:
                assert "day" in grain.tiers, f"{self.kind}: {name} is kept by the hour or by the day"
            for coarser in set(grain.tiers) & {"week", "all"}:
                assert "day" in grain.tiers, f"{self.kind}: the {coarser} tier of {name} is rebuilt from its day tier"
            for tier in grain.tiers:
                field = self.table._meta.get_field("grain")
                assert len(stored_grain(name, tier)) <= field.max_length, (self.kind, name, tier)


def _count(condition: Q | None = None) -> Callable[[], models.Expression]:
    return lambda: Count("id", filter=condition)


def _sum(column: str, condition: Q | None = None, output=None) -> Callable[[], models.Expression]:
    def build():
        zero = Value(Decimal(0), output_field=output) if output is not None else Value(0)
        return Coalesce(Sum(column, filter=condition), zero, output_field=output)

    return build


def latency_bucket(latency_ms: int | None) -> int | None:
    if latency_ms is None:
        return None
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms < bound:
            return index
    return len(LATENCY_BOUNDS_MS)


def _latency_measures() -> tuple[Measure, ...]:
    measures = []
    lower = 0
    for index, name in enumerate(latency_field_names()):
        upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else None
        condition = Q(latency_ms__gte=lower) & (Q(latency_ms__lt=upper) if upper is not None else Q())
        measures.append(Measure(name, _count(condition)))
        lower = upper or lower
    return tuple(measures)


COST = models.DecimalField(max_digits=28, decimal_places=8)


def _text(column: str) -> Callable[[], models.Expression]:
    return lambda: models.F(column)


def _int(column: str) -> Callable[[], models.Expression]:
    return lambda: Coalesce(column, Value(0), output_field=models.BigIntegerField())


# Dimensions several rollups have: (SQL over the fact table, neutral value).
USER_DIMENSION = (_int("user_id"), 0)
CHAT_DIMENSION = (_text("chat_id"), "")
LAST_AT = Measure("last_at", lambda: Max("created_at"), merge="max")


def _llm_spec() -> RollupSpec:
    from logs.models import Log

    consume = Q(type=Log.Type.CONSUME)
    every_tier = ("hour", "day", "all")
    return RollupSpec(
        kind="llm",
        table=LLMRollup,
        facts=lambda: Log.objects.llm_calls(),
        grains={
            "total": Grain((), every_tier),
            "model": Grain(("model_name",), every_tier),
            # Account x model is nearly as large as the facts by the day: hourly only,
            # for one account's series (/api/data/self) and the hour edges of "user".
            "user_model": Grain(("user_id", "model_name"), ("hour",)),
            "user": Grain(("user_id",), ("day", "week", "all")),
            "token_name": Grain(("token_name",)),
            "channel": Grain(("channel_id",), every_tier),
            "group": Grain(("group",)),
            "module": Grain(("module",), every_tier),
            "request_type": Grain(("request_type",)),
            "chat": Grain(("chat_id",), every_tier),
            # Pairs of the dimensions the admin dashboard is narrowed by, so that a model,
            # a channel or a chat broken down by another is read from day rows (and the
            # raw rows of its edge hours), not from a month of raw rows. By the day alone:
            # their hours would be a third of the facts or more. Every row a batch adds
            # lengthens the part of ingest that concurrent batches take in turn (they
            # update the same rows), so pairs with the account, a row per account in the
            # batch each, are not kept (BENCH.md).
            "model_channel": Grain(("model_name", "channel_id"), ("day",)),
            "model_chat": Grain(("model_name", "chat_id"), ("day",)),
            "channel_chat": Grain(("channel_id", "chat_id"), ("day",)),
        },
        dimensions={
            "user_id": USER_DIMENSION,
            "model_name": (_text("model_name"), ""),
            "channel_id": (_int("channel_id"), 0),
            "token_name": (_text("token_name"), ""),
            "group": (_text("group"), ""),
            "module": (_text("module"), ""),
            "request_type": (_text("request_type"), ""),
            "chat_id": CHAT_DIMENSION,
        },
        measures=(
            Measure("requests", _count()),
            Measure("successes", _count(Q(success=True))),
            Measure("errors", _count(Q(success=False))),
            Measure("prompt_tokens", _sum("prompt_tokens")),
            Measure("completion_tokens", _sum("completion_tokens")),
            Measure("quota", _sum("quota", consume)),
            Measure("cost", _sum("cost", output=COST)),
            Measure("latency_sum_ms", _sum("latency_ms")),
            Measure("latency_count", lambda: Count("latency_ms")),
            *_latency_measures(),
            LAST_AT,
        ),
    )


def _event_spec() -> RollupSpec:
    from logs.models import Log

    # Every grain keeps the type: a log list filtered by type and one dimension, or by
    # a dimension alone (summing the types), is answered from one grain.
    return RollupSpec(
        kind="events",
        table=EventRollup,
        facts=lambda: Log.objects.not_llm_calls(),
        grains={
            "type": Grain(("type",), ("hour", "day", "all")),
            "type_user": Grain(("type", "user_id")),
            "type_model": Grain(("type", "model_name")),
            # An account's own log list by model (/api/log/self?model_name=).
            "type_user_model": Grain(("type", "user_id", "model_name")),
            "type_token": Grain(("type", "token_name")),
            "type_channel": Grain(("type", "channel_id")),
            "type_group": Grain(("type", "group")),
        },
        dimensions={
            "type": (lambda: models.F("type"), 0),
            "user_id": USER_DIMENSION,
            "model_name": (_text("model_name"), ""),
            "token_name": (_text("token_name"), ""),
            "channel_id": (_int("channel_id"), 0),
            "group": (_text("group"), ""),
        },
        measures=(Measure("rows", _count()), LAST_AT),
    )


def _tool_spec() -> RollupSpec:
    from usage.models import ToolCall

    return RollupSpec(
        kind="tools",
        table=ToolRollup,
        facts=lambda: ToolCall.objects.all(),
        grains={
            "tool": Grain(("tool_id", "tool_name"), ("hour", "day", "all")),
            "user_tool": Grain(("user_id", "tool_id", "tool_name")),
            "chat": Grain(("chat_id",), ("hour", "day", "all")),
            # The tools of one chat (the admin dashboard narrowed to a chat), by the day.
            "chat_tool": Grain(("chat_id", "tool_id", "tool_name"), ("day",)),
        },
        dimensions={
            "user_id": USER_DIMENSION,
            "tool_id": (_text("tool_id"), ""),
            "tool_name": (_text("tool_name"), ""),
            "chat_id": CHAT_DIMENSION,
        },
        measures=(
            Measure("calls", _count()),
            Measure("successes", _count(Q(success=True))),
            Measure("failures", _count(Q(success=False))),
            Measure("cost", _sum("cost", output=COST)),
            Measure("duration_sum_ms", _sum("duration_ms")),
            Measure("duration_count", lambda: Count("duration_ms")),
            LAST_AT,
        ),
    )


def _message_spec() -> RollupSpec:
    from messaging.models import Message, MessageRollup

    # Every grain keeps sent_by_bot: no message statistic mixes the bot's messages
    # with the people's unless it asks for both.
    every_tier = ("hour", "day", "all")
    return RollupSpec(
        kind="messages",
        table=MessageRollup,
        facts=lambda: Message.objects.all(),
        grains={
            "direction": Grain(("sent_by_bot",), every_tier),
            "chat": Grain(("chat_id", "sent_by_bot"), every_tier),
            "sender": Grain(("sender_id", "sent_by_bot"), ("day", "all")),
            # A month by chat member: /messages/stats_by_chat?group_by_user=true.
            "chat_sender": Grain(("chat_id", "sender_id", "sent_by_bot"), ("hour", "day", "week", "all")),
        },
        dimensions={
            "chat_id": (_int("chat_id"), 0),
            "sender_id": (_int("sender_id"), 0),
            "sent_by_bot": (lambda: models.F("sent_by_bot"), False),
        },
        measures=(
            Measure("messages", _count()),
            Measure("text_length", _sum("text_length")),
            LAST_AT,
        ),
    )


_SPECS: dict[str, RollupSpec] = {}


def spec(kind: str) -> RollupSpec:
    """The rollup spec of KIND (one of ROLLUP_KINDS), built once (it imports the fact models)."""
    if not _SPECS:
        for built in (_llm_spec(), _event_spec(), _tool_spec(), _message_spec()):
            built.validate()
            _SPECS[built.kind] = built
    return _SPECS[kind]


ROLLUP_KINDS = ("llm", "events", "tools", "messages")
FACT_KIND_OF_ROLLUP = {"llm": "logs", "events": "logs", "tools": "tool-calls", "messages": "messages"}


# --- the aggregate queries every path shares ----------------------------------------------


def _key_sql(value: models.Expression, field: models.Field) -> models.Expression:
    """VALUE as key text: booleans as 1/0 on every database (PostgreSQL would say 'true')."""
    if isinstance(field, models.BooleanField):
        value = Cast(value, models.IntegerField())
    return Cast(value, models.TextField())


def key_text(values: Sequence[Any]) -> str:
    """The `key` of a rollup row whose grain columns hold VALUES (in grain column order)."""
    return KEY_SEPARATOR.join(str(int(v)) if isinstance(v, bool) else str(v) for v in values)


def _grouped_rows(
    rollup: RollupSpec,
    grain: str,
    tier: str,
    rows: models.QuerySet,
    *,
    bucket: models.Expression,
    dimension: Callable[[str], models.Expression],
    measure: Callable[[Measure], models.Expression],
) -> models.QuerySet:
    """ROWS (facts, or rollup rows of a finer tier) aggregated into GRAIN's rows at TIER,
    as a values_list in the rollup table's column order (grain, key, bucket, dims…,
    measures…). BUCKET is the bucket's expression, DIMENSION and MEASURE give each
    dimension's and measure's expression over ROWS."""
    columns = rollup.grains[grain].columns
    dims = {f"d_{name}": dimension(name) for name in columns}
    grouped = rows.annotate(r_bucket=bucket, **dims).values("r_bucket", *dims)
    key_parts: list[models.Expression] = []
    for i, name in enumerate(columns):
        if i:
            key_parts.append(Value(KEY_SEPARATOR))
        key_parts.append(_key_sql(models.F(f"d_{name}"), rollup.table._meta.get_field(name)))
    if not key_parts:
        key: models.Expression = Value("")
    elif len(key_parts) == 1:
        key = key_parts[0]
    else:
        key = Concat(*key_parts, output_field=models.TextField())
    neutral = {f"n_{name}": Value(default) for name, (_, default) in rollup.dimensions.items() if name not in columns}
    measures = {f"m_{m.name}": measure(m) for m in rollup.measures}
    first = f"m_{rollup.measures[0].name}"
    annotated = (
        grouped.annotate(r_grain=Value(stored_grain(grain, tier)), r_key=key, **neutral, **measures)
        # A group counts at least one fact (an ungrouped aggregate of nothing would be a row of zeros).
        .filter(**{f"{first}__gt": 0})
    )
    ordered = ["r_grain", "r_key", "r_bucket"]
    ordered += [f"d_{n}" if n in columns else f"n_{n}" for n in rollup.dimensions]
    ordered += [f"m_{m}" for m in rollup.measure_names]
    return annotated.values_list(*ordered).order_by()


def _tier_bucket(tier: str, column: str) -> models.Expression:
    if tier == "hour":
        return TruncHour(column, tzinfo=UTC)
    if tier == "day":
        return TruncDay(column, tzinfo=UTC)
    if tier == "week":
        return TruncWeek(column, tzinfo=UTC)
    return Value(ALL_BUCKET)


def from_facts(rollup: RollupSpec, grain: str, tier: str, facts: models.QuerySet) -> models.QuerySet:
    """GRAIN's rows at TIER that FACTS add up to."""
    return _grouped_rows(
        rollup, grain, tier, facts,
        bucket=_tier_bucket(tier, "created_at"),
        dimension=lambda name: rollup.dimensions[name][0](),
        measure=lambda m: m.aggregate(),
    )


def source_grain(rollup: RollupSpec, grain: str, tier: str) -> str:
    """The stored grain GRAIN's rows at TIER ("day", "week" or "all") add up: the hourly
    rows of `day_source(grain)` for the day tier, GRAIN's day rows for the others."""
    if tier != "day":
        return stored_grain(grain, "day")
    source = rollup.day_source(grain)
    assert source is not None, f"{rollup.kind}: the days of {grain} are counted from the facts"
    return stored_grain(source, "hour")


def from_rollups(
    rollup: RollupSpec, grain: str, tier: str, since: datetime | None = None, until: datetime | None = None
) -> models.QuerySet:
    """GRAIN's rows at TIER ("day", "week" or "all") as the finer tier adds them up
    (`source_grain`), from its rows in [SINCE, UNTIL) (either open)."""
    rows = rollup.table.objects.filter(grain=source_grain(rollup, grain, tier))
    if since is not None:
        rows = rows.filter(bucket__gte=since)
    if until is not None:
        rows = rows.filter(bucket__lt=until)
    return _added_up(rollup, grain, tier, rows)


def _added_up(rollup: RollupSpec, grain: str, tier: str, rows: models.QuerySet) -> models.QuerySet:
    """GRAIN's rows at TIER that ROWS (rollup rows of a finer tier) add up to."""
    return _grouped_rows(
        rollup, grain, tier, rows,
        bucket=_tier_bucket(tier, "bucket"),
        dimension=lambda name: models.F(name),
        measure=lambda m: m.over_rollups(),
    )


def _insert_statement(
    rollup: RollupSpec,
    members: list[models.QuerySet],
    *,
    prefix: str = "",
    prefix_params: Sequence[Any] = (),
    upsert: bool,
) -> tuple[str, list[Any]]:
    """The INSERT of the rows of MEMBERS (aggregate queries in column order) into the
    rollup table, and its parameters; with UPSERT, adding them to the rows already there,
    in (grain, key, bucket) order; else in bucket order. PREFIX is a WITH clause the
    members may read, PREFIX_PARAMS the parameters it takes."""
    qn = connection.ops.quote_name
    table = qn(rollup.table._meta.db_table)
    sql_parts, params = [], list(prefix_params)
    for member in members:
        sql, member_params = member.query.sql_with_params()
        sql_parts.append(sql)
        params += member_params
    columns = ", ".join(qn(c) for c in rollup.columns)
    statement = f"{prefix} INSERT INTO {table} ({columns}) SELECT * FROM ({' UNION ALL '.join(sql_parts)}) AS batch"
    if upsert:
        updates = []
        for measure in rollup.measures:
            col = qn(measure.name)
            if measure.merge == "max":
                updates.append(
                    f"{col} = CASE WHEN {table}.{col} IS NULL OR excluded.{col} > {table}.{col} "
                    f"THEN excluded.{col} ELSE {table}.{col} END"
                )
            else:
                updates.append(f"{col} = {table}.{col} + excluded.{col}")
        # WHERE: SQLite's parser needs it between a SELECT and ON CONFLICT.
        statement += " WHERE 1 = 1 ORDER BY 1, 2, 3"
        statement += f" ON CONFLICT ({qn('grain')}, {qn('key')}, {qn('bucket')}) DO UPDATE SET {', '.join(updates)}"
    else:
        # A rebuild writes a grain's rows in time order, as ingest leaves them: the rows
        # of a window then lie in a few pages rather than one a page (nine hours of the
        # account x model grain at 10M calls: 599 pages instead of 14,089).
        statement += " ORDER BY 3"
    return statement, params


def _insert_from_batch(
    rollup: RollupSpec, batch: str, rows: Iterable[tuple[str, str]], *, upsert: bool
) -> tuple[str, list[Any]]:
    """The INSERT of the rows, for each (grain, tier) of ROWS, that the facts BATCH
    selects (SQL over the fact table) add up to, and its parameters after BATCH's own.
    The facts are read once, into a WITH item, which every grain aggregates instead of
    reading them again (at 10M calls, a 1000-call batch's upsert took 99 ms looking up
    each id for each grain and tier, 67 ms this way). SQLite materializes an
    item read more than once by itself, and older SQLite does not know the keyword.

    A grain asked for at several tiers is counted from the facts at the finest of them
    only, into a WITH item of its own; its coarser tiers add that item's rows up, as a
    rebuild adds up a finer tier. A batch of calls is a few hundred rows of a grain at
    most: the coarser tiers then cost a fraction of counting the facts again."""
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    facts = _read_from(rollup.facts(), "statsite_batch")
    items = [f"statsite_batch AS {materialized}({batch})"]
    item_params: list[Any] = []
    members = []
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in rollup.columns)
    for grain, tiers in _tiers_by_grain(rows).items():
        finest, *coarser = tiers
        counted = from_facts(rollup, grain, finest, facts)
        if not coarser:
            members.append(counted)
            continue
        name = f"statsite_grain_{len(items)}"
        sql, params = counted.query.sql_with_params()
        items.append(f"{name} ({columns}) AS {materialized}({sql})")
        item_params += params
        kept = _read_from(rollup.table.objects.all(), name)
        members.append(kept.values_list(*rollup.columns))
        members += [_added_up(rollup, grain, tier, kept) for tier in coarser]
    prefix = f"WITH {', '.join(items)}"
    return _insert_statement(rollup, members, prefix=prefix, prefix_params=item_params, upsert=upsert)


def _tiers_by_grain(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The tiers asked of each grain in ROWS, finest first (hour, day, week, all: each
    bucket lies within one of every coarser tier's)."""
    tiers: dict[str, list[str]] = {}
    for grain, tier in rows:
        tiers.setdefault(grain, []).append(tier)
    return {grain: sorted(set(asked), key=TIERS.index) for grain, asked in tiers.items()}


# --- increments at ingest -------------------------------------------------------------


_APPLY_STATEMENTS: dict[tuple[str, str], tuple[str, list[Any]]] = {}
# The raw connections on which each apply statement is prepared (PostgreSQL).
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _apply_statement(rollup: RollupSpec) -> tuple[str, list[Any]]:
    """The upsert that adds a batch of facts to every grain and tier of ROLLUP, and its
    constant parameters, built once per process (it is the same for every batch). The
    batch's ids are its first parameter: `$1` on PostgreSQL, where the constants are
    written into the text of a statement to prepare, `%s` elsewhere; on PostgreSQL the
    rows not inserted yet are its second (`apply`)."""
    cached = (rollup.kind, connection.vendor)
    if cached not in _APPLY_STATEMENTS:
        postgres = connection.vendor == "postgresql"
        qn = connection.ops.quote_name
        meta = rollup.facts().model._meta
        table = qn(meta.db_table)
        if postgres:
            # Rows still to be inserted come as a JSON array of the table's rows ($2).
            batch = (
                f"SELECT * FROM {table} WHERE {qn(meta.pk.column)} = ANY($1::bigint[]) "
                f"UNION ALL SELECT * FROM jsonb_populate_recordset(NULL::{table}, $2::jsonb)"
            )
        else:
            batch = f"SELECT * FROM {table} WHERE {qn(meta.pk.column)} IN (SELECT value FROM json_each(%s))"
        every = [(name, tier) for name, grain in rollup.grains.items() for tier in grain.tiers]
        statement, params = _insert_from_batch(rollup, batch, every, upsert=True)
        if postgres:
            with connection.cursor() as cursor:
                statement, params = cursor.mogrify(statement, params), []
        _APPLY_STATEMENTS[cached] = (statement, params)
    return _APPLY_STATEMENTS[cached]


def _read_from(facts: models.QuerySet, relation: str) -> models.QuerySet:
    """FACTS read from RELATION, a WITH item holding rows of their table, instead of the
    table: the query keeps the table's name as the relation's alias, so every column it
    names (`"logs_log"."created_at"`) is the relation's."""
    facts = facts.all()
    alias = facts.query.get_initial_alias()
    facts.query.alias_map[alias] = BaseTable(relation, alias)
    return facts


class TotalTooLarge(Exception):
    """Adding a batch would take a rollup total past what its column holds (a 64-bit
    integer, or a decimal of twenty whole digits)."""

    def __init__(self) -> None:
        super().__init__(
            "The records would take a stored total past the largest value it can hold "
            "(quota, token and latency sums are 64-bit integers): nothing was stored."
        )


# PostgreSQL's "numeric value out of range" (a bigint or numeric column overflowing).
OUT_OF_RANGE = "22003"


def apply(kind: str, facts: Iterable[Any], *, incoming: str = "") -> int:
    """Add FACTS (rows just inserted, with their ids) to every grain and tier of KIND's
    rollups; rows that are not facts of KIND are ignored. Returns the rollup rows
    written. Must run inside the transaction that inserted the facts, which is to be
    rolled back when this raises TotalTooLarge.

    INCOMING (PostgreSQL only): rows the transaction is yet to insert, as a JSON array
    of the fact table's rows (`statsite.ingest.FactRows.as_json`), counted from those
    values; the transaction must insert them before it commits."""
    rollup = spec(kind)
    ids = sorted({fact.pk for fact in facts if fact.pk is not None})
    if not ids and not incoming:
        return 0
    if incoming and connection.vendor != "postgresql":
        raise ValueError("rows yet to be inserted are counted on PostgreSQL only")
    statement, params = _apply_statement(rollup)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            try:
                cursor.execute(statement, [json.dumps(ids), *params])
            except OperationalError as exc:
                # SQLite's sum() of the batch itself refuses to pass 64 bits.
                if "integer overflow" in str(exc):
                    raise TotalTooLarge() from exc
                raise
            written = cursor.rowcount
            _check_integer_totals(rollup, cursor)
            return written
        # Prepared once per connection (pooled connections live on): planning its dozens
        # of aggregates, and sending its text, would cost more than running it.
        name = f"statsite_apply_{kind}"
        prepared = _PREPARED.setdefault(connection.connection, set())
        if name not in prepared:
            cursor.execute(f"PREPARE {name} AS {statement}")
            prepared.add(name)
        # Its one plan serves every batch: the connection's plan_cache_mode is
        # force_generic_plan (settings). Left to choose, PostgreSQL keeps planning it
        # anew for small batches (7 ms of planning for 3 ms of work: its estimate of
        # planning's cost is far too low for a statement of this size).
        try:
            cursor.execute(f"EXECUTE {name}(%s, %s)", [ids, incoming or "[]"])
        except DataError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == OUT_OF_RANGE:
                raise TotalTooLarge() from exc
            raise
        return cursor.rowcount


def _check_integer_totals(rollup: RollupSpec, cursor) -> None:
    """On SQLite, raise TotalTooLarge when an integer total has overflowed: SQLite does
    not refuse a sum past 64 bits, it turns it into an inexact float. The grain of no
    dimension holds at its all-time tier the largest total of every measure (all are
    sums of values ingest keeps at zero or more), so its one row is the one to look at.
    Kinds without that grain sum nothing but counts and 32-bit values."""
    whole = next((name for name, g in rollup.grains.items() if not g.columns and "all" in g.tiers), None)
    if whole is None or not rollup.integer_sums:
        return
    quote = connection.ops.quote_name
    inexact = " OR ".join(f"typeof({quote(name)}) != 'integer'" for name in sorted(rollup.integer_sums))
    cursor.execute(
        f"SELECT 1 FROM {quote(rollup.table._meta.db_table)} WHERE {quote('grain')} = %s AND ({inexact})",
        [stored_grain(whole, "all")],
    )
    if cursor.fetchone() is not None:
        raise TotalTooLarge()


# --- rebuild and check ------------------------------------------------------------------


HORIZON_CACHE_SECONDS = 60
HORIZON_CACHE_KEY = "statsite:purge-horizons"


def horizon(kind: str, *, cached: bool = False) -> datetime | None:
    """Rollup buckets before this instant may be built from purged rows: they are history.

    CACHED: read through the cache (a minute at most; a purge in this process clears it
    at once), for the statistics, which ask on every request: one query loads every
    kind's horizon."""
    marks = cache.get(HORIZON_CACHE_KEY) if cached else None
    if marks is None:
        marks = {mark.kind: ceil_hour(mark.purged_before) for mark in RawDataHorizon.objects.all()}
        cache.set(HORIZON_CACHE_KEY, marks, HORIZON_CACHE_SECONDS)
    return marks.get(FACT_KIND_OF_ROLLUP[kind])


def forget_horizon(fact_kind: str) -> None:
    cache.delete(HORIZON_CACHE_KEY)


def rebuildable_from(kind: str, since: datetime | None) -> datetime | None:
    """The first hour whose rollups can be rebuilt from the facts: SINCE's, never before
    the purge horizon."""
    start = floor_hour(since) if since else None
    edge = horizon(kind)
    if edge is not None and (start is None or start < edge):
        start = edge
    return start


def first_whole_day(kind: str, start: datetime | None) -> datetime | None:
    """The first day whose facts are all stored, from the rebuildable hour START on
    (`rebuildable_from`): START's day, or the next one where the purge horizon lies
    inside START's day."""
    if start is None:
        return None
    day = floor_day(start)
    edge = horizon(kind)
    return day if edge is None or day >= edge else ceil_day(start)


def _expected(rollup: RollupSpec, tier: str, grain: str, start: datetime | None):
    """The first bucket of GRAIN at TIER that a check from START (an hour, or None)
    compares, and the rows the grain should hold from there on, from what they are
    built from: the facts for the hour tier (and for the days of a grain kept by the
    day alone, `days_from_facts`), the finer tier for the others."""
    if tier == "hour" or (tier == "day" and grain in rollup.days_from_facts()):
        first = start if tier == "hour" else first_whole_day(rollup.kind, start)
        facts = rollup.facts()
        if first is not None:
            facts = facts.filter(created_at__gte=first)
        return first, from_facts(rollup, grain, tier, facts)
    if tier == "all":
        return None, from_rollups(rollup, grain, "all")
    first = _first_bucket(tier, start)
    return first, from_rollups(rollup, grain, tier, first)


def _first_bucket(tier: str, start: datetime | None) -> datetime | None:
    """The first bucket of TIER that a rebuild or check from the hour START (or from the
    beginning: None) covers: START's day, or that day's week."""
    return _TIER_TIME[tier][0](start) if start is not None else None


def _lock_for_rebuild(rollup: RollupSpec) -> None:
    """Inside one of a rebuild's transactions, before it reads anything: hold off, until
    it commits, whatever would change what it reads. On PostgreSQL, ingest's increments
    of this kind's rollups wait (SHARE ROW EXCLUSIVE on the table: a fact committed
    before the lock has its increments in, one committed after is not among the facts
    read, and its increments follow the rebuild's rows), as does another rebuild's
    transaction of the kind, and a purge's move of the horizon (SHARE on the horizon
    table: a purge deletes only below a horizon it has recorded, so no fact the rebuild
    counts from can go missing while it reads). Without them a rebuild beside live
    ingest could deadlock with it, and one beside a purge could rebuild purged hours
    from the rows left, losing their history. Readers are not held: they see the old
    rows until the transaction commits. On SQLite the transaction holds the database's
    write lock from its start, which does the same."""
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {quote(RawDataHorizon._meta.db_table)} IN SHARE MODE")
        cursor.execute(f"LOCK TABLE {quote(rollup.table._meta.db_table)} IN SHARE ROW EXCLUSIVE MODE")


# (steps done, steps in all), after each step of a rebuild or a check.
Progress = Callable[[int, int], None]

# A rebuild recounts at most this many source rows (facts, or rollup rows of the finer
# tier) in one transaction, or one bucket's where a single bucket holds more: ingest of
# the kind waits for one such transaction, never for the whole rebuild (at 1M calls, a
# call posted beside a rebuild of the LLM rollups waited 267 ms at most; with the whole
# rebuild in one transaction, 38.5 s).
REBUILD_ROWS_PER_TRANSACTION = 5_000

_TIER_TIME = {"hour": (floor_hour, ceil_hour, HOUR), "day": (floor_day, ceil_day, DAY),
              "week": (floor_week, ceil_week, WEEK)}  # fmt: skip


@dataclass(frozen=True)
class _Slice:
    """The buckets [start, end) of one tier, rebuilt in one transaction; the all tier's
    one slice has neither. FROM_FACTS: the day rows of the grains counted from the
    facts (`days_from_facts`), not those the hour tier adds up to."""

    tier: str
    start: datetime | None = None
    end: datetime | None = None
    from_facts: bool = False
    only: tuple[str, ...] = ()  # these grains alone (none: every grain of the slice's kind)


def _slice_grains(rollup: RollupSpec, tier: str, from_facts: bool = False, only: Sequence[str] = ()) -> list[str]:
    """The grains whose rows at TIER a slice rebuilds (of ONLY, if given): at the day
    tier, those counted from the facts (FROM_FACTS) or the others."""
    grains = rollup.grains_at(tier)
    if tier == "day":
        counted = rollup.days_from_facts()
        grains = counted if from_facts else [g for g in grains if g not in counted]
    return [g for g in grains if g in only] if only else grains


def steps(kind: str) -> int:
    """How many grain x tier steps a check of KIND takes (for a progress bar)."""
    return sum(len(grain.tiers) for grain in spec(kind).grains.values())


def rebuild(kind: str, *, since: datetime | None = None, progress: Progress | None = None) -> int:
    """Recompute the rollups of KIND: the hour tier from the facts (from SINCE's hour on,
    never before the purge horizon), the day tier from the hour tier (from that day on),
    the week tier (from that day's week on) and the all tier from the day tier. Returns
    the rollup rows written; PROGRESS gets (slices done, slices in all) after each.

    It goes a slice of time at a time, each in a transaction of its own that ingest of
    KIND and purges wait for (REBUILD_ROWS_PER_TRANSACTION); ingest between two slices
    is counted exactly once whichever side of the rebuild its hours lie. While it runs,
    a coarser tier may not yet add up to the finer tier rebuilt before it."""
    rollup = spec(kind)
    start = rebuildable_from(kind, since)
    plan: list[_Slice] = []
    finer: tuple[datetime, datetime] | None = None
    for tier in ("hour", "day", "week"):
        spans = []
        if tier == "day" and rollup.days_from_facts():
            slices, span = _slices(rollup, tier, first_whole_day(kind, start), None, from_facts=True)
            plan += slices
            spans.append(span)
        if _slice_grains(rollup, tier):
            slices, span = _slices(rollup, tier, _first_bucket(tier, start), finer)
            plan += slices
            spans.append(span)
        spans = [span for span in spans if span is not None]
        finer = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None
    if rollup.grains_at("all"):
        plan.append(_Slice("all"))
    return _rebuild_slices(rollup, plan, since, progress)


def rebuild_days_from_facts(kind: str, grains: Sequence[str], *, progress: Progress | None = None) -> int:
    """Recount the day rows of KIND's GRAINS alone (grains counted from the facts,
    `days_from_facts`) from the first day the purge horizon has left whole (the days
    before keep their rows), a slice at a time, as `rebuild` does. Returns the rollup
    rows written."""
    rollup = spec(kind)
    only = tuple(grains)
    other = set(only) - set(rollup.days_from_facts())
    assert not other, f"{kind}: the days of {sorted(other)} are not counted from the facts"
    start = first_whole_day(kind, rebuildable_from(kind, None))
    slices, _ = _slices(rollup, "day", start, None, from_facts=True, only=only)
    return _rebuild_slices(rollup, slices, None, progress)


def rebuild_week_tier(kind: str) -> int:
    """Recompute the week tier of KIND from its day tier alone (the day rows outlive
    purges, so every week can be rebuilt whole). Returns the rollup rows written."""
    rollup = spec(kind)
    slices, _ = _slices(rollup, "week", None, None)
    return _rebuild_slices(rollup, slices, None, None)


def _rebuild_slices(rollup: RollupSpec, slices: list[_Slice], since: datetime | None, progress: Progress | None) -> int:
    written = 0
    for done, piece in enumerate(slices, 1):
        written += _rebuild_slice(rollup, piece, since)
        if progress is not None:
            progress(done, len(slices))
    return written


def _slices(
    rollup: RollupSpec, tier: str, start: datetime | None, finer: tuple[datetime, datetime] | None,
    *, from_facts: bool = False, only: tuple[str, ...] = (),
) -> tuple[list[_Slice], tuple[datetime, datetime] | None]:
    """TIER's buckets from START on (or all of them) cut into slices of at most
    REBUILD_ROWS_PER_TRANSACTION source rows, and the span they cover: every bucket
    that has source rows, rows of its own (to be replaced or removed), or lies in the
    span FINER of the finer tier. FROM_FACTS: the day buckets of the grains counted
    from the facts. ONLY: of these grains alone."""
    floor, ceil, step = _TIER_TIME[tier]
    grains = _slice_grains(rollup, tier, from_facts, only)
    if tier == "hour" or from_facts:
        sources = rollup.facts().order_by()
        column = "created_at"
    else:
        names = sorted({source_grain(rollup, grain, tier) for grain in grains})
        sources = rollup.table.objects.filter(grain__in=names)
        column = "bucket"
    if start is not None:
        sources = sources.filter(**{f"{column}__gte": start})
    counts = [
        (_as_utc(bucket), rows)
        for bucket, rows in sources.annotate(b=_tier_bucket(tier, column))
        .values("b").annotate(n=Count("pk")).order_by("b").values_list("b", "n")
    ]
    firsts, lasts = [], []
    if counts:
        firsts.append(counts[0][0])
        lasts.append(counts[-1][0] + step)
    for grain in grains:
        own = rollup.table.objects.filter(grain=stored_grain(grain, tier))
        if start is not None:
            own = own.filter(bucket__gte=start)
        edges = own.aggregate(first=Min("bucket"), last=Max("bucket"))
        if edges["last"] is not None:
            firsts.append(_as_utc(edges["first"]))
            lasts.append(_as_utc(edges["last"]) + step)
    if finer is not None:
        firsts.append(floor(finer[0]))
        lasts.append(ceil(finer[1]))
    if not lasts:
        return [], None
    low = start if start is not None else min(firsts)
    high = max(lasts)
    if low >= high:
        return [], None
    cuts, held = [low], 0
    for bucket, rows in counts:
        if held and held + rows > REBUILD_ROWS_PER_TRANSACTION:
            cuts.append(bucket)
            held = 0
        held += rows
    cuts.append(high)
    return [_Slice(tier, a, b, from_facts, only) for a, b in zip(cuts, cuts[1:])], (low, high)


def _rebuild_slice(rollup: RollupSpec, piece: _Slice, since: datetime | None) -> int:
    """Replace the rollup rows of PIECE with what they are rebuilt from, in one
    transaction. Returns the rollup rows written."""
    grains = _slice_grains(rollup, piece.tier, piece.from_facts, piece.only)
    counted = piece.tier == "hour" or piece.from_facts
    with transaction.atomic():
        _lock_for_rebuild(rollup)
        start, end = piece.start, piece.end
        if counted:
            # A purge may have moved the horizon since the slices were cut.
            edge = rebuildable_from(rollup.kind, since)
            if piece.from_facts:
                edge = first_whole_day(rollup.kind, edge)
            if edge is not None and (start is None or edge > start):
                start = edge
            if start is not None and end is not None and start >= end:
                return 0
        stale = rollup.table.objects.filter(grain__in=[stored_grain(grain, piece.tier) for grain in grains])
        if start is not None:
            stale = stale.filter(bucket__gte=start, bucket__lt=end)
        stale.delete()
        if counted:
            statement, params = _recount_statement(rollup, start, end, [(grain, piece.tier) for grain in grains])
        else:
            members = [from_rollups(rollup, grain, piece.tier, start, end) for grain in grains]
            statement, params = _insert_statement(rollup, members, upsert=False)
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.rowcount


def _recount_statement(
    rollup: RollupSpec, start: datetime | None, end: datetime | None, rows: list[tuple[str, str]]
) -> tuple[str, list[Any]]:
    """The INSERT of the rows, for each (grain, tier) of ROWS, that the facts in
    [START, END) (either open) add up to."""
    facts = rollup.facts().order_by()
    if start is not None:
        facts = facts.filter(created_at__gte=start)
    if end is not None:
        facts = facts.filter(created_at__lt=end)
    batch, params = facts.query.sql_with_params()
    statement, member_params = _insert_from_batch(rollup, batch, rows, upsert=False)
    return statement, [*params, *member_params]


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Every read inside sees the database as of one moment, and writers go on: a check
    beside live ingest compares facts and rollups of the same instant, where reading
    each at its own moment found the increments of batches committed in between as
    differences. PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite (WAL): a
    deferred transaction, whose snapshot is its first read's, and which takes no write
    lock (the connection's own transactions begin IMMEDIATE, taking it)."""
    if connection.in_atomic_block:  # already in a transaction (a test's): its snapshot it is
        yield
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    connection.ensure_connection()
    mode = getattr(connection, "transaction_mode", None)
    connection.transaction_mode = "DEFERRED"
    try:
        with transaction.atomic():
            connection.transaction_mode = mode
            yield
    finally:
        connection.transaction_mode = mode


@dataclass
class Difference:
    grain: str
    key: str
    bucket: datetime
    field: str
    rollup: Any
    facts: Any

    def __str__(self) -> str:
        key = self.key.replace(KEY_SEPARATOR, " | ")
        when = f"{self.bucket:%Y-%m-%d %H:00}"
        return f"{self.grain} [{key}] {when} {self.field}: rollup={self.rollup} facts={self.facts}"


def check(kind: str, *, since: datetime | None = None, progress: Progress | None = None) -> list[Difference]:
    """Compare the rollups of KIND with what they are built from: the hour tier with the
    facts (from SINCE's hour on, never before the purge horizon), the day tier with the
    hour tier, the week and all tiers with the day tier. Returns every difference (empty
    when they agree)."""
    return list(differences(kind, since=since, progress=progress))


def differences(kind: str, *, since: datetime | None = None, progress: Progress | None = None) -> Iterator[Difference]:
    """`check`'s differences one at a time; PROGRESS hears of each grain and tier
    compared. Each grain at each tier is compared by one statement, in the database,
    as of one instant (ingest committed meanwhile is no difference): only the rows that
    may differ come back, a chunk at a time, so memory goes with the differences
    rather than with the tables (at 1M calls the LLM rollups' check took 24 s; 77 s
    streaming every row through Python to compare there)."""
    rollup = spec(kind)
    names = list(rollup.measure_names)
    places = [_decimal_places(rollup.table._meta.get_field(name)) for name in names]
    moments = {name for name in names if isinstance(rollup.table._meta.get_field(name), models.DateTimeField)}
    total, done = steps(kind), 0
    for tier in TIERS:
        for grain in rollup.grains_at(tier):
            name = stored_grain(grain, tier)
            # Its own snapshot, the horizon read in it: a purge between two grains
            # moves the first bucket of the next.
            with one_snapshot():
                first_bucket, expected = _expected(rollup, tier, grain, rebuildable_from(kind, since))
                for key, bucket, have, want in _disagreeing(rollup, name, first_bucket, expected):
                    for field, digits, a, b in zip(names, places, have, want):
                        if field in moments:  # SQLite's are text
                            a, b = (None if v is None else _as_utc(v) for v in (a, b))
                        if not _same(a, b, digits):
                            yield Difference(name, key, _as_utc(bucket), field, a, b)
            done += 1
            if progress is not None:
                progress(done, total)


# Rows fetched at a time by `differences`.
CHECK_CHUNK = 5000


def _disagreeing(
    rollup: RollupSpec, name: str, first_bucket: datetime | None, expected: models.QuerySet
) -> Iterator[tuple[str, Any, tuple, tuple]]:
    """(key, bucket, stored measures, expected measures) of each row of the stored
    grain NAME (from FIRST_BUCKET on) and of EXPECTED (its rows as they should be) whose
    measures may differ, in (key by code point, bucket) order; a row on one side only
    has None for the other's measures. Both sides go into one grouping by (key,
    bucket), which pairs them in one pass on any database. Exact comparison in SQL lets
    through what `_same` then judges (SQLite's sums of decimals are doubles); a sum of 0
    and a missing one are the same, as there."""
    quote = connection.ops.quote_name
    measures = rollup.measure_names
    stored = rollup.table.objects.filter(grain=name)
    if first_bucket is not None:
        stored = stored.filter(bucket__gte=first_bucket)
    stored_sql, stored_params = stored.values_list("key", "bucket", *measures).order_by().query.sql_with_params()
    expected_sql, expected_params = expected.query.sql_with_params()
    # Every column named afresh: Django's own names may repeat between the two sides.
    stored_as = ["k", "b", *(f"s{i}" for i in range(len(measures)))]
    expected_as = [f"c{i}" for i in range(len(rollup.columns))]
    e = dict(zip(rollup.columns, expected_as))
    have, want = [f"s{i}" for i in range(len(measures))], [f"e{i}" for i in range(len(measures))]
    null_safe = "IS NOT DISTINCT FROM" if connection.vendor == "postgresql" else "IS"
    alike = [
        f"MAX({a}) {null_safe} MAX({b})" if measure.merge == "max" else f"COALESCE(MAX({a}), 0) = COALESCE(MAX({b}), 0)"
        for measure, a, b in zip(rollup.measures, have, want)
    ]
    collate = ' COLLATE "C"' if connection.vendor == "postgresql" else ""
    statement = (
        f"WITH stored ({', '.join(stored_as)}) AS ({stored_sql}), "
        f"expected ({', '.join(expected_as)}) AS ({expected_sql}), "
        f"sides AS ("
        f"SELECT k, b, {', '.join(have)}, {', '.join(f'NULL AS {w}' for w in want)} FROM stored "
        f"UNION ALL "
        f"SELECT {e['key']}, {e['bucket']}, {', '.join('NULL' for _ in have)}, {', '.join(e[m] for m in measures)} "
        f"FROM expected) "
        f"SELECT k, b, {', '.join(f'MAX({c})' for c in have + want)} FROM sides "
        f"GROUP BY k, b HAVING NOT ({' AND '.join(alike)}) "
        f"ORDER BY k{collate}, b"
    )
    count = len(measures)
    with connection.chunked_cursor() as cursor:
        cursor.execute(statement, [*stored_params, *expected_params])
        while rows := cursor.fetchmany(CHECK_CHUNK):
            for row in rows:
                yield row[0], row[1], row[2 : 2 + count], row[2 + count :]


def by_code_point(name: str) -> models.Expression:
    """Text column or annotation NAME, to order by as Python compares text, by code
    point: SQLite's own order, PostgreSQL's under the "C" collation (whatever the
    database's). The selectors' merges rely on it."""
    return Collate(models.F(name), "C") if connection.vendor == "postgresql" else models.F(name)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite returns truncated times of a raw values_list as text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _decimal_places(field: models.Field) -> int | None:
    return field.decimal_places if isinstance(field, models.DecimalField) else None


def _same(a: Any, b: Any, places: int | None = None) -> bool:
    """Whether A (stored) and B (expected) are the same value; decimals at the column's
    PLACES, as stored. SQLite sums decimals as doubles, so the facts' sum of 300 costs
    of 0.000075 comes back as 0.0224999999999999 where the column reads 0.02250000; on
    PostgreSQL both are exact and have no more places than the column."""
    if a is None or b is None:
        return a is None and b is None or (a in (0, None) and b in (0, None))
    if isinstance(a, datetime) or isinstance(b, datetime):
        return _as_utc(a) == _as_utc(b)
    a, b = Decimal(str(a)), Decimal(str(b))
    if places is not None:
        step = Decimal(1).scaleb(-places)
        try:
            a, b = a.quantize(step), b.quantize(step)
        except InvalidOperation:  # too many digits to quantize (a double far past the column)
            pass
    return a == b
