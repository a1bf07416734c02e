"""Write paths of the usage app: dimension look-ups for ingest, pricing, tool calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max

from statsite import credentials
from statsite.ingest import (
    FactRows,
    chunked,
    first_of_each,
    in_key_order,
    instances_among,
    resolve_accounts,
    rows_among,
)
from statsite.models import LAST_USED_RESOLUTION
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


class KeyRef(NamedTuple):
    """What ingest needs of a relay key: its id, its name (a call's default
    `token_name`) and its last use as stored when it was looked up."""

    pk: int
    name: str
    last_used_at: datetime | None


def resolve_relay_keys(records: list[dict], accounts: dict[str, int]) -> list[KeyRef | None]:
    """The relay key of each record (by `token_key`, else by owner + `token_name`),
    creating unknown keys. Keys are stored only as digests with a visible hint.
    ACCOUNTS: account ids by username."""
    digests: dict[str, str] = {}  # raw token_key -> digest of its canonical form
    wanted_hash: dict[str, tuple[str, str, int | None]] = {}
    wanted_name: set[tuple[int | None, str]] = set()
    for record in records:
        raw = record.get("token_key")
        if raw:
            if raw not in digests:
                canonical = credentials.canonical_relay_key(raw)
                digests[raw] = credentials.digest(canonical)
                owner = accounts.get(record.get("username") or "")
                wanted_hash.setdefault(digests[raw], (canonical, record.get("token_name", ""), owner))
        elif record.get("token_name"):
            wanted_name.add((accounts.get(record.get("username") or ""), record["token_name"]))

    by_hash = _keys_by_hash(wanted_hash)
    by_name = _keys_by_name(wanted_name)
    result: list[KeyRef | None] = []
    for record in records:
        raw = record.get("token_key")
        if raw:
            result.append(by_hash[digests[raw]])
        elif record.get("token_name"):
            result.append(by_name[(accounts.get(record.get("username") or ""), record["token_name"])])
        else:
            result.append(None)
    return result


def _keys_by_hash(wanted: dict[str, tuple[str, str, int | None]]) -> dict[str, KeyRef]:
    """Keys by digest; WANTED gives each digest's (canonical key, name, owner id) for creating it."""

    def find(digests: list[str]) -> dict[str, KeyRef]:
        rows = rows_among(RelayKey, "key_hash", digests, "key_hash", "pk", "name", "last_used_at")
        return {digest: KeyRef(pk, name, used) for digest, pk, name, used in rows}

    by_hash = find(list(wanted))
    # Sorted, and conflicts ignored: a key that a concurrent batch creates
    # meanwhile is waited for and then found, rather than failing this batch.
    missing = sorted(h for h in wanted if h not in by_hash)
    if missing:
        RelayKey.objects.bulk_create(
            [
                RelayKey(
                    key_hash=h,
                    prefix=credentials.relay_key_hint(wanted[h][0]),
                    name=wanted[h][1] or credentials.relay_key_hint(wanted[h][0]),
                    owner_id=wanted[h][2],
                )
                for h in missing
            ],
            ignore_conflicts=True,
        )
        by_hash.update(find(missing))
    return by_hash


def _keys_by_name(wanted: set[tuple[int | None, str]]) -> dict[tuple[int | None, str], KeyRef]:
    """Keys by (owner id, name) for calls that name a key without sending it: the
    owner's oldest key of that name, created when it has none."""
    if not wanted:
        return {}
    names = {name for _, name in wanted}
    owners = {owner_id for owner_id, _ in wanted if owner_id is not None}
    query = models.Q(owner_id__in=owners) if owners else models.Q(pk__in=[])
    if any(owner_id is None for owner_id, _ in wanted):
        query |= models.Q(owner__isnull=True)

    def find() -> dict[tuple[int | None, str], KeyRef]:
        found: dict[tuple[int | None, str], KeyRef] = {}
        for owner_id, name, pk, used in (
            RelayKey.objects.filter(query, name__in=names)
            .order_by("pk")
            .values_list("owner_id", "name", "pk", "last_used_at")
        ):
            found.setdefault((owner_id, name), KeyRef(pk, name, used))
        return found

    by_name = find()
    missing = sorted((pair for pair in wanted if pair not in by_name), key=lambda p: (p[0] is None, p[0] or 0, p[1]))
    if missing:
        RelayKey.objects.bulk_create(
            [RelayKey(name=name, owner_id=owner_id) for owner_id, name in missing], ignore_conflicts=True
        )
        by_name = find()
    return by_name


def mark_keys_used(uses: Iterable[tuple[KeyRef | None, datetime]]) -> None:
    """Move each key's last use forward to the time of its newest call in USES
    (key, call time), never back, once the ingest transaction has committed.

    As for credentials, at most once a minute: a key whose last use, as looked up,
    is less than LAST_USED_RESOLUTION older than its newest call is left alone, so a
    busy key costs a write a minute rather than one per request."""
    latest: dict[int, datetime] = {}
    for key, when in uses:
        if key is None or (key.last_used_at is not None and when - key.last_used_at < LAST_USED_RESOLUTION):
            continue
        if key.pk not in latest or when > latest[key.pk]:
            latest[key.pk] = when
    if latest:
        after_commit("relay key last use", lambda: _move_last_use(latest))


def _move_last_use(latest: dict[int, datetime]) -> None:
    """Set each key's last use to LATEST[key] where that moves it forward (a concurrent
    batch may have moved it further meanwhile). On PostgreSQL one statement, which
    locks the rows in key order so concurrent updates cannot deadlock; SQLite has
    one writer at a time, and takes chunks within its limit of parameters."""
    table = connection.ops.quote_name(RelayKey._meta.db_table)
    behind = "(k.last_used_at IS NULL OR k.last_used_at < used.at)"
    keys = sorted(latest)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH used(id, at) AS (SELECT * FROM unnest(%s::bigint[], %s::timestamptz[])), "
                f"stale AS (SELECT k.id FROM {table} AS k JOIN used ON used.id = k.id WHERE {behind} "
                f"ORDER BY k.id FOR UPDATE OF k) "
                f"UPDATE {table} AS k SET last_used_at = used.at FROM used "
                f"WHERE k.id = used.id AND k.id IN (SELECT id FROM stale) AND {behind}",
                [keys, [latest[k] for k in keys]],
            )
            return
        for part in chunked(keys):
            params = [v for k in part for v in (k, connection.ops.adapt_datetimefield_value(latest[k]))]
            cursor.execute(
                f"WITH used(id, at) AS (VALUES {', '.join(['(%s, %s)'] * len(part))}) "
                f"UPDATE {table} AS k SET last_used_at = used.at FROM used WHERE k.id = used.id AND {behind}",
                params,
            )


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


def _channels_by_id(ids: Iterable[int]) -> dict[int, Channel]:
    return {channel.id: channel for channel in instances_among(Channel, "id", sorted(ids))}


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
    by_id = _channels_by_id(ids)
    by_name = _channels_by_name(names)
    if len(by_id) < len(ids) or len(by_name) < len(names):
        _lock_channel_creation()
        # Look again: whoever held the lock before us may have created some of them.
        by_id = _channels_by_id(ids)
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
    prices = instances_among(ModelPrice, "model_name", sorted(set(model_names)))
    return {price.model_name: price for price in prices}


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

TOOL_CALL_ROWS = FactRows(ToolCall)


def record_tool_calls(records: list[dict]) -> int:
    """Store tool calls not stored before (by request_id); returns how many were created.
    Runs inside the caller's transaction."""
    ids = [r["request_id"] for r in records if r.get("request_id")]
    stored = {request_id for (request_id,) in rows_among(ToolCall, "request_id", ids, "request_id")}
    fresh = first_of_each(records, lambda r: r.get("request_id") or None, stored)
    if not fresh:
        return 0
    accounts = resolve_accounts(r.get("username", "") for r in fresh)
    rows = [
        TOOL_CALL_ROWS.row(
            tool_id=r["tool_id"],
            tool_name=r.get("tool_name") or r["tool_id"],
            user_id=accounts.get(r.get("username", "")),
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
    rows = TOOL_CALL_ROWS.insert(in_key_order(rows, lambda row: row.request_id))
    rollups.apply("tools", rows)
    return len(rows)
