"""Usage over any window equals a direct computation over the raw rows."""

from __future__ import annotations

import random
import zoneinfo
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logs.models import Log
from logs.services import purge
from usage import selectors
from tests.usage.usage_support import assert_same, check_clean, expected_llm
from usage import rollups
from usage.models import ToolCall

User = get_user_model()

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=3)
ZONES = ["UTC", "Asia/Shanghai", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"]


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- plan_window ----------------------------------------------------------------------


def test_a_window_inside_one_hour_is_all_raw():
    plan = selectors.plan_window(h(1.1), h(1.9))
    assert plan == selectors.Plan(raw=((h(1.1), h(1.9)),))


def test_a_window_on_hour_boundaries_is_all_buckets():
    plan = selectors.plan_window(h(1), h(5))
    assert plan == selectors.Plan(hours=((h(1), h(5)),))


def test_partial_edge_hours_are_raw_and_whole_hours_buckets():
    plan = selectors.plan_window(h(1.5), h(4.25))
    assert plan.hours == ((h(2), h(4)),)
    assert plan.raw == ((h(1.5), h(2)), (h(4), h(4.25)))


def test_whole_utc_days_are_read_by_the_day():
    plan = selectors.plan_window(h(20.5), h(24 * 3 + 5.5))
    assert plan.raw == ((h(20.5), h(21)), (h(77), h(77.5)))
    assert plan.hours == ((h(21), h(24)), (h(72), h(77)))
    assert plan.days == ((h(24), h(72)),)


def test_without_days_every_whole_hour_is_an_hour():
    plan = selectors.plan_window(h(20.5), h(24 * 3 + 5.5), days=False)
    assert plan.hours == ((h(21), h(77)),) and plan.days == ()


def test_an_hour_holding_a_cut_is_read_raw():
    plan = selectors.plan_window(h(0), h(6), cuts=[h(2.5), h(4)])
    assert plan.hours == ((h(0), h(2)), (h(3), h(6)))
    assert plan.raw == ((h(2), h(3)),)


def test_a_day_holding_a_cut_is_read_by_the_hour():
    # Midnights at 16:00 UTC (UTC+8) fall inside every UTC day: no day rows.
    cuts = [h(16), h(40), h(64)]
    plan = selectors.plan_window(h(0), h(72), cuts=cuts)
    assert plan.days == () and plan.raw == () and plan.hours == ((h(0), h(72)),)
    # A cut on a UTC midnight leaves the days whole.
    plan = selectors.plan_window(h(0), h(72), cuts=[h(24), h(48)])
    assert plan.days == ((h(0), h(72)),)


def test_an_edge_hour_mostly_inside_is_its_bucket_less_the_rest():
    plan, minus = selectors.by_complement(selectors.plan_window(h(1.5), h(4.9)))
    assert plan.hours == ((h(2), h(5)),) and minus == selectors.Plan(raw=((h(4.9), h(5)),))
    # Half an hour either way: read as it is.
    assert plan.raw == ((h(1.5), h(2)),)
    plan, minus = selectors.by_complement(selectors.plan_window(h(1.2), h(1.9)))
    assert plan == selectors.Plan(hours=((h(1), h(2)),))
    assert minus == selectors.Plan(raw=((h(1), h(1.2)), (h(1.9), h(2))))


def test_an_edge_hour_holding_a_cut_stays_raw():
    cuts = [h(4.5)]
    plan, minus = selectors.by_complement(selectors.plan_window(h(2), h(4.9), cuts=cuts), cuts)
    assert plan.raw == ((h(4), h(4.9)),) and not minus


def test_an_edge_day_mostly_inside_is_its_day_row_less_the_rest():
    # 20:30 on day 0 to 17:15 on day 3: day 3 is mostly inside, day 0 mostly outside.
    start, end, minus = selectors._whole_edge_days(h(20.5), h(72 + 17.25), [], None, None)
    assert (start, end) == (h(20.5), h(96))
    assert minus == selectors.plan_window(h(72 + 17.25), h(96), days=False)
    # A newest-fact query only takes away what lies ahead (here: all of it is past).
    assert selectors._whole_edge_days(h(20.5), h(72 + 17.25), [], h(200), None)[2] == selectors.Plan()
    # Nor before the purge horizon, where rows may be gone.
    assert selectors._whole_edge_days(h(3.5), h(72 + 17.25), [], None, h(90))[:2] == (h(3.5), h(72 + 17.25))
    assert selectors._whole_edge_days(h(3.5), h(72 + 17.25), [], None, None)[:2] == (h(0), h(96))


def test_an_empty_or_reversed_window_has_no_parts():
    assert selectors.plan_window(h(2), h(2)) == selectors.Plan()
    assert selectors.plan_window(h(3), h(2)) == selectors.Plan()


def test_local_midnights_of_a_half_hour_zone_fall_inside_utc_hours():
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")
    midnights = selectors.local_midnights(h(0), h(48), kolkata)
    assert midnights == [h(18.5), h(42.5)]


# --- equivalence with the raw rows --------------------------------------------------------


@pytest.fixture
def dataset(post_json, service_headers):
    rng = random.Random(7)
    calls = []
    for i in range(260):
        at = T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        calls.append(
            {
                "request_id": f"eq-{i}",
                "created_at": at.isoformat(),
                "username": rng.choice(["ann", "ben", "cy", ""]),
                # Upper case and accents: ordered by code point whatever the database's collation.
                "model_name": rng.choice(["gpt-4o", "Claude", "qwen", "élan"]),
                "channel_id": rng.choice([None, 1, 2]),
                "group": rng.choice(["", "vip"]),
                "module": rng.choice(["", "chat", "memo"]),
                "request_type": rng.choice(["", "chat.reply", "tool.plan"]),
                "chat_id": rng.choice(["", "g1", "g2"]),
                "token_name": rng.choice(["", "k1", "k2"]),
                "prompt_tokens": rng.randrange(0, 3000),
                "completion_tokens": rng.randrange(0, 900),
                "cost": str(Decimal(rng.randrange(0, 10**6)) / 10**7),
                "latency_ms": rng.choice([None, rng.randrange(0, 70_000)]),
                "success": rng.random() > 0.15,
            }
        )
    for start in range(0, len(calls), 100):
        assert post_json("/api/ingest/llm-calls", calls[start : start + 100], **service_headers).status_code == 201
    tools = [
        {
            "request_id": f"eqt-{i}",
            "created_at": (T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))).isoformat(),
            "username": rng.choice(["ann", "ben"]),
            "tool_id": rng.choice(["get_time", "web_search"]),
            "chat_id": rng.choice(["", "g1"]),
            "success": rng.random() > 0.2,
            "duration_ms": rng.choice([None, rng.randrange(0, 5000)]),
            "cost": "0.01",
        }
        for i in range(120)
    ]
    assert post_json("/api/ingest/tool-calls", tools, **service_headers).status_code == 201


COMPARED = ["requests", "errors", "prompt_tokens", "completion_tokens", "quota", "latency_count", "latency_sum_ms"]
DIMENSION_SETS = [(), ("model_name",), ("user_id", "model_name"), ("channel_id",), ("module",), ("chat_id",),
                  ("group",), ("request_type",), ("token_name",), ("channel_id", "model_name"), ("user_id",),
                  # Pairs kept by the day alone: whole days from their day rows, the rest raw.
                  ("model_name", "chat_id"), ("channel_id", "chat_id"), ("user_id", "channel_id")]

window = st.tuples(st.integers(-120, 3 * 24 * 60 + 120), st.integers(0, 3 * 24 * 60))


# Sums only: edge days and hours may then be read whole, less their outside parts.
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "quota", "cost", "latency_count",
        "latency_sum_ms", *(f"lat_{i:02d}" for i in range(15)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    seconds=st.tuples(st.integers(0, 59), st.integers(0, 59)),
    group_by=st.sampled_from(DIMENSION_SETS),
    series=st.sampled_from([None, "hour", "day"]),
    zone=st.sampled_from(ZONES),
    sums_only=st.booleans(),
)
def test_llm_usage_equals_a_scan_of_the_raw_rows(dataset, edges, seconds, group_by, series, zone, sums_only):
    tz = zoneinfo.ZoneInfo(zone)
    start = T0 + timedelta(minutes=edges[0], seconds=seconds[0])
    end = start + timedelta(minutes=edges[1], seconds=seconds[1])
    measures = SUMS if sums_only else None
    got = selectors.usage("llm", start=start, end=end, group_by=group_by, series=series, tz=tz, measures=measures)
    want = expected_llm(start, end, group_by, series, tz)
    keys = [*group_by, *({"hour": ["bucket"], "day": ["day"]}.get(series or "", []))]
    got_by_key = {tuple(row[k] for k in keys): row for row in got}
    assert list(got_by_key) == sorted(want)  # each group once, sorted by the group keys
    for key, acc in want.items():
        row = got_by_key[key]
        for name in COMPARED:
            assert row[name] == acc[name], (key, name)
        assert Decimal(row["cost"]).quantize(Decimal("0.000001")) == acc["cost"].quantize(Decimal("0.000001"))
        for name, value in acc.items():
            if name.startswith("lat_"):
                assert row[name] == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=window, seconds=st.tuples(st.integers(0, 59), st.integers(0, 59)), username=st.sampled_from(["", "ann"]))
def test_usage_by_model_hour_equals_a_scan_of_the_raw_rows_in_hour_then_model_order(dataset, edges, seconds, username):
    # The gateway data rows: the hour rows are read in this order and the edge hours
    # merged into them in place.
    start = T0 + timedelta(minutes=edges[0], seconds=seconds[0])
    end = start + timedelta(minutes=edges[1], seconds=seconds[1])
    account = User.objects.get(username=username) if username else None
    got = selectors.usage_by_model_hour(start=start, end=end, account=account)
    rows = Log.objects.llm_calls().filter(user=account) if account else None
    want = {
        (int(hour.timestamp()), model): acc
        for (model, hour), acc in expected_llm(start, end, ("model_name",), "hour", UTC, rows).items()
    }
    assert [(item["created_at"], item["model_name"]) for item in got] == sorted(want)
    named = {"user_id": account.pk, "username": "ann"} if account else {}
    for item in got:
        acc = want[item["created_at"], item["model_name"]]
        assert item == {
            "model_name": item["model_name"], "count": acc["requests"], "quota": acc["quota"],
            "token_used": acc["prompt_tokens"] + acc["completion_tokens"], "created_at": item["created_at"], **named,
        }


TOKENS = ("prompt_tokens", "completion_tokens")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    seconds=st.tuples(st.integers(0, 59), st.integers(0, 59)),
    open_side=st.sampled_from([None, "start", "both"]),
    group_by=st.sampled_from(DIMENSION_SETS),
    series=st.sampled_from([None, "hour", "day"]),
)
def test_a_summed_measure_equals_the_sum_of_its_parts_whatever_the_rows_read(
    dataset, edges, seconds, open_side, group_by, series
):
    # One column for prompt + completion tokens, summed in the database over hour, day
    # and all-time rollup rows and over the raw edges alike.
    start = None if open_side else T0 + timedelta(minutes=edges[0], seconds=seconds[0])
    end = None if open_side == "both" else T0 + timedelta(minutes=sum(edges), seconds=seconds[1])
    query = selectors._query("llm", group_by, {}, series, UTC, ("requests",), summed=(TOKENS,))
    assert [m.name for m in query.measures] == ["requests", "prompt_tokens+completion_tokens"]
    got = selectors._merged_rows(query, start, end, "counted")
    parts = selectors.usage("llm", start=start, end=end, group_by=group_by, series=series, tz=UTC,
                            measures=("requests", *TOKENS))  # fmt: skip
    assert [tuple(row[-2:]) for row in got] == [
        (row["requests"], row["prompt_tokens"] + row["completion_tokens"]) for row in parts
    ]
    assert [tuple(row[: len(group_by)]) for row in got] == [tuple(row[k] for k in group_by) for row in parts]


@pytest.mark.parametrize("parts", [(), ("prompt_tokens", "cost"), ("prompt_tokens", "last_at"), ("tokens",)])
def test_only_integer_sums_of_a_rollup_can_be_summed(parts):
    with pytest.raises(ValueError, match="only integer sums of llm can be summed"):
        selectors._query("llm", (), {}, None, UTC, None, summed=(parts,))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first_day=st.integers(0, 1),
    start_minute=st.integers(0, 24 * 60 - 1),
    days=st.integers(1, 2),
    end_minute=st.integers(0, 24 * 60 - 1),
    group_by=st.sampled_from([(), ("model_name",), ("user_id",), ("chat_id",), ("channel_id", "model_name"),
                              ("chat_id", "channel_id")]),
    series=st.sampled_from([None, "day"]),
)
def test_windows_across_days_equal_a_scan_of_the_raw_rows(
    dataset, first_day, start_minute, days, end_minute, group_by, series
):
    # Windows whose edge days are mostly inside (read as the day row less the rest) or
    # mostly outside (read by the hour), for sums: every case of _whole_edge_days.
    start = T0 + timedelta(days=first_day, minutes=start_minute, seconds=7)
    end = T0 + timedelta(days=first_day + days, minutes=end_minute, seconds=41)
    got = selectors.usage("llm", start=start, end=end, group_by=group_by, series=series, tz=UTC, measures=SUMS)
    want = expected_llm(start, end, group_by, series, UTC)
    keys = [*group_by, *(["day"] if series else [])]
    assert_same(got, want, keys, ["requests", "errors", "prompt_tokens", "quota", "latency_sum_ms", "lat_04"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=window, group_by=st.sampled_from([(), ("tool_id",), ("user_id", "tool_id"), ("chat_id",)]))
def test_tool_usage_equals_a_scan_of_the_raw_rows(dataset, edges, group_by):
    start = T0 + timedelta(minutes=edges[0], seconds=17)
    end = start + timedelta(minutes=edges[1])
    got = {tuple(r[k] for k in group_by): r for r in selectors.usage("tools", start=start, end=end, group_by=group_by)}
    want: dict = defaultdict(lambda: defaultdict(int))
    for row in ToolCall.objects.filter(created_at__gte=start, created_at__lt=end):
        acc = want[tuple(getattr(row, k) or (0 if k == "user_id" else "") for k in group_by)]
        acc["calls"] += 1
        acc["failures"] += int(not row.success)
        acc["duration_sum_ms"] += row.duration_ms or 0
    assert set(got) == set(want)
    for key, acc in want.items():
        for name, value in acc.items():
            assert got[key][name] == value


@pytest.fixture
def around_now(post_json, service_headers):
    """Calls stamped around now, some in the future (ingest allows up to a day ahead):
    an all-time window ending now must leave those out."""
    now = timezone.now()
    calls = [
        {
            "request_id": f"now-{i}",
            "created_at": (now + timedelta(minutes=minutes)).isoformat(),
            "username": ["ann", "ben"][i % 2],
            "model_name": ["gpt-4o", "mistral"][i % 2],
            "chat_id": ["", "g1"][i % 2],
            "prompt_tokens": 5 + i,
            "success": i != 2,
        }
        for i, minutes in enumerate([-26 * 60, -90, -30, -5, 20, 45, 300])
    ]
    assert post_json("/api/ingest/llm-calls", calls, **service_headers).status_code == 201
    return now


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.sampled_from([None, "beginning"]),
    end=st.sampled_from([None, "now", "an hour ago", "a week ago"]),
    group_by=st.sampled_from([(), ("model_name",), ("user_id",), ("chat_id",), ("channel_id",), ("module",)]),
    newest=st.booleans(),
)
def test_windows_from_the_beginning_equal_a_scan_of_the_raw_rows(dataset, around_now, start, end, group_by, newest):
    start_at = {None: None, "beginning": datetime(2000, 1, 1, tzinfo=UTC)}[start]
    end_at = {None: None, "now": around_now, "an hour ago": around_now - timedelta(hours=1),
              "a week ago": around_now - timedelta(days=7)}[end]
    # Without the newest-fact measure the all-time rows answer, less what lies after the end.
    measures = None if newest else ("requests", "prompt_tokens", "errors", "quota")
    got = selectors.usage("llm", start=start_at, end=end_at, group_by=group_by, measures=measures)
    want = expected_llm(start_at, end_at, group_by, None, UTC)
    compared = ["requests", "prompt_tokens", "errors", "quota", *(["last_at", "latency_count"] if newest else [])]
    assert_same(got, want, list(group_by), compared)


FILTERS = [("model_name", "qwen"), ("chat_id", "g1"), ("group", "vip"), ("channel_id", 1), ("channel_id", 0),
           ("token_name", "k1"), ("module", "")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    open_side=st.sampled_from([None, "start", "end"]),
    selected=st.sampled_from(FILTERS),
    group_by=st.sampled_from([(), ("model_name",), ("user_id",)]),
    series=st.sampled_from([None, "hour", "day"]),
)
def test_filtered_usage_equals_a_scan_of_the_raw_rows(dataset, edges, open_side, selected, group_by, series):
    start = T0 + timedelta(minutes=edges[0], seconds=13)
    end = start + timedelta(minutes=edges[1], seconds=41)
    start, end = (None if open_side == "start" else start), (None if open_side == "end" else end)
    name, value = selected
    got = selectors.usage("llm", start=start, end=end, group_by=group_by, filters={name: value}, series=series)
    rows = Log.objects.llm_calls().filter(selectors._dimension_q(selectors.spec("llm"), name, value))
    want = expected_llm(start, end, group_by, series, UTC, rows)
    keys = [*group_by, *({"hour": ["bucket"], "day": ["day"]}.get(series or "", []))]
    assert_same(got, want, keys, ["requests", "errors", "prompt_tokens", "quota", "latency_sum_ms", "last_at"])


@pytest.fixture
def purged_at_30h(dataset):
    purge("logs", before=h(30) + timedelta(minutes=17))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    open_side=st.sampled_from([None, "start", "end", "both"]),
    group_by=st.sampled_from([(), ("model_name",), ("user_id",), ("group",)]),
    series=st.sampled_from([None, "hour"]),
)
def test_totals_of_stored_rows_equal_a_scan_after_a_purge(purged_at_30h, edges, open_side, group_by, series):
    start = T0 + timedelta(minutes=edges[0], seconds=5)
    end = start + timedelta(minutes=edges[1], seconds=55)
    start = None if open_side in ("start", "both") else start
    end = None if open_side in ("end", "both") else end
    got = selectors.usage("llm", start=start, end=end, group_by=group_by, series=series, purged="excluded")
    want = expected_llm(start, end, group_by, series, UTC)
    keys = [*group_by, *(["bucket"] if series else [])]
    assert_same(got, want, keys, ["requests", "errors", "prompt_tokens", "completion_tokens", "last_at"])


@pytest.fixture
def events(post_json, service_headers):
    rng = random.Random(11)
    logs = [
        {
            "type": rng.choice([1, 3, 4, 5]),
            "created_at": (T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))).isoformat(),
            "username": rng.choice(["ann", "ben", ""]),
            "model_name": rng.choice(["", "", "qwen"]),
            "content": "event",
        }
        for _ in range(150)
    ]
    assert post_json("/api/ingest/logs", logs, **service_headers).status_code == 201


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    group_by=st.sampled_from([(), ("type",), ("user_id",), ("model_name",)]),
    log_type=st.sampled_from([None, 1, 4, 5]),
)
def test_event_counts_equal_a_scan_of_the_raw_rows(events, edges, group_by, log_type):
    start = T0 + timedelta(minutes=edges[0], seconds=29)
    end = start + timedelta(minutes=edges[1])
    filters = {"type": log_type} if log_type else {}
    got = selectors.usage("events", start=start, end=end, group_by=group_by, filters=filters, purged="excluded")
    want: dict = defaultdict(lambda: defaultdict(int))
    rows = Log.objects.not_llm_calls().between(start, end)
    if log_type:
        rows = rows.filter(type=log_type)
    for row in rows:
        key = tuple(getattr(row, k) or (0 if k in ("user_id", "type") else "") for k in group_by)
        want[key]["rows"] += 1
    assert_same(got, want, list(group_by), ["rows"])


def test_filters_narrow_both_the_rollups_and_the_edges(dataset):
    start, end = h(5.5), h(40.25)
    got = selectors.usage("llm", start=start, end=end, group_by=("model_name",), filters={"chat_id": "g1"})
    want = defaultdict(int)
    for row in Log.objects.llm_calls().filter(created_at__gte=start, created_at__lt=end, chat_id="g1"):
        want[row.model_name] += 1
    assert {r["model_name"]: r["requests"] for r in got} == dict(want)


def test_an_edge_hour_holding_a_midnight_just_outside_the_window_is_not_read_whole(dataset):
    # Kathmandu's midnight of May 2 is 18:15 UTC: the window starts after it, in the
    # hour that holds it. That hour's bucket, read whole less 18:00-18:21, would date the
    # 18:00-18:15 calls it takes away by May 1 and the rest of the hour's by May 1 too.
    tz = zoneinfo.ZoneInfo("Asia/Kathmandu")
    start, end = h(18) + timedelta(minutes=21, seconds=29), h(20) + timedelta(minutes=7, seconds=58)
    got = selectors.usage("llm", start=start, end=end, series="day", tz=tz, measures=SUMS)
    want = expected_llm(start, end, (), "day", tz)
    assert list(want) == [(datetime(2026, 5, 2).date(),)]
    assert_same(got, want, ["day"], ["requests", "errors", "prompt_tokens", "quota", "latency_sum_ms"])


def test_a_dimension_pair_no_grain_holds_is_answered_from_raw_rows(dataset, django_assert_max_num_queries):
    for tier in ("hour", "day"):
        assert selectors.pick_grain("llm", ["token_name", "model_name"], tier) is None
    with django_assert_max_num_queries(1):
        rows = selectors.usage("llm", start=h(0), end=h(72), group_by=("token_name", "model_name"))
    assert sum(r["requests"] for r in rows) == Log.objects.llm_calls().count()


PAIRS = [("model_name", "channel_id"), ("model_name", "chat_id"), ("channel_id", "chat_id")]


@pytest.mark.parametrize("pair", PAIRS)
def test_a_pair_kept_by_the_day_reads_its_whole_days_and_the_rest_raw(dataset, pair):
    grain = selectors.pick_grain("llm", pair, "day")
    assert grain is not None and selectors.pick_grain("llm", pair) is None
    first, second = pair
    value = {"model_name": "qwen", "channel_id": 1}[first]
    start, end = h(5.5) + timedelta(seconds=13), h(70.25)
    with CaptureQueriesContext(connection) as captured:
        got = selectors.usage("llm", start=start, end=end, group_by=(second,), filters={first: value}, measures=SUMS)
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) <= 3, sql  # the day rows, the raw rest, the purge horizon
    assert any(f"'{grain}:day'" in q for q in sql), sql
    rows = Log.objects.llm_calls().filter(**{first: value})
    want = expected_llm(start, end, (second,), None, UTC, rows)
    assert len(want) > 1
    assert_same(got, want, [second], ["requests", "errors", "prompt_tokens", "quota", "latency_sum_ms", "lat_04"])


def test_the_whole_days_of_a_pair_before_the_purge_horizon_keep_their_counts(dataset):
    # Days 0 and 1 whole: their day rows were counted at ingest and outlive the purge.
    before = selectors.usage("llm", start=h(0), end=h(48), group_by=("channel_id", "model_name"))
    purge("logs", before=h(30))
    assert selectors.usage("llm", start=h(0), end=h(48), group_by=("channel_id", "model_name")) == before
    # A rebuild recounts only the days the horizon has left whole: nothing is lost.
    rollups.rebuild("llm")
    assert selectors.usage("llm", start=h(0), end=h(48), group_by=("channel_id", "model_name")) == before
    check_clean()


def test_a_pair_window_whose_raw_edge_lies_before_the_purge_horizon_is_read_raw(dataset):
    purge("logs", before=h(30))
    # 10:30 on day 0 is raw, and gone: the day rows cannot answer the rest of it alone.
    got = selectors.usage("llm", start=h(10.5), end=h(72), group_by=("channel_id", "model_name"), measures=SUMS)
    want = expected_llm(h(10.5), h(72), ("channel_id", "model_name"), None, UTC)
    assert_same(got, want, ["channel_id", "model_name"], ["requests", "prompt_tokens"])


def test_a_query_costs_three_queries_whatever_the_window(dataset, django_assert_max_num_queries):
    # The rollups, the raw edges, and (once a minute) the purge horizon.
    with django_assert_max_num_queries(3):
        selectors.usage("llm", start=h(0.5), end=h(71.5), group_by=("model_name",), series="day")


def test_totals_after_a_purge_come_from_the_rollups(dataset):
    before = selectors.totals("llm", start=h(0), end=h(72))
    purge("logs", before=h(30))
    after = selectors.totals("llm", start=h(0), end=h(72))
    assert after["requests"] == before["requests"]
    assert after["prompt_tokens"] == before["prompt_tokens"]


def test_an_edge_hour_before_the_purge_horizon_counts_its_whole_bucket(dataset):
    whole_hour = selectors.totals("llm", start=h(10), end=h(11))["requests"]
    purge("logs", before=h(10.5))
    # The raw rows of 10:00-10:30 are gone; the bucket is the only full record left.
    assert selectors.totals("llm", start=h(10.25), end=h(11))["requests"] == whole_hour
    # After the horizon, edges stay exact.
    later = Log.objects.llm_calls().filter(created_at__gte=h(20.25), created_at__lt=h(21)).count()
    assert selectors.totals("llm", start=h(20.25), end=h(21))["requests"] == later


def test_no_grouping_is_one_aggregate_not_a_row_per_bucket(dataset, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        rows = selectors.usage("llm", start=h(0.5), end=h(71.5))
    assert len(rows) == 1
    assert rows[0]["requests"] == Log.objects.llm_calls().filter(created_at__gte=h(0.5), created_at__lt=h(71.5)).count()


def test_totals_of_an_empty_window_are_zero():
    got = selectors.totals("llm", start=h(0), end=h(1))
    assert got["requests"] == 0 and got["last_at"] is None


def test_latency_percentiles_interpolate_inside_the_histogram_bucket():
    row = {name: 0 for name in [f"lat_{i:02d}" for i in range(15)]}
    row["lat_04"] = 10  # 500..1000 ms
    assert selectors.latency_percentile(row, 0.5) == 750
    assert selectors.latency_percentile(row, 1.0) == 1000
    row["lat_14"] = 90  # the open bucket, 120 s and above
    assert selectors.latency_percentile(row, 0.95) == 120_000
    assert selectors.latency_percentile({k: 0 for k in row}, 0.95) is None
