"""Tool metering: POST /agent/stats, the caller's own tool calls over whole days."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from usage.models import ToolCall

pytestmark = pytest.mark.django_db

STATS = "/agent/stats"

# "Now" in every test: 15:30 UTC on 2026-06-03, the last day of the document's example range.
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
_ids = itertools.count()


def utc(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 6) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def tools(post_json, service_headers, user_a):
    """Record tool calls through the ingest endpoint; alice's unless a username is given."""

    def record(*records: dict) -> None:
        body = []
        for fields in records:
            at = fields.pop("at", NOW - timedelta(minutes=5))
            body.append({"request_id": f"t-{next(_ids)}", "username": user_a.username, "tool_id": "shouji_query",
                         "created_at": at.isoformat(), **fields})  # fmt: skip
        response = post_json("/api/ingest/tool-calls", body, **service_headers)
        assert response.status_code == 201, response.json()

    return record


@pytest.fixture
def stats(post_json, user_a_headers):
    """POST a body as alice (or with HEADERS) and return the response."""

    def ask(body=None, headers=None):
        return post_json(STATS, {} if body is None else body, **(user_a_headers if headers is None else headers))

    return ask


def result(response) -> dict:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"status", "msg", "result", "request_id"}, body
    assert (body["status"], body["msg"]) == (0, "ok")
    assert body["request_id"].startswith("req_") and len(body["request_id"]) > 4
    return body["result"]


def refused(response, http: int, status: int, names: str | None = None) -> dict:
    assert response.status_code == http, response.json()
    body = response.json()
    assert set(body) == {"status", "msg", "result", "request_id"}, body
    assert body["status"] == status and body["result"] is None and body["msg"], body
    assert body["request_id"].startswith("req_")
    if names is not None:
        assert body["msg"].startswith(f"{names}:"), body
    return body


@pytest.fixture
def june(tools):
    """The document's example days: two tools on June 1 and 3, nothing on June 2."""
    tools(
        {"tool_id": "shouji_query", "tool_name": "手机号码归属地查询", "cost": "0", "at": utc(1, 9)},
        {"tool_id": "shouji_query", "tool_name": "手机号码归属地查询", "cost": "0", "at": utc(3, 10)},
        {"tool_id": "shouji_query", "tool_name": "手机号码归属地查询", "cost": "0", "at": utc(3, 14, 59, 59)},
        {"tool_id": "weather_forecast", "tool_name": "天气预报", "cost": "0.02", "at": utc(1, 8)},
        {"tool_id": "weather_forecast", "tool_name": "天气预报", "cost": "0.02", "success": False, "at": utc(3, 14)},
    )


# --- the document's own requests ------------------------------------------------------------------------


def test_the_documents_range_answers_the_documented_shape(stats, june):
    assert result(stats({"start_date": "2026-06-01", "end_date": "2026-06-03"})) == {
        "summary": {
            "total_calls": 5,
            "success_calls": 4,
            "failed_calls": 1,
            "success_rate": 0.8,
            "total_cost": 0.04,
            "period": {"start": "2026-06-01", "end": "2026-06-03"},
        },
        "by_tool": [
            {"tool_id": "shouji_query", "tool_name": "手机号码归属地查询", "calls": 3, "success": 3, "failed": 0,
             "cost": 0.0},
            {"tool_id": "weather_forecast", "tool_name": "天气预报", "calls": 2, "success": 1, "failed": 1,
             "cost": 0.04},
        ],
        "by_date": [
            {"date": "2026-06-01", "calls": 2, "success": 2, "cost": 0.02},
            {"date": "2026-06-02", "calls": 0, "success": 0, "cost": 0.0},
            {"date": "2026-06-03", "calls": 3, "success": 2, "cost": 0.02},
        ],
    }  # fmt: skip


def test_an_empty_body_means_today(stats, june):
    answer = result(stats({}))
    assert answer["summary"]["period"] == {"start": "2026-06-03", "end": "2026-06-03"}
    assert answer["summary"]["total_calls"] == 3
    assert answer["by_date"] == [{"date": "2026-06-03", "calls": 3, "success": 2, "cost": 0.02}]


def test_no_body_at_all_means_today(api, user_a_headers, june):
    answer = result(api.post(STATS, **user_a_headers))
    assert answer["summary"]["period"] == {"start": "2026-06-03", "end": "2026-06-03"}


def test_tool_id_narrows_everything_to_one_tool(stats, june):
    answer = result(stats({"tool_id": "shouji_query", "start_date": "2026-06-01", "end_date": "2026-06-03"}))
    assert answer["summary"] == {
        "total_calls": 3,
        "success_calls": 3,
        "failed_calls": 0,
        "success_rate": 1.0,
        "total_cost": 0.0,
        "period": {"start": "2026-06-01", "end": "2026-06-03"},
    }
    assert [t["tool_id"] for t in answer["by_tool"]] == ["shouji_query"]
    assert [d["calls"] for d in answer["by_date"]] == [1, 0, 2]


def test_an_unknown_tool_id_answers_zeros(stats, june):
    answer = result(stats({"tool_id": "nope", "start_date": "2026-06-01", "end_date": "2026-06-03"}))
    assert answer["summary"]["total_calls"] == 0 and answer["summary"]["success_rate"] == 0.0
    assert answer["by_tool"] == [] and [d["calls"] for d in answer["by_date"]] == [0, 0, 0]


def test_group_by_hour_lists_every_hour_of_the_day(stats, june):
    answer = result(stats({"start_date": "2026-06-03", "end_date": "2026-06-03", "group_by": "hour"}))
    hours = answer["by_date"]
    assert [h["date"] for h in hours] == [f"2026-06-03 {h:02d}:00" for h in range(24)]
    busy = {h["date"]: (h["calls"], h["success"], h["cost"]) for h in hours if h["calls"]}
    assert busy == {"2026-06-03 10:00": (1, 1, 0.0), "2026-06-03 14:00": (2, 1, 0.02)}
    assert answer["summary"]["total_calls"] == 3
    assert [t["calls"] for t in answer["by_tool"]] == [2, 1]


def test_the_python_examples_last_seven_days(stats, tools):
    # today - timedelta(days=7) .. today: eight calendar days.
    tools({"at": utc(27, month=5)}, {"at": utc(26, 23, 59, 59, month=5)}, {"at": utc(3, 1)})
    answer = result(stats({"start_date": "2026-05-27", "end_date": "2026-06-03"}))
    assert [d["date"] for d in answer["by_date"]] == [
        "2026-05-27", "2026-05-28", "2026-05-29", "2026-05-30", "2026-05-31", "2026-06-01", "2026-06-02", "2026-06-03"
    ]  # fmt: skip
    assert answer["summary"]["total_calls"] == 2


# --- windows and days ------------------------------------------------------------------------------------


def test_both_dates_are_inclusive_whole_days(stats, tools):
    tools(
        {"at": utc(1, 0, 0, 0)},
        {"at": utc(2, 23, 59, 59)},
        {"at": utc(31, 23, 59, 59, month=5)},  # the day before
        {"at": utc(3, 0, 0, 0)},  # the day after
    )
    answer = result(stats({"start_date": "2026-06-01", "end_date": "2026-06-02"}))
    assert answer["summary"]["total_calls"] == 2
    assert [d["calls"] for d in answer["by_date"]] == [1, 1]


def test_only_a_start_date_runs_to_today(stats, tools):
    tools({"at": utc(1)}, {"at": utc(3, 1)})
    answer = result(stats({"start_date": "2026-06-01"}))
    assert answer["summary"]["period"] == {"start": "2026-06-01", "end": "2026-06-03"}
    assert answer["summary"]["total_calls"] == 2


@pytest.mark.parametrize("blank", [None, ""])
def test_null_or_empty_fields_take_their_defaults(stats, june, blank):
    body = {"start_date": blank, "end_date": blank, "tool_id": blank, "group_by": blank}
    assert result(stats(body)) == result(stats({}))


def test_days_are_calendar_days_in_the_stats_time_zone(stats, tools, settings):
    settings.STATS_TIME_ZONE = "Asia/Shanghai"
    tools(
        {"at": datetime(2026, 6, 1, 16, 30, tzinfo=UTC)},  # 00:30 on June 2 in Shanghai
        {"at": datetime(2026, 6, 1, 15, 30, tzinfo=UTC)},  # 23:30 on June 1
    )
    answer = result(stats({"start_date": "2026-06-01", "end_date": "2026-06-02"}))
    assert [(d["date"], d["calls"]) for d in answer["by_date"]] == [("2026-06-01", 1), ("2026-06-02", 1)]


def test_hours_are_labelled_in_the_stats_time_zone(stats, tools, settings):
    settings.STATS_TIME_ZONE = "Asia/Shanghai"  # now is 23:30 on June 3 there
    tools({"at": datetime(2026, 6, 2, 16, 5, tzinfo=UTC)}, {"at": datetime(2026, 6, 3, 15, 0, tzinfo=UTC)})
    hours = result(stats({"start_date": "2026-06-03", "end_date": "2026-06-03", "group_by": "hour"}))["by_date"]
    assert hours[0]["date"] == "2026-06-03 00:00" and hours[-1]["date"] == "2026-06-03 23:00"
    assert {h["date"]: h["calls"] for h in hours if h["calls"]} == {"2026-06-03 00:00": 1, "2026-06-03 23:00": 1}


def test_in_a_half_hour_zone_the_days_hours_follow_utc_hours_from_midnight(stats, tools, settings):
    settings.STATS_TIME_ZONE = "Asia/Kolkata"  # midnight is at :30 UTC
    tools({"at": datetime(2026, 6, 1, 18, 40, tzinfo=UTC)}, {"at": datetime(2026, 6, 1, 18, 20, tzinfo=UTC)})
    hours = result(stats({"start_date": "2026-06-02", "end_date": "2026-06-02", "group_by": "hour"}))["by_date"]
    labels = [h["date"] for h in hours]
    assert labels[:3] == ["2026-06-02 00:00", "2026-06-02 00:30", "2026-06-02 01:30"]
    assert labels[-1] == "2026-06-02 23:30" and len(labels) == 25
    assert hours[0]["calls"] == 1 and sum(h["calls"] for h in hours) == 1  # 18:20 UTC is June 1 there


def test_a_day_when_clocks_go_forward_has_23_hours(stats, tools, settings, monkeypatch):
    settings.STATS_TIME_ZONE = "America/New_York"
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 3, 10, tzinfo=UTC))
    hours = result(stats({"start_date": "2026-03-08", "end_date": "2026-03-08", "group_by": "hour"}))["by_date"]
    assert len(hours) == 23 and "2026-03-08 02:00" not in [h["date"] for h in hours]


def test_calls_after_now_are_not_counted_and_later_days_are_zeros(stats, tools):
    tools({"at": NOW - timedelta(seconds=1)}, {"at": NOW + timedelta(minutes=10)})
    answer = result(stats({"start_date": "2026-06-03", "end_date": "2026-06-05"}))
    assert answer["summary"]["total_calls"] == 1
    assert [(d["date"], d["calls"]) for d in answer["by_date"]] == [
        ("2026-06-03", 1), ("2026-06-04", 0), ("2026-06-05", 0)
    ]  # fmt: skip


def test_a_range_wholly_in_the_future_is_all_zeros_without_reading_anything(
    stats, tools, django_assert_max_num_queries
):
    tools({})
    stats({})  # the token's last use is recorded once, not on every call
    with django_assert_max_num_queries(1):  # the token
        answer = result(stats({"start_date": "2026-07-01", "end_date": "2026-07-02"}))
    assert answer["summary"]["total_calls"] == 0 and answer["by_tool"] == []
    assert answer["by_date"] == [{"date": f"2026-07-0{d}", "calls": 0, "success": 0, "cost": 0.0} for d in (1, 2)]


def test_group_by_tool_answers_as_day_does(stats, june):
    body = {"start_date": "2026-06-01", "end_date": "2026-06-03"}
    assert result(stats({**body, "group_by": "tool"})) == result(stats({**body, "group_by": "day"}))


def test_by_tool_is_sorted_by_calls_then_by_tool_id(stats, tools):
    tools({"tool_id": "b"}, {"tool_id": "c"}, {"tool_id": "c"}, {"tool_id": "a"})
    assert [t["tool_id"] for t in result(stats({}))["by_tool"]] == ["c", "a", "b"]


def test_rates_have_four_places_and_money_two(stats, tools):
    tools(
        {"success": True, "cost": "0.004"},
        {"success": False, "cost": "0.001"},
        {"success": False, "cost": "0.0"},
    )
    summary = result(stats({}))["summary"]
    assert summary["success_rate"] == 0.3333
    assert summary["total_cost"] == 0.01  # 0.005, half up


def test_the_tool_name_defaults_to_its_id(stats, tools):
    tools({"tool_id": "web_search"})
    (tool,) = result(stats({}))["by_tool"]
    assert (tool["tool_id"], tool["tool_name"]) == ("web_search", "web_search")


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"start_date": "2026/06/01"}, "start_date"),
        ({"start_date": "2026-6-1"}, "start_date"),
        ({"start_date": "20260601"}, "start_date"),
        ({"start_date": 20260601}, "start_date"),
        ({"start_date": "2026-06-01T00:00:00"}, "start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": True}, "start_date"),
        ({"start_date": ["2026-06-01"]}, "start_date"),
        ({"end_date": "2026-02-30"}, "end_date"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"start_date": "1969-12-31", "end_date": "1970-01-01"}, "start_date"),
        ({"start_date": "3000-01-01", "end_date": "3000-01-01"}, "start_date"),
        ({"start_date": "0001-01-01"}, "start_date"),
        ({"start_date": "2026-06-03", "end_date": "2026-06-02"}, "end_date"),
        ({"end_date": "2026-06-02"}, "end_date"),  # before the default start, today
        ({"start_date": "nope", "group_by": "week"}, "start_date"),  # a bad date is reported first
    ],
)
def test_a_bad_date_is_status_203(stats, body, name):
    refused(stats(body), 400, 203, name)


@pytest.mark.parametrize(
    "body",
    [
        {"start_date": "2026-03-05", "end_date": "2026-06-03"},  # 91 days
        {"start_date": "2025-06-03"},
        {"start_date": "1970-01-01", "end_date": "2999-12-31"},
    ],
)
def test_a_range_over_90_days_is_status_204(stats, body):
    refused(stats(body), 400, 204, "end_date")


def test_a_range_of_exactly_90_days_is_answered(stats, tools):
    tools({"at": utc(6, month=3)})
    answer = result(stats({"start_date": "2026-03-06", "end_date": "2026-06-03"}))
    assert len(answer["by_date"]) == 90 and answer["summary"]["total_calls"] == 1


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "DAY"}, "group_by"),
        ({"group_by": 1}, "group_by"),
        ({"group_by": ["day"]}, "group_by"),
        ({"tool_id": ["a"]}, "tool_id"),
        ({"tool_id": {"id": "a"}}, "tool_id"),
        ({"tool_id": False}, "tool_id"),
        ({"tool_id": "x" * 129}, "tool_id"),
        ({"tool_id": "a\x00b"}, "tool_id"),
        ([], "body"),
        ([{"start_date": "2026-06-01"}], "body"),
        ("2026-06-01", "body"),
        (5, "body"),
        (None, "body"),
    ],
)
def test_any_other_bad_parameter_is_status_201(api, user_a_headers, body, name):
    response = api.post(STATS, data=json.dumps(body), content_type="application/json", **user_a_headers)
    refused(response, 400, 201, name)


def test_malformed_json_is_status_201(api, user_a_headers):
    response = api.post(STATS, data='{"start_date": ', content_type="application/json", **user_a_headers)
    refused(response, 400, 201)


def test_a_body_that_is_not_json_is_status_415(api, user_a_headers):
    response = api.post(STATS, data="start_date=2026-06-01", content_type="application/x-www-form-urlencoded",
                        **user_a_headers)  # fmt: skip
    refused(response, 415, 415)


def test_only_post_is_allowed(api, user_a_headers):
    refused(api.get(STATS, **user_a_headers), 405, 405)


def test_unknown_fields_are_ignored(stats, june):
    assert result(stats({"page": 2, "foo": "bar"})) == result(stats({}))


# --- who may call, and whose calls are counted --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "http"),
    [
        ({}, 401),
        ({"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"}, 401),
        ({"HTTP_AUTHORIZATION": "Bearer"}, 401),
        ({"HTTP_X_API_KEY": "ssk_not-a-real-key"}, 401),
    ],
)
def test_a_missing_or_unknown_appkey_is_status_101(stats, headers, http):
    refused(stats({}, headers=headers), http, 101)


@pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
def test_a_service_key_is_not_an_appkey(stats, service_key, header):
    value = service_key if header == "HTTP_X_API_KEY" else f"Bearer {service_key}"
    refused(stats({}, headers={header: value}), 403, 101)


def test_an_account_sees_only_its_own_tool_calls(stats, tools, user_b, user_b_headers, admin_headers):
    tools(
        {"tool_id": "mine", "cost": "1.00"},
        {"tool_id": "theirs", "username": user_b.username, "cost": "2.00"},
        {"tool_id": "theirs", "username": user_b.username, "cost": "2.00", "at": NOW - timedelta(hours=1)},
        {"tool_id": "anonymous", "username": ""},
    )
    alice = result(stats({}))
    assert [t["tool_id"] for t in alice["by_tool"]] == ["mine"]
    assert (alice["summary"]["total_calls"], alice["summary"]["total_cost"]) == (1, 1.0)
    bob = result(stats({}, headers=user_b_headers))
    assert [(t["tool_id"], t["calls"]) for t in bob["by_tool"]] == [("theirs", 2)]
    assert bob["summary"]["total_cost"] == 4.0
    # An administrator is an account too: its appkey counts its own calls, none here.
    assert result(stats({}, headers=admin_headers))["summary"]["total_calls"] == 0


def test_another_accounts_tool_id_shows_nothing(stats, tools, user_b):
    tools({"tool_id": "theirs", "username": user_b.username})
    assert result(stats({"tool_id": "theirs"}))["summary"]["total_calls"] == 0


def test_every_answer_has_its_own_request_id(stats):
    ids = {stats({}).json()["request_id"] for _ in range(3)} | {stats({"group_by": "x"}).json()["request_id"]}
    assert len(ids) == 4


# --- cost ------------------------------------------------------------------------------------------


@pytest.fixture
def busy(post_json, service_headers, user_a, user_b):
    """Two accounts, 15 tools, a call every 5 hours over 90 days (partial hours everywhere)."""
    body = [
        {"request_id": f"busy-{i}", "username": (user_a if i % 3 else user_b).username, "tool_id": f"t{i % 15}",
         "created_at": (NOW - timedelta(hours=5 * i, minutes=7)).isoformat(), "cost": "0.01"}
        for i in range(430)
    ]  # fmt: skip
    assert post_json("/api/ingest/tool-calls", body, **service_headers).status_code == 201


@pytest.mark.parametrize("group_by", ["day", "hour", "tool"])
@pytest.mark.parametrize(("start", "end"), [("2026-03-06", "2026-06-03"), ("2026-06-03", "2026-06-03")])
def test_an_answer_costs_the_same_few_queries_however_long_the_range(
    stats, busy, group_by, start, end, django_assert_max_num_queries
):
    stats({})  # the token's last use is recorded once, not on every call
    with django_assert_max_num_queries(7):  # the token; totals, tools and series, each rollups + raw edges
        answer = result(stats({"start_date": start, "end_date": end, "group_by": group_by}))
    assert answer["summary"]["total_calls"] > 0


def test_the_answer_agrees_with_the_raw_rows(stats, busy, user_a):
    answer = result(stats({"start_date": "2026-03-06", "end_date": "2026-06-03", "group_by": "hour"}))
    mine = ToolCall.objects.filter(user=user_a, created_at__gte=datetime(2026, 3, 6, tzinfo=UTC))
    assert answer["summary"]["total_calls"] == mine.count() == sum(h["calls"] for h in answer["by_date"])
    assert {t["tool_id"]: t["calls"] for t in answer["by_tool"]} == {
        tool: mine.filter(tool_id=tool).count() for tool in mine.values_list("tool_id", flat=True)
    }
