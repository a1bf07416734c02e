"""The console log API: GET /api/logs, /api/logs/tools and /api/logs/errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from logs.models import Log
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    T0,
    at,
    fresh_throttles,
    record_calls,
    record_other_logs,
    record_tools,
    unix,
)
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

LOGS = "/api/logs"
TOOLS = "/api/logs/tools"
ERRORS = "/api/logs/errors"


def data(response) -> dict:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and set(body) == {"success", "data"}
    return body["data"]


def system_log(**fields) -> Log:
    (row,) = record_other_logs({"type": 5, **fields})
    return row


# --- /api/logs ---------------------------------------------------------------------------------------


def test_system_logs_have_the_documented_shape(api, service_headers):
    system_log(content="Chat request processed", username="123", model_name="gpt-4o", created_at=at(0))
    logs = data(api.get(LOGS, **service_headers))["logs"]
    assert logs == [
        {
            "timestamp": "2021-12-31T00:00:00Z",
            "level": "info",
            "message": "Chat request processed",
            "meta": {"userId": "123", "model": "gpt-4o"},
        }
    ]


def test_meta_carries_the_module_and_the_rows_other_keys(api, service_headers):
    system_log(content="x", module="scheduler", other={"job": "rollup", "took_ms": 12}, created_at=at(0))
    (log,) = data(api.get(LOGS, **service_headers))["logs"]
    assert log["meta"] == {"job": "rollup", "took_ms": 12, "module": "scheduler"}


def test_system_logs_are_the_system_and_error_rows_newest_first(api, service_headers):
    system_log(content="boot", created_at=at(1))
    record_other_logs({"type": 4, "content": "disk full", "created_at": at(2)})
    record_other_logs(
        {"type": 1, "content": "top-up", "created_at": at(3)}, {"type": 3, "content": "m", "created_at": at(4)}
    )
    record_calls({"created_at": at(5)}, {"created_at": at(6), "success": False, "error": "upstream 500"})
    messages = [log["message"] for log in data(api.get(LOGS, **service_headers))["logs"]]
    assert messages == ["upstream 500", "disk full", "boot"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["d"]),
        ("info", ["i"]),
        ("warn", ["w"]),
        ("warning", ["w"]),
        ("WARN", ["w"]),
        ("error", ["e2", "e"]),
        ("", ["e2", "w", "i", "e", "d"]),
    ],
)
def test_level_filters_by_level(api, service_headers, level, expected):
    system_log(content="d", level="debug", created_at=at(1))
    record_other_logs({"type": 4, "content": "e", "created_at": at(2)})
    system_log(content="i", created_at=at(3))
    system_log(content="w", level="warn", created_at=at(4))
    system_log(content="e2", level="error", created_at=at(5))
    logs = data(api.get(LOGS, {"level": level}, **service_headers))["logs"]
    assert [log["message"] for log in logs] == expected


def test_limit_defaults_to_50_and_is_capped_at_500(api, service_headers):
    Log.objects.bulk_create([Log(type=5, content=str(i), created_at=at(i)) for i in range(520)])
    assert len(data(api.get(LOGS, **service_headers))["logs"]) == 50
    assert len(data(api.get(LOGS, {"limit": 3}, **service_headers))["logs"]) == 3
    assert len(data(api.get(LOGS, {"limit": 10_000}, **service_headers))["logs"]) == 500


@pytest.mark.parametrize(
    "before",
    [
        "2021-12-31T00:00:05Z",
        "2021-12-31T08:00:05+08:00",
        "2021-12-31T00:00:05",  # no offset: TIME_ZONE (UTC)
        str(unix(at(5))),
        str(unix(at(5)) * 1000),  # JavaScript's milliseconds
        f"{unix(at(5))}.0",
    ],
)
def test_before_takes_iso_8601_or_unix_time(api, service_headers, before):
    for i in range(8):
        system_log(content=str(i), created_at=at(i))
    logs = data(api.get(LOGS, {"before": before}, **service_headers))["logs"]
    assert [log["message"] for log in logs] == ["4", "3", "2", "1", "0"]


def test_paging_back_with_before_visits_every_row_once_even_across_equal_timestamps(api, service_headers):
    # Groups of rows that share a timestamp, so page ends fall inside groups.
    Log.objects.bulk_create([Log(type=5, content=str(i), created_at=at(i // 4)) for i in range(43)])
    expected = list(Log.objects.order_by("-created_at", "-id").values_list("content", flat=True))
    seen: list[str] = []
    params: dict = {"limit": 5}
    while True:
        logs = data(api.get(LOGS, params, **service_headers))["logs"]
        if not logs:
            break
        seen += [log["message"] for log in logs]
        params = {"limit": 5, "before": logs[-1]["timestamp"]}
    assert seen == expected


def test_timestamps_keep_their_fraction_of_a_second(api, service_headers):
    system_log(content="x", created_at=at(1.25))
    (log,) = data(api.get(LOGS, **service_headers))["logs"]
    assert log["timestamp"] == "2021-12-31T00:00:01.250000Z"


@pytest.mark.parametrize("path", [LOGS, TOOLS, ERRORS])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "all"}, "limit"),
        ({"before": "yesterday"}, "before"),
        ({"before": "2021-02-30T00:00:00Z"}, "before"),
        ({"before": "-5"}, "before"),
        ({"before": "99999999999"}, "before"),
        ({"before": "0001-01-01T00:00:00+05:00"}, "before"),
    ],
)
def test_bad_parameters_answer_400_in_the_console_envelope(api, service_headers, path, params, named):
    response = api.get(path, params, **service_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"].startswith(f"{named}:"), body


def test_an_unknown_level_answers_400(api, service_headers):
    response = api.get(LOGS, {"level": "fatal"}, **service_headers)
    assert response.status_code == 400 and response.json()["error"].startswith("level:")


def test_an_empty_table_is_an_empty_list(api, service_headers):
    assert data(api.get(LOGS, **service_headers)) == {"logs": []}
    assert data(api.get(TOOLS, **service_headers)) == {"logs": []}
    assert data(api.get(ERRORS, **service_headers)) == {"errors": []}


# --- /api/logs/tools -------------------------------------------------------------------------------


@pytest.fixture
def tools(db):
    record_tools(
        {"tool_id": "get_weather", "username": "123456", "args": {"city": "北京"}, "result": {"temp": 15},
         "duration_ms": 1500, "created_at": at(10)},
        {"tool_id": "search", "username": "123456", "args": {"q": "x"}, "success": False, "created_at": at(20)},
        {"tool_id": "get_weather", "username": "777", "args": {}, "result": None, "created_at": at(30)},
    )  # fmt: skip
    return list(ToolCall.objects.order_by("created_at"))


def test_tool_logs_have_the_documented_shape(api, service_headers, tools):
    logs = data(api.get(TOOLS, {"toolName": "get_weather", "userId": "123456"}, **service_headers))["logs"]
    assert logs == [
        {
            "id": str(tools[0].pk),
            "toolName": "get_weather",
            "args": {"city": "北京"},
            "result": {"temp": 15},
            "status": "success",
            "duration": 1500,
            "userId": "123456",
            "timestamp": "2021-12-31T00:00:10Z",
        }
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [2, 1, 0]),
        ({"toolName": "get_weather"}, [2, 0]),
        ({"toolName": "nope"}, []),
        ({"userId": "123456"}, [1, 0]),
        ({"status": "success"}, [2, 0]),
        ({"status": "error"}, [1]),
        ({"toolName": "get_weather", "status": "success", "userId": "777"}, [2]),
        ({"limit": 2}, [2, 1]),
        ({"before": "2021-12-31T00:00:30Z"}, [1, 0]),
        ({"toolName": "", "userId": "", "status": "", "limit": "", "before": ""}, [2, 1, 0]),
    ],
)
def test_tool_logs_filter_newest_first(api, service_headers, tools, params, expected):
    logs = data(api.get(TOOLS, params, **service_headers))["logs"]
    assert [log["id"] for log in logs] == [str(tools[i].pk) for i in expected]


def test_a_failed_tool_call_has_status_error_and_no_duration(api, service_headers, tools):
    logs = data(api.get(TOOLS, {"status": "error"}, **service_headers))["logs"]
    assert (logs[0]["status"], logs[0]["duration"], logs[0]["result"]) == ("error", None, None)


def test_an_unknown_status_answers_400(api, service_headers):
    response = api.get(TOOLS, {"status": "failed"}, **service_headers)
    assert response.status_code == 400 and response.json()["error"].startswith("status:")


def test_tool_logs_limit_defaults_to_50(api, service_headers):
    ToolCall.objects.bulk_create([ToolCall(tool_id="t", tool_name="t", created_at=at(i)) for i in range(60)])
    assert len(data(api.get(TOOLS, **service_headers))["logs"]) == 50
    assert len(data(api.get(TOOLS, {"limit": 501}, **service_headers))["logs"]) == 60


# --- /api/logs/errors ---------------------------------------------------------------------------------


def test_a_failed_llm_call_is_an_error_with_its_channel_and_model(api, service_headers):
    record_calls(
        {"model_name": "gpt-4o", "channel_id": 3, "channel_name": "openai-main", "success": False,
         "error": "API rate limit exceeded", "created_at": at(0)}
    )  # fmt: skip
    assert data(api.get(ERRORS, **service_headers)) == {
        "errors": [
            {
                "timestamp": "2021-12-31T00:00:00Z",
                "error": "API rate limit exceeded",
                "stack": "",
                "context": {"channel": "openai-main", "model": "gpt-4o"},
            }
        ]
    }


def test_an_error_log_brings_its_stack_and_context(api, service_headers):
    record_other_logs(
        {"type": 4, "content": "boom", "created_at": at(0),
         "other": {"stack": "Traceback ...", "context": {"job": "rollup"}}}
    )  # fmt: skip
    (error,) = data(api.get(ERRORS, **service_headers))["errors"]
    assert error == {"timestamp": "2021-12-31T00:00:00Z", "error": "boom", "stack": "Traceback ...",
                     "context": {"job": "rollup"}}  # fmt: skip


def test_errors_are_only_error_rows_newest_first_and_page_back(api, service_headers):
    record_other_logs(
        {"type": 4, "content": "old", "created_at": at(1)},
        {"type": 5, "content": "system", "created_at": at(2)},
        {"type": 4, "content": "new", "created_at": at(3)},
    )
    record_calls({"created_at": at(4)})
    errors = data(api.get(ERRORS, **service_headers))["errors"]
    assert [e["error"] for e in errors] == ["new", "old"]
    errors = data(api.get(ERRORS, {"limit": 1, "before": errors[0]["timestamp"]}, **service_headers))["errors"]
    assert [e["error"] for e in errors] == ["old"]


def test_errors_limit_defaults_to_50(api, service_headers):
    Log.objects.bulk_create([Log(type=4, success=False, content=str(i), created_at=T0 + timedelta(seconds=i)) for i in range(55)])
    assert len(data(api.get(ERRORS, **service_headers))["errors"]) == 50


# --- queries -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LOGS, TOOLS, ERRORS])
def test_a_page_costs_the_same_queries_for_any_size(api, service_headers, path, django_assert_max_num_queries):
    record_calls(*[{"created_at": at(i), "success": False, "channel_id": i % 4 + 1, "username": f"u{i % 3}"}
                   for i in range(60)])  # fmt: skip
    record_tools(*[{"created_at": at(i), "username": f"u{i % 3}"} for i in range(60)])
    api.get(path, **service_headers)  # the key's last use is written once
    with django_assert_max_num_queries(3):  # the key, the page, the rest of a tie
        body = data(api.get(path, {"limit": 60}, **service_headers))
    assert len(next(iter(body.values()))) == 60
