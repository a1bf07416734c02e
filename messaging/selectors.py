"""Message statistics: what the bot stats and console dialects ask of chats.

Every number comes from `usage.selectors.usage` over the message rollups (and the
LLM and tool-call rollups for tokens and tool calls), so it is exact over any window
and costs O(buckets). Distinct counts (active users, active groups, users per group)
group the rollups by sender or chat and count the groups: O(distinct senders or
chats), never O(messages). Names (chat names, nicknames) are looked up afterwards
for the chats and people in the answer only, in chunks, never one query each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal, TypedDict

from django.db.models import Min
from django.utils import timezone

from messaging.models import Chat, MessageRollup, Participant
from statsite.ingest import each_part
from statsite.periods import BEGINNING, console_period, later, local_midnight
from usage.rollups import stored_grain
from usage.selectors import stats_zone, usage, usernames

# The measures each statistic reads (asking for fewer saves work; see usage()).
COUNT = ("messages",)
LATEST = ("messages", "last_at")
TOKENS = ("requests", "prompt_tokens", "completion_tokens")
# The name shown for a chat or a person whose name was never recorded.
UNKNOWN = "unknown"
# The user_stats key of received messages that carry no sender.
NO_SENDER = ""
# A daily series of the `all` period reaches back at most this many days (today included).
ALL_DAYS_CAP = 366

Source = Literal["user", "bot"]


def _among(field: str, values: Iterable[Any]) -> Iterator[Any]:
    """Filters selecting the rows whose FIELD is one of VALUES (each looked up once):
    one array parameter on PostgreSQL, chunks elsewhere (statsite.ingest.each_part)."""
    return each_part(field, sorted(set(values)))


# --- sent and received ------------------------------------------------------------------


class MessageCounts(TypedDict):
    sent: int
    received: int


def message_counts(*, start: datetime, end: datetime) -> MessageCounts:
    """Messages over [START, END): `sent` by the bot and `received` by it (everyone else's)."""
    rows = usage("messages", start=start, end=end, group_by=("sent_by_bot",), measures=COUNT)
    counts: MessageCounts = {"sent": 0, "received": 0}
    for row in rows:
        counts["sent" if row["sent_by_bot"] else "received"] += int(row["messages"])
    return counts


# --- per chat ---------------------------------------------------------------------------


@dataclass
class SenderCount:
    user_id: str
    nickname: str
    count: int


@dataclass
class ChatCount:
    chat_id: str
    name: str
    count: int
    senders: list[SenderCount] = field(default_factory=list)


def messages_by_chat(
    *, start: datetime, end: datetime, source: Source = "user", by_sender: bool = False, with_names: bool = True
) -> list[ChatCount]:
    """Messages over [START, END) per chat: those the people sent (SOURCE "user") or the
    bot sent ("bot"); with BY_SENDER (people only) also per sender. Chats without such
    messages are left out. Busiest first, then by chat id; senders likewise.

    A chat's name is the group's name; a private chat's is its peer's nickname (else
    the chat's own name). Names never recorded read UNKNOWN; messages that carry no
    sender are counted under the user id NO_SENDER. Without WITH_NAMES, private chats'
    peers are not looked up (and such chats are named by their own name only)."""
    bot = source == "bot"
    by_sender = by_sender and not bot
    group_by = ("chat_id", "sender_id") if by_sender else ("chat_id",)
    rows = usage("messages", start=start, end=end, group_by=group_by, filters={"sent_by_bot": bot}, measures=COUNT)

    totals: dict[int, int] = {}
    per_sender: dict[int, dict[int, int]] = {}
    for row in rows:
        chat_pk, count = row["chat_id"], int(row["messages"])
        totals[chat_pk] = totals.get(chat_pk, 0) + count
        if by_sender:
            per_sender.setdefault(chat_pk, {})[row["sender_id"]] = count

    chats = _chats(totals)
    private = [pk for pk, chat in chats.items() if chat["kind"] == Chat.Kind.PRIVATE]
    peers = _private_peers(private) if with_names else {}
    people = _participants({pk for senders in per_sender.values() for pk in senders} | set(peers.values()))

    out: list[ChatCount] = []
    for chat_pk, count in totals.items():
        chat = chats.get(chat_pk)
        if chat is None:  # deleted in the admin after its messages were purged; its id is gone
            continue
        peer = people.get(peers.get(chat_pk, 0))
        name = (peer and peer["nickname"]) or chat["name"] or UNKNOWN
        senders = [
            SenderCount(
                user_id=people[pk]["user_id"] if pk else NO_SENDER,
                nickname=(people[pk]["nickname"] if pk else "") or UNKNOWN,
                count=n,
            )
            for pk, n in per_sender.get(chat_pk, {}).items()
            if not pk or pk in people
        ]
        senders.sort(key=lambda s: (-s.count, s.user_id))
        out.append(ChatCount(chat_id=chat["chat_id"], name=name, count=count, senders=senders))
    out.sort(key=lambda c: (-c.count, c.chat_id))
    return out


def _chats(pks: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Chats by pk: their platform id, kind and name."""
    found: dict[int, dict[str, Any]] = {}
    for where in _among("pk", pks):
        for chat in Chat.objects.filter(where).values("pk", "chat_id", "kind", "name"):
            found[chat["pk"]] = chat
    return found


def _participants(pks: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Participants by pk: their platform user id and nickname."""
    found: dict[int, dict[str, Any]] = {}
    for where in _among("pk", (pk for pk in pks if pk)):
        for person in Participant.objects.filter(where).values("pk", "user_id", "nickname"):
            found[person["pk"]] = person
    return found


def _private_peers(chat_pks: Iterable[int]) -> dict[int, int]:
    """The person (Participant pk) each private chat is with: the human who wrote in it
    (if several, the one known longest). Read from the rollups, which outlive purges."""
    peers: dict[int, int] = {}
    for where in _among("chat_id", chat_pks):
        rows = (
            MessageRollup.objects.filter(
                where, grain=stored_grain("chat_sender", "all"), sent_by_bot=False, sender_id__gt=0
            )
            .values("chat_id")
            .annotate(peer=Min("sender_id"))
            .order_by()
        )
        peers.update({row["chat_id"]: row["peer"] for row in rows})
    return peers


# --- the console overview ---------------------------------------------------------------


class ConsoleSummary(TypedDict):
    total_messages: int
    ai_responses: int
    tool_calls: int
    tokens_used: int
    active_users: int
    active_groups: int


class ConsoleDay(TypedDict):
    date: date
    messages: int
    responses: int
    tool_calls: int
    tokens: int


class ConsoleStats(TypedDict):
    summary: ConsoleSummary
    daily: list[ConsoleDay]


def _tokens(row: dict[str, Any]) -> int:
    return int(row["prompt_tokens"]) + int(row["completion_tokens"])


def console_stats(
    *, period: str, group_id: str | None = None, tz: tzinfo | None = None, now: datetime | None = None
) -> ConsoleStats:
    """The console's usage overview of PERIOD (day, week, month or all; see
    `statsite.periods`), of one chat when GROUP_ID (a platform chat id) is given.

    `daily` has one entry per calendar day of the period in TZ (default
    STATS_TIME_ZONE), today included, zero-filled; for `all` it starts on the first
    day with data, at most ALL_DAYS_CAP days back (today alone when there is none).
    The summary covers the whole period, `all` included."""
    tz = tz or stats_zone()
    now = now or timezone.now()
    start, end = console_period(period, tz=tz, now=now)
    today = now.astimezone(tz).date()
    daily_start = start
    if period == "all":
        daily_start = max(start, local_midnight(today - timedelta(days=ALL_DAYS_CAP - 1), tz))

    # Messages are keyed by the Chat pk; LLM and tool calls carry the platform chat id.
    message_filters: dict[str, Any] | None = {}
    other_filters: dict[str, Any] = {}
    chat_kind = None
    if group_id is not None:
        other_filters = {"chat_id": group_id}
        chat = Chat.objects.filter(chat_id=group_id).values("pk", "kind").first()
        message_filters = {"chat_id": chat["pk"]} if chat else None  # None: no such chat, no messages
        chat_kind = chat["kind"] if chat else None

    def messages(**kwargs) -> list[dict[str, Any]]:
        if message_filters is None:
            return []
        extra = kwargs.pop("filters", {})
        return usage("messages", filters={**message_filters, **extra}, tz=tz, measures=COUNT, **kwargs)

    days: dict[date, ConsoleDay] = {}

    def day(when: date) -> ConsoleDay:
        return days.setdefault(when, {"date": when, "messages": 0, "responses": 0, "tool_calls": 0, "tokens": 0})

    daily_sums = _Sums()
    window = {"start": daily_start, "end": end, "series": "day"}
    for row in messages(group_by=("sent_by_bot",), **window):
        daily_sums.add_messages(row, day(row["day"]))
    for row in usage("llm", filters=other_filters, tz=tz, measures=TOKENS, **window):
        daily_sums.add_llm(row, day(row["day"]))
    for row in usage("tools", filters=other_filters, tz=tz, measures=("calls",), **window):
        daily_sums.add_tools(row, day(row["day"]))

    sums = daily_sums
    first = daily_start.astimezone(tz).date()
    if daily_start != start:
        # `all`: the summary covers everything; the series starts on the first day with
        # data, or at the cap when there was data before it.
        sums = _period_sums(start=start, end=end, messages=messages, other_filters=other_filters, tz=tz)
        if sums.records == daily_sums.records:
            first = min(days, default=today)
    daily = [day(first + timedelta(days=n)) for n in range((today - first).days + 1)]

    senders = messages(start=start, end=end, group_by=("sender_id",), filters={"sent_by_bot": False})
    chats = [row["chat_id"] for row in messages(start=start, end=end, group_by=("chat_id",))]
    if group_id is not None:
        active_groups = int(bool(chats) and chat_kind == Chat.Kind.GROUP)
    else:
        active_groups = sum(Chat.objects.filter(where).groups().count() for where in _among("pk", chats))

    return {
        "summary": {
            "total_messages": sums.messages,
            "ai_responses": sums.responses,
            "tool_calls": sums.tool_calls,
            "tokens_used": sums.tokens,
            "active_users": sum(1 for row in senders if row["sender_id"]),
            "active_groups": active_groups,
        },
        "daily": daily,
    }


@dataclass
class _Sums:
    """The console's counters, added up from usage() rows (and into a day's entry)."""

    messages: int = 0
    responses: int = 0
    tool_calls: int = 0
    tokens: int = 0
    llm_calls: int = 0

    @property
    def records(self) -> int:
        """Every fact counted (an LLM call of no tokens is still one)."""
        return self.messages + self.tool_calls + self.llm_calls

    def add_messages(self, row: dict[str, Any], entry: ConsoleDay | None = None) -> None:
        count = int(row["messages"])
        responses = count if row["sent_by_bot"] else 0
        self.messages += count
        self.responses += responses
        if entry is not None:
            entry["messages"] += count
            entry["responses"] += responses

    def add_llm(self, row: dict[str, Any], entry: ConsoleDay | None = None) -> None:
        self.tokens += _tokens(row)
        self.llm_calls += int(row["requests"])
        if entry is not None:
            entry["tokens"] += _tokens(row)

    def add_tools(self, row: dict[str, Any], entry: ConsoleDay | None = None) -> None:
        self.tool_calls += int(row["calls"])
        if entry is not None:
            entry["tool_calls"] += int(row["calls"])


def _period_sums(*, start: datetime, end: datetime, messages, other_filters: dict[str, Any], tz: tzinfo) -> _Sums:
    """The console's counters over [START, END), ungrouped.

    Each kind is grouped by one coarse dimension (the chat when filtered by one, else
    the model or tool) and summed here: a handful of rows, where an ungrouped `usage()`
    would return one row per bucket."""
    sums = _Sums()
    for row in messages(start=start, end=end, group_by=("sent_by_bot",)):
        sums.add_messages(row)
    window = {"start": start, "end": end, "filters": other_filters, "tz": tz}
    for row in usage("llm", group_by=("chat_id",) if other_filters else ("model_name",), measures=TOKENS, **window):
        sums.add_llm(row)
    for row in usage("tools", group_by=("chat_id",) if other_filters else ("tool_id",), measures=("calls",), **window):
        sums.add_tools(row)
    return sums


# --- rankings ---------------------------------------------------------------------------


class UserRank(TypedDict):
    user_id: str
    nickname: str
    messages: int
    tokens: int
    last_active: datetime | None


class GroupRank(TypedDict):
    group_id: str
    name: str
    messages: int
    users: int
    tokens: int
    last_active: datetime | None


RankSort = Literal["messages", "tokens"]


def _ranked(entries: Iterable[dict[str, Any]], *, sort: RankSort, limit: int, key: str) -> list[dict[str, Any]]:
    """The LIMIT first ENTRIES by SORT descending, ties by KEY (the platform id)."""
    return sorted(entries, key=lambda e: (-e[sort], e[key]))[:limit]


def user_ranking(*, sort: RankSort = "messages", limit: int = 20, now: datetime | None = None) -> list[UserRank]:
    """The most active people of all time, by the messages they wrote (the bot's are
    not anyone's) or the LLM tokens their account used.

    A person is a participant (platform user id) or an account (whose username is
    that id): the two are one entry when the strings match. `last_active` is their
    newest message or LLM call; a name never recorded reads UNKNOWN."""
    end = now or timezone.now()
    window = {"start": BEGINNING, "end": end}
    wrote = {
        row["sender_id"]: row
        for row in usage("messages", group_by=("sender_id",), filters={"sent_by_bot": False}, measures=LATEST, **window)
        if row["sender_id"]
    }
    used = {
        row["user_id"]: row
        for row in usage("llm", group_by=("user_id",), measures=(*TOKENS, "last_at"), **window)
        if row["user_id"]
    }

    people = _participants(wrote)
    names = usernames(used)

    entries: dict[str, UserRank] = {}

    def entry(user_id: str) -> UserRank:
        return entries.setdefault(
            user_id, {"user_id": user_id, "nickname": "", "messages": 0, "tokens": 0, "last_active": None}
        )

    # A participant or account deleted after its rows were purged has no id left to show.
    for pk, row in wrote.items():
        if pk not in people:
            continue
        person = entry(people[pk]["user_id"])
        person["nickname"] = people[pk]["nickname"]
        person["messages"] += int(row["messages"])
        person["last_active"] = later(person["last_active"], row["last_at"])
    for pk, row in used.items():
        if pk not in names:
            continue
        person = entry(names[pk])
        person["tokens"] += _tokens(row)
        person["last_active"] = later(person["last_active"], row["last_at"])

    top = _ranked(entries.values(), sort=sort, limit=limit, key="user_id")
    # Token-only accounts may still have a nickname: a participant who never wrote.
    unnamed = [e["user_id"] for e in top if not e["nickname"]]
    nicknames: dict[str, str] = {}
    for where in _among("user_id", unnamed):
        nicknames.update(Participant.objects.filter(where).values_list("user_id", "nickname"))
    for person in top:
        person["nickname"] = person["nickname"] or nicknames.get(person["user_id"]) or UNKNOWN
    return top  # type: ignore[return-value]


def group_ranking(*, sort: RankSort = "messages", limit: int = 20, now: datetime | None = None) -> list[GroupRank]:
    """The most active group chats of all time, by their messages (the people's and
    the bot's) or the LLM tokens used in them. `users` counts the distinct people who
    wrote there; `last_active` is the newest message or LLM call in the chat."""
    end = now or timezone.now()
    window = {"start": BEGINNING, "end": end}
    traffic = {row["chat_id"]: row for row in usage("messages", group_by=("chat_id",), measures=LATEST, **window)}
    writers: dict[int, int] = {}
    writing = usage(
        "messages", group_by=("chat_id", "sender_id"), filters={"sent_by_bot": False}, measures=COUNT, **window
    )
    for row in writing:
        if row["sender_id"]:
            writers[row["chat_id"]] = writers.get(row["chat_id"], 0) + 1
    used = {
        row["chat_id"]: row
        for row in usage("llm", group_by=("chat_id",), measures=(*TOKENS, "last_at"), **window)
        if row["chat_id"]
    }

    groups: dict[int, dict[str, Any]] = {}
    for where in _among("pk", traffic):
        groups.update({c["pk"]: c for c in Chat.objects.filter(where).groups().values("pk", "chat_id", "name")})
    for where in _among("chat_id", used):
        groups.update({c["pk"]: c for c in Chat.objects.filter(where).groups().values("pk", "chat_id", "name")})

    entries: list[GroupRank] = []
    for pk, chat in groups.items():
        talk = traffic.get(pk)
        llm = used.get(chat["chat_id"])
        entries.append(
            {
                "group_id": chat["chat_id"],
                "name": chat["name"] or UNKNOWN,
                "messages": int(talk["messages"]) if talk else 0,
                "users": writers.get(pk, 0),
                "tokens": _tokens(llm) if llm else 0,
                "last_active": later(talk and talk["last_at"], llm and llm["last_at"]),
            }
        )
    return _ranked(entries, sort=sort, limit=limit, key="group_id")  # type: ignore[return-value]
