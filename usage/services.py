"""Write paths of the usage app: dimension look-ups for ingest, pricing, tool calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max

from statsite import credentials
from statsite.ingest import chunked, first_of_each, in_key_order, resolve_accounts
from usage import rollups
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
        # Sorted, and conflicts ignored: a key that a concurrent batch creates
        # meanwhile is waited for and then found, rather than failing this batch.
        missing = sorted(h for h in wanted_hash if h not in by_hash)
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
                ],
                ignore_conflicts=True,
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
        missing_names = sorted(
            (pair for pair in wanted_name if pair not in by_name), key=lambda p: (p[0] is None, p[0] or 0, p[1])
        )
        if missing_names:
            RelayKey.objects.bulk_create(
                [RelayKey(name=name, owner=wanted_name[(oid, name)]) for oid, name in missing_names],
                ignore_conflicts=True,
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


def mark_keys_used(uses: Iterable[tuple[RelayKey | None, datetime]]) -> None:
    """Move each key's last use forward to the time of its newest call in USES
    (key, call time), never back, once the ingest transaction has committed."""
    latest: dict[int, datetime] = {}
    for key, when in uses:
        if key is not None and (key.pk not in latest or when > latest[key.pk]):
            latest[key.pk] = when
    if not latest:
        return

    def update() -> None:
        # One statement per chunk, rows in key order so concurrent batches lock them alike.
        for part in chunked(sorted(latest)):
            moved_forward = [
                models.When(
                    models.Q(pk=pk)
                    & (models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=latest[pk])),
                    then=models.Value(latest[pk]),
                )
                for pk in part
            ]
            RelayKey.objects.filter(pk__in=part).update(
                last_used_at=models.Case(*moved_forward, default=models.F("last_used_at"))
            )

    after_commit("relay key last use", update)


# --- channels ---------------------------------------------------------------------


# Any constant distinct from other advisory locks of the installation.
CHANNEL_CREATION_LOCK = 0x5354_4348  # "STCH"


def _lock_channel_creation() -> None:
    """On PostgreSQL, make this transaction the only one creating channels until it
    ends. Creation is rare (first sight of a channel), and a channel known only by
    name takes the next free id, which two concurrent writers would both pick."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHANNEL_CREATION_LOCK])


def _channels_by_name(names: set[str]) -> dict[str, Channel]:
    found: dict[str, Channel] = {}
    if names:
        for channel in Channel.objects.filter(name__in=names).order_by("id"):
            found.setdefault(channel.name, channel)
    return found


def resolve_channels(records: list[dict]) -> list[Channel | None]:
    """The channel of each record: by `channel_id` (created on first sight with
    `channel_name`), else by `channel_name` (created with the next free id)."""
    ids: dict[int, str] = {}
    for r in records:
        if r.get("channel_id") is not None and not ids.get(r["channel_id"]):
            # The first record that names a new channel names it; one without a name does not unname it.
            ids[r["channel_id"]] = r.get("channel_name", "")
    names = {r["channel_name"] for r in records if r.get("channel_id") is None and r.get("channel_name")}
    by_id: dict[int, Channel] = Channel.objects.in_bulk(list(ids)) if ids else {}
    by_name = _channels_by_name(names)
    if len(by_id) < len(ids) or len(by_name) < len(names):
        _lock_channel_creation()
        # Look again: whoever held the lock before us may have created some of them.
        by_id = Channel.objects.in_bulk(list(ids)) if ids else {}
        missing = sorted(set(ids) - by_id.keys())
        if missing:
            created = Channel.objects.bulk_create([Channel(id=i, name=ids[i] or f"channel-{i}") for i in missing])
            by_id.update({c.id: c for c in created})
        # After the channels by id, so a name one of them just got is found, not created twice.
        by_name = _channels_by_name(names)
        missing_names = sorted(names - by_name.keys())
        if missing_names:
            next_id = (Channel.objects.aggregate(m=Max("id"))["m"] or 0) + 1
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
    ToolCall.objects.bulk_create(in_key_order(rows, lambda row: row.request_id))
    rollups.apply("tools", rows)
    return len(rows)
