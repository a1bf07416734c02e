"""The read measurements: every read endpoint of the five API documents, and for every
statistic its raw-scan baseline.

A baseline computes the numbers of the answer with SQL aggregates over the raw fact
tables (logs_log, usage_toolcall, messaging_message), no rollups: the way a peer
without rollups answers the same question, on the same server and data, with the
server's default settings. It is timed without HTTP, so the ratio favours it.

Each stats endpoint is measured over 1, 7 and 30 days, in its dialect's own way of
saying so (a rolling window, calendar days, or dates), plus its filtered cases; the
30-day and all-time cases carry the "stats" target. The log list is measured on page
1 unfiltered and with each single filter, its total checked against a count of the
raw rows, and on a deep page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

WINDOWS = (1, 7, 30)
JUDGED_DAYS = 30
ROLLING_PERIODS = {1: "last_24_hours", 7: "last_7_days", 30: "last_30_days"}
CALENDAR_PERIODS = {1: "day", 7: "week", 30: "month"}

# A search keyword that no generated row holds.
NO_ROW_HOLDS = "no row holds this"
# An LLM call is a consume row, or an error row that names a model (a failed call).
LLM = "(type = 2 OR (type = 4 AND model_name <> ''))"
IN_WINDOW = "created_at >= %(start)s AND created_at < %(end)s"
TOKENS = "sum(prompt_tokens + completion_tokens)"


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # with its query string
    caller: str  # "admin", "user", "service" or "public"
    target: str | None = None  # a key of report.TARGETS
    baseline: tuple[str, ...] = ()  # SQL run one after another, with PARAMS
    params: dict = field(default_factory=dict)
    body: dict | None = None  # POSTed as JSON when given
    total: str | None = None  # SQL counting the rows the answer's data.total must equal
    note: str = ""


@dataclass(frozen=True)
class Subjects:
    """What the filtered cases filter on: busy rows, so that a filter has work to do."""

    now: datetime
    username: str
    user_id: int
    model: str
    token_name: str
    channel: int
    group: str
    chat_id: str
    chat_pk: int
    tool_id: str
    tool_name: str
    relay_key: str
    deep_page: int

    def params(self) -> dict:
        return {
            "user": self.user_id, "username": self.username, "model": self.model, "token_name": self.token_name,
            "channel": self.channel, "group": self.group, "chat": self.chat_id, "chat_pk": self.chat_pk,
            "tool": self.tool_id, "recent": self.now - timedelta(seconds=60),
        }


def q(path: str, **params: object) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def rolling(now: datetime, days: int) -> dict:
    return {"start": now - timedelta(days=days), "end": now}


def calendar(now: datetime, days: int) -> dict:
    """The last DAYS calendar days (UTC, the server's default STATS_TIME_ZONE), today included, up to now."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"start": midnight - timedelta(days=days - 1), "end": now}


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def stats(s: Subjects, name: str, path: str, caller: str, days: int, window: dict, *sql: str,
          body: dict | None = None) -> Case:
    return Case(name, path, caller, "stats" if days >= JUDGED_DAYS else None, sql, s.params() | window, body)


# --- statistics over a window, by family ------------------------------------------------------


def llm_stats(s: Subjects, days: int, group_by: str = "model") -> Case:
    column = {"model": "model_name", "user": "username", "module": "module", "type": "request_type"}[group_by]
    return stats(
        s, f"GET /llm/stats {days}d by {group_by}", q("/llm/stats", period_type=ROLLING_PERIODS[days],
                                                       group_by=group_by),
        "service", days, rolling(s.now, days),
        f"SELECT {column}, count(*), sum(cost), sum(prompt_tokens), sum(completion_tokens) FROM logs_log "
        f"WHERE {IN_WINDOW} AND {LLM} GROUP BY 1",
    )


def messages_recent(s: Subjects, days: int, message_type: str = "all") -> Case:
    only_sent = " AND sent_by_bot" if message_type == "sent" else ""
    return stats(
        s, f"GET /messages/recent {days}d {message_type}", q("/messages/recent", days=days, message_type=message_type),
        "service", days, calendar(s.now, days),
        f"SELECT sent_by_bot, count(*) FROM messaging_message WHERE {IN_WINDOW}{only_sent} GROUP BY 1",
    )


def stats_by_chat(s: Subjects, days: int, by_user: bool = False) -> Case:
    people = ", c.name, p.user_id, p.nickname" if by_user else ""
    flags = {"group_by_user": "true", "format": "true"} if by_user else {}
    return stats(
        s, f"GET /messages/stats_by_chat {days}d" + (" by user" if by_user else ""),
        q("/messages/stats_by_chat", days=days, **flags), "service", days, calendar(s.now, days),
        f"SELECT c.chat_id{people}, count(*) FROM messaging_message m JOIN messaging_chat c ON c.id = m.chat_id "
        f"LEFT JOIN messaging_participant p ON p.id = m.sender_id WHERE NOT m.sent_by_bot "
        f"AND m.created_at >= %(start)s AND m.created_at < %(end)s GROUP BY c.chat_id{people}",
    )


def overview(s: Subjects, days: int, group: bool = False) -> Case:
    """The console's /api/stats: a daily series of messages, bot replies, tool calls and
    tokens, and the distinct writers and groups, all narrowed to one chat with groupId."""
    messages_in_chat = " AND chat_id = %(chat_pk)s" if group else ""
    calls_in_chat = " AND chat_id = %(chat)s" if group else ""
    params = {"period": CALENDAR_PERIODS[days], **({"groupId": s.chat_id} if group else {})}
    day = "date_trunc('day', created_at)"
    return stats(
        s, f"GET /api/stats {days}d" + (" groupId" if group else ""), q("/api/stats", **params), "service", days,
        calendar(s.now, days),
        f"SELECT day, sum(messages), sum(responses), sum(tool_calls), sum(tokens) FROM ("
        f"SELECT {day} AS day, count(*) AS messages, count(*) FILTER (WHERE sent_by_bot) AS responses, "
        f"0 AS tool_calls, 0 AS tokens FROM messaging_message WHERE {IN_WINDOW}{messages_in_chat} GROUP BY 1 "
        f"UNION ALL SELECT {day}, 0, 0, count(*), 0 FROM usage_toolcall WHERE {IN_WINDOW}{calls_in_chat} GROUP BY 1 "
        f"UNION ALL SELECT {day}, 0, 0, 0, {TOKENS} FROM logs_log WHERE {IN_WINDOW} AND {LLM}{calls_in_chat} "
        f"GROUP BY 1) AS by_day GROUP BY 1",
        "SELECT count(DISTINCT m.sender_id) FILTER (WHERE NOT m.sent_by_bot), "
        "count(DISTINCT m.chat_id) FILTER (WHERE c.kind = 'group') FROM messaging_message m "
        "JOIN messaging_chat c ON c.id = m.chat_id WHERE m.created_at >= %(start)s AND m.created_at < %(end)s"
        + messages_in_chat.replace("chat_id", "m.chat_id"),
    )


def console_models(s: Subjects, days: int) -> Case:
    return stats(
        s, f"GET /api/stats/models {days}d", q("/api/stats/models", period=CALENDAR_PERIODS[days]), "service", days,
        calendar(s.now, days),
        f"SELECT model_name, count(*), {TOKENS}, avg(latency_ms), count(*) FILTER (WHERE NOT success), "
        f"percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM logs_log WHERE {IN_WINDOW} AND {LLM} "
        f"GROUP BY 1",
    )


def console_tools(s: Subjects, days: int) -> Case:
    return stats(
        s, f"GET /api/stats/tools {days}d", q("/api/stats/tools", period=CALENDAR_PERIODS[days]), "service", days,
        calendar(s.now, days),
        f"SELECT tool_id, tool_name, count(*), avg(duration_ms), avg(success::int) FROM usage_toolcall "
        f"WHERE {IN_WINDOW} GROUP BY 1, 2",
    )


def console_channels(s: Subjects, days: int) -> Case:
    return stats(
        s, f"GET /api/stats/channels {days}d", q("/api/stats/channels", period=CALENDAR_PERIODS[days]), "service",
        days, calendar(s.now, days),
        f"SELECT channel_id, count(*), count(*) FILTER (WHERE NOT success), avg(latency_ms), max(created_at) "
        f"FROM logs_log WHERE {IN_WINDOW} AND {LLM} AND channel_id IS NOT NULL GROUP BY 1",
    )


def usage_data_sql(one_user: bool) -> str:
    of_user = " AND user_id = %(user)s" if one_user else ""
    return (
        f"SELECT model_name, date_trunc('hour', created_at), count(*), sum(quota) FILTER (WHERE type = 2), {TOKENS} "
        f"FROM logs_log WHERE {IN_WINDOW} AND {LLM}{of_user} GROUP BY 1, 2"
    )


def data(s: Subjects, days: int, user: bool = False) -> Case:
    window = rolling(s.now, days)
    params = {"start_timestamp": unix(window["start"]), "end_timestamp": unix(s.now),
              **({"username": s.username} if user else {})}
    return stats(s, f"GET /api/data/ {days}d" + (" username" if user else ""), q("/api/data/", **params), "admin",
                 days, window, usage_data_sql(user))


def data_self(s: Subjects, days: int) -> Case:
    window = rolling(s.now, days)
    path = q("/api/data/self", start_timestamp=unix(window["start"]), end_timestamp=unix(s.now))
    return stats(s, f"GET /api/data/self {days}d", path, "user", days, window, usage_data_sql(True))


def log_stat_case(s: Subjects, days: int, path: str, caller: str, one_user: bool, model: bool) -> Case:
    window = rolling(s.now, days)
    params = {"type": 2, "start_timestamp": unix(window["start"]), "end_timestamp": unix(s.now),
              **({"model_name": s.model} if model else {})}
    narrowed = (" AND user_id = %(user)s" if one_user else "") + (" AND model_name = %(model)s" if model else "")
    return stats(
        s, f"GET {path} {days}d" + (" model_name" if model else ""), q(path, **params), caller, days, window,
        f"SELECT sum(quota), count(*) FILTER (WHERE created_at >= %(recent)s), "
        f"sum(prompt_tokens + completion_tokens) FILTER (WHERE created_at >= %(recent)s) FROM logs_log "
        f"WHERE type = 2 AND {IN_WINDOW}{narrowed}",
    )


def log_stat(s: Subjects, days: int, model: bool = False) -> Case:
    return log_stat_case(s, days, "/api/log/stat", "admin", False, model)


def log_self_stat(s: Subjects, days: int, model: bool = False) -> Case:
    return log_stat_case(s, days, "/api/log/self/stat", "user", True, model)


def agent_stats(s: Subjects, days: int, tool: bool = False) -> Case:
    today = s.now.date()
    body = {"start_date": (today - timedelta(days=days - 1)).isoformat(), "end_date": today.isoformat(),
            **({"tool_id": s.tool_id} if tool else {})}
    day = "date_trunc('day', created_at)"
    return stats(
        s, f"POST /agent/stats {days}d" + (" tool_id" if tool else ""), "/agent/stats", "user", days,
        calendar(s.now, days),
        f"SELECT tool_id, tool_name, {day}, count(*), count(*) FILTER (WHERE success), sum(cost) FROM usage_toolcall "
        f"WHERE user_id = %(user)s AND {IN_WINDOW}" + (" AND tool_id = %(tool)s" if tool else "")
        + f" GROUP BY GROUPING SETS ((tool_id, tool_name), ({day}))",
        body=body,
    )


# Each family at every window, then at 30 days with each of its filters.
FAMILIES: tuple[tuple[Callable[..., Case], tuple[dict, ...]], ...] = (
    (llm_stats, ({"group_by": "user"}, {"group_by": "module"}, {"group_by": "type"})),
    (messages_recent, ({"message_type": "sent"},)),
    (stats_by_chat, ({"by_user": True},)),
    (overview, ({"group": True},)),
    (console_models, ()),
    (console_tools, ()),
    (console_channels, ()),
    (data, ({"user": True},)),
    (data_self, ()),
    (log_stat, ({"model": True},)),
    (log_self_stat, ({"model": True},)),
    (agent_stats, ({"tool": True},)),
)


# --- statistics over all time -----------------------------------------------------------------


def user_ranking(s: Subjects, sort: str) -> Case:
    order = {"messages": "3", "tokens": "4"}[sort]
    return Case(
        f"GET /api/stats/users sort={sort}", q("/api/stats/users", limit=20, sort=sort), "service", "stats",
        (f"WITH m AS (SELECT sender_id, count(*) AS n, max(created_at) AS last FROM messaging_message "
         f"WHERE NOT sent_by_bot AND sender_id IS NOT NULL GROUP BY 1), "
         f"t AS (SELECT username, {TOKENS} AS tokens, max(created_at) AS last FROM logs_log "
         f"WHERE {LLM} AND username <> '' GROUP BY 1) "
         f"SELECT coalesce(p.user_id, t.username) AS who, p.nickname, coalesce(m.n, 0), coalesce(t.tokens, 0), "
         f"greatest(m.last, t.last) FROM m JOIN messaging_participant p ON p.id = m.sender_id "
         f"FULL JOIN t ON t.username = p.user_id ORDER BY {order} DESC, who LIMIT 20",),
        s.params(),
    )


def group_ranking(s: Subjects, sort: str) -> Case:
    order = {"messages": "3", "tokens": "5"}[sort]
    return Case(
        f"GET /api/stats/groups sort={sort}", q("/api/stats/groups", limit=20, sort=sort), "service", "stats",
        ("WITH m AS (SELECT chat_id, count(*) AS n, count(DISTINCT sender_id) FILTER (WHERE NOT sent_by_bot) AS "
         "people, max(created_at) AS last FROM messaging_message GROUP BY 1), "
         f"t AS (SELECT chat_id, {TOKENS} AS tokens, max(created_at) AS last FROM logs_log "
         f"WHERE {LLM} AND chat_id <> '' GROUP BY 1) "
         "SELECT c.chat_id, c.name, m.n, m.people, coalesce(t.tokens, 0), greatest(m.last, t.last) "
         "FROM messaging_chat c JOIN m ON m.chat_id = c.id LEFT JOIN t ON t.chat_id = c.chat_id "
         f"WHERE c.kind = 'group' ORDER BY {order} DESC, 1 LIMIT 20",),
        s.params(),
    )


def system_info(s: Subjects) -> Case:
    return Case(
        "GET /api/system/info", "/api/system/info", "service", "stats",
        ("SELECT count(DISTINCT tool_id), count(DISTINCT split_part(split_part(tool_id, ':', 1), '.', 1)) "
         "FILTER (WHERE tool_id ~ '[.:]') FROM usage_toolcall",),
        s.params(),
    )


def stats_cases(s: Subjects) -> list[Case]:
    cases = []
    for family, variants in FAMILIES:
        cases += [family(s, days) for days in WINDOWS] + [family(s, JUDGED_DAYS, **v) for v in variants]
    return cases + [user_ranking(s, "messages"), user_ranking(s, "tokens"), group_ranking(s, "messages"),
                    group_ranking(s, "tokens"), system_info(s)]


# --- lists, lookups and system endpoints -------------------------------------------------------


def log_list_cases(s: Subjects) -> list[Case]:
    """/api/log/ page 1 unfiltered and with each single filter, a deep page, and the
    caller's own list: each answer's total is checked against a count of the raw rows."""
    day_ago = unix(s.now - timedelta(days=1))
    window = {"list_start": datetime.fromtimestamp(day_ago, s.now.tzinfo),
              "list_end": datetime.fromtimestamp(unix(s.now) + 1, s.now.tzinfo)}
    filters = (  # (label, query parameters, the rows it keeps)
        ("", {}, "TRUE"),
        (" type=2", {"type": 2}, "type = 2"),
        (" username", {"username": s.username}, "username = %(username)s"),
        (" token_name", {"token_name": s.token_name}, "token_name = %(token_name)s"),
        (" model_name", {"model_name": s.model}, "model_name = %(model)s"),
        (" channel", {"channel": s.channel}, "channel_id = %(channel)s"),
        (" group", {"group": s.group}, '"group" = %(group)s'),
        (" last day", {"start_timestamp": day_ago, "end_timestamp": unix(s.now)},
         "created_at >= %(list_start)s AND created_at < %(list_end)s"),
    )
    params = s.params() | window
    count = "SELECT count(*) FROM logs_log WHERE {}"
    cases = [
        Case(f"GET /api/log/ page 1{label}", q("/api/log/", p=1, page_size=20, **query), "admin", "log list",
             params=params, total=count.format(rows))
        for label, query, rows in filters
    ]
    return cases + [
        Case("GET /api/log/ deep page", q("/api/log/", p=s.deep_page, page_size=20), "admin",
             params=params, total=count.format("TRUE"), note=f"page {s.deep_page:,}"),
        Case("GET /api/log/self page 1", q("/api/log/self", p=1, page_size=20), "user", "log list",
             params=params, total=count.format("user_id = %(user)s")),
        Case("GET /api/log/self page 1 model_name", q("/api/log/self", p=1, page_size=20, model_name=s.model),
             "user", "log list", params=params, total=count.format("user_id = %(user)s AND model_name = %(model)s")),
    ]


def other_read_cases(s: Subjects) -> list[Case]:
    return [
        Case("GET /api/log/search keyword", q("/api/log/search", keyword="rate limit"), "admin"),
        Case("GET /api/log/self/search keyword", q("/api/log/self/search", keyword="timeout"), "user"),
        # A keyword no row holds: the search cannot stop at the first page of matches.
        Case("GET /api/log/search keyword no row holds", q("/api/log/search", keyword=NO_ROW_HOLDS), "admin"),
        Case("GET /api/log/self/search keyword no row holds", q("/api/log/self/search", keyword=NO_ROW_HOLDS),
             "user"),
        # One that other accounts' rows hold, and none of the caller's.
        Case("GET /api/log/self/search keyword others hold", q("/api/log/self/search", keyword="cache warmed"),
             "user"),
        Case("GET /api/log/token (public)", q("/api/log/token", key=s.relay_key), "public"),
        Case("GET /api/logs", q("/api/logs", limit=50), "service"),
        Case("GET /api/logs level=error", q("/api/logs", level="error", limit=50), "service"),
        Case("GET /api/logs/tools", q("/api/logs/tools", limit=50), "service"),
        Case("GET /api/logs/tools toolName", q("/api/logs/tools", toolName=s.tool_name, limit=50), "service"),
        Case("GET /api/logs/errors", q("/api/logs/errors", limit=50), "service"),
        Case("GET /api/system/status", "/api/system/status", "service"),
        Case("GET /api/system/health", "/api/system/health", "service"),
    ]


def dashboard_cases(s: Subjects) -> list[Case]:
    """The admin dashboard, every chart and table of it, as a signed-in staff member sees it."""
    return [
        Case(f"GET /admin/dashboard/ {name}", q("/admin/dashboard/", range=name), "staff", "dashboard")
        for name in ("24h", "7d", "30d", "90d")
    ]


def read_cases(s: Subjects) -> list[Case]:
    return stats_cases(s) + log_list_cases(s) + other_read_cases(s) + dashboard_cases(s)
