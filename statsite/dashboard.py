"""The numbers behind the admin dashboard (/admin/dashboard/).

Every figure comes from `usage.selectors.usage`, the one reader of statistics the API
uses too, so the dashboard and the endpoints can never disagree. Each section is one
`usage()` call grouped by one dimension (a few grouped rows, whatever the number of
facts), plus at most one lookup of names for the rows shown; the whole page is a fixed
number of queries, none per row or per bucket. Series are zero-filled here, from the
window's own bucket boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from messaging.models import Chat
from usage.models import latency_field_names
from usage.rollups import HOUR, floor_hour
from usage.selectors import latency_percentile, pick_grain, usage, usernames

# Charts stack this many models; the rest are summed as OTHER.
STACKED_MODELS = 6
OTHER = "other"
TOP = 10
# Up to this span a series is hourly, beyond it daily.
HOURLY_UP_TO = timedelta(days=2)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    tz: tzinfo

    @property
    def step(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    def buckets(self, step: str | None = None) -> list[tuple[Any, str]]:
        """The series keys of [start, end) with their labels: UTC hours (as `usage()`
        keys an hourly series), labelled in TZ, or dates in TZ."""
        step = step or self.step
        out: list[tuple[Any, str]] = []
        if self.start >= self.end:
            return out
        if step == "hour":
            hour = floor_hour(self.start)
            while hour < self.end:
                out.append((hour, hour.astimezone(self.tz).strftime("%m-%d %H:%M")))
                hour += HOUR
            return out
        day = self.start.astimezone(self.tz).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.tz).date()
        while day <= last:
            out.append((day, day.strftime("%m-%d")))
            day += timedelta(days=1)
        return out


@dataclass(frozen=True)
class Filters:
    """The page's filters, resolved to what each fact kind stores."""

    model: str = ""
    user_id: int | None = None  # the account's pk
    channel_id: int | None = None
    chat_id: str = ""  # the platform chat id, as LLM and tool calls carry it
    chat_pk: int | None = None  # the Chat row, as messages carry it (None: no such chat)
    sender_pk: int | None = None  # the account's participant, as messages carry it

    @property
    def any(self) -> bool:
        return bool(self.model or self.user_id is not None or self.channel_id is not None or self.chat_id)

    def llm(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.model:
            out["model_name"] = self.model
        if self.user_id is not None:
            out["user_id"] = self.user_id
        if self.channel_id is not None:
            out["channel_id"] = self.channel_id
        if self.chat_id:
            out["chat_id"] = self.chat_id
        return out

    def tools(self) -> dict[str, Any]:
        # Tool calls carry no model or channel: those filters do not apply to them.
        out: dict[str, Any] = {}
        if self.user_id is not None:
            out["user_id"] = self.user_id
        if self.chat_id:
            out["chat_id"] = self.chat_id
        return out

    def messages(self) -> dict[str, Any] | None:
        """Filters on messages, or None when the filters match no message at all (a chat
        or a person the bot never saw)."""
        out: dict[str, Any] = {}
        if self.chat_id:
            if self.chat_pk is None:
                return None
            out["chat_id"] = self.chat_pk
        if self.user_id is not None:
            if self.sender_pk is None:
                return None
            out["sender_id"] = self.sender_pk
        return out


@dataclass
class RawNote:
    """The sections answered from raw rows because no rollup grain holds their dimensions
    (for an hourly SERIES, none kept by the hour; else none kept by the hour or the day)."""

    sections: list[str] = field(default_factory=list)

    def check(self, kind: str, section: str, dimensions: Iterable[str], series: str | None = None) -> None:
        dimensions = list(dimensions)
        if pick_grain(kind, dimensions) is None and (series == "hour" or pick_grain(kind, dimensions, "day") is None):
            self.sections.append(section)


# What the page shows of LLM calls, of tool calls and of messages: asking for these
# measures alone leaves out the newest fact's time, a maximum that would forbid reading
# an edge day whole less its hours outside (the last 24 hours by account at 10M calls,
# at 11:00: 32,400 hour rows of account x model, against two days' 2,000 day rows less
# the 12,300 hours outside).
LLM_MEASURES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")
TOOL_MEASURES = ("calls", "failures", "cost")
MESSAGE_MEASURES = ("messages",)


def _int(value: Any) -> int:
    return int(value or 0)


def _decimal(value: Any) -> Decimal:
    # SQLite may hand a sum of decimals back as a float; str() keeps its shortest form.
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _tokens(row: dict[str, Any]) -> int:
    return _int(row["prompt_tokens"]) + _int(row["completion_tokens"])


def _histogram_sum(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    names = latency_field_names()
    total = dict.fromkeys(names, 0)
    for row in rows:
        for name in names:
            total[name] += _int(row[name])
    return total


# --- LLM calls over time, per model -----------------------------------------------------


@dataclass
class ModelLine:
    model: str
    requests: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    errors: int = 0
    p95: int | None = None
    by_bucket_requests: list[int] = field(default_factory=list)
    by_bucket_tokens: list[int] = field(default_factory=list)


@dataclass
class LLMOverTime:
    labels: list[str]
    models: list[ModelLine]  # every model, most requested first
    requests: list[int]
    tokens: list[int]
    cost: list[Decimal]
    errors: list[int]
    p95: list[int | None]

    @property
    def total_requests(self) -> int:
        return sum(m.requests for m in self.models)

    @property
    def total_tokens(self) -> int:
        return sum(m.tokens for m in self.models)

    @property
    def total_cost(self) -> Decimal:
        return sum((m.cost for m in self.models), Decimal(0))

    @property
    def total_errors(self) -> int:
        return sum(m.errors for m in self.models)


def llm_over_time(window: Window, filters: Filters, note: RawNote | None = None) -> LLMOverTime:
    """LLM calls per bucket and model: requests, tokens, cost, errors and the latency
    histogram, from ONE `usage()` call; the per-model totals, the per-bucket totals and
    the 95th percentiles (window and bucket) are sums of its rows."""
    step = window.step
    if note is not None:
        note.check("llm", "requests, tokens and cost over time", ["model_name", *filters.llm()], step)
    rows = usage(
        "llm", start=window.start, end=window.end, group_by=("model_name",), filters=filters.llm(),
        measures=(*LLM_MEASURES, *latency_field_names()), series=step, tz=window.tz,
    )
    buckets = window.buckets(step)
    index = {key: i for i, (key, _) in enumerate(buckets)}
    key_name = "bucket" if step == "hour" else "day"
    n = len(buckets)
    requests, tokens, errors = [0] * n, [0] * n, [0] * n
    cost = [Decimal(0)] * n
    per_bucket: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    per_model: dict[str, list[dict[str, Any]]] = {}
    lines: dict[str, ModelLine] = {}
    for row in rows:
        i = index.get(row[key_name])
        if i is None:  # cannot happen for a window's own buckets; never index past them
            continue
        name = row["model_name"]
        line = lines.setdefault(name, ModelLine(name, by_bucket_requests=[0] * n, by_bucket_tokens=[0] * n))
        line.requests += _int(row["requests"])
        line.tokens += _tokens(row)
        line.cost += _decimal(row["cost"])
        line.errors += _int(row["errors"])
        line.by_bucket_requests[i] += _int(row["requests"])
        line.by_bucket_tokens[i] += _tokens(row)
        requests[i] += _int(row["requests"])
        tokens[i] += _tokens(row)
        cost[i] += _decimal(row["cost"])
        errors[i] += _int(row["errors"])
        per_bucket[i].append(row)
        per_model.setdefault(name, []).append(row)
    for name, line in lines.items():
        line.p95 = latency_percentile(_histogram_sum(per_model[name]), 0.95)
    models = sorted(lines.values(), key=lambda m: (-m.requests, m.model))
    return LLMOverTime(
        labels=[label for _, label in buckets],
        models=models,
        requests=requests,
        tokens=tokens,
        cost=cost,
        errors=errors,
        p95=[latency_percentile(_histogram_sum(group), 0.95) if group else None for group in per_bucket],
    )


def stacked(models: list[ModelLine], values: str, limit: int = STACKED_MODELS) -> list[tuple[str, list[int]]]:
    """(name, per-bucket VALUES) of the LIMIT busiest models, then the rest summed as OTHER."""
    head, tail = models[:limit], models[limit:]
    out = [(m.model or "(no model)", list(getattr(m, values))) for m in head]
    if tail:
        width = len(getattr(tail[0], values))
        out.append((OTHER, [sum(getattr(m, values)[i] for m in tail) for i in range(width)]))
    return out


# --- top tables -------------------------------------------------------------------------


@dataclass
class Ranked:
    key: Any
    name: str
    requests: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _llm_ranked(window: Window, filters: Filters, dimension: str) -> list[dict[str, Any]]:
    rows = usage(
        "llm", start=window.start, end=window.end, group_by=(dimension,), filters=filters.llm(),
        measures=LLM_MEASURES, tz=window.tz,
    )
    return sorted(rows, key=lambda r: (-_int(r["requests"]), str(r[dimension])))


def _ranked(row: dict[str, Any], key: Any, name: str) -> Ranked:
    return Ranked(
        key=key, name=name, requests=_int(row["requests"]), tokens=_tokens(row), cost=_decimal(row["cost"]),
        errors=_int(row["errors"]),
    )


def top_accounts(window: Window, filters: Filters, note: RawNote | None = None, limit: int = TOP) -> list[Ranked]:
    """The accounts with the most LLM requests (calls of no account are left out)."""
    if note is not None:
        note.check("llm", "top accounts", ["user_id", *filters.llm()])
    rows = [r for r in _llm_ranked(window, filters, "user_id") if r["user_id"]][:limit]
    ids = [r["user_id"] for r in rows]
    names = usernames(ids)
    return [_ranked(r, r["user_id"], names.get(r["user_id"], f"#{r['user_id']}")) for r in rows]


def top_channels(
    window: Window, filters: Filters, channel_names: dict[int, str], note: RawNote | None = None, limit: int = TOP
) -> list[Ranked]:
    """The channels with the most LLM requests; CHANNEL_NAMES is the (small) channel
    table the page has loaded for its filter anyway."""
    if note is not None:
        note.check("llm", "top channels", ["channel_id", *filters.llm()])
    rows = [r for r in _llm_ranked(window, filters, "channel_id") if r["channel_id"]][:limit]
    return [_ranked(r, r["channel_id"], channel_names.get(r["channel_id"], f"#{r['channel_id']}")) for r in rows]


def top_tools(window: Window, filters: Filters, note: RawNote | None = None, limit: int = TOP) -> list[Ranked]:
    """The most called tools, with their failures and cost (`errors` counts failures)."""
    if note is not None:
        note.check("tools", "top tools", ["tool_id", "tool_name", *filters.tools()])
    rows = usage(
        "tools", start=window.start, end=window.end, group_by=("tool_id", "tool_name"), filters=filters.tools(),
        measures=TOOL_MEASURES, tz=window.tz,
    )
    rows.sort(key=lambda r: (-_int(r["calls"]), r["tool_name"], r["tool_id"]))
    return [
        Ranked(
            key=r["tool_id"], name=r["tool_name"] or r["tool_id"], requests=_int(r["calls"]), cost=_decimal(r["cost"]),
            errors=_int(r["failures"]), extra={"tool_id": r["tool_id"]},
        )
        for r in rows[:limit]
    ]


def top_chats(window: Window, filters: Filters, note: RawNote | None = None, limit: int = TOP) -> list[Ranked]:
    """The chats with the most messages (the people's and the bot's), with the LLM
    requests and tokens spent in them. Two `usage()` calls and one lookup of the chats."""
    message_filters = filters.messages()
    by_chat: dict[int, int] = {}
    if message_filters is not None:
        if note is not None:
            note.check("messages", "top chats", ["chat_id", *message_filters])
        for row in usage(
            "messages", start=window.start, end=window.end, group_by=("chat_id",), filters=message_filters,
            measures=MESSAGE_MEASURES, tz=window.tz,
        ):
            by_chat[row["chat_id"]] = by_chat.get(row["chat_id"], 0) + _int(row["messages"])
    busiest = sorted(by_chat.items(), key=lambda item: (-item[1], item[0]))[:limit]
    chats = {c["pk"]: c for c in Chat.objects.filter(pk__in=[pk for pk, _ in busiest]).values("pk", "chat_id", "name")}
    llm: dict[str, dict[str, Any]] = {}
    if busiest:
        if note is not None:
            note.check("llm", "LLM use per chat", ["chat_id", *filters.llm()])
        wanted = {c["chat_id"] for c in chats.values()}
        # Grouped by chat, not filtered to the chats shown: one query whatever the list.
        for row in usage(
            "llm", start=window.start, end=window.end, group_by=("chat_id",), filters=filters.llm(),
            measures=LLM_MEASURES, tz=window.tz,
        ):
            if row["chat_id"] in wanted:
                llm[row["chat_id"]] = row
    out = []
    for pk, count in busiest:
        chat = chats.get(pk)
        if chat is None:  # deleted after its messages were purged
            continue
        used = llm.get(chat["chat_id"])
        out.append(
            Ranked(
                key=chat["chat_id"], name=chat["name"] or chat["chat_id"],
                requests=_int(used["requests"]) if used else 0, tokens=_tokens(used) if used else 0,
                cost=_decimal(used["cost"]) if used else Decimal(0), errors=_int(used["errors"]) if used else 0,
                extra={"messages": count},
            )
        )
    return out


# --- messages per day -------------------------------------------------------------------


@dataclass
class MessagesPerDay:
    labels: list[str]
    days: list[date]
    sent: list[int]
    received: list[int]


def messages_per_day(window: Window, filters: Filters, note: RawNote | None = None) -> MessagesPerDay:
    """Messages the bot sent and received per day in TZ (always daily: a day is the
    unit people talk in), zero-filled."""
    buckets = window.buckets("day")
    sent, received = [0] * len(buckets), [0] * len(buckets)
    message_filters = filters.messages()
    if message_filters is not None:
        if note is not None:
            note.check("messages", "messages per day", ["sent_by_bot", *message_filters])
        index = {key: i for i, (key, _) in enumerate(buckets)}
        for row in usage(
            "messages", start=window.start, end=window.end, group_by=("sent_by_bot",), filters=message_filters,
            measures=MESSAGE_MEASURES, series="day", tz=window.tz,
        ):
            i = index.get(row["day"])
            if i is not None:
                (sent if row["sent_by_bot"] else received)[i] += _int(row["messages"])
    return MessagesPerDay(labels=[label for _, label in buckets], days=[k for k, _ in buckets], sent=sent, received=received)
