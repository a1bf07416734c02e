"""Aggregations over the log table, computed in the database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from django.db.models import BigIntegerField, Count, F, Sum, Value
from django.db.models.functions import Coalesce

from logs.querysets import LogQuerySet

# rpm and tpm are "per minute" over the live window the gateway log document
# defines: the last 60 seconds, whatever window the quota is summed over.
LIVE_WINDOW = timedelta(seconds=60)


class LogStat(TypedDict):
    quota: int
    rpm: int
    tpm: int


def log_stat(*, logs: LogQuerySet, start: datetime | None, end: datetime | None, now: datetime) -> LogStat:
    """Consumption of the consume rows among LOGS (already narrowed by account and
    dimensions): `quota` summed over `[start, end)` (either bound may be open),
    `rpm` the requests and `tpm` their prompt + completion tokens in the 60 seconds
    up to NOW. Two aggregate queries, each on an index over created_at."""
    consume = logs.consume()
    quota = consume.between(start, end).aggregate(
        quota=Coalesce(Sum("quota"), Value(0), output_field=BigIntegerField())
    )["quota"]
    live = consume.filter(created_at__gte=now - LIVE_WINDOW, created_at__lte=now).aggregate(
        rpm=Count("id"),
        tpm=Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), Value(0), output_field=BigIntegerField()),
    )
    return {"quota": int(quota), "rpm": int(live["rpm"]), "tpm": int(live["tpm"])}
