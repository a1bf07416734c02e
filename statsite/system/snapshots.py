"""The system snapshots of the bot console dialect, as plain data.

Each function is synchronous and runs a few small queries; the DRF views call
them directly and the event stream calls them from a worker thread.

Decisions where the console document is silent:
- `python` (the runtime's version) stands where the document shows `nodejs`.
- `uptime`/`startTime` are those of the serving process (each worker its own).
- `memory.used` is the process's resident memory, `memory.total` the machine's,
  `memory.percentage` the one as a percentage of the other (0..100, 2 decimals).
- `bot` is the most recent ingest client (see `statsite.system.sources`).
- `mcpServers`: distinct tool-id namespaces, the part before the first "." or
  ":" of ids that have one (`github.create_issue` and `github:search` are one
  server); tools without a namespace belong to none. `totalTools`: distinct tool
  ids ever called. Both come from the tool rollups, which outlive purges.
- health `channels`: "ok" when at least one channel is enabled, or when no channel
  exists yet (a bot that calls one provider directly has none); "error" when
  channels exist and all are disabled.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Q
from django.utils import timezone

import statsite
from statsite.system.sources import current_source
from statsite.timeparse import iso_utc

METRIC_WINDOW = timedelta(seconds=60)
ADAPTERS_MAX = 1000
# Separators of a tool id's namespace (`mcp-server.tool`, `mcp-server:tool`).
NAMESPACE_SEPARATORS = (".", ":")


# --- the process -------------------------------------------------------------------

_process: psutil.Process | None = None
_process_lock = threading.Lock()


def this_process() -> psutil.Process:
    """This process's psutil handle (made again after a fork, which changes the pid)."""
    global _process
    with _process_lock:
        if _process is None or _process.pid != os.getpid():
            _process = psutil.Process()
        return _process


def started_at() -> datetime:
    """When this process started, to the second."""
    return datetime.fromtimestamp(int(this_process().create_time()), tz=UTC)


def memory() -> dict[str, Any]:
    used = this_process().memory_info().rss
    total = psutil.virtual_memory().total
    return {"used": used, "total": total, "percentage": round(used * 100 / total, 2) if total else 0.0}


# --- snapshots ----------------------------------------------------------------------


def status_snapshot() -> dict[str, Any]:
    """`/api/system/status` and the stream's `status` event."""
    start = started_at()
    source = current_source()
    return {
        "status": "running",
        "version": statsite.__version__,
        "uptime": max(0, int(time.time() - start.timestamp())),
        "startTime": iso_utc(start),
        "python": platform.python_version(),
        "memory": memory(),
        "bot": {"connected": source.connected, "platform": source.platform, "uin": source.account},
    }


def features() -> dict[str, bool]:
    on_postgres = connection.vendor == "postgresql"
    retention = (settings.LOG_RETENTION_DAYS, settings.TOOL_CALL_RETENTION_DAYS, settings.MESSAGE_RETENTION_DAYS)
    return {
        "postgres": on_postgres,
        # New errors reach the event stream by LISTEN/NOTIFY (else by polling).
        "ssePush": on_postgres,
        "retention": any(days is not None for days in retention),
        "rollups": True,
    }


def adapters() -> list[str]:
    """Names of the channels seen so far (what the console calls adapters)."""
    from usage.models import Channel

    names = Channel.objects.exclude(name="").order_by("name").values_list("name", flat=True).distinct()
    return list(names[:ADAPTERS_MAX])


def distinct_tool_ids() -> list[str]:
    """Every tool id in the tool rollups: the all-time tier holds one row per tool."""
    from usage.models import ToolRollup
    from usage.rollups import stored_grain

    tools = ToolRollup.objects.filter(grain=stored_grain("tool", "all")).exclude(tool_id="")
    return sorted(set(tools.values_list("tool_id", flat=True)))


def namespace_of(tool_id: str) -> str | None:
    """`github.create_issue` → `github`; `search` → None."""
    cut = min((i for i in (tool_id.find(sep) for sep in NAMESPACE_SEPARATORS) if i > 0), default=-1)
    return tool_id[:cut] if cut > 0 else None


def info_snapshot() -> dict[str, Any]:
    """`/api/system/info`."""
    tools = distinct_tool_ids()
    servers = {ns for ns in map(namespace_of, tools) if ns}
    return {
        "version": statsite.__version__,
        "platform": sys.platform,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "features": features(),
        "adapters": adapters(),
        "mcpServers": len(servers),
        "totalTools": len(tools),
    }


# --- health ---------------------------------------------------------------------------


def health_connection() -> BaseDatabaseWrapper:
    """The connection the database check probes (tests point it elsewhere)."""
    return connections["default"]


def check_database() -> dict[str, Any]:
    """A real round trip, `SELECT 1`, timed in milliseconds. An unreachable database
    fails within the connect timeout (DATABASE_CONNECT_TIMEOUT on PostgreSQL)."""
    conn = health_connection()
    began = time.perf_counter()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure to reach the database is its check failing
        # Whatever went wrong, this connection is not to be reused as it is.
        _discard(conn)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"status": "error", "latency": None, "error": first_line[:200]}
    return {"status": "ok", "latency": round((time.perf_counter() - began) * 1000, 2)}


def _discard(conn: BaseDatabaseWrapper) -> None:
    try:
        if not conn.in_atomic_block:
            conn.close()
    except Exception:  # closing a broken connection may fail too; it is gone either way
        pass


def check_bot() -> dict[str, Any]:
    """"ok" when a client sent data within BOT_CONNECTED_WINDOW_SECONDS, else "idle"
    (which is not a failure: a quiet night is healthy)."""
    try:
        return {"status": "ok" if current_source().connected else "idle"}
    except DatabaseError:
        return {"status": "error"}


def check_channels() -> dict[str, Any]:
    from usage.models import Channel

    try:
        counts = Channel.objects.aggregate(
            total=Count("id"), enabled=Count("id", filter=Q(status=Channel.Status.ENABLED))
        )
    except DatabaseError:
        return {"status": "error", "available": 0}
    ok = counts["enabled"] > 0 or counts["total"] == 0
    return {"status": "ok" if ok else "error", "available": counts["enabled"]}


def health_snapshot() -> dict[str, Any]:
    """`/api/system/health`: healthy unless a check says "error"."""
    checks = {"database": check_database(), "bot": check_bot(), "channels": check_channels()}
    return {"healthy": all(check["status"] != "error" for check in checks.values()), "checks": checks}


# --- the stream's metrics ---------------------------------------------------------------


def _fraction(part: int, whole: int, digits: int) -> float:
    return round(part / whole, digits) if whole else 0.0


def metric_snapshot(now: datetime | None = None) -> dict[str, Any]:
    """LLM calls of the last minute `[now - 60 s, now)`: calls (rpm), their prompt +
    completion tokens (tpm), the failed share (errorRate, 0..1) and the 95th
    percentile latency in ms (from the latency histogram; null without latencies)."""
    from usage.selectors import latency_percentile, totals

    now = now or timezone.now()
    row = totals("llm", start=now - METRIC_WINDOW, end=now)
    requests = int(row["requests"])
    return {
        "timestamp": iso_utc(now),
        "window": int(METRIC_WINDOW.total_seconds()),
        "rpm": requests,
        "tpm": int(row["prompt_tokens"]) + int(row["completion_tokens"]),
        "errorRate": _fraction(int(row["errors"]), requests, 4),
        "p95Latency": latency_percentile(row, 0.95),
    }


def channel_states(now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Every channel with its status and the error rate of its LLM calls in the last
    minute (0..1, to the percentage point, so noise below one point is no change)."""
    from usage.models import Channel
    from usage.selectors import usage

    now = now or timezone.now()
    calls = {
        row["channel_id"]: row
        for row in usage("llm", start=now - METRIC_WINDOW, end=now, group_by=["channel_id"])
        if row["channel_id"]
    }
    states: dict[int, dict[str, Any]] = {}
    labels = dict(Channel.Status.choices)
    for channel in Channel.objects.order_by("id").values("id", "name", "status"):
        row = calls.get(channel["id"])
        requests = int(row["requests"]) if row else 0
        errors = int(row["errors"]) if row else 0
        states[channel["id"]] = {
            "id": channel["id"],
            "name": channel["name"],
            "status": labels.get(channel["status"], "unknown"),
            "requests": requests,
            "errors": errors,
            "errorRate": _fraction(errors, requests, 2),
        }
    return states


def channel_changes(
    previous: dict[int, dict[str, Any]] | None, current: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The channels whose status or error rate differs from PREVIOUS (None: the first
    look, which only sets the baseline). A new channel is a change; `previous` holds
    what it was (null for a new one)."""
    if previous is None:
        return []
    changed = []
    for channel_id, state in current.items():
        before = previous.get(channel_id)
        if before is not None and (before["status"], before["errorRate"]) == (state["status"], state["errorRate"]):
            continue
        was = {"status": before["status"], "errorRate": before["errorRate"]} if before else None
        changed.append({**state, "previous": was})
    return changed
