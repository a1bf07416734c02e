"""GET /api/log/stat (admin) and GET /api/log/self/stat (user): quota, rpm, tpm."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    DOC_END,
    DOC_START,
    T0,
    at,
    fresh_throttles,
    freeze,
    record_calls,
    record_other_logs,
    unix,
)

pytestmark = pytest.mark.django_db

STAT = "/api/log/stat"
SELF_STAT = "/api/log/self/stat"
NOW = T0 + timedelta(hours=2)


def ago(seconds: float):
    return NOW - timedelta(seconds=seconds)


def call(**fields) -> dict:
    return {"username": "alice", "token_name": "api_token", "model_name": "gpt-4", "channel_id": 1,
            "group": "default", "prompt_tokens": 10, "completion_tokens": 20, "quota": 100, **fields}  # fmt: skip


@pytest.fixture
def now(monkeypatch, db):
    freeze(monkeypatch, NOW)
    return NOW


def stat(api, path, params=None, **headers) -> dict:
    response = api.get(path, params or {}, **headers)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    return body["data"]


def test_the_documents_examples_return_quota_rpm_and_tpm(api, now, make_user, admin_headers, user_a_headers):
    make_user("testuser")
    record_calls(call(username="testuser", created_at=at(1000)), call(created_at=at(2000)))
    admin_query = (
        "?type=2&start_timestamp=1640908800&end_timestamp=1640995200&username=testuser&token_name=api_token"
        "&model_name=gpt-4&channel=1&group=default"
    )
    assert stat(api, STAT + admin_query, **admin_headers) == {"quota": 100, "rpm": 0, "tpm": 0}
    self_query = (
        "?type=2&start_timestamp=1640908800&end_timestamp=1640995200&token_name=api_token&model_name=gpt-4"
        "&group=default"
    )
    assert stat(api, SELF_STAT + self_query, **user_a_headers) == {"quota": 100, "rpm": 0, "tpm": 0}


def test_nothing_recorded_is_all_zeros(api, now, admin_headers, user_a_headers):
    assert stat(api, STAT, **admin_headers) == {"quota": 0, "rpm": 0, "tpm": 0}
    assert stat(api, SELF_STAT, **user_a_headers) == {"quota": 0, "rpm": 0, "tpm": 0}


def test_quota_sums_the_consume_rows_of_the_window_with_the_end_second_included(api, now, admin_headers):
    record_calls(
        call(created_at=at(99), quota=1),
        call(created_at=at(100), quota=10),
        call(created_at=at(200.9), quota=100),
        call(created_at=at(201), quota=1000),
        call(created_at=at(150), quota=7, success=False),
    )
    record_other_logs({"type": 1, "username": "alice", "quota": 5000, "created_at": at(150)})
    window = {"start_timestamp": unix(at(100)), "end_timestamp": unix(at(200))}
    assert stat(api, STAT, window, **admin_headers)["quota"] == 110
    assert stat(api, STAT, **admin_headers)["quota"] == 1111
    assert stat(api, STAT, {"start_timestamp": unix(at(200))}, **admin_headers)["quota"] == 1100
    assert stat(api, STAT, {"end_timestamp": unix(at(99))}, **admin_headers)["quota"] == 1


def test_rpm_and_tpm_count_the_consume_requests_of_the_last_60_seconds(api, now, admin_headers):
    record_calls(
        call(created_at=ago(0)),
        call(created_at=ago(30), prompt_tokens=1, completion_tokens=2),
        call(created_at=ago(60)),  # the window's first instant
        call(created_at=ago(60.001)),  # just before it
        call(created_at=ago(3600)),
        call(created_at=ago(10), success=False),  # errors are not consumption
        call(created_at=NOW + timedelta(seconds=5)),  # not yet happened
    )
    assert stat(api, STAT, **admin_headers) | {"quota": None} == {"quota": None, "rpm": 3, "tpm": 63}


def test_rpm_and_tpm_are_live_whatever_the_window(api, now, admin_headers):
    record_calls(call(created_at=ago(5)), call(created_at=at(100), quota=1))
    past = {"start_timestamp": unix(at(0)), "end_timestamp": unix(at(200))}
    assert stat(api, STAT, past, **admin_headers) == {"quota": 1, "rpm": 1, "tpm": 30}


def test_rpm_follows_the_clock(api, monkeypatch, admin_headers, db):
    freeze(monkeypatch, NOW)
    record_calls(call(created_at=ago(30)))
    assert stat(api, STAT, **admin_headers)["rpm"] == 1
    freeze(monkeypatch, NOW + timedelta(seconds=31))
    assert stat(api, STAT, **admin_headers)["rpm"] == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"quota": 111, "rpm": 3, "tpm": 90}),
        ({"type": 0}, {"quota": 111, "rpm": 3, "tpm": 90}),
        ({"type": 2}, {"quota": 111, "rpm": 3, "tpm": 90}),
        ({"type": 1}, {"quota": 0, "rpm": 0, "tpm": 0}),
        ({"username": "bob"}, {"quota": 10, "rpm": 1, "tpm": 30}),
        ({"token_name": "other_token"}, {"quota": 1, "rpm": 1, "tpm": 30}),
        ({"model_name": "gpt-4"}, {"quota": 110, "rpm": 2, "tpm": 60}),
        ({"channel": 1}, {"quota": 101, "rpm": 2, "tpm": 60}),
        ({"channel": 0}, {"quota": 111, "rpm": 3, "tpm": 90}),
        ({"group": "vip"}, {"quota": 10, "rpm": 1, "tpm": 30}),
        ({"username": "alice", "channel": 1, "model_name": "gpt-4"}, {"quota": 100, "rpm": 1, "tpm": 30}),
        ({"username": "alice", "group": "vip"}, {"quota": 0, "rpm": 0, "tpm": 0}),
    ],
)
def test_every_filter_narrows_quota_rpm_and_tpm(api, now, make_user, admin_headers, params, expected):
    record_calls(
        call(created_at=ago(1), quota=100),
        call(created_at=ago(2), quota=1, token_name="other_token", model_name="claude-3"),
        call(created_at=ago(3), quota=10, username="bob", channel_id=2, group="vip"),
    )
    assert stat(api, STAT, params, **admin_headers) == expected


def test_a_user_stat_counts_only_the_callers_rows(api, now, user_a, user_b, user_a_headers, user_b_headers):
    record_calls(call(created_at=ago(1), quota=100), call(created_at=ago(2), quota=10, username="bob"))
    assert stat(api, SELF_STAT, **user_a_headers) == {"quota": 100, "rpm": 1, "tpm": 30}
    assert stat(api, SELF_STAT, **user_b_headers) == {"quota": 10, "rpm": 1, "tpm": 30}
    # username and channel are no parameters here: they cannot reach another account.
    assert stat(api, SELF_STAT, {"username": "bob", "channel": 2}, **user_a_headers)["quota"] == 100


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"token_name": "api_token"}, 100),
        ({"token_name": "nope"}, 0),
        ({"model_name": "claude-3"}, 1),
        ({"group": "vip"}, 1),
        ({"start_timestamp": unix(ago(1))}, 100),
        ({"type": 4}, 0),
    ],
)
def test_the_user_stat_filters(api, now, user_a, user_a_headers, params, expected):
    record_calls(
        call(created_at=ago(1), quota=100),
        call(created_at=ago(2), quota=1, model_name="claude-3", group="vip", token_name="t2"),
    )
    assert stat(api, SELF_STAT, params, **user_a_headers)["quota"] == expected


@pytest.mark.parametrize("path", [STAT, SELF_STAT])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"type": 6}, "type"),
        ({"type": "x"}, "type"),
        ({"start_timestamp": "abc"}, "start_timestamp"),
        ({"start_timestamp": -1}, "start_timestamp"),
        ({"end_timestamp": 10**15}, "end_timestamp"),
        ({"start_timestamp": DOC_END, "end_timestamp": DOC_START}, "end_timestamp"),
        ({"model_name": "m" * 129}, "model_name"),
        ({"group": "\x00"}, "group"),
    ],
)
def test_bad_parameters_answer_400_naming_them(api, now, path, params, named, admin_headers, user_a_headers):
    headers = admin_headers if path == STAT else user_a_headers
    response = api.get(path, params, **headers)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["message"].startswith(f"{named}:")


def test_a_bad_channel_answers_400(api, now, admin_headers):
    response = api.get(STAT, {"channel": "x"}, **admin_headers)
    assert response.status_code == 400 and response.json()["message"].startswith("channel:")


def test_blank_parameters_are_ignored(api, now, admin_headers):
    record_calls(call(created_at=ago(1)))
    query = "?type=&start_timestamp=&end_timestamp=&username=&token_name=&model_name=&channel=&group="
    assert stat(api, STAT + query, **admin_headers) == {"quota": 100, "rpm": 1, "tpm": 30}


@pytest.mark.parametrize("path", [STAT, SELF_STAT])
def test_a_stat_is_two_aggregate_queries_however_many_rows(
    api, now, user_a, path, admin_headers, user_a_headers, django_assert_max_num_queries
):
    record_calls(*[call(created_at=ago(i)) for i in range(50)])
    headers = admin_headers if path == STAT else user_a_headers
    api.get(path, **headers)  # the token's last use is written once
    with django_assert_max_num_queries(3):  # token lookup + quota + rpm/tpm
        data = stat(api, path, **headers)
    assert data == {"quota": 5000, "rpm": 50, "tpm": 1500}
