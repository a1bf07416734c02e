"""Write paths of the log table: LLM calls and other log rows from ingest."""

from __future__ import annotations

from logs.models import Log
from statsite.ingest import chunked, first_of_each, resolve_accounts
from usage.services import mark_keys_used, price_call, prices_for, resolve_channels, resolve_relay_keys


def _stored_request_ids(records: list[dict]) -> set[str]:
    ids = [r["request_id"] for r in records if r.get("request_id")]
    stored: set[str] = set()
    for part in chunked(ids):
        stored.update(Log.objects.filter(request_id__in=part).values_list("request_id", flat=True))
    return stored


def _fresh(records: list[dict]) -> list[dict]:
    return first_of_each(records, lambda r: r.get("request_id") or None, _stored_request_ids(records))


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
        rows.append(
            Log(
                type=Log.Type.CONSUME if success else Log.Type.ERROR,
                level=Log.Level.INFO if success else Log.Level.ERROR,
                success=success,
                user=accounts.get(record.get("username", "")),
                username=record.get("username", ""),
                created_at=record["created_at"],
                content=content,
                token=key,
                token_name=record.get("token_name") or (key.name if key else ""),
                model_name=record["model_name"],
                quota=quota,
                cost=cost,
                prompt_tokens=record.get("prompt_tokens", 0),
                completion_tokens=record.get("completion_tokens", 0),
                latency_ms=latency,
                use_time=round(latency / 1000) if latency is not None else 0,
                is_stream=record.get("is_stream", False),
                channel=channel,
                group=record.get("group", ""),
                ip=record.get("ip"),
                other=other,
                module=record.get("module", ""),
                request_type=record.get("request_type", ""),
                chat_id=record.get("chat_id", ""),
                request_id=record.get("request_id") or None,
            )
        )
    Log.objects.bulk_create(rows)
    mark_keys_used(keys, max(r.created_at for r in rows))
    return len(rows)


def record_logs(records: list[dict]) -> int:
    """Store other log rows (top-up, manage, error, system). Returns how many were created."""
    fresh = _fresh(records)
    if not fresh:
        return 0
    accounts = resolve_accounts(r.get("username", "") for r in fresh)
    rows = [
        Log(
            type=r["type"],
            level=r.get("level") or (Log.Level.ERROR if r["type"] == Log.Type.ERROR else Log.Level.INFO),
            success=r["type"] != Log.Type.ERROR,
            user=accounts.get(r.get("username", "")),
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
    Log.objects.bulk_create(rows)
    return len(rows)

