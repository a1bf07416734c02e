"""The pairs kept by the day alone (model x channel, model x chat, channel x chat, a chat's tools):
counted from the facts at ingest, by a rebuild and by the upgrade that brings them
(migration `usage` 0010), never before the first day the purge horizon leaves whole."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.db.models import Sum

from logs.services import purge
from tests.usage.usage_support import check_clean
from usage import rollups
from usage.models import LLMRollup, ToolRollup

pytestmark = pytest.mark.django_db

DAY0 = datetime(2026, 4, 6, tzinfo=UTC)
MIGRATION = importlib.import_module("usage.migrations.0010_pair_day_grains")
PAIRS = MIGRATION.NEW_DAY_ROWS["llm"]


def at(hours: float) -> str:
    return (DAY0 + timedelta(hours=hours)).isoformat()


@pytest.fixture
def three_days(post_json, service_headers):
    calls = [
        {"request_id": f"p-{i}", "created_at": at(i * 2.5), "username": ("ann", "ben")[i % 2],
         "model_name": ("m1", "m2", "m3")[i % 3], "channel_id": 1 + i % 2, "chat_id": ("", "g1")[i % 2],
         "prompt_tokens": 10 + i}
        for i in range(29)  # 70 hours
    ]
    assert post_json("/api/ingest/llm-calls", calls, **service_headers).status_code == 201
    tools = [
        {"request_id": f"t-{i}", "created_at": at(i * 5), "username": "ann", "tool_id": ("search", "clock")[i % 2],
         "chat_id": ("g1", "g2")[i % 2]}
        for i in range(14)
    ]
    assert post_json("/api/ingest/tool-calls", tools, **service_headers).status_code == 201


def stored(table, grains) -> dict:
    rows = table.objects.filter(grain__in=[f"{g}:day" for g in grains]).order_by("grain", "key", "bucket")
    return {(r.grain, r.key, r.bucket): r.requests if table is LLMRollup else r.calls for r in rows}


def test_the_upgrade_counts_the_pairs_of_the_stored_facts(three_days):
    before = stored(LLMRollup, PAIRS), stored(ToolRollup, ["chat_tool"])
    assert len(before[0]) > 20 and before[1]
    MIGRATION.empty(apps, None)
    assert stored(LLMRollup, PAIRS) == {} and stored(ToolRollup, ["chat_tool"]) == {}
    assert rollups.check("llm")  # missing: the check says so
    MIGRATION.fill(apps, None)
    assert (stored(LLMRollup, PAIRS), stored(ToolRollup, ["chat_tool"])) == before
    check_clean()
    check_clean("tools")


def test_the_upgrade_leaves_out_the_days_the_purge_horizon_has_cut_into(three_days):
    whole = stored(LLMRollup, ["channel_chat"])
    purge("logs", before=DAY0 + timedelta(hours=30))  # day 1 cut at 06:00
    MIGRATION.empty(apps, None)
    MIGRATION.fill(apps, None)
    days = {bucket for _, _, bucket in stored(LLMRollup, ["channel_chat"])}
    assert days == {DAY0 + timedelta(days=2)}
    assert {k: v for k, v in whole.items() if k[2] == DAY0 + timedelta(days=2)} == stored(LLMRollup, ["channel_chat"])
    # The day rows the hour rows add up to outlive the purge: all there.
    assert LLMRollup.objects.filter(grain="model:day").aggregate(n=Sum("requests"))["n"] == 29


def test_a_rebuild_after_a_purge_keeps_the_pairs_days_before_the_horizon(three_days):
    whole = stored(LLMRollup, PAIRS)
    purge("logs", before=DAY0 + timedelta(hours=30))
    assert rollups.rebuild("llm") > 0
    assert stored(LLMRollup, PAIRS) == whole
    check_clean()


def test_the_check_finds_a_pair_day_that_disagrees_with_the_facts(three_days):
    row = LLMRollup.objects.filter(grain="model_channel:day").first()
    LLMRollup.objects.filter(pk=row.pk).update(requests=row.requests + 1)
    found = {(d.grain, d.key, d.bucket, d.field) for d in rollups.check("llm")}
    assert found == {("model_channel:day", row.key, row.bucket, "requests")}
    rollups.rebuild("llm", since=row.bucket)
    check_clean()


def test_only_the_days_of_grains_counted_from_the_facts_are_recounted_from_them():
    with pytest.raises(AssertionError, match=r"the days of \['model'\] are not counted from the facts"):
        rollups.rebuild_days_from_facts("llm", ["model_channel", "model"])
