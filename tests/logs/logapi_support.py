"""What the log endpoint tests share: record factories (through the ingest
services, as production writes rows), frozen time and fresh throttles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from logs.api.serializers import LLMCallRecordSerializer, LogRecordSerializer
from logs.models import Log
from logs.services import record_llm_calls, record_logs
from statsite.ingest import store_batch
from usage.api.serializers import ToolCallRecordSerializer
from usage.services import record_tool_calls

# 2021-12-31T00:00:00Z, the gateway log document's own start_timestamp (1640908800).
T0 = datetime(2021, 12, 31, tzinfo=UTC)
DOC_START = 1640908800
DOC_END = 1640995200


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def at(seconds: float) -> datetime:
    """T0 plus SECONDS."""
    return T0 + timedelta(seconds=seconds)


def _valid(serializer_class, fields: dict) -> dict:
    serializer = serializer_class(data=fields)
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data


def record_calls(*calls: dict) -> list[Log]:
    """Store LLM calls through the ingest service; each dict is an ingest record
    (`created_at` may be a datetime). Returns the rows oldest first (by time, then id:
    a batch stores its error rows last, so ids alone do not follow the batch's order)."""
    records = []
    for call in calls:
        fields = {"model_name": "gpt-4", **call}
        if isinstance(fields.get("created_at"), datetime):
            fields["created_at"] = fields["created_at"].isoformat()
        records.append(_valid(LLMCallRecordSerializer, fields))
    before = Log.objects.order_by("-id").values_list("id", flat=True).first() or 0
    store_batch(record_llm_calls, records)
    return list(Log.objects.filter(id__gt=before).order_by("created_at", "id"))


def record_other_logs(*logs: dict) -> list[Log]:
    records = []
    for log in logs:
        fields = dict(log)
        if isinstance(fields.get("created_at"), datetime):
            fields["created_at"] = fields["created_at"].isoformat()
        records.append(_valid(LogRecordSerializer, fields))
    before = Log.objects.order_by("-id").values_list("id", flat=True).first() or 0
    store_batch(record_logs, records)
    return list(Log.objects.filter(id__gt=before).order_by("created_at", "id"))


def record_tools(*calls: dict) -> None:
    records = []
    for call in calls:
        fields = {"tool_id": "search", **call}
        if isinstance(fields.get("created_at"), datetime):
            fields["created_at"] = fields["created_at"].isoformat()
        records.append(_valid(ToolCallRecordSerializer, fields))
    store_batch(record_tool_calls, records)


def many_calls(count: int, **fields) -> None:
    """COUNT calls one second apart from T0 (ingested in batches of 1000)."""
    calls = [{"created_at": at(i), **fields} for i in range(count)]
    for start in range(0, count, 1000):
        record_calls(*calls[start : start + 1000])


def freeze(monkeypatch, moment: datetime) -> None:
    """Make MOMENT "now" for everything that asks django.utils.timezone."""
    monkeypatch.setattr(timezone, "now", lambda: moment)


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()
