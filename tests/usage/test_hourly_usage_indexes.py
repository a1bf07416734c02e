"""On PostgreSQL, the gateway's usage by model and hour is read from its covering
indexes (migration usage 0011): an index-only scan in the answer's order, no sort
and no visit to the wide rollup rows. If the selector's columns, filters or order
drift from the indexes, these tests say so. The indexes hold columns of their own,
which only the hour rows of those grains fill, so that the updates of every other
rollup row stay HOT."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from logs.services import record_llm_calls
from statsite.ingest import store_batch
from tests.plans import plan
from usage import rollups
from usage.models import LLMRollup
from usage.selectors import usage_by_model_hour

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the covering indexes are PostgreSQL's"),
]

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=2)  # whole hours: every row comes from the rollups


@pytest.fixture
def hours():
    """A few hour rows of the model and account x model grains."""
    ann = get_user_model().objects.create(username="ann")
    rows = []
    for h in range(48):
        bucket = START + timedelta(hours=h)
        for model in ("gpt-4", "Claude", "élan"):
            rows.append(LLMRollup(grain="model", key=model, bucket=bucket, model_name=model, requests=h + 1))
            rows.append(LLMRollup(grain="user_model", key=f"{ann.pk}\x1f{model}", bucket=bucket, user_id=ann.pk,
                                  model_name=model, requests=1))  # fmt: skip
    LLMRollup.objects.bulk_create(rows)
    return ann


def rollup_plan(**account) -> str:
    """The plan of the rollup query usage_by_model_hour() sends, with every other way
    to read the table made dear: what it shows is what the indexes can do."""
    with CaptureQueriesContext(connection) as captured:
        items = usage_by_model_hour(start=START, end=END, **account)
    assert len(items) == 48 * 3
    [sql] = [q["sql"] for q in captured.captured_queries if "usage_llmrollup" in q["sql"]]
    return plan(sql, dear=("enable_seqscan", "enable_bitmapscan", "enable_sort"))


def test_every_models_usage_by_hour_is_an_index_only_scan_in_the_answers_order(hours):
    plan = rollup_plan()
    assert "Index Only Scan using llmrollup_model_hour_series" in plan, plan
    assert "Sort" not in plan, plan


def test_one_accounts_usage_by_hour_is_an_index_only_scan_in_the_answers_order(hours):
    plan = rollup_plan(account=hours)
    assert "Index Only Scan using llmrollup_user_model_hour_series" in plan, plan
    assert "Sort" not in plan, plan


def partial_indexes(column: str) -> list[tuple]:
    """(name, COLUMN of pg_index) of each partial index of the LLM rollups, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT indexrelid::regclass::text, {column} FROM pg_index "
            "WHERE indrelid = 'usage_llmrollup'::regclass AND indpred IS NOT NULL ORDER BY 1"
        )
        return cursor.fetchall()


def test_the_indexes_hold_only_their_own_grains_rows(hours):
    predicates = dict(partial_indexes("pg_get_expr(indpred, indrelid)"))
    assert predicates == {
        "llmrollup_model_hour_series": "((grain)::text = 'model'::text)",
        "llmrollup_user_model_hour_series": "((grain)::text = 'user_model'::text)",
    }


@pytest.mark.django_db(transaction=True)
def test_the_migration_builds_again_an_index_an_interrupted_build_left_invalid():
    migration = importlib.import_module("usage.migrations.0011_hourly_series_columns")
    with connection.cursor() as cursor:
        # What a cancelled CREATE INDEX CONCURRENTLY leaves behind.
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'llmrollup_model_hour_series'::regclass"
        )
    with connection.schema_editor(atomic=False) as editor:
        migration.create(apps, editor)
    assert partial_indexes("indisvalid") == [
        ("llmrollup_model_hour_series", True), ("llmrollup_user_model_hour_series", True)
    ]  # fmt: skip


def test_no_index_of_the_llm_rollups_holds_a_measure():
    # An update changes the measures of its row: were one held by an index, even one
    # partial to other rows, no update would be HOT.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'usage_llmrollup'::regclass"
        )
        held = {name for (name,) in cursor.fetchall()}
    assert held & set(rollups.spec("llm").measure_names) == set()
    assert {"series_requests", "series_quota", "series_tokens"} <= held


def test_a_batch_updates_every_rollup_row_in_place_but_the_hourly_series_rows():
    when = timezone.now().replace(minute=30)
    call = {"model_name": "gpt-4o", "username": "ann", "channel_id": 3, "chat_id": "c", "created_at": when}
    with connection.cursor() as cursor:
        # Room on the rows' page for their next versions (a live table makes it by pruning
        # older versions); undone with the test's transaction.
        cursor.execute("ALTER TABLE usage_llmrollup SET (fillfactor = 50)")
    store_batch(record_llm_calls, [{**call, "request_id": "first"}])
    # This transaction's counts, and what earlier ones left unreported (within one
    # transaction the backend reports none): the second batch's are the difference.
    counts = (
        "SELECT pg_stat_get_xact_tuples_updated('usage_llmrollup'::regclass), "
        "pg_stat_get_xact_tuples_hot_updated('usage_llmrollup'::regclass)"
    )
    with connection.cursor() as cursor:
        cursor.execute(counts)
        updated_before, hot_before = cursor.fetchone()
        store_batch(record_llm_calls, [{**call, "request_id": "second"}])
        cursor.execute(counts)
        updated, hot = (a - b for a, b in zip(cursor.fetchone(), (updated_before, hot_before)))
    rows = LLMRollup.objects.count()
    assert updated == rows
    # All but the hour rows of the model and of the account x model.
    assert hot == rows - 2
