"""GET /api/log/ (admin) and GET /api/log/self (user): paged gateway log lists."""

from __future__ import annotations

import json

import pytest

from logs.models import Log
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    DOC_END,
    DOC_START,
    T0,
    at,
    fresh_throttles,
    many_calls,
    record_calls,
    record_other_logs,
    unix,
)

pytestmark = pytest.mark.django_db

LIST = "/api/log/"
SELF = "/api/log/self"

ADMIN_FIELDS = [
    "id", "user_id", "created_at", "type", "content", "username", "token_name", "model_name", "quota",
    "prompt_tokens", "completion_tokens", "use_time", "is_stream", "channel_id", "channel_name", "token_id",
    "group", "ip", "other",
]  # fmt: skip
ADMIN_ONLY = {"channel_id", "channel_name", "ip"}


@pytest.fixture
def rows(user_a, user_b):
    """alice: a top-up, a call on channel 1, a failed call; bob: a call on channel 2."""
    topup = record_other_logs({"type": 1, "username": "alice", "quota": 5000, "created_at": at(50)})
    calls = record_calls(
        {
            "username": "alice", "token_key": "sk-alice-key-0001", "token_name": "api_token",
            "model_name": "gpt-4", "channel_id": 1, "channel_name": "OpenAI渠道", "group": "default",
            "created_at": at(100), "quota": 1000, "prompt_tokens": 50, "completion_tokens": 100,
            "latency_ms": 2000, "ip": "192.168.1.1", "content": "API调用成功",
            "other": {"model_ratio": 15.0, "admin_info": {"use_channel": ["1"]}},
        },
        {
            "username": "bob", "token_name": "bob_token", "model_name": "claude-3", "channel_id": 2,
            "channel_name": "Anthropic", "group": "vip", "created_at": at(200), "quota": 500,
        },
        {
            "username": "alice", "token_name": "api_token", "model_name": "gpt-4", "channel_id": 1,
            "channel_name": "OpenAI渠道", "group": "default", "created_at": at(300), "success": False,
            "error": "rate limited",
        },
    )  # fmt: skip
    return {"topup": topup[0], "alice_call": calls[0], "bob_call": calls[1], "alice_error": calls[2]}


def ids(response) -> list[int]:
    return [item["id"] for item in response.json()["data"]["items"]]


# --- shape -------------------------------------------------------------------------------------


def test_the_documents_admin_example_returns_the_documented_shape(api, admin_headers, make_user):
    make_user("testuser")
    (row,) = record_calls(
        {
            "username": "testuser", "token_name": "api_token", "model_name": "gpt-4", "channel_id": 1,
            "channel_name": "OpenAI渠道", "group": "default", "created_at": at(86_200), "quota": 1000,
            "prompt_tokens": 50, "completion_tokens": 100, "latency_ms": 2000, "ip": "192.168.1.1",
            "content": "API调用成功", "other": {"model_ratio": 15.0},
        }
    )  # fmt: skip
    query = (
        "?p=1&page_size=20&type=2&start_timestamp=1640908800&end_timestamp=1640995200&username=testuser"
        "&token_name=api_token&model_name=gpt-4&channel=1&group=default"
    )
    response = api.get(LIST + query, **admin_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    assert body["data"]["total"] == 1 and body["data"]["page"] == 1 and body["data"]["page_size"] == 20
    (item,) = body["data"]["items"]
    assert list(item) == ADMIN_FIELDS
    assert item == {
        "id": row.id, "user_id": row.user_id, "created_at": DOC_START + 86_200, "type": 2,
        "content": "API调用成功", "username": "testuser", "token_name": "api_token", "model_name": "gpt-4",
        "quota": 1000, "prompt_tokens": 50, "completion_tokens": 100, "use_time": 2, "is_stream": False,
        "channel_id": 1, "channel_name": "OpenAI渠道", "token_id": row.token_id, "group": "default",
        "ip": "192.168.1.1", "other": '{"model_ratio":15.0}',
    }  # fmt: skip


def test_the_documents_self_example_returns_the_documented_shape(api, user_a, user_a_headers):
    record_calls(
        {"username": "alice", "token_name": "api_token", "model_name": "gpt-4", "group": "default",
         "created_at": at(1000), "quota": 1000, "prompt_tokens": 50, "completion_tokens": 100}
    )  # fmt: skip
    query = (
        "?p=1&page_size=20&type=2&start_timestamp=1640908800&end_timestamp=1640995200"
        "&token_name=api_token&model_name=gpt-4&group=default"
    )
    body = api.get(SELF + query, **user_a_headers).json()
    assert body["success"] is True
    assert {"items", "total", "page", "page_size"} == set(body["data"])
    (item,) = body["data"]["items"]
    assert {"id", "user_id", "created_at", "type", "content", "token_name", "model_name", "quota",
            "prompt_tokens", "completion_tokens"} <= set(item)  # fmt: skip
    assert item["user_id"] == user_a.id and item["created_at"] == DOC_START + 1000


def test_user_items_leave_out_the_channel_the_ip_and_admin_info(api, rows, user_a_headers, admin_headers):
    mine = api.get(SELF, **user_a_headers).json()["data"]["items"]
    call = next(item for item in mine if item["id"] == rows["alice_call"].id)
    assert list(call) == [name for name in ADMIN_FIELDS if name not in ADMIN_ONLY]
    assert json.loads(call["other"]) == {"model_ratio": 15.0}

    everything = api.get(LIST, **admin_headers).json()["data"]["items"]
    call = next(item for item in everything if item["id"] == rows["alice_call"].id)
    assert json.loads(call["other"]) == {"model_ratio": 15.0, "admin_info": {"use_channel": ["1"]}}
    assert call["channel_name"] == "OpenAI渠道" and call["ip"] == "192.168.1.1"


def test_absent_ids_are_zero_and_absent_texts_empty(api, admin_headers, admin):
    record_other_logs({"type": 5, "content": "started", "created_at": T0})
    (item,) = api.get(LIST, **admin_headers).json()["data"]["items"]
    assert (item["user_id"], item["token_id"], item["channel_id"]) == (0, 0, 0)
    assert (item["channel_name"], item["ip"], item["username"], item["other"]) == ("", "", "", "{}")


def test_an_empty_table_is_an_empty_first_page(api, admin_headers):
    body = api.get(LIST, **admin_headers).json()
    assert body == {"success": True, "message": "", "data": {"items": [], "total": 0, "page": 1, "page_size": 20}}


# --- order and pages ---------------------------------------------------------------------------


def test_items_are_newest_first_and_ties_go_by_id_descending(api, admin_headers, admin):
    older = record_calls({"created_at": at(10)})
    tied = record_calls({"created_at": at(20)}, {"created_at": at(20)}, {"created_at": at(20)})
    newest = record_calls({"created_at": at(30)})
    expected = [newest[0].id, *sorted((row.id for row in tied), reverse=True), older[0].id]
    assert ids(api.get(LIST, **admin_headers)) == expected


def test_pages_default_to_20_rows_and_walk_to_the_last_partial_page(api, admin_headers, admin):
    many_calls(45, username="alice")
    everything = list(Log.objects.order_by("-created_at", "-id").values_list("id", flat=True))

    first = api.get(LIST, **admin_headers).json()["data"]
    assert (first["page"], first["page_size"], first["total"]) == (1, 20, 45)
    seen = [item["id"] for item in first["items"]]
    for page in (2, 3):
        data = api.get(LIST, {"p": page}, **admin_headers).json()["data"]
        assert data["page"] == page and data["total"] == 45
        seen += [item["id"] for item in data["items"]]
    assert len(data["items"]) == 5
    assert seen == everything


def test_a_page_beyond_the_end_is_empty_with_the_real_total(api, admin_headers, admin):
    many_calls(3)
    response = api.get(LIST, {"p": 7, "page_size": 2}, **admin_headers)
    assert response.status_code == 200
    assert response.json()["data"] == {"items": [], "total": 3, "page": 7, "page_size": 2}


def test_a_page_size_above_100_is_capped_at_100(api, admin_headers, admin):
    many_calls(130)
    data = api.get(LIST, {"page_size": 1000}, **admin_headers).json()["data"]
    assert data["page_size"] == 100 and len(data["items"]) == 100 and data["total"] == 130
    data = api.get(LIST, {"page_size": 1000, "p": 2}, **admin_headers).json()["data"]
    assert len(data["items"]) == 30


def test_the_self_list_pages_the_same_way(api, user_a, user_a_headers):
    many_calls(25, username="alice")
    data = api.get(SELF, {"p": 2, "page_size": 10}, **user_a_headers).json()["data"]
    assert (data["total"], data["page"], data["page_size"], len(data["items"])) == (25, 2, 10, 10)
    assert api.get(SELF, {"p": 4, "page_size": 10}, **user_a_headers).json()["data"]["items"] == []


def test_blank_parameters_mean_their_defaults(api, rows, admin_headers):
    query = "?p=&page_size=&type=&start_timestamp=&end_timestamp=&username=&token_name=&model_name=&channel=&group="
    data = api.get(LIST + query, **admin_headers).json()["data"]
    assert (data["total"], data["page"], data["page_size"]) == (4, 1, 20)


# --- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": 0}, ["alice_error", "bob_call", "alice_call", "topup"]),
        ({"type": 1}, ["topup"]),
        ({"type": 2}, ["bob_call", "alice_call"]),
        ({"type": 4}, ["alice_error"]),
        ({"type": 5}, []),
        ({"start_timestamp": unix(at(200))}, ["alice_error", "bob_call"]),
        ({"end_timestamp": unix(at(100))}, ["alice_call", "topup"]),
        ({"start_timestamp": 0, "end_timestamp": 0}, ["alice_error", "bob_call", "alice_call", "topup"]),
        ({"username": "bob"}, ["bob_call"]),
        ({"username": "nobody"}, []),
        ({"token_name": "api_token"}, ["alice_error", "alice_call"]),
        ({"model_name": "claude-3"}, ["bob_call"]),
        ({"model_name": "GPT-4"}, []),
        ({"channel": 1}, ["alice_error", "alice_call"]),
        ({"channel": 0}, ["alice_error", "bob_call", "alice_call", "topup"]),
        ({"group": "vip"}, ["bob_call"]),
        ({"type": 2, "channel": 1, "username": "alice", "group": "default"}, ["alice_call"]),
        ({"start_timestamp": unix(at(60)), "end_timestamp": unix(at(250)), "token_name": "api_token"}, ["alice_call"]),
    ],
)
def test_each_filter_alone_and_combined(api, rows, admin_headers, params, expected):
    response = api.get(LIST, params, **admin_headers)
    assert response.status_code == 200, response.json()
    assert ids(response) == [rows[name].id for name in expected]
    assert response.json()["data"]["total"] == len(expected)


def test_the_end_timestamp_includes_its_whole_second(api, admin_headers, admin):
    (inside,) = record_calls({"created_at": at(100.75)})
    record_calls({"created_at": at(101)})
    params = {"start_timestamp": unix(at(100)), "end_timestamp": unix(at(100))}
    assert ids(api.get(LIST, params, **admin_headers)) == [inside.id]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": 2}, ["alice_call"]),
        ({"token_name": "api_token", "type": 4}, ["alice_error"]),
        ({"start_timestamp": unix(at(60))}, ["alice_error", "alice_call"]),
        ({"model_name": "gpt-4", "group": "default"}, ["alice_error", "alice_call"]),
    ],
)
def test_the_self_list_filters_the_callers_rows(api, rows, user_a_headers, params, expected):
    assert ids(api.get(SELF, params, **user_a_headers)) == [rows[name].id for name in expected]


def test_a_user_never_sees_another_accounts_logs(api, rows, user_a_headers, user_b_headers):
    alice = ids(api.get(SELF, **user_a_headers))
    assert alice == [rows["alice_error"].id, rows["alice_call"].id, rows["topup"].id]
    assert ids(api.get(SELF, **user_b_headers)) == [rows["bob_call"].id]
    # username and channel are not parameters of the self list: they widen nothing.
    assert ids(api.get(SELF, {"username": "bob", "channel": 2}, **user_a_headers)) == alice
    assert ids(api.get(SELF, {"model_name": "claude-3"}, **user_a_headers)) == []


# --- bad parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, SELF])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"p": "abc"}, "p"),
        ({"p": 0}, "p"),
        ({"p": -1}, "p"),
        ({"p": 10**12}, "p"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": -5}, "page_size"),
        ({"page_size": "1.5"}, "page_size"),
        ({"type": 9}, "type"),
        ({"type": -1}, "type"),
        ({"type": "consume"}, "type"),
        ({"start_timestamp": "yesterday"}, "start_timestamp"),
        ({"start_timestamp": -1}, "start_timestamp"),
        ({"end_timestamp": "1.5e9"}, "end_timestamp"),
        ({"end_timestamp": 10**20}, "end_timestamp"),
        ({"start_timestamp": DOC_END, "end_timestamp": DOC_START}, "end_timestamp"),
        ({"token_name": "x" * 101}, "token_name"),
        ({"model_name": "gpt\x00"}, "model_name"),
    ],
)
def test_bad_parameters_answer_400_naming_them(api, path, params, named, user_a_headers, admin_headers):
    headers = admin_headers if path == LIST else user_a_headers
    response = api.get(path, params, **headers)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["message"].startswith(f"{named}:"), body


@pytest.mark.parametrize(
    ("params", "named"),
    [({"channel": "one"}, "channel"), ({"channel": -1}, "channel"), ({"username": "\x00"}, "username")],
)
def test_bad_admin_filters_answer_400_naming_them(api, admin_headers, params, named):
    response = api.get(LIST, params, **admin_headers)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{named}:")


def test_a_one_second_window_is_valid(api, admin_headers):
    response = api.get(LIST, {"start_timestamp": DOC_START, "end_timestamp": DOC_START}, **admin_headers)
    assert response.status_code == 200


# --- queries -----------------------------------------------------------------------------------------


def test_the_admin_list_costs_the_same_queries_for_any_page_size(api, admin_headers, django_assert_max_num_queries):
    record_calls(
        *[{"username": f"user{i % 5}", "channel_id": i % 3 + 1, "token_key": f"sk-key-{i % 4}", "created_at": at(i)}
          for i in range(60)]
    )  # fmt: skip
    api.get(LIST, **admin_headers)  # the token's last use is written once
    # token lookup; rows per day and per hour of LLM calls and of other rows (the
    # rollups: the total and where the page lies); the page (channels joined)
    with django_assert_max_num_queries(6):
        data = api.get(LIST, {"page_size": 60}, **admin_headers).json()["data"]
    assert len(data["items"]) == 60 and all(item["channel_name"] for item in data["items"])


def test_the_self_list_costs_the_same_queries_for_any_page_size(
    api, user_a, user_a_headers, django_assert_max_num_queries
):
    many_calls(60, username="alice", channel_id=1, token_key="sk-alice")
    api.get(SELF, **user_a_headers)
    with django_assert_max_num_queries(6):
        data = api.get(SELF, {"page_size": 60}, **user_a_headers).json()["data"]
    assert len(data["items"]) == 60
