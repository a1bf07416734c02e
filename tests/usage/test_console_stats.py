"""The bot console stats: GET /api/stats/models, /api/stats/tools and /api/stats/channels."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from logs.models import Log
from usage.models import Channel, ToolCall

pytestmark = pytest.mark.django_db

MODELS = "/api/stats/models"
TOOLS = "/api/stats/tools"
CHANNELS = "/api/stats/channels"
ENDPOINTS = [MODELS, TOOLS, CHANNELS]

# "Now" in every test: 23:30 in Shanghai, 15:30 in UTC, on 2026-06-03.
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
_ids = itertools.count()


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def calls(post_json, service_headers):
    """Record LLM calls through the ingest endpoint (so rollups are kept, as in production)."""

    def record(*records: dict) -> None:
        body = []
        for fields in records:
            at = fields.pop("at", ago(minutes=5))
            body.append({"request_id": f"llm-{next(_ids)}", "model_name": "gpt-4o", "created_at": at.isoformat(),
                         **fields})  # fmt: skip
        response = post_json("/api/ingest/llm-calls", body, **service_headers)
        assert response.status_code == 201, response.json()

    return record


@pytest.fixture
def tools(post_json, service_headers):
    def record(*records: dict) -> None:
        body = []
        for fields in records:
            at = fields.pop("at", ago(minutes=5))
            body.append({"request_id": f"tool-{next(_ids)}", "tool_id": "get_time", "created_at": at.isoformat(),
                         **fields})  # fmt: skip
        response = post_json("/api/ingest/tool-calls", body, **service_headers)
        assert response.status_code == 201, response.json()

    return record


def data(response) -> dict:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and set(body) == {"success", "data"}, body
    return body["data"]


# --- /api/stats/models ---------------------------------------------------------------------------------


def test_models_answer_the_documented_shape(api, service_headers, calls):
    calls(
        {"model_name": "gpt-4o", "latency_ms": 2000, "prompt_tokens": 100, "completion_tokens": 50},
        {"model_name": "gpt-4o", "latency_ms": 3000, "prompt_tokens": 10, "completion_tokens": 5},
        {"model_name": "gpt-4o", "success": False, "error": "rate limited", "prompt_tokens": 7},
        {"model_name": "claude-3-5-sonnet", "latency_ms": 3000, "completion_tokens": 400},
    )
    assert data(api.get(MODELS, **service_headers)) == {
        "models": [
            # p95 of (2000, 3000): rank 1.9 of 2 falls in the 3000-5000 ms bucket, 90% into it.
            {"model": "gpt-4o", "requests": 3, "tokens": 172, "avgLatency": 2500, "errors": 1, "p95Latency": 4800},
            {"model": "claude-3-5-sonnet", "requests": 1, "tokens": 400, "avgLatency": 3000, "errors": 0,
             "p95Latency": 4900},
        ]
    }  # fmt: skip


def test_models_are_sorted_by_requests_then_by_model(api, service_headers, calls):
    calls({"model_name": "b"}, {"model_name": "c"}, {"model_name": "c"}, {"model_name": "a"})
    models = data(api.get(MODELS, **service_headers))["models"]
    assert [m["model"] for m in models] == ["c", "a", "b"]


def test_a_model_without_latencies_has_a_zero_mean_and_no_percentile(api, service_headers, calls):
    calls({"model_name": "quiet"}, {"model_name": "quiet", "success": False})
    (model,) = data(api.get(MODELS, **service_headers))["models"]
    assert (model["avgLatency"], model["p95Latency"], model["errors"]) == (0, None, 1)


def test_the_mean_latency_counts_only_calls_that_reported_one_and_rounds_half_up(api, service_headers, calls):
    calls({"latency_ms": 1}, {"latency_ms": 2}, {})
    (model,) = data(api.get(MODELS, **service_headers))["models"]
    assert model["avgLatency"] == 2  # (1 + 2) / 2 = 1.5, the call without a latency left out


# --- /api/stats/tools ----------------------------------------------------------------------------------


def test_tools_answer_the_documented_shape(api, service_headers, tools):
    tools(
        {"tool_id": "get_time", "duration_ms": 10},
        {"tool_id": "get_time", "duration_ms": 20},
        {"tool_id": "get_time", "duration_ms": 15, "success": False},
        {"tool_id": "web_search", "duration_ms": 2500},
    )
    assert data(api.get(TOOLS, **service_headers)) == {
        "tools": [
            {"name": "get_time", "calls": 3, "avgDuration": 15, "successRate": 0.6667},
            {"name": "web_search", "calls": 1, "avgDuration": 2500, "successRate": 1.0},
        ]
    }


def test_success_rate_is_a_fraction_not_a_percentage(api, service_headers, tools):
    tools(*[{"success": i < 99} for i in range(100)])
    (tool,) = data(api.get(TOOLS, **service_headers))["tools"]
    assert tool["successRate"] == 0.99


def test_a_tool_is_named_by_its_name_and_counted_per_tool_id(api, service_headers, tools):
    tools(
        {"tool_id": "web_search", "tool_name": "Web search"},
        {"tool_id": "web_search_v2", "tool_name": "Web search"},
        {"tool_id": "web_search_v2", "tool_name": "Web search"},
    )
    assert [(t["name"], t["calls"]) for t in data(api.get(TOOLS, **service_headers))["tools"]] == [
        ("Web search", 2),
        ("Web search", 1),
    ]


def test_tools_are_sorted_by_calls_then_by_name(api, service_headers, tools):
    tools({"tool_id": "b"}, {"tool_id": "c"}, {"tool_id": "c"}, {"tool_id": "a"})
    assert [t["name"] for t in data(api.get(TOOLS, **service_headers))["tools"]] == ["c", "a", "b"]


def test_a_tool_without_durations_has_a_zero_mean_duration(api, service_headers, tools):
    tools({"success": False}, {"success": False})
    (tool,) = data(api.get(TOOLS, **service_headers))["tools"]
    assert (tool["avgDuration"], tool["successRate"]) == (0, 0.0)


# --- /api/stats/channels -------------------------------------------------------------------------------


def test_channels_answer_the_documented_shape_with_integer_ids(api, service_headers, calls):
    calls(
        {"channel_id": 1, "channel_name": "OpenAI 主渠道", "latency_ms": 1000, "at": ago(hours=2)},
        {"channel_id": 1, "latency_ms": 3000, "at": ago(minutes=1, seconds=30)},
        {"channel_id": 1, "success": False, "at": ago(hours=1)},
        {"channel_id": 7, "channel_name": "backup", "at": ago(days=60)},
        {},  # no channel: not listed
    )
    assert data(api.get(CHANNELS, {"period": "week"}, **service_headers)) == {
        "channels": [
            {"id": 1, "name": "OpenAI 主渠道", "status": "active", "requests": 3, "errors": 1, "avgLatency": 2000,
             "lastUsed": "2026-06-03T15:28:30Z"},
            {"id": 7, "name": "backup", "status": "active", "requests": 0, "errors": 0,
             "avgLatency": 0, "lastUsed": None},
        ]
    }  # fmt: skip


def test_every_channel_is_listed_even_without_traffic(api, service_headers):
    Channel.objects.create(id=3, name="idle")
    Channel.objects.create(id=2, name="off", status=Channel.Status.DISABLED)
    assert data(api.get(CHANNELS, **service_headers))["channels"] == [
        {"id": 2, "name": "off", "status": "disabled", "requests": 0, "errors": 0, "avgLatency": 0, "lastUsed": None},
        {"id": 3, "name": "idle", "status": "active", "requests": 0, "errors": 0, "avgLatency": 0, "lastUsed": None},
    ]


def test_a_disabled_channel_says_so(api, service_headers, calls):
    calls({"channel_id": 4, "channel_name": "old"})
    Channel.objects.filter(id=4).update(status=Channel.Status.DISABLED)
    (channel,) = data(api.get(CHANNELS, **service_headers))["channels"]
    assert (channel["status"], channel["requests"]) == ("disabled", 1)


def test_channels_are_sorted_by_requests_then_by_id(api, service_headers, calls):
    calls({"channel_id": 9}, {"channel_id": 5}, {"channel_id": 5}, {"channel_id": 8})
    assert [c["id"] for c in data(api.get(CHANNELS, **service_headers))["channels"]] == [5, 8, 9]


def test_last_used_is_the_newest_call_inside_the_period(api, service_headers, calls):
    calls({"channel_id": 1, "at": ago(days=10)}, {"channel_id": 1, "at": datetime(2026, 5, 31, 8, 0, 0, 250000, UTC)})
    last = {period: data(api.get(CHANNELS, {"period": period}, **service_headers))["channels"][0]["lastUsed"]
            for period in ("all", "month", "week", "day")}  # fmt: skip
    assert last == {
        "all": "2026-05-31T08:00:00.250000Z",
        "month": "2026-05-31T08:00:00.250000Z",
        "week": "2026-05-31T08:00:00.250000Z",
        "day": None,
    }


# --- period ---------------------------------------------------------------------------------------------


@pytest.fixture
def spread(calls, tools):
    """One call of each kind today, 3 days ago, 10 days ago and 100 days ago."""
    for age in (timedelta(minutes=1), timedelta(days=3), timedelta(days=10), timedelta(days=100)):
        calls({"channel_id": 1, "at": NOW - age})
        tools({"at": NOW - age})


@pytest.mark.parametrize(
    ("period", "count"), [("day", 1), ("week", 2), ("month", 3), ("all", 4), (None, 4), ("", 4)]
)
@pytest.mark.parametrize(("path", "key", "measure"), [(MODELS, "models", "requests"), (TOOLS, "tools", "calls"),
                                                      (CHANNELS, "channels", "requests")])  # fmt: skip
def test_period_filters_every_endpoint_and_defaults_to_all(api, service_headers, spread, path, key, measure, period,
                                                           count):  # fmt: skip
    params = {} if period is None else {"period": period}
    (row,) = data(api.get(path, params, **service_headers))[key]
    assert row[measure] == count


def test_a_period_with_no_calls_lists_no_models_or_tools(api, service_headers, calls, tools):
    calls({"at": ago(days=3)})
    tools({"at": ago(days=3)})
    assert data(api.get(MODELS, {"period": "day"}, **service_headers)) == {"models": []}
    assert data(api.get(TOOLS, {"period": "day"}, **service_headers)) == {"tools": []}


def test_today_begins_at_midnight_in_the_stats_time_zone(api, service_headers, calls, settings):
    settings.STATS_TIME_ZONE = "Asia/Shanghai"  # now is 23:30 on June 3 there
    calls(
        {"model_name": "today", "at": datetime(2026, 6, 2, 16, 30, tzinfo=UTC)},  # 00:30 June 3 in Shanghai
        {"model_name": "yesterday", "at": datetime(2026, 6, 2, 15, 30, tzinfo=UTC)},  # 23:30 June 2
    )
    assert [m["model"] for m in data(api.get(MODELS, {"period": "day"}, **service_headers))["models"]] == ["today"]


def test_a_week_is_seven_calendar_days_exact_to_the_call_across_a_midnight_inside_a_utc_hour(
    api, service_headers, calls, settings
):
    # Kolkata's midnight is at :30 in UTC: the week's first hour is half in, half out.
    settings.STATS_TIME_ZONE = "Asia/Kolkata"
    first_midnight = datetime(2026, 5, 27, 18, 30, tzinfo=UTC)  # 00:00 on May 28 in Kolkata, 6 days before today
    calls(
        {"at": first_midnight - timedelta(minutes=1)},
        {"at": first_midnight},
        {"at": first_midnight + timedelta(minutes=29)},
        {"at": NOW - timedelta(seconds=1)},
    )
    (model,) = data(api.get(MODELS, {"period": "week"}, **service_headers))["models"]
    assert model["requests"] == 3 == Log.objects.filter(created_at__gte=first_midnight, created_at__lt=NOW).count()


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("period", ["year", "DAY", "7", "day,week", " day"])
def test_an_unknown_period_answers_400_in_the_console_envelope(api, service_headers, path, period):
    response = api.get(path, {"period": period}, **service_headers)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert body["error"].startswith("period: must be one of day, week, month, all"), body


# --- who may call -------------------------------------------------------------------------------------


@pytest.fixture
def callers(user_a_headers, admin_headers, service_key):
    return {
        "none": ({}, 401),
        "bad token": ({"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"}, 401),
        "bad key": ({"HTTP_X_API_KEY": "ssk_not-a-real-key"}, 401),
        "user": (user_a_headers, 403),
        "admin": (admin_headers, 200),
        "service": ({"HTTP_X_API_KEY": service_key}, 200),
        "service bearer": ({"HTTP_AUTHORIZATION": f"Bearer {service_key}"}, 200),
    }


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("caller", ["none", "bad token", "bad key", "user", "admin", "service", "service bearer"])
def test_only_a_service_key_or_an_administrator_may_call(api, callers, path, caller):
    headers, status = callers[caller]
    response = api.get(path, **headers)
    assert response.status_code == status
    body = response.json()
    if status == 200:
        assert body["success"] is True
    else:
        assert set(body) == {"success", "error"} and body["success"] is False and body["error"]


def test_an_administrator_sees_every_accounts_calls(api, admin_headers, calls, tools):
    calls({"username": "alice"}, {"username": "bob"})
    tools({"username": "alice"}, {"username": "bob"})
    assert data(api.get(MODELS, **admin_headers))["models"][0]["requests"] == 2
    assert data(api.get(TOOLS, **admin_headers))["tools"][0]["calls"] == 2


# --- cost -------------------------------------------------------------------------------------------


@pytest.fixture
def busy(post_json, service_headers):
    """12 models, 12 tools and 12 channels over 40 days, a call every 7 hours: many rows,
    groups and hourly buckets, and partial hours at every window's edges."""
    llm, tool = [], []
    for i in range(140):
        at = (NOW - timedelta(hours=7 * i, minutes=13)).isoformat()
        llm.append({"request_id": f"busy-{i}", "model_name": f"m{i % 12}", "channel_id": 1 + i % 12,
                    "latency_ms": 100 * i, "created_at": at})  # fmt: skip
        tool.append({"request_id": f"busy-t{i}", "tool_id": f"t{i % 12}", "duration_ms": i, "created_at": at})
    assert post_json("/api/ingest/llm-calls", llm, **service_headers).status_code == 201
    assert post_json("/api/ingest/tool-calls", tool, **service_headers).status_code == 201


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        (MODELS, 3),  # the key, rollups, raw edges
        (TOOLS, 3),
        (CHANNELS, 4),  # ... and the channel table
    ],
)
@pytest.mark.parametrize("period", ["day", "week", "month", "all"])
def test_a_stats_call_costs_the_same_few_queries_however_much_data(
    api, service_headers, busy, path, queries, period, django_assert_max_num_queries
):
    # The key's last use is recorded once, not on every call; the purge horizon is cached.
    api.get(path, {"period": period}, **service_headers)
    with django_assert_max_num_queries(queries):
        rows = next(iter(data(api.get(path, {"period": period}, **service_headers)).values()))
    assert rows


def test_the_answers_agree_with_the_raw_rows(api, service_headers, busy):
    month = {"period": "month"}
    start = datetime(2026, 5, 5, tzinfo=UTC)  # the last 30 calendar days (UTC) began then
    logs = Log.objects.filter(created_at__gte=start)
    models = {m["model"]: m["requests"] for m in data(api.get(MODELS, month, **service_headers))["models"]}
    assert models == {name: logs.filter(model_name=name).count() for name in logs.values_list("model_name", flat=True)}
    tool_rows = data(api.get(TOOLS, month, **service_headers))["tools"]
    assert sum(t["calls"] for t in tool_rows) == ToolCall.objects.filter(created_at__gte=start).count()
    channels = {c["id"]: c["requests"] for c in data(api.get(CHANNELS, month, **service_headers))["channels"]}
    assert channels == {i: logs.filter(channel_id=i).count() for i in range(1, 13)}
