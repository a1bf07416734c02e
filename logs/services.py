"""Write paths of the log table: LLM calls and other log rows from ingest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.db.models import Subquery

from logs.models import Log
from logs.querysets import is_llm_call
from messaging.models import Message
from statsite.ingest import FactRows, first_of_each, in_key_order, resolve_accounts, rows_among
from statsite.system.notify import announce_errors, serialise_error_commits, uses_notify
from usage import rollups
from usage.models import RawDataHorizon, ToolCall
from usage.services import mark_keys_used, price_call, prices_for, resolve_channels, resolve_relay_keys

LOG_ROWS = FactRows(Log)


def _stored_request_ids(records: list[dict]) -> set[str]:
    ids = [r["request_id"] for r in records if r.get("request_id")]
    return {request_id for (request_id,) in rows_among(Log, "request_id", ids, "request_id")}


def _fresh(records: list[dict]) -> list[dict]:
    return first_of_each(records, lambda r: r.get("request_id") or None, _stored_request_ids(records))


def _insert(rows: list[tuple]) -> None:
    """Insert ROWS (LOG_ROWS rows) and count them in the rollups, error rows last.

    Error rows go in under the commit-order lock (statsite.system.notify), after the
    others, so the lock is held for the end of the transaction only — the error rows'
    insert and the commit — and error ids still grow in commit order for the event
    stream. The rollups count every row before that lock is asked for: the rows already
    in by their ids, the error rows from their values. Concurrent batches update the
    same rollup rows, so each holds them from its upsert to its commit and they take
    that part in turn; aggregating a batch, before its first rollup row, and its error
    rows' insert then run side by side with the others. A batch waiting for the lock
    holds rollup rows, but the holder needs none of them any more."""
    ordered = in_key_order(rows, lambda row: row.request_id)
    errors = [row for row in ordered if row.type == Log.Type.ERROR]
    others = [row for row in ordered if row.type != Log.Type.ERROR]
    stored = LOG_ROWS.insert(others) if others else []
    if not errors:
        _count(stored)
        return
    if not uses_notify():
        _count(stored + LOG_ROWS.insert(errors))
        return
    _count(stored, incoming=errors)
    serialise_error_commits(True)
    announce_errors(LOG_ROWS.insert(errors))


def _count(rows: list, incoming: list | None = None) -> None:
    """Add inserted log ROWS, and INCOMING rows yet to be inserted (PostgreSQL), to the
    rollups: LLM calls (an error log that names a model is a failed call) to the LLM
    rollups, every other row to the event rollups."""
    for kind, is_kind in (("llm", True), ("events", False)):
        inserted = [row for row in rows if is_llm_call(row.type, row.model_name) == is_kind]
        pending = [row for row in incoming or () if is_llm_call(row.type, row.model_name) == is_kind]
        if inserted or pending:
            rollups.apply(kind, inserted, incoming=LOG_ROWS.as_json(pending) if pending else "")


def module_of(record: dict) -> str:
    """The module a call is counted under: as sent, else its request type up to the
    first dot (`chat.reply` -> `chat`). Stored on the row, so raw rows and rollups agree."""
    derived = record.get("request_type", "").split(".", 1)[0]
    return record.get("module") or derived[: Log._meta.get_field("module").max_length]


def record_llm_calls(records: list[dict]) -> int:
    """Store LLM calls not stored before (by request_id): one Log row each, type 2
    when it succeeded and 4 when it failed. Returns how many were created.
    Runs inside the caller's transaction."""
    fresh = _fresh(records)
    if not fresh:
        return 0
    accounts = resolve_accounts(r.get("username", "") for r in fresh)
    keys = resolve_relay_keys(fresh, accounts)
    channels = resolve_channels(fresh)
    prices = prices_for(r["model_name"] for r in fresh if r.get("cost") is None)

    rows = []
    for record, key, channel in zip(fresh, keys, channels):
        success = record.get("success", True)
        cost, quota = price_call(record, prices)
        latency = record.get("latency_ms")
        other = dict(record.get("other") or {})
        content = record.get("content", "")
        if not success:
            error = record.get("error") or content or "LLM call failed"
            content = content or error
            other.setdefault("error", error)
        username = record.get("username", "")
        rows.append(
            LOG_ROWS.row(
                type=Log.Type.CONSUME if success else Log.Type.ERROR,
                level=Log.Level.INFO if success else Log.Level.ERROR,
                success=success,
                user_id=accounts.get(username),
                username=username,
                created_at=record["created_at"],
                content=content,
                token_id=key.pk if key else None,
                token_name=record.get("token_name") or (key.name if key else ""),
                model_name=record["model_name"],
                quota=quota,
                cost=cost,
                prompt_tokens=record.get("prompt_tokens", 0),
                completion_tokens=record.get("completion_tokens", 0),
                latency_ms=latency,
                use_time=round(latency / 1000) if latency is not None else 0,
                is_stream=record.get("is_stream", False),
                channel_id=channel.pk if channel else None,
                group=record.get("group", ""),
                ip=record.get("ip") or None,
                other=other,
                module=module_of(record),
                request_type=record.get("request_type", ""),
                chat_id=record.get("chat_id", ""),
                request_id=record.get("request_id") or None,
            )
        )
    _insert(rows)
    mark_keys_used(zip(keys, (row.created_at for row in rows)))
    return len(rows)


def record_logs(records: list[dict]) -> int:
    """Store other log rows (top-up, manage, error, system). Returns how many were created."""
    fresh = _fresh(records)
    if not fresh:
        return 0
    accounts = resolve_accounts(r.get("username", "") for r in fresh)
    rows = [
        LOG_ROWS.row(
            type=r["type"],
            level=r.get("level") or (Log.Level.ERROR if r["type"] == Log.Type.ERROR else Log.Level.INFO),
            success=r["type"] != Log.Type.ERROR,
            user_id=accounts.get(r.get("username", "")),
            username=r.get("username", ""),
            created_at=r["created_at"],
            content=r.get("content", ""),
            quota=r.get("quota", 0),
            model_name=r.get("model_name", ""),
            module=r.get("module", ""),
            chat_id=r.get("chat_id", ""),
            other=r.get("other") or {},
            request_id=r.get("request_id") or None,
        )
        for r in fresh
    ]
    _insert(rows)
    return len(rows)


# --- purge ------------------------------------------------------------------------

PURGE_KINDS = ("logs", "tool-calls", "messages")


def purgeable(kind: str, *, before: datetime, log_type: int | None = None):
    """The rows of KIND created before BEFORE (and of LOG_TYPE, for logs)."""
    if kind == "logs":
        qs = Log.objects.before(before)
        return qs.of_type(log_type) if log_type else qs
    if log_type:
        raise ValueError("a log type only applies to logs")
    if kind == "tool-calls":
        return ToolCall.objects.before(before)
    if kind == "messages":
        return Message.objects.before(before)
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(PURGE_KINDS)}")


def purge(
    kind: str,
    *,
    before: datetime,
    log_type: int | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the rows of KIND created before BEFORE, oldest first, BATCH_SIZE at a
    time, each batch in its own short transaction so ingest and reads go on
    meanwhile. Rows newer than the cutoff are never touched. Rollups are not
    touched either: totals stay answerable after the raw rows are gone.
    Returns how many rows were deleted; PROGRESS gets each batch's count."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rows = purgeable(kind, before=before, log_type=log_type)
    model = rows.model
    if not rows.exists():
        return 0
    # Before the first delete, so an interrupted purge still leaves the mark.
    _move_horizon(kind, before)
    deleted = 0
    while True:
        batch = rows.order_by("created_at", "id").values("pk")[:batch_size]
        with transaction.atomic():
            count, _ = model.objects.filter(pk__in=Subquery(batch)).delete()
        if not count:
            return deleted
        deleted += count
        if progress is not None:
            progress(count)


def _move_horizon(kind: str, before: datetime) -> None:
    """Record that raw rows of KIND before BEFORE may be gone: rollup buckets up to
    there are history, which `rollups rebuild` and `check` then leave alone."""
    mark, created = RawDataHorizon.objects.get_or_create(kind=kind, defaults={"purged_before": before})
    if not created and mark.purged_before < before:
        RawDataHorizon.objects.filter(pk=mark.pk, purged_before__lt=before).update(purged_before=before)
    rollups.forget_horizon(kind)
