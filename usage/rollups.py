"""Keeping the hourly rollups exact: increments at ingest, rebuild and check.

A `RollupSpec` says, for one fact kind, which grains exist (the dimensions
each groups by), and for each measure both its contribution from one fact
row (used at ingest, where the new rows are in hand) and its SQL aggregate
over the fact table (used by rebuild and check). Both paths use the same
definitions, which is what lets `rollups check` prove they agree.

Increments are one `INSERT … ON CONFLICT (grain, key, bucket) DO UPDATE SET
x = x + excluded.x` per chunk — the same SQL on SQLite and PostgreSQL — run in
the ingest transaction, so a committed fact is counted exactly once and
concurrent writers to one bucket never lose an increment (the database
serialises the row). Rows are sorted before the upsert so concurrent batches
lock buckets in one order and cannot deadlock over them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection, models, transaction
from django.db.models import Count, Max, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, Concat, TruncHour

from usage.models import LATENCY_BOUNDS_MS, LLMRollup, RawDataHorizon, ToolRollup, latency_field_names

KEY_SEPARATOR = "\x1f"
HOUR = timedelta(hours=1)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


@dataclass(frozen=True)
class Measure:
    name: str
    contribution: Callable[[Any], Any]
    aggregate: Callable[[], models.Expression]
    merge: str = "sum"  # "sum" adds increments; "max" keeps the larger


@dataclass(frozen=True)
class RollupSpec:
    kind: str
    table: type[models.Model]
    facts: Callable[[], models.QuerySet]
    grains: dict[str, tuple[str, ...]]
    # dimension column -> (value of one fact row, SQL expression over the fact table, neutral value)
    dimensions: dict[str, tuple[Callable[[Any], Any], Callable[[], models.Expression], Any]]
    measures: tuple[Measure, ...]
    is_fact: Callable[[Any], bool] = field(default=lambda row: True)

    @property
    def measure_names(self) -> list[str]:
        return [m.name for m in self.measures]


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
        measures.append(
            Measure(name, lambda row, i=index: int(latency_bucket(row.latency_ms) == i), _count(condition))
        )
        lower = upper or lower
    return tuple(measures)


COST = models.DecimalField(max_digits=28, decimal_places=8)


def _text(column: str) -> Callable[[], models.Expression]:
    return lambda: models.F(column)


def _int(column: str) -> Callable[[], models.Expression]:
    return lambda: Coalesce(column, Value(0), output_field=models.BigIntegerField())


# Dimensions both rollups have: (value of one fact row, SQL over the fact table, neutral value).
USER_DIMENSION = (lambda r: r.user_id or 0, _int("user_id"), 0)
CHAT_DIMENSION = (lambda r: r.chat_id, _text("chat_id"), "")


def _llm_spec() -> RollupSpec:
    from logs.models import Log

    consume = Q(type=Log.Type.CONSUME)
    return RollupSpec(
        kind="llm",
        table=LLMRollup,
        facts=lambda: Log.objects.llm_calls(),
        is_fact=lambda row: row.type == Log.Type.CONSUME or (row.type == Log.Type.ERROR and bool(row.model_name)),
        grains={
            "model": ("model_name",),
            "user_model": ("user_id", "model_name"),
            "channel": ("channel_id",),
            "token": ("token_id",),
            "group": ("group",),
            "module": ("module",),
            "request_type": ("request_type",),
            "chat": ("chat_id",),
        },
        dimensions={
            "user_id": USER_DIMENSION,
            "model_name": (lambda r: r.model_name, _text("model_name"), ""),
            "channel_id": (lambda r: r.channel_id or 0, _int("channel_id"), 0),
            "token_id": (lambda r: r.token_id or 0, _int("token_id"), 0),
            "group": (lambda r: r.group, _text("group"), ""),
            "module": (lambda r: r.module, _text("module"), ""),
            "request_type": (lambda r: r.request_type, _text("request_type"), ""),
            "chat_id": CHAT_DIMENSION,
        },
        measures=(
            Measure("requests", lambda r: 1, _count()),
            Measure("successes", lambda r: int(r.success), _count(Q(success=True))),
            Measure("errors", lambda r: int(not r.success), _count(Q(success=False))),
            Measure("prompt_tokens", lambda r: r.prompt_tokens, _sum("prompt_tokens")),
            Measure("completion_tokens", lambda r: r.completion_tokens, _sum("completion_tokens")),
            Measure("quota", lambda r: r.quota if r.type == Log.Type.CONSUME else 0, _sum("quota", consume)),
            Measure("cost", lambda r: Decimal(r.cost), _sum("cost", output=COST)),
            Measure("latency_sum_ms", lambda r: r.latency_ms or 0, _sum("latency_ms")),
            Measure("latency_count", lambda r: int(r.latency_ms is not None), lambda: Count("latency_ms")),
            *_latency_measures(),
            Measure("last_at", lambda r: r.created_at, lambda: Max("created_at"), merge="max"),
        ),
    )


def _tool_spec() -> RollupSpec:
    from usage.models import ToolCall

    return RollupSpec(
        kind="tools",
        table=ToolRollup,
        facts=lambda: ToolCall.objects.all(),
        grains={
            "tool": ("tool_id", "tool_name"),
            "user_tool": ("user_id", "tool_id", "tool_name"),
            "chat": ("chat_id",),
        },
        dimensions={
            "user_id": USER_DIMENSION,
            "tool_id": (lambda r: r.tool_id, _text("tool_id"), ""),
            "tool_name": (lambda r: r.tool_name, _text("tool_name"), ""),
            "chat_id": CHAT_DIMENSION,
        },
        measures=(
            Measure("calls", lambda r: 1, _count()),
            Measure("successes", lambda r: int(r.success), _count(Q(success=True))),
            Measure("failures", lambda r: int(not r.success), _count(Q(success=False))),
            Measure("cost", lambda r: Decimal(r.cost), _sum("cost", output=COST)),
            Measure("duration_sum_ms", lambda r: r.duration_ms or 0, _sum("duration_ms")),
            Measure("duration_count", lambda r: int(r.duration_ms is not None), lambda: Count("duration_ms")),
            Measure("last_at", lambda r: r.created_at, lambda: Max("created_at"), merge="max"),
        ),
    )


def _message_spec() -> RollupSpec:
    from messaging.models import Message, MessageRollup

    # Every grain keeps sent_by_bot: no message statistic mixes the bot's messages
    # with the people's unless it asks for both.
    return RollupSpec(
        kind="messages",
        table=MessageRollup,
        facts=lambda: Message.objects.all(),
        grains={
            "direction": ("sent_by_bot",),
            "chat": ("chat_id", "sent_by_bot"),
            "sender": ("sender_id", "sent_by_bot"),
            "chat_sender": ("chat_id", "sender_id", "sent_by_bot"),
        },
        dimensions={
            "chat_id": (lambda r: r.chat_id, _int("chat_id"), 0),
            "sender_id": (lambda r: r.sender_id or 0, _int("sender_id"), 0),
            "sent_by_bot": (lambda r: bool(r.sent_by_bot), lambda: models.F("sent_by_bot"), False),
        },
        measures=(
            Measure("messages", lambda r: 1, _count()),
            Measure("text_length", lambda r: r.text_length, _sum("text_length")),
            Measure("last_at", lambda r: r.created_at, lambda: Max("created_at"), merge="max"),
        ),
    )


_SPECS: dict[str, RollupSpec] = {}


def spec(kind: str) -> RollupSpec:
    """The rollup spec of KIND ("llm", "tools" or "messages"), built once (it imports the fact models)."""
    if not _SPECS:
        for built in (_llm_spec(), _tool_spec(), _message_spec()):
            _SPECS[built.kind] = built
    return _SPECS[kind]


ROLLUP_KINDS = ("llm", "tools", "messages")
FACT_KIND_OF_ROLLUP = {"llm": "logs", "tools": "tool-calls", "messages": "messages"}


# --- increments at ingest -------------------------------------------------------------


def _key_text(value: Any) -> str:
    # Booleans are keyed 1/0, as `_key_sql` writes them on every database
    # (PostgreSQL would cast a boolean to 'true', SQLite stores 1).
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _row_key(dims: dict[str, Any], columns: tuple[str, ...]) -> str:
    return KEY_SEPARATOR.join(_key_text(dims[c]) for c in columns)


def apply(kind: str, facts: Iterable[Any]) -> int:
    """Add FACTS (just-inserted rows) to the rollups of KIND; returns the bucket rows touched.
    Must run inside the transaction that inserted the facts."""
    rollup = spec(kind)
    totals: dict[tuple[str, str, datetime], list] = {}
    dims_of: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for row in facts:
        if not rollup.is_fact(row):
            continue
        dims = {name: value(row) for name, (value, _, _) in rollup.dimensions.items()}
        bucket = floor_hour(row.created_at)
        contributions = [m.contribution(row) for m in rollup.measures]
        for grain, columns in rollup.grains.items():
            ident = (grain, _row_key(dims, columns), bucket)
            current = totals.get(ident)
            if current is None:
                totals[ident] = list(contributions)
                dims_of[ident] = {
                    name: (dims[name] if name in columns else neutral)
                    for name, (_, _, neutral) in rollup.dimensions.items()
                }
            else:
                for i, measure in enumerate(rollup.measures):
                    if measure.merge == "max":
                        current[i] = max(current[i], contributions[i])
                    else:
                        current[i] += contributions[i]
    if totals:
        rows = [(ident, dims_of[ident], totals[ident]) for ident in sorted(totals)]
        _upsert(rollup, rows)
    return len(totals)


def _upsert(rollup: RollupSpec, rows: list[tuple[tuple[str, str, datetime], dict, list]]) -> None:
    table = rollup.table._meta.db_table
    qn = connection.ops.quote_name
    dim_names = list(rollup.dimensions)
    columns = ["grain", "key", "bucket", *dim_names, *rollup.measure_names]
    updates = []
    for measure in rollup.measures:
        col = qn(measure.name)
        if measure.merge == "max":
            updates.append(
                f"{col} = CASE WHEN {qn(table)}.{col} IS NULL OR excluded.{col} > {qn(table)}.{col} "
                f"THEN excluded.{col} ELSE {qn(table)}.{col} END"
            )
        else:
            updates.append(f"{col} = {qn(table)}.{col} + excluded.{col}")
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Stay well under both databases' bound-parameter limits.
    per_statement = max(1, 30_000 // len(columns))
    ops = connection.ops
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for (grain, key, bucket), dims, values in chunk:
                params += [grain, key, ops.adapt_datetimefield_value(bucket)]
                params += [dims[name] for name in dim_names]
                for measure, value in zip(rollup.measures, values):
                    if isinstance(value, datetime):
                        value = ops.adapt_datetimefield_value(value)
                    elif isinstance(value, Decimal):
                        value = ops.adapt_decimalfield_value(value, 28, 8)
                    params.append(value)
            cursor.execute(
                f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) "
                f"VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({qn('grain')}, {qn('key')}, {qn('bucket')}) DO UPDATE SET {', '.join(updates)}",
                params,
            )


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
    start = floor_hour(since) if since else None
    edge = horizon(kind)
    if edge is not None and (start is None or start < edge):
        start = edge
    return start


def _key_sql(value: models.Expression, field: models.Field) -> models.Expression:
    """VALUE as the text `_key_text` gives in Python."""
    if isinstance(field, models.BooleanField):
        value = Cast(value, models.IntegerField())
    return Cast(value, models.TextField())


def _aggregate_queryset(rollup: RollupSpec, grain: str, start: datetime | None) -> models.QuerySet:
    """The rollup rows of GRAIN that the facts from START on add up to, as a values_list
    in the rollup table's column order (grain, key, bucket, dims…, measures…)."""
    columns = rollup.grains[grain]
    facts = rollup.facts()
    if start is not None:
        facts = facts.filter(created_at__gte=start)
    dims = {f"d_{name}": expr() for name, (_, expr, _) in rollup.dimensions.items() if name in columns}
    grouped = facts.annotate(r_bucket=TruncHour("created_at", tzinfo=UTC), **dims).values(
        "r_bucket", *dims
    )
    key_parts: list[models.Expression] = []
    for i, name in enumerate(columns):
        if i:
            key_parts.append(Value(KEY_SEPARATOR))
        key_parts.append(_key_sql(models.F(f"d_{name}"), rollup.table._meta.get_field(name)))
    key = key_parts[0] if len(key_parts) == 1 else Concat(*key_parts, output_field=models.TextField())
    neutral = {
        f"n_{name}": Value(default)
        for name, (_, _, default) in rollup.dimensions.items()
        if name not in columns
    }
    measures = {f"m_{m.name}": m.aggregate() for m in rollup.measures}
    annotated = grouped.annotate(r_grain=Value(grain), r_key=key, **neutral, **measures)
    ordered = ["r_grain", "r_key", "r_bucket"]
    ordered += [f"d_{n}" if n in columns else f"n_{n}" for n in rollup.dimensions]
    ordered += [f"m_{m}" for m in rollup.measure_names]
    return annotated.values_list(*ordered).order_by()


def rebuild(kind: str, *, since: datetime | None = None) -> int:
    """Recompute the rollups of KIND from the facts (from SINCE's hour on, never
    before the purge horizon); returns the rollup rows written."""
    rollup = spec(kind)
    start = rebuildable_from(kind, since)
    table = rollup.table._meta.db_table
    qn = connection.ops.quote_name
    columns = ["grain", "key", "bucket", *rollup.dimensions, *rollup.measure_names]
    written = 0
    with transaction.atomic():
        stale = rollup.table.objects.all()
        if start is not None:
            stale = stale.filter(bucket__gte=start)
        stale.delete()
        with connection.cursor() as cursor:
            for grain in rollup.grains:
                sql, params = _aggregate_queryset(rollup, grain, start).query.sql_with_params()
                cursor.execute(f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) {sql}", params)
                written += cursor.rowcount
    return written


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
        return f"{self.grain} [{key}] {self.bucket:%Y-%m-%d %H:00} {self.field}: rollup={self.rollup} facts={self.facts}"


def check(kind: str, *, since: datetime | None = None) -> list[Difference]:
    """Compare the rollups of KIND with the facts (from SINCE's hour on, never before the
    purge horizon); returns every difference (empty when they agree)."""
    rollup = spec(kind)
    start = rebuildable_from(kind, since)
    names = list(rollup.measure_names)
    differences: list[Difference] = []
    for grain in rollup.grains:
        expected: dict[tuple[str, datetime], list] = {}
        offset = 3 + len(rollup.dimensions)
        for row in _aggregate_queryset(rollup, grain, start).iterator():
            expected[(row[1], _as_utc(row[2]))] = list(row[offset:])
        stored_rows = rollup.table.objects.filter(grain=grain)
        if start is not None:
            stored_rows = stored_rows.filter(bucket__gte=start)
        stored = {(r[0], _as_utc(r[1])): list(r[2:]) for r in stored_rows.values_list("key", "bucket", *names)}
        for ident in sorted(expected.keys() | stored.keys()):
            want = expected.get(ident) or [None] * len(names)
            have = stored.get(ident) or [None] * len(names)
            for name, a, b in zip(names, have, want):
                if not _same(a, b):
                    differences.append(Difference(grain, ident[0], ident[1], name, a, b))
    return differences


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite returns TruncHour results of a raw values_list as text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None or (a in (0, None) and b in (0, None))
    if isinstance(a, datetime) or isinstance(b, datetime):
        return _as_utc(a) == _as_utc(b)
    return Decimal(str(a)) == Decimal(str(b))
