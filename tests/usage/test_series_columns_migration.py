"""Migration usage 0011 both ways, on either database: the hourly usage series'
columns and indexes come and go, and the rollup rows stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from usage.models import LLMRollup

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("usage", "0010_pair_day_grains")
AFTER = ("usage", "0011_hourly_series_columns")
SERIES = {"series_requests", "series_quota", "series_tokens"}


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def columns() -> set[str]:
    with connection.cursor() as cursor:
        return {c.name for c in connection.introspection.get_table_description(cursor, "usage_llmrollup")}


def indexes() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, "usage_llmrollup"))


def test_the_series_columns_and_their_indexes_come_and_go_and_the_rows_stay():
    when = datetime(2026, 3, 1, 10, tzinfo=UTC)
    LLMRollup.objects.bulk_create([
        LLMRollup(grain="model", key="gpt-4o", bucket=when, model_name="gpt-4o", requests=3, quota=7,
                  prompt_tokens=5, completion_tokens=6),
        LLMRollup(grain="channel", key="2", bucket=when, channel_id=2, requests=4),
    ])  # fmt: skip
    postgres = connection.vendor == "postgresql"
    try:
        migrate(BEFORE)
        assert not SERIES & columns()
        if postgres:
            assert {"llmrollup_model_hour_cover", "llmrollup_user_model_hour_cover"} <= indexes()
        with connection.cursor() as cursor:
            cursor.execute("SELECT grain, requests FROM usage_llmrollup ORDER BY grain")
            assert cursor.fetchall() == [("channel", 4), ("model", 3)]
    finally:
        migrate(AFTER)
    assert SERIES <= columns()
    if postgres:
        found = indexes()
        assert {"llmrollup_model_hour_series", "llmrollup_user_model_hour_series"} <= found
        assert not {"llmrollup_model_hour_cover", "llmrollup_user_model_hour_cover"} & found
    held = dict(LLMRollup.objects.values_list("grain", "series_tokens"))
    assert held == {"model": 11, "channel": None}
