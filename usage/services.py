"""Write paths of the usage app: dimension look-ups for ingest, pricing, tool calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Max

from statsite import credentials
from statsite.ingest import chunked, first_of_each, resolve_accounts
from usage.models import Channel, ModelPrice, RelayKey, ToolCall

logger = logging.getLogger(__name__)


def after_commit(label: str, fn: Callable[[], object]) -> None:
    """Run FN once the ingest transaction has committed, outside it.

    Used for cosmetic updates of dimension rows (last use, a renamed chat), so an
    ingest transaction never waits on, or deadlocks over, a shared row lock.
    A failure here loses no fact; it is logged.
    """

    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort by design
            logger.warning("after-commit update %s failed", label, exc_info=True)

    transaction.on_commit(run)


# --- relay keys -------------------------------------------------------------------


def resolve_relay_keys(records: list[dict], accounts: dict) -> list[RelayKey | None]:
    """The relay key of each record (by `token_key`, else by owner + `token_name`),
    creating unknown keys. Keys are stored only as digests with a visible hint."""
    by_hash: dict[str, RelayKey] = {}
    wanted_hash: dict[str, tuple[str, str, object]] = {}
    wanted_name: dict[tuple[int | None, str], object] = {}
    for record in records:
        owner = accounts.get(record.get("username") or "")
        raw = record.get("token_key")
        if raw:
            canonical = credentials.canonical_relay_key(raw)
            wanted_hash.setdefault(credentials.digest(canonical), (canonical, record.get("token_name", ""), owner))
        elif record.get("token_name"):
            wanted_name.setdefault((owner.pk if owner else None, record["token_name"]), owner)

    if wanted_hash:
        for part in chunked(list(wanted_hash)):
            by_hash.update({k.key_hash: k for k in RelayKey.objects.filter(key_hash__in=part)})
        missing = [h for h in wanted_hash if h not in by_hash]
        if missing:
            RelayKey.objects.bulk_create(
                [
                    RelayKey(
                        key_hash=h,
                        prefix=credentials.relay_key_hint(wanted_hash[h][0]),
                        name=wanted_hash[h][1] or credentials.relay_key_hint(wanted_hash[h][0]),
                        owner=wanted_hash[h][2],
                    )
                    for h in missing
                ]
            )
            for part in chunked(missing):
                by_hash.update({k.key_hash: k for k in RelayKey.objects.filter(key_hash__in=part)})

    by_name: dict[tuple[int | None, str], RelayKey] = {}
    if wanted_name:
        names = {name for _, name in wanted_name}
        owners = {owner_id for owner_id, _ in wanted_name if owner_id is not None}
        query = models.Q(owner_id__in=owners) if owners else models.Q(pk__in=[])
        if any(owner_id is None for owner_id, _ in wanted_name):
            query |= models.Q(owner__isnull=True)
        for key in RelayKey.objects.filter(query, name__in=names).order_by("pk"):
            by_name.setdefault((key.owner_id, key.name), key)
        missing_names = [pair for pair in wanted_name if pair not in by_name]
        if missing_names:
            RelayKey.objects.bulk_create(
                [RelayKey(name=name, owner=wanted_name[(oid, name)]) for oid, name in missing_names]
            )
            for key in RelayKey.objects.filter(query, name__in=names).order_by("pk"):
                by_name.setdefault((key.owner_id, key.name), key)

    result: list[RelayKey | None] = []
    for record in records:
        raw = record.get("token_key")
        if raw:
            result.append(by_hash[credentials.digest(credentials.canonical_relay_key(raw))])
        elif record.get("token_name"):
            owner = accounts.get(record.get("username") or "")
            result.append(by_name[(owner.pk if owner else None, record["token_name"])])
        else:
            result.append(None)
    return result


def mark_keys_used(keys: Iterable[RelayKey | None], when: datetime) -> None:
    ids = sorted({k.pk for k in keys if k is not None})
    if ids:
        after_commit(
            "relay key last use",
            lambda: RelayKey.objects.filter(pk__in=ids)
            .filter(models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=when))
            .update(last_used_at=when),
        )


# --- channels ---------------------------------------------------------------------


def resolve_channels(records: list[dict]) -> list[Channel | None]:
    """The channel of each record: by `channel_id` (created on first sight with
    `channel_name`), else by `channel_name` (created with the next free id)."""
    by_id: dict[int, Channel] = {}
    ids = {r["channel_id"]: r.get("channel_name", "") for r in records if r.get("channel_id") is not None}
    names = {r["channel_name"] for r in records if r.get("channel_id") is None and r.get("channel_name")}
    if ids:
        by_id = Channel.objects.in_bulk(list(ids))
        missing = [i for i in ids if i not in by_id]
        if missing:
            created = Channel.objects.bulk_create([Channel(id=i, name=ids[i] or f"channel-{i}") for i in missing])
            by_id.update({c.id: c for c in created})
    by_name: dict[str, Channel] = {}
    if names:
        for channel in Channel.objects.filter(name__in=names).order_by("id"):
            by_name.setdefault(channel.name, channel)
        missing_names = sorted(names - by_name.keys())
        if missing_names:
            next_id = max(Channel.objects.aggregate(m=Max("id"))["m"] or 0, max(by_id, default=0)) + 1
            created = Channel.objects.bulk_create(
                [Channel(id=next_id + n, name=name) for n, name in enumerate(missing_names)]
            )
            by_name.update({c.name: c for c in created})

    result: list[Channel | None] = []
    for record in records:
        if record.get("channel_id") is not None:
            result.append(by_id[record["channel_id"]])
        elif record.get("channel_name"):
            result.append(by_name[record["channel_name"]])
        else:
            result.append(None)
    return result


# --- pricing ----------------------------------------------------------------------


def prices_for(model_names: Iterable[str]) -> dict[str, ModelPrice]:
    names = sorted(set(model_names))
    prices: dict[str, ModelPrice] = {}
    for part in chunked(names):
        prices.update({p.model_name: p for p in ModelPrice.objects.filter(model_name__in=part)})
    return prices


def price_call(
    record: dict, prices: dict[str, ModelPrice]
) -> tuple[Decimal, int]:
    """(cost, quota) of an LLM call: cost as recorded, else from the price table
    (0 for an unpriced model); quota as recorded, else cost x QUOTA_PER_UNIT."""
    cost = record.get("cost")
    if cost is None:
        price = prices.get(record["model_name"])
        cost = price.cost_of(record.get("prompt_tokens", 0), record.get("completion_tokens", 0)) if price else Decimal(0)
    quota = record.get("quota")
    if quota is None:
        quota = int((cost * settings.QUOTA_PER_UNIT).to_integral_value())
    return cost, quota


# --- tool calls -------------------------------------------------------------------


def record_tool_calls(records: list[dict]) -> int:
    """Store tool calls not stored before (by request_id); returns how many were created.
    Runs inside the caller's transaction."""
    ids = [r["request_id"] for r in records if r.get("request_id")]
    stored: set[str] = set()
    for part in chunked(ids):
        stored.update(ToolCall.objects.filter(request_id__in=part).values_list("request_id", flat=True))
    fresh = first_of_each(records, lambda r: r.get("request_id") or None, stored)
    if not fresh:
        return 0
    accounts = resolve_accounts(r.get("username", "") for r in fresh)
    rows = [
        ToolCall(
            tool_id=r["tool_id"],
            tool_name=r.get("tool_name") or r["tool_id"],
            user=accounts.get(r.get("username", "")),
            username=r.get("username", ""),
            chat_id=r.get("chat_id", ""),
            args=r.get("args", {}),
            result=r.get("result"),
            success=r.get("success", True),
            duration_ms=r.get("duration_ms"),
            cost=r.get("cost") or Decimal(0),
            created_at=r["created_at"],
            request_id=r.get("request_id") or None,
        )
        for r in fresh
    ]
    ToolCall.objects.bulk_create(rows)
    return len(rows)
