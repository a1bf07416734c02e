"""Rollups (hour, day and all-time tiers): kept exact by ingest, provable by `rollups check`,
repaired by `rollups rebuild`, and left alone by purges."""

from __future__ import annotations

import io
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.models import Sum

from logs.models import Log
from logs.services import purge
from tests.usage.usage_support import check_clean
from usage import rollups
from usage.models import EventRollup, LLMRollup, ModelPrice, ToolRollup
from usage.rollups import ALL_BUCKET, stored_grain

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def calls(n: int, *, start: float = 0, step: float = 7, prefix: str = "c", **fields) -> list[dict]:
    return [
        {
            "request_id": f"{prefix}-{i}",
            "created_at": at(start + i * step),
            "username": ["alice", "bob"][i % 2],
            "model_name": ["gpt-4o", "claude"][i % 3 == 0],
            "prompt_tokens": 10 + i,
            "completion_tokens": i,
            "latency_ms": [None, 40, 900, 150_000][i % 4],
            "channel_id": 1 + i % 2,
            "group": ["", "vip"][i % 2],
            "request_type": "chat.reply" if i % 2 else "",
            "chat_id": ["", "g1"][i % 2],
            "success": i % 5 != 0,
            **fields,
        }
        for i in range(n)
    ]


def totals(grain: str = "model", **filters) -> dict:
    return LLMRollup.objects.filter(grain=grain, **filters).aggregate(
        requests=Sum("requests"), errors=Sum("errors"), quota=Sum("quota"), prompt=Sum("prompt_tokens")
    )


def test_ingest_keeps_the_llm_rollups_equal_to_the_facts(post_json, service_headers):
    ModelPrice.objects.create(model_name="gpt-4o", input_per_million=Decimal("2.5"), output_per_million=Decimal("10"))
    response = post_json("/api/ingest/llm-calls", calls(60), **service_headers)
    assert response.status_code == 201
    check_clean()
    got = totals()
    assert got["requests"] == Log.objects.llm_calls().count() == 60
    assert got["errors"] == Log.objects.filter(type=Log.Type.ERROR).count() == 12
    # Quota counts consume logs only, as the gateway's stat does.
    assert got["quota"] == Log.objects.filter(type=Log.Type.CONSUME).aggregate(q=Sum("quota"))["q"]


def test_the_hourly_series_columns_repeat_the_measures_of_its_hour_rows_only(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(30), **service_headers)
    rows = LLMRollup.objects.values_list(
        "grain", "requests", "quota", "prompt_tokens", "completion_tokens",
        "series_requests", "series_quota", "series_tokens",
    )  # fmt: skip
    series = [row for row in rows if row[0] in ("model", "user_model")]
    assert {row[0] for row in series} == {"model", "user_model"}
    for grain, requests, quota, prompt, completion, *held in series:
        assert held == [requests, quota, prompt + completion]
    assert {tuple(row[5:]) for row in rows if row not in series} == {(None, None, None)}


def test_every_grain_at_every_tier_adds_up_to_the_same_totals(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(40), **service_headers)
    expected = totals("model")
    for grain, kept in rollups.spec("llm").grains.items():
        for tier in kept.tiers:
            assert totals(stored_grain(grain, tier)) == expected, (grain, tier)


def test_day_and_all_time_rows_sum_their_hours(post_json, service_headers):
    # 30 calls 70 minutes apart: 35 hours, across two UTC days.
    post_json("/api/ingest/llm-calls", calls(30, step=70), **service_headers)
    days = LLMRollup.objects.filter(grain="model:day", model_name="gpt-4o").order_by("bucket")
    assert [d.bucket for d in days] == [T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)]
    hours = LLMRollup.objects.filter(grain="model", model_name="gpt-4o")
    assert sum(d.requests for d in days) == sum(h.requests for h in hours)
    everything = LLMRollup.objects.get(grain="model:all", model_name="gpt-4o")
    assert everything.bucket == ALL_BUCKET
    assert everything.requests == sum(h.requests for h in hours)
    assert everything.last_at == max(h.last_at for h in hours)
    check_clean()


def test_a_grain_kept_by_the_day_only_has_no_hour_rows(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(10), **service_headers)
    assert not LLMRollup.objects.filter(grain="user").exists()
    assert LLMRollup.objects.filter(grain="user:day").aggregate(n=Sum("requests"))["n"] == 10
    assert not LLMRollup.objects.filter(grain="user_model:day").exists()
    # A pair kept by the day alone, counted from the facts.
    assert not LLMRollup.objects.filter(grain="model_channel").exists()
    assert LLMRollup.objects.filter(grain="model_channel:day").aggregate(n=Sum("requests"))["n"] == 10
    assert rollups.spec("llm").day_source("model_channel") is None


def test_log_rows_that_are_not_llm_calls_count_as_events(post_json, service_headers):
    logs = [
        {"type": 1, "username": "alice", "quota": 500, "created_at": at(1)},
        {"type": 5, "content": "restarted", "created_at": at(2)},
        {"type": 4, "content": "disk full", "created_at": at(3)},
        {"type": 4, "content": "upstream down", "model_name": "gpt-4o", "created_at": at(4)},
    ]
    assert post_json("/api/ingest/logs", logs, **service_headers).status_code == 201
    by_type = dict(EventRollup.objects.filter(grain="type").values_list("type", "rows"))
    assert by_type == {1: 1, 5: 1, 4: 1}
    # The error that names a model is a failed LLM call.
    assert LLMRollup.objects.get(grain="total").errors == 1
    check_clean("events")
    check_clean()


def test_a_second_batch_into_the_same_hour_increments_the_bucket(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(5, step=1, prefix="a", model_name="m"), **service_headers)
    post_json("/api/ingest/llm-calls", calls(3, step=1, prefix="b", model_name="m"), **service_headers)
    bucket = LLMRollup.objects.get(grain="model", model_name="m")
    assert bucket.requests == 8
    assert bucket.bucket == T0
    check_clean()


def test_the_check_agrees_with_costs_a_double_cannot_sum_exactly(post_json, service_headers):
    # SQLite sums decimals as doubles: 300 costs of 0.000075 add up to 0.0224999999999999
    # there, which the rollup column reads back at its eight places, 0.02250000.
    body = calls(300, step=0.1, prefix="tiny", cost="0.000075")
    assert post_json("/api/ingest/llm-calls", body, **service_headers).status_code == 201
    assert LLMRollup.objects.get(grain=stored_grain("total", "all")).cost == Decimal("0.0225")
    check_clean()
    # One unit of the last place is still a difference.
    LLMRollup.objects.filter(grain=stored_grain("total", "all")).update(cost=Decimal("0.02250001"))
    assert [(d.grain, d.field) for d in rollups.check("llm")] == [(stored_grain("total", "all"), "cost")]


def test_the_check_compares_values_too_long_to_quantize_as_they_are():
    # A double far past the column (SQLite does not hold it to its digits) cannot be
    # quantized to eight places in 28 digits: compared whole, not a crash.
    assert rollups._same(Decimal("1e30"), 1e30, 8)
    assert not rollups._same(Decimal("1e30"), 2e30, 8)


def test_a_retried_batch_adds_nothing_to_the_rollups(post_json, service_headers):
    batch = calls(10)
    post_json("/api/ingest/llm-calls", batch, **service_headers)
    before = totals()
    response = post_json("/api/ingest/llm-calls", batch, **service_headers)
    assert response.json()["duplicates"] == 10
    assert totals() == before


def test_a_rejected_batch_adds_nothing_to_the_rollups(post_json, service_headers):
    batch = calls(5) + [{"model_name": "x", "prompt_tokens": -1}]
    assert post_json("/api/ingest/llm-calls", batch, **service_headers).status_code == 400
    assert not LLMRollup.objects.exists()


def test_the_latency_histogram_counts_each_call_in_its_bucket(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(8), **service_headers)
    row = LLMRollup.objects.filter(grain="model").aggregate(
        under_50=Sum("lat_00"), around_900=Sum("lat_04"), over_2min=Sum("lat_14"), with_latency=Sum("latency_count")
    )
    assert row == {"under_50": 2, "around_900": 2, "over_2min": 2, "with_latency": 6}


def test_module_falls_back_to_the_request_type_up_to_its_first_dot(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(4), **service_headers)
    modules = set(LLMRollup.objects.filter(grain="module").values_list("module", flat=True))
    assert modules == {"chat", ""}


def test_tool_calls_keep_their_own_rollups(post_json, service_headers):
    batch = [
        {"request_id": f"t{i}", "tool_id": ["get_time", "web_search"][i % 2], "username": "alice",
         "success": i % 3 != 0, "duration_ms": 10 * i, "cost": "0.05", "created_at": at(i * 20)}
        for i in range(12)
    ]
    assert post_json("/api/ingest/tool-calls", batch, **service_headers).status_code == 201
    check_clean("tools")
    row = ToolRollup.objects.filter(grain="tool").aggregate(
        calls=Sum("calls"), failures=Sum("failures"), cost=Sum("cost")
    )
    assert row["calls"] == 12 and row["failures"] == 4 and Decimal(row["cost"]) == Decimal("0.60")


def test_purging_facts_leaves_the_rollups_and_the_check_clean(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(30, step=10), **service_headers)
    before = list(LLMRollup.objects.order_by("grain", "key", "bucket").values_list("requests", "quota"))
    cutoff = T0 + timedelta(minutes=95)
    deleted = purge("logs", before=cutoff)
    assert deleted == 10
    after = list(LLMRollup.objects.order_by("grain", "key", "bucket").values_list("requests", "quota"))
    assert after == before
    # Buckets that lost raw rows are history now; the rest still agree with the facts.
    assert rollups.horizon("llm") == T0 + timedelta(hours=2)
    check_clean()


def test_rebuild_after_a_purge_keeps_the_history(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(30, step=10), **service_headers)
    before = totals()
    purge("logs", before=T0 + timedelta(minutes=95))
    rollups.rebuild("llm")
    assert totals() == before
    check_clean()


def test_rebuild_repairs_tampered_rollups(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(20), **service_headers)
    LLMRollup.objects.filter(grain="channel").update(requests=999)
    LLMRollup.objects.filter(grain="chat").delete()
    assert rollups.check("llm")
    rollups.rebuild("llm")
    check_clean()


def test_rebuild_writes_each_grain_in_time_order(post_json, service_headers):
    # As ingest leaves them: a window's rows then lie together in the table.
    post_json("/api/ingest/llm-calls", calls(60, step=10), **service_headers)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Grouped by hashing, as at scale: the groups come out in no particular order.
            cursor.execute("SET enable_sort = off")
        try:
            rollups.rebuild("llm")
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("RESET enable_sort")
    for grain in LLMRollup.objects.values_list("grain", flat=True).distinct():
        buckets = list(LLMRollup.objects.filter(grain=grain).order_by("pk").values_list("bucket", flat=True))
        assert buckets == sorted(buckets), grain
    check_clean()


def test_rebuild_since_only_touches_later_buckets(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(30, step=10), **service_headers)
    LLMRollup.objects.update(requests=0)
    rollups.rebuild("llm", since=T0 + timedelta(hours=2, minutes=30))
    hourly = LLMRollup.objects.filter(grain__in=rollups.spec("llm").grains_at("hour"))
    early = hourly.filter(bucket__lt=T0 + timedelta(hours=2))
    late = hourly.filter(bucket__gte=T0 + timedelta(hours=2))
    assert set(early.values_list("requests", flat=True)) == {0}
    assert 0 not in set(late.values_list("requests", flat=True))
    # The day and all-time rows are sums of the hours, as they now stand.
    day = LLMRollup.objects.get(grain="model:day", model_name="gpt-4o")
    assert day.requests == sum(hourly.filter(grain="model", model_name="gpt-4o").values_list("requests", flat=True))


def test_check_finds_and_rebuild_repairs_tampered_day_and_all_time_rows(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(20), **service_headers)
    LLMRollup.objects.filter(grain="channel:day").update(errors=77)
    LLMRollup.objects.filter(grain="chat:all").delete()
    found = {(d.grain, d.field) for d in rollups.check("llm")}
    assert ("channel:day", "errors") in found and ("chat:all", "requests") in found
    rollups.rebuild("llm")
    check_clean()


def test_the_command_checks_and_rebuilds(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(10), **service_headers)
    out = io.StringIO()
    call_command("rollups", "check", stdout=out)
    assert "llm: rollups agree with the facts" in out.getvalue()

    LLMRollup.objects.filter(grain="model").update(requests=0)
    out = io.StringIO()
    with pytest.raises(CommandError, match="disagree"):
        call_command("rollups", "check", "--kind", "llm", stdout=out)
    assert "requests: rollup=0" in out.getvalue()

    out = io.StringIO()
    call_command("rollups", "rebuild", "--since", T0.isoformat(), stdout=out)
    assert "llm: rebuilt" in out.getvalue()
    call_command("rollups", "check", stdout=io.StringIO())


@pytest.mark.parametrize("kind", rollups.ROLLUP_KINDS)
def test_rebuild_and_check_report_their_progress(kind, post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(6), **service_headers)
    seen = {"rebuild": [], "check": []}
    rollups.rebuild(kind, progress=lambda *step: seen["rebuild"].append(step))
    assert rollups.check(kind, progress=lambda *step: seen["check"].append(step)) == []
    # The check: each grain at each tier. The rebuild: each slice, of every tier it keeps.
    want = sum(len(rollups.spec(kind).grains_at(tier)) for tier in ("hour", "day", "week", "all"))
    assert rollups.steps(kind) == want > 0
    assert seen["check"] == [(done, want) for done in range(1, want + 1)]
    slices = len(seen["rebuild"])
    kept = [tier for tier in ("hour", "day", "week", "all") if rollups.spec(kind).grains_at(tier)]
    # One slice a tier (the calls lie in one day), and the LLM pairs' days from the facts;
    # the other kinds have no facts here: the all tier only.
    assert slices == (len(kept) + 1 if kind == "llm" else 1)
    assert seen["rebuild"] == [(done, slices) for done in range(1, slices + 1)]


def test_the_command_draws_no_progress_bar_off_a_terminal(post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(3), **service_headers)
    out, err = io.StringIO(), io.StringIO()
    call_command("rollups", "rebuild", "--kind", "llm", stdout=out, stderr=err)
    call_command("rollups", "check", "--kind", "llm", stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert out.getvalue().splitlines()[-1] == "llm: rollups agree with the facts (all buckets)"


NAMES_IN_NO_COLLATION_ORDER = ["Zed", "alice", "Ärger", "émile", "z", "_x", "10", "9", "ß", "ｚ", "Alice"]


def test_check_pairs_rows_by_code_point_whatever_the_names(post_json, service_headers):
    """The check merges stored and expected rows read in one order: keys of any script and
    case must come from both sides in Python's order, or rows would look missing."""
    records = [
        {"request_id": f"n-{i}", "created_at": at(i * 5), "username": name, "model_name": f"M-{name}",
         "prompt_tokens": 1 + i, "group": name, "chat_id": name}
        for i, name in enumerate(NAMES_IN_NO_COLLATION_ORDER)
    ]
    assert post_json("/api/ingest/llm-calls", records, **service_headers).status_code == 201
    check_clean()
    # One row in the middle of the order changed: exactly it is reported.
    row = LLMRollup.objects.get(grain="user_model", model_name="M-émile")
    LLMRollup.objects.filter(pk=row.pk).update(prompt_tokens=row.prompt_tokens + 5)
    found = {(d.grain, d.key, d.field) for d in rollups.check("llm")}
    # And the account's day row, which adds up its hour rows.
    assert found == {("user_model", row.key, "prompt_tokens"), ("user:day", str(row.user_id), "prompt_tokens")}


def test_a_purge_between_two_grains_of_a_check_is_no_difference(monkeypatch, post_json, service_headers):
    """Each grain is compared in its own snapshot, with the horizon read in it: hours a
    purge has just emptied are history for the grains compared after it."""
    post_json("/api/ingest/llm-calls", calls(30, step=10), **service_headers)
    snapshot, compare = rollups.one_snapshot, rollups._disagreeing
    snapshots, compared = [], []

    @contextmanager
    def purging_before_the_second():
        snapshots.append(1)
        if len(snapshots) == 2:
            assert purge("logs", before=T0 + timedelta(minutes=95)) == 10
        with snapshot():
            yield

    def recording(rollup, name, first_bucket, expected):
        compared.append((name, first_bucket))
        return compare(rollup, name, first_bucket, expected)

    monkeypatch.setattr(rollups, "one_snapshot", purging_before_the_second)
    monkeypatch.setattr(rollups, "_disagreeing", recording)
    assert rollups.check("llm") == []
    assert compared[:2] == [("total", None), ("model", T0 + timedelta(hours=2))]


def test_the_check_compares_in_the_database_one_statement_a_grain(post_json, service_headers):
    """Whatever the number of rows, each grain at each tier is one statement, and only
    rows that may differ come back."""
    from django.test.utils import CaptureQueriesContext

    post_json("/api/ingest/llm-calls", calls(40, step=61), **service_headers)
    LLMRollup.objects.filter(grain="model", bucket=T0).update(prompt_tokens=0)
    with CaptureQueriesContext(connection) as queries:
        found = rollups.check("llm")
    # The hour row, and the day row that adds up the hours as they stand.
    assert {(d.grain, d.bucket, d.field) for d in found} == {
        ("model", T0, "prompt_tokens"), ("model:day", rollups.floor_day(T0), "prompt_tokens")
    }
    comparisons = [q for q in queries.captured_queries if "UNION ALL" in q["sql"] and "HAVING" in q["sql"]]
    assert len(comparisons) == rollups.steps("llm")


def test_the_command_draws_its_progress_bar_on_a_terminal(post_json, service_headers):
    from tests.logs.test_purge_command import FakeTerminal

    post_json("/api/ingest/llm-calls", calls(3), **service_headers)
    terminal = FakeTerminal()
    call_command("rollups", "check", "--kind", "tools", stdout=io.StringIO(), stderr=terminal)
    assert f"tools: 0%| | 0/{rollups.steps('tools')} [" in " ".join(terminal.getvalue().split())
    quiet = FakeTerminal()
    call_command("rollups", "check", "--kind", "tools", stdout=io.StringIO(), stderr=quiet, verbosity=0)
    assert quiet.getvalue() == ""


def test_the_command_counts_every_difference_and_shows_the_first_fifty(post_json, service_headers):
    from usage.management.commands.rollups import SHOWN_DIFFERENCES

    post_json("/api/ingest/llm-calls", calls(40, step=61), **service_headers)  # 40 hours
    changed = LLMRollup.objects.filter(grain="model").update(requests=0, prompt_tokens=0)
    expected = len(rollups.check("llm"))
    assert expected > SHOWN_DIFFERENCES and changed >= 40
    out = io.StringIO()
    with pytest.raises(CommandError, match=f"disagree with the facts in {expected} places"):
        call_command("rollups", "check", "--kind", "llm", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"llm: {expected} differences (all buckets):"
    assert len(lines) == 1 + SHOWN_DIFFERENCES + 1
    assert lines[-1] == f"  … and {expected - SHOWN_DIFFERENCES} more"


def test_the_command_refuses_a_bad_since():
    with pytest.raises(CommandError, match="--since"):
        call_command("rollups", "check", "--since", "yesterday-ish", stdout=io.StringIO())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_ingest_applies_its_prepared_plan_without_planning_again(post_json, service_headers):
    # A one-record batch left to PostgreSQL's choice was planned anew each time (7 ms).
    def plans() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'statsite_apply_llm'"
            )
            return cursor.fetchone() or (0, 0)

    assert post_json("/api/ingest/llm-calls", calls(1, prefix="first"), **service_headers).status_code == 201
    generic, custom = plans()  # prepared on this connection by now (by this test or an earlier one)
    for i in range(8):
        assert post_json("/api/ingest/llm-calls", calls(1, prefix=f"p{i}"), **service_headers).status_code == 201
    assert plans() == (generic + 8, custom)
    check_clean()


def plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL counts rows yet to be inserted")
def test_rows_yet_to_be_inserted_are_refused_on_sqlite():
    with pytest.raises(ValueError, match="PostgreSQL only"):
        rollups.apply("llm", [], incoming='[{"id": 0}]')


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plan")
@pytest.mark.parametrize("kind", ["llm", "events", "tools", "messages"])
def test_the_upsert_reads_the_batch_from_the_fact_table_once(kind):
    # Every grain aggregates the batch from its WITH item: looking each id up again for
    # each grain and tier cost a 1000-call batch a third of its upsert at 10M calls. A
    # grain kept at several tiers counts the facts at its finest only; its coarser tiers
    # add up those rows.
    spec = rollups.spec(kind)
    statement, _ = rollups._apply_statement(spec)
    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE upsert_plan AS {statement}")
        try:
            cursor.execute("EXPLAIN (FORMAT JSON) EXECUTE upsert_plan('{1,2,3}', '[]')")
            plan = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE upsert_plan")
    nodes = list(plan_nodes(plan[0]["Plan"]))
    tables = [n["Relation Name"] for n in nodes if "Relation Name" in n and n["Node Type"] != "ModifyTable"]
    batch_reads = [n for n in nodes if n.get("CTE Name") == "statsite_batch"]
    grain_reads = Counter(n["CTE Name"] for n in nodes if n.get("CTE Name", "").startswith("statsite_grain_"))
    assert tables == [spec.facts().model._meta.db_table]
    assert len(batch_reads) == len(spec.grains)
    assert sorted(grain_reads.values()) == sorted(len(g.tiers) for g in spec.grains.values() if len(g.tiers) > 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingest_into_one_bucket_loses_no_increment(service_key):
    from rest_framework.test import APIClient

    writers, per_writer, batches = 4, 25, 4
    errors: list[object] = []

    def write(w: int) -> None:
        client = APIClient()
        try:
            for b in range(batches):
                batch = [
                    {"request_id": f"w{w}-b{b}-{i}", "model_name": "shared", "username": f"user{i % 3}",
                     "prompt_tokens": 1, "created_at": at(i % 50)}
                    for i in range(per_writer)
                ]
                response = client.post("/api/ingest/llm-calls", batch, format="json", HTTP_X_API_KEY=service_key)
                if response.status_code != 201:
                    errors.append(response.content)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = writers * per_writer * batches
    assert LLMRollup.objects.get(grain="model", model_name="shared").requests == total
    assert LLMRollup.objects.filter(grain="user_model").aggregate(n=Sum("prompt_tokens"))["n"] == total
    check_clean()
