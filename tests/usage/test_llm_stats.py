"""GET /llm/stats (bot stats document): LLM requests, cost and tokens over a period,
grouped by model, module, user or request type. Bare JSON; errors `{"detail": "..."}`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

STATS = "/llm/stats"
# A Saturday morning in UTC; in Shanghai (UTC+8) it is already 18:00.
NOW = datetime(2026, 1, 24, 10, 0, 0, tzinfo=UTC)
CUSTOM_NEEDS_BOTH = "自定义时间段必须提供开始和结束时间"


@pytest.fixture(autouse=True)
def now(monkeypatch, db, settings):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.STATS_TIME_ZONE = "UTC"
    return NOW


@pytest.fixture
def record(post_json, service_headers):
    """Store LLM calls through the ingest endpoint, as production does."""

    def store(*calls: dict) -> None:
        body = []
        for call in calls:
            fields = {"username": "alice", "model_name": "gpt-4", "cost": "0", **call}
            fields["created_at"] = fields["created_at"].isoformat()
            body.append(fields)
        response = post_json("/api/ingest/llm-calls", body, **service_headers)
        assert response.status_code == 201, response.json()

    return store


def stats(api, params=None, path=STATS, **headers) -> dict:
    response = api.get(path, params or {}, **headers)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"period", "total_requests", "total_cost", "details_by_group"}
    return body


def refused(api, params, service_headers, status=400) -> str:
    response = api.get(STATS, params, **service_headers)
    assert response.status_code == status, response.json()
    body = response.json()
    assert set(body) == {"detail"}
    return body["detail"]


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def today(hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def group(requests=0, cost=0.0, input_tokens=0, output_tokens=0) -> dict:
    return {"requests": requests, "cost": cost, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}  # fmt: skip


# --- the document's own examples ---------------------------------------------------------------


def test_the_documents_curl_example_answers_the_last_seven_calendar_days(api, record, service_headers):
    # curl -X GET "http://127.0.0.1:8000/llm/stats?period_type=daily&days=7" -H "X-API-Key: …"
    record(
        {"model_name": "gpt-4", "created_at": ago(days=1), "cost": "1.8", "prompt_tokens": 12000,
         "completion_tokens": 3000},
        {"model_name": "claude-3-opus", "created_at": ago(days=6, hours=10), "cost": "0.65", "prompt_tokens": 8000,
         "completion_tokens": 2000},
        {"model_name": "claude-3-opus", "created_at": ago(days=6, hours=10, seconds=1), "cost": "5"},
    )  # fmt: skip
    body = stats(api, {"period_type": "daily", "days": "7"}, **service_headers)
    assert body == {
        "period": {"start": "2026-01-18T00:00:00+00:00", "end": "2026-01-24T10:00:00+00:00"},
        "total_requests": 2,
        "total_cost": 2.45,
        "details_by_group": {
            "claude-3-opus": group(1, 0.65, 8000, 2000),
            "gpt-4": group(1, 1.8, 12000, 3000),
        },
    }


def test_the_documents_curl_url_is_served_as_written(api, record, service_headers):
    record({"created_at": ago(hours=1)})
    response = api.get("/llm/stats?period_type=daily&days=7", **service_headers)
    assert response.status_code == 200 and response.json()["total_requests"] == 1


def test_the_documents_python_example_answers_the_last_seven_days_by_model(api, record, service_headers):
    # requests.get(f"{API_BASE_URL}/llm/stats", headers={"X-API-Key": …},
    #              params={"period_type": "last_7_days", "group_by": "model"})
    record(
        {"model_name": "gpt-4", "created_at": ago(days=7), "cost": "0.5"},
        {"model_name": "gpt-4", "created_at": ago(days=7, seconds=1), "cost": "9"},
        {"model_name": "qwen", "created_at": ago(seconds=1), "cost": "0.25"},
    )
    body = stats(api, {"period_type": "last_7_days", "group_by": "model"}, **service_headers)
    assert body["period"] == {"start": "2026-01-17T10:00:00+00:00", "end": "2026-01-24T10:00:00+00:00"}
    assert body["total_requests"] == 2 and body["total_cost"] == 0.75
    assert body["details_by_group"] == {"gpt-4": group(1, 0.5), "qwen": group(1, 0.25)}


# --- periods ---------------------------------------------------------------------------------------


def test_by_default_it_is_today_in_the_stats_time_zone_by_model(api, record, service_headers, settings):
    settings.STATS_TIME_ZONE = "Asia/Shanghai"
    # Local midnight in Shanghai is 16:00 UTC the day before.
    record(
        {"created_at": datetime(2026, 1, 23, 15, 59, 59, tzinfo=UTC), "cost": "1"},
        {"created_at": datetime(2026, 1, 23, 16, 0, 0, tzinfo=UTC), "cost": "2", "model_name": "qwen"},
        {"created_at": ago(seconds=1), "cost": "4"},
    )
    body = stats(api, **service_headers)
    assert body["period"] == {"start": "2026-01-24T00:00:00+08:00", "end": "2026-01-24T18:00:00+08:00"}
    assert body["total_requests"] == 2 and body["total_cost"] == 6.0
    assert list(body["details_by_group"]) == ["gpt-4", "qwen"]


def test_blank_parameters_mean_the_defaults(api, record, service_headers):
    record({"created_at": ago(hours=1), "module": "chat"}, {"created_at": ago(days=1)})
    body = stats(api, {"period_type": "", "days": " ", "group_by": ""}, **service_headers)
    assert body["period"]["start"] == "2026-01-24T00:00:00+00:00"
    assert list(body["details_by_group"]) == ["gpt-4"] and body["total_requests"] == 1


def test_daily_counts_calendar_days_with_today_as_one(api, record, service_headers):
    record(
        {"created_at": datetime(2026, 1, 22, 23, 59, 59, tzinfo=UTC)},
        {"created_at": datetime(2026, 1, 23, 0, 0, 0, tzinfo=UTC)},
        {"created_at": datetime(2026, 1, 24, 9, 0, 0, tzinfo=UTC)},
    )
    body = stats(api, {"period_type": "daily", "days": 2}, **service_headers)
    assert body["period"]["start"] == "2026-01-23T00:00:00+00:00"
    assert body["total_requests"] == 2


def test_the_longest_daily_period_is_3660_days(api, service_headers):
    body = stats(api, {"days": 3660}, **service_headers)
    assert body["period"]["start"] == "2016-01-18T00:00:00+00:00"
    assert refused(api, {"days": 3661}, service_headers).startswith("days:")


@pytest.mark.parametrize(
    "period_type, start",
    [
        ("last_hour", "2026-01-24T09:00:00+00:00"),
        ("last_24_hours", "2026-01-23T10:00:00+00:00"),
        ("last_7_days", "2026-01-17T10:00:00+00:00"),
        ("last_30_days", "2025-12-25T10:00:00+00:00"),
    ],
)
def test_the_last_periods_are_rolling_windows_ending_now(api, record, service_headers, period_type, start):
    begin = datetime.fromisoformat(start)
    record(
        {"created_at": begin - timedelta(seconds=1), "cost": "1"},
        {"created_at": begin, "cost": "2"},
        {"created_at": NOW - timedelta(milliseconds=1), "cost": "4"},
        {"created_at": NOW, "cost": "8"},
    )
    body = stats(api, {"period_type": period_type}, **service_headers)
    assert body["period"] == {"start": start, "end": "2026-01-24T10:00:00+00:00"}
    assert body["total_requests"] == 2 and body["total_cost"] == 6.0


def test_a_custom_period_honours_both_its_start_and_its_end(api, record, service_headers):
    start, end = datetime(2026, 1, 10, 6, 30, tzinfo=UTC), datetime(2026, 1, 12, 18, 15, tzinfo=UTC)
    record(
        {"created_at": start - timedelta(seconds=1), "cost": "1"},
        {"created_at": start, "cost": "2"},
        {"created_at": datetime(2026, 1, 11, tzinfo=UTC), "cost": "4"},
        {"created_at": end - timedelta(milliseconds=1), "cost": "8"},
        {"created_at": end, "cost": "16"},
        {"created_at": ago(hours=1), "cost": "32"},
    )
    params = {"period_type": "custom", "start_time_str": "2026-01-10T06:30:00Z", "end_time_str": "2026-01-12T18:15:00Z"}
    body = stats(api, params, **service_headers)
    assert body["period"] == {"start": "2026-01-10T06:30:00+00:00", "end": "2026-01-12T18:15:00+00:00"}
    assert body["total_requests"] == 3 and body["total_cost"] == 14.0


def test_custom_bounds_take_offsets_dates_and_naive_times_in_time_zone(api, record, service_headers, settings):
    settings.STATS_TIME_ZONE = "Asia/Shanghai"
    record({"created_at": datetime(2026, 1, 9, 16, 0, tzinfo=UTC), "cost": "1"})
    # 2026-01-10T00:00+08:00 is 2026-01-09T16:00Z; a bare date is its midnight (TIME_ZONE, UTC here).
    body = stats(api, {"period_type": "custom", "start_time_str": "2026-01-10T00:00:00+08:00",
                       "end_time_str": "2026-01-10"}, **service_headers)  # fmt: skip
    assert body["period"] == {"start": "2026-01-10T00:00:00+08:00", "end": "2026-01-10T08:00:00+08:00"}
    assert body["total_requests"] == 1
    naive = stats(api, {"period_type": "custom", "start_time_str": "2026-01-09T16:00:00",
                        "end_time_str": "2026-01-09T16:00:01"}, **service_headers)  # fmt: skip
    assert naive["total_requests"] == 1


def test_an_empty_custom_period_is_all_zeros(api, record, service_headers):
    record({"created_at": datetime(2026, 1, 10, tzinfo=UTC)})
    body = stats(api, {"period_type": "custom", "start_time_str": "2026-01-10T00:00:00Z",
                       "end_time_str": "2026-01-10T00:00:00Z"}, **service_headers)  # fmt: skip
    assert body["total_requests"] == 0 and body["total_cost"] == 0 and body["details_by_group"] == {}


@pytest.mark.parametrize(
    "given, missing",
    [
        ({}, ["start_time_str", "end_time_str"]),
        ({"start_time_str": "2026-01-10"}, ["end_time_str"]),
        ({"end_time_str": "2026-01-10"}, ["start_time_str"]),
        ({"start_time_str": "", "end_time_str": "2026-01-10"}, ["start_time_str"]),
    ],
)
def test_a_custom_period_without_both_bounds_is_a_400_naming_the_missing_one(api, service_headers, given, missing):
    detail = refused(api, {"period_type": "custom", **given}, service_headers)
    assert CUSTOM_NEEDS_BOTH in detail
    assert [name for name in ("start_time_str", "end_time_str") if f"{name}: is required" in detail] == missing


@pytest.mark.parametrize("name", ["start_time_str", "end_time_str"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-02-30T00:00:00", "1969-12-31T23:59:59Z",
                                   "3000-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "x" * 65])  # fmt: skip
def test_an_unparsable_or_out_of_range_bound_is_a_400_naming_it(api, service_headers, name, value):
    bounds = {"start_time_str": "2026-01-01", "end_time_str": "2026-01-02", name: value}
    assert refused(api, {"period_type": "custom", **bounds}, service_headers).startswith(f"{name}:")


def test_a_custom_end_before_its_start_is_a_400(api, service_headers):
    params = {"period_type": "custom", "start_time_str": "2026-01-12", "end_time_str": "2026-01-11T23:59:59Z"}
    assert refused(api, params, service_headers) == "end_time_str: must not be before start_time_str."


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", "99999999999999999999"])
def test_days_below_one_or_not_a_whole_number_is_a_400(api, service_headers, days):
    assert refused(api, {"period_type": "daily", "days": days}, service_headers).startswith("days:")


def test_days_is_checked_even_when_another_period_is_asked_for(api, service_headers):
    assert refused(api, {"period_type": "last_hour", "days": "0"}, service_headers).startswith("days:")


def test_an_unknown_period_type_is_a_400_listing_the_choices(api, service_headers):
    assert refused(api, {"period_type": "weekly"}, service_headers) == (
        'period_type: "weekly" is not one of daily, custom, last_hour, last_24_hours, last_7_days, last_30_days.'
    )


def test_an_unknown_group_by_is_a_400_listing_the_choices(api, service_headers):
    assert refused(api, {"group_by": "channel"}, service_headers) == (
        'group_by: "channel" is not one of model, module, type, user.'
    )


# --- grouping -------------------------------------------------------------------------------------


# Each grouping is asked over whole hours (rollups only) and over a window whose
# first and last hours are partial (raw rows there): the answers must agree.
WINDOWS = {
    "whole hours": {},
    "partial hours": {"period_type": "custom", "start_time_str": "2026-01-24T05:10:00Z",
                      "end_time_str": "2026-01-24T09:30:00Z"},
}  # fmt: skip


@pytest.fixture(params=list(WINDOWS))
def window(request) -> dict:
    return WINDOWS[request.param]


@pytest.fixture
def mixed(record):
    record(
        {"username": "alice", "model_name": "gpt-4", "module": "memory", "request_type": "memory.build",
         "created_at": today(9, 20), "cost": "0.1", "prompt_tokens": 100, "completion_tokens": 10},
        {"username": "alice", "model_name": "qwen", "request_type": "chat.reply",
         "created_at": today(8, 20), "cost": "0.2", "prompt_tokens": 200, "completion_tokens": 20},
        {"username": "bob", "model_name": "gpt-4", "request_type": "chat.reply",
         "created_at": today(7, 20), "cost": "0.4", "prompt_tokens": 400, "completion_tokens": 40},
        {"username": "bob", "model_name": "gpt-4", "created_at": today(6, 20), "cost": "0.8",
         "prompt_tokens": 800, "completion_tokens": 80, "success": False, "error": "timeout"},
        {"username": "", "model_name": "qwen", "created_at": today(5, 20), "cost": "1.6",
         "prompt_tokens": 1600, "completion_tokens": 160},
    )  # fmt: skip


def test_group_by_model_groups_by_model_name(api, mixed, window, service_headers):
    body = stats(api, {"group_by": "model", **window}, **service_headers)
    assert body["details_by_group"] == {"gpt-4": group(3, 1.3, 1300, 130), "qwen": group(2, 1.8, 1800, 180)}
    assert body["total_requests"] == 5 and body["total_cost"] == 3.1


def test_group_by_module_uses_the_module_sent_else_the_request_types_prefix(api, mixed, window, service_headers):
    body = stats(api, {"group_by": "module", **window}, **service_headers)
    assert body["details_by_group"] == {
        "chat": group(2, 0.6, 600, 60),
        "unknown": group(2, 2.4, 2400, 240),
        "memory": group(1, 0.1, 100, 10),
    }
    assert list(body["details_by_group"]) == ["chat", "unknown", "memory"]  # most requests first


def test_group_by_type_groups_by_request_type(api, mixed, window, service_headers):
    body = stats(api, {"group_by": "type", **window}, **service_headers)
    assert body["details_by_group"] == {
        "chat.reply": group(2, 0.6, 600, 60),
        "unknown": group(2, 2.4, 2400, 240),
        "memory.build": group(1, 0.1, 100, 10),
    }


def test_group_by_user_really_groups_by_account_named_by_username(api, mixed, window, service_headers):
    body = stats(api, {"group_by": "user", **window}, **service_headers)
    assert body["details_by_group"] == {
        "alice": group(2, 0.3, 300, 30),
        "bob": group(2, 1.2, 1200, 120),
        "unknown": group(1, 1.6, 1600, 160),
    }
    assert body["total_requests"] == 5


def test_a_group_literally_named_unknown_merges_with_the_calls_that_name_none(api, record, service_headers):
    record({"created_at": ago(hours=1), "module": "unknown", "cost": "1"}, {"created_at": ago(hours=2), "cost": "2"})
    body = stats(api, {"group_by": "module"}, **service_headers)
    assert body["details_by_group"] == {"unknown": group(2, 3.0)}


def test_costs_are_numbers_rounded_to_six_decimals(api, record, service_headers):
    record(
        {"created_at": ago(hours=1), "cost": "0.00000049"},
        {"created_at": ago(hours=1), "cost": "0.1234565", "model_name": "qwen"},
        {"created_at": ago(hours=2), "cost": "0.00000002", "model_name": "qwen"},
    )
    body = stats(api, **service_headers)
    assert body["details_by_group"]["gpt-4"]["cost"] == 0.0
    assert body["details_by_group"]["qwen"]["cost"] == 0.123457
    assert body["total_cost"] == 0.123457
    assert isinstance(body["total_cost"], float)


def test_nothing_recorded_is_all_zeros(api, service_headers):
    body = stats(api, **service_headers)
    assert body["total_requests"] == 0 and body["total_cost"] == 0 and body["details_by_group"] == {}


def test_a_period_with_partial_hours_is_exact_from_rollups_and_raw_rows(api, record, service_headers):
    calls = [{"created_at": ago(minutes=7 * i), "cost": "0.01", "prompt_tokens": 1} for i in range(1, 400)]
    record(*calls)
    params = {"period_type": "custom", "start_time_str": "2026-01-23T08:13:00Z", "end_time_str": "2026-01-24T07:41:00Z"}
    lo, hi = datetime(2026, 1, 23, 8, 13, tzinfo=UTC), datetime(2026, 1, 24, 7, 41, tzinfo=UTC)
    expected = sum(1 for c in calls if lo <= c["created_at"] < hi)
    body = stats(api, params, **service_headers)
    assert body["total_requests"] == expected == body["details_by_group"]["gpt-4"]["input_tokens"]
    assert body["total_cost"] == round(expected * 0.01, 6)


# --- who may call -----------------------------------------------------------------------------


@pytest.fixture
def callers(user_a_headers, admin_headers, service_key):
    return {
        "none": {},
        "bad token": {"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"},
        "bad key": {"HTTP_X_API_KEY": "your-super-secret-key-here"},
        "user": user_a_headers,
        "admin": admin_headers,
        "service": {"HTTP_X_API_KEY": service_key},
        "service bearer": {"HTTP_AUTHORIZATION": f"Bearer {service_key}"},
    }


@pytest.mark.parametrize(
    "caller, status",
    [("none", 401), ("bad token", 401), ("bad key", 401), ("user", 403), ("admin", 403), ("service", 200),
     ("service bearer", 200)],
)  # fmt: skip
def test_only_a_service_key_may_call(api, callers, caller, status):
    response = api.get(STATS, **callers[caller])
    assert response.status_code == status, response.json()
    body = response.json()
    if status == 200:
        assert set(body) == {"period", "total_requests", "total_cost", "details_by_group"}
    else:
        assert set(body) == {"detail"} and body["detail"]


def test_a_bad_api_key_answers_the_documents_message(api):
    response = api.get(STATS, HTTP_X_API_KEY="your-super-secret-key-here")
    assert response.status_code == 401 and response.json() == {"detail": "Invalid API key"}


def test_a_key_from_the_environment_is_a_service_key(api, settings):
    settings.STATSITE_API_KEYS = ["env-secret-key"]
    assert api.get(STATS, HTTP_X_API_KEY="env-secret-key").status_code == 200


# --- cost -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", ["model", "module", "type", "user"])
def test_a_month_of_many_groups_costs_a_fixed_number_of_queries(
    api, record, service_headers, django_assert_max_num_queries, group_by
):
    calls = []
    for h in range(1, 30 * 24, 5):
        for n in range(4):
            calls.append({"username": f"user{n}", "model_name": f"model-{n}", "module": f"mod{n}",
                          "request_type": f"type{n}.x", "created_at": ago(hours=h, minutes=17),
                          "cost": "0.001"})  # fmt: skip
    for start in range(0, len(calls), 500):
        record(*calls[start : start + 500])
    # Authentication (the key, its last use) plus two aggregate queries, and for
    # group_by=user one to name the accounts; whatever the number of hours and groups.
    with django_assert_max_num_queries(5):
        body = stats(api, {"period_type": "daily", "days": 31, "group_by": group_by}, **service_headers)
    assert body["total_requests"] == len(calls) and len(body["details_by_group"]) == 4
