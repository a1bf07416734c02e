"""GET /api/data/ (admin) and GET /api/data/self (user): usage per model and UTC hour,
in the gateway envelope `{"success", "message", "data"}`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

DATA = "/api/data/"
SELF = "/api/data/self"
# The gateway data document's own window: 2021-12-31T00:00:00Z .. 2022-01-01T00:00:00Z.
DOC_START = 1640908800
DOC_END = 1640995200
T0 = datetime(2021, 12, 31, tzinfo=UTC)
NOW = datetime(2022, 1, 1, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


@pytest.fixture(autouse=True)
def now(monkeypatch, db):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def record(post_json, service_headers):
    """Store LLM calls through the ingest endpoint, as production does."""

    def store(*calls: dict) -> None:
        body = []
        for i, call in enumerate(calls):
            fields = {"username": "alice", "model_name": "gpt-4", "prompt_tokens": 0, "completion_tokens": 0,
                      "quota": 0, **call}  # fmt: skip
            fields["created_at"] = fields["created_at"].isoformat()
            body.append(fields)
        response = post_json("/api/ingest/llm-calls", body, **service_headers)
        assert response.status_code == 201, response.json()

    return store


def data(api, path, params=None, **headers) -> list[dict]:
    response = api.get(path, params or {}, **headers)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    return body["data"]


def refused(api, path, params, status=400, **headers) -> str:
    response = api.get(path, params, **headers)
    assert response.status_code == status, response.json()
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "message"}
    return body["message"]


def hour(seconds: float) -> int:
    """Unix seconds of the start of the UTC hour holding T0 + SECONDS."""
    return unix(at(seconds).replace(minute=0, second=0, microsecond=0))


# --- the document's examples ---------------------------------------------------------------


def test_the_documents_admin_example_lists_one_accounts_usage_by_model_and_hour(
    api, record, make_user, admin_headers
):
    tester = make_user("testuser")
    record(
        {"username": "testuser", "model_name": "gpt-3.5-turbo", "created_at": at(86400 - 600),
         "prompt_tokens": 50, "completion_tokens": 30, "quota": 500},
        {"username": "testuser", "model_name": "gpt-3.5-turbo", "created_at": at(86400 - 60),
         "prompt_tokens": 10, "completion_tokens": 10, "quota": 100},
        {"username": "testuser", "model_name": "gpt-4", "created_at": at(86400 - 300),
         "prompt_tokens": 100, "completion_tokens": 50, "quota": 3000},
        {"username": "someone", "model_name": "gpt-4", "created_at": at(86400 - 300), "quota": 7},
    )  # fmt: skip
    rows = data(api, DATA + f"?start_timestamp={DOC_START}&end_timestamp={DOC_END}&username=testuser", **admin_headers)
    last_hour = hour(86400 - 600)
    assert rows == [
        {"model_name": "gpt-3.5-turbo", "count": 2, "quota": 600, "token_used": 100, "created_at": last_hour,
         "user_id": tester.pk, "username": "testuser"},
        {"model_name": "gpt-4", "count": 1, "quota": 3000, "token_used": 150, "created_at": last_hour,
         "user_id": tester.pk, "username": "testuser"},
    ]  # fmt: skip


def test_the_documents_self_example_lists_the_callers_usage_with_its_id_and_name(api, record, user_a):
    record(
        {"model_name": "gpt-3.5-turbo", "created_at": at(3600 * 5 + 1), "prompt_tokens": 1500, "completion_tokens": 500,
         "quota": 12500},
        {"model_name": "gpt-4", "created_at": at(3600 * 5 + 2), "prompt_tokens": 1000, "completion_tokens": 500,
         "quota": 30000},
    )  # fmt: skip
    # The document sends New-Api-User as "Bearer <id>".
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user_a)}", "HTTP_NEW_API_USER": f"Bearer {user_a.pk}"}
    rows = data(api, SELF + f"?start_timestamp={DOC_START}&end_timestamp={DOC_END}", **headers)
    assert rows == [
        {"model_name": "gpt-3.5-turbo", "count": 1, "quota": 12500, "token_used": 2000, "created_at": hour(3600 * 5),
         "user_id": user_a.pk, "username": "alice"},
        {"model_name": "gpt-4", "count": 1, "quota": 30000, "token_used": 1500, "created_at": hour(3600 * 5),
         "user_id": user_a.pk, "username": "alice"},
    ]  # fmt: skip


def test_a_new_api_user_header_naming_another_account_is_refused(api, user_a, user_b):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user_a)}", "HTTP_NEW_API_USER": str(user_b.pk)}
    refused(api, SELF, {}, status=401, **headers)


# --- what the rows hold -------------------------------------------------------------------------


def test_without_username_the_admin_sees_every_account_summed_without_account_fields(api, record, admin_headers):
    record(
        {"username": "alice", "created_at": at(100), "quota": 10, "prompt_tokens": 1},
        {"username": "bob", "created_at": at(200), "quota": 20, "completion_tokens": 2},
        {"username": "", "created_at": at(300), "quota": 40},
    )
    rows = data(api, DATA, {"start_timestamp": DOC_START, "end_timestamp": DOC_END}, **admin_headers)
    assert rows == [{"model_name": "gpt-4", "count": 3, "quota": 70, "token_used": 3, "created_at": DOC_START}]


def test_count_includes_failed_calls_while_quota_counts_only_successful_ones(api, record, admin_headers):
    record(
        {"created_at": at(10), "quota": 100, "prompt_tokens": 5, "completion_tokens": 5},
        {"created_at": at(20), "quota": 100, "prompt_tokens": 3, "success": False, "error": "upstream timeout"},
    )
    rows = data(api, DATA, {"start_timestamp": DOC_START, "end_timestamp": DOC_END}, **admin_headers)
    assert [(r["count"], r["quota"], r["token_used"]) for r in rows] == [(2, 100, 13)]


def test_rows_are_ordered_by_hour_then_model(api, record, admin_headers):
    record(
        {"model_name": "zeta", "created_at": at(3600 * 2 + 5)},
        {"model_name": "alpha", "created_at": at(3600 * 2 + 9)},
        {"model_name": "zeta", "created_at": at(3600 + 5)},
        {"model_name": "mid", "created_at": at(3600 * 3)},
        {"model_name": "alpha", "created_at": at(3600 * 3 + 1)},
    )
    rows = data(api, DATA, {"start_timestamp": DOC_START, "end_timestamp": DOC_END}, **admin_headers)
    assert [(r["created_at"], r["model_name"]) for r in rows] == [
        (hour(3600), "zeta"),
        (hour(7200), "alpha"),
        (hour(7200), "zeta"),
        (hour(10800), "alpha"),
        (hour(10800), "mid"),
    ]


def test_nothing_recorded_is_an_empty_list(api, admin_headers, user_a_headers):
    assert data(api, DATA, **admin_headers) == []
    assert data(api, SELF, **user_a_headers) == []


# --- the window ---------------------------------------------------------------------------------


def test_both_bounds_are_inclusive_to_the_second(api, record, admin_headers):
    start, end = at(3600 + 1800), at(3 * 3600 + 1800)
    record(
        {"created_at": start - timedelta(seconds=1), "quota": 1},
        {"created_at": start, "quota": 10},
        {"created_at": at(2 * 3600), "quota": 100},
        {"created_at": end + timedelta(milliseconds=900), "quota": 1000},
        {"created_at": end + timedelta(seconds=1), "quota": 10000},
    )
    rows = data(api, DATA, {"start_timestamp": unix(start), "end_timestamp": unix(end)}, **admin_headers)
    # A partial edge hour appears under its own hour, which may begin before start_timestamp.
    assert [(r["created_at"], r["quota"]) for r in rows] == [
        (hour(3600), 10),
        (hour(7200), 100),
        (hour(3 * 3600), 1000),
    ]


def test_equal_bounds_are_one_second(api, record, admin_headers):
    record({"created_at": at(50), "quota": 1}, {"created_at": at(50.5), "quota": 2}, {"created_at": at(51), "quota": 4})
    second = unix(at(50))
    rows = data(api, DATA, {"start_timestamp": second, "end_timestamp": second}, **admin_headers)
    assert [r["quota"] for r in rows] == [3]


def test_by_default_the_window_is_the_last_seven_days_up_to_now(api, record, admin_headers):
    record(
        {"created_at": NOW - timedelta(days=7, seconds=1), "quota": 1},
        {"created_at": NOW - timedelta(days=7), "quota": 10},
        {"created_at": NOW - timedelta(seconds=1), "quota": 100},
        {"created_at": NOW + timedelta(seconds=1), "quota": 1000},
    )
    rows = data(api, DATA, **admin_headers)
    assert sum(r["quota"] for r in rows) == 110


def test_without_a_start_the_window_begins_seven_days_before_the_end(api, record, admin_headers):
    end = at(0)
    record(
        {"created_at": end - timedelta(days=7), "quota": 1},
        {"created_at": end - timedelta(days=7) + timedelta(seconds=1), "quota": 10},
        {"created_at": end, "quota": 100},
        {"created_at": end + timedelta(seconds=1), "quota": 1000},
    )
    rows = data(api, DATA, {"end_timestamp": unix(end)}, **admin_headers)
    assert sum(r["quota"] for r in rows) == 110


def test_without_an_end_the_window_ends_now(api, record, admin_headers):
    record({"created_at": at(0), "quota": 1}, {"created_at": NOW + timedelta(seconds=5), "quota": 10})
    rows = data(api, DATA, {"start_timestamp": DOC_START}, **admin_headers)
    assert sum(r["quota"] for r in rows) == 1


def test_zero_or_blank_bounds_mean_the_defaults(api, record, admin_headers):
    record({"created_at": NOW - timedelta(days=8), "quota": 1}, {"created_at": NOW - timedelta(hours=1), "quota": 10})
    for params in ({"start_timestamp": 0, "end_timestamp": 0}, {"start_timestamp": "", "end_timestamp": " "}):
        assert sum(r["quota"] for r in data(api, DATA, params, **admin_headers)) == 10


def test_a_start_after_the_end_is_refused(api, admin_headers, user_a_headers):
    params = {"start_timestamp": DOC_END, "end_timestamp": DOC_START}
    assert refused(api, DATA, params, **admin_headers) == "end_timestamp: must not be before start_timestamp."
    assert refused(api, SELF, params, **user_a_headers) == "end_timestamp: must not be before start_timestamp."


def test_a_start_after_now_without_an_end_is_refused(api, admin_headers):
    message = refused(api, DATA, {"start_timestamp": unix(NOW) + 60}, **admin_headers)
    assert message.startswith("start_timestamp:")


@pytest.mark.parametrize("name", ["start_timestamp", "end_timestamp"])
@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "1e9", "99999999999999999999", "32503680000"])
def test_a_bad_timestamp_is_a_400_naming_it(api, admin_headers, user_a_headers, name, value):
    assert refused(api, DATA, {name: value}, **admin_headers).startswith(f"{name}:")
    assert refused(api, SELF, {name: value}, **user_a_headers).startswith(f"{name}:")


def test_a_window_longer_than_the_limit_is_refused(api, admin_headers, user_a_headers):
    end = DOC_END
    too_long = {"start_timestamp": end - 31 * 86400 - 1, "end_timestamp": end}
    message = refused(api, DATA, too_long, **admin_headers)
    assert message == (
        "start_timestamp: is more than 31 days before end_timestamp; the longest window is 31 days "
        "(DATA_MAX_RANGE_DAYS)."
    )
    assert refused(api, SELF, too_long, **user_a_headers) == message
    # From one midnight to another 31 days later is allowed, the end second included.
    assert data(api, DATA, {"start_timestamp": end - 31 * 86400, "end_timestamp": end}, **admin_headers) == []


def test_a_start_too_far_before_now_is_refused_without_an_end(api, admin_headers):
    assert refused(api, DATA, {"start_timestamp": unix(NOW) - 31 * 86400 - 1}, **admin_headers).startswith(
        "start_timestamp: is more than 31 days"
    )
    assert data(api, DATA, {"start_timestamp": unix(NOW) - 31 * 86400}, **admin_headers) == []


def test_the_limit_follows_the_setting_and_shortens_the_default_window(api, record, admin_headers, settings):
    settings.DATA_MAX_RANGE_DAYS = 2
    record({"created_at": NOW - timedelta(days=3), "quota": 1}, {"created_at": NOW - timedelta(days=1), "quota": 10})
    assert sum(r["quota"] for r in data(api, DATA, **admin_headers)) == 10
    message = refused(api, DATA, {"start_timestamp": unix(NOW) - 3 * 86400, "end_timestamp": unix(NOW)},
                      **admin_headers)  # fmt: skip
    assert "longest window is 2 days" in message


def _setting(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "DATA_MAX"))}
    code = "from django.conf import settings; print(settings.DATA_MAX_RANGE_DAYS)"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "STATSITE_VAR_DIR": str(tmp_path), **env},
    )  # fmt: skip


def test_the_limit_is_read_from_the_environment_with_a_default_of_31(tmp_path):
    assert _setting({}, tmp_path).stdout.split()[-1] == "31"
    assert _setting({"DATA_MAX_RANGE_DAYS": "90"}, tmp_path).stdout.split()[-1] == "90"
    refused_value = _setting({"DATA_MAX_RANGE_DAYS": "0"}, tmp_path)
    assert refused_value.returncode != 0 and "DATA_MAX_RANGE_DAYS" in refused_value.stderr


# --- accounts -------------------------------------------------------------------------------------


def test_an_unknown_username_is_an_empty_list(api, record, admin_headers):
    record({"created_at": at(10), "quota": 1})
    assert data(api, DATA, {"start_timestamp": DOC_START, "username": "nobody"}, **admin_headers) == []


def test_a_blank_username_means_every_account(api, record, admin_headers):
    record(
        {"username": "alice", "created_at": at(10), "quota": 1},
        {"username": "bob", "created_at": at(20), "quota": 2},
    )
    rows = data(api, DATA, {"start_timestamp": DOC_START, "username": ""}, **admin_headers)
    assert rows == [{"model_name": "gpt-4", "count": 2, "quota": 3, "token_used": 0, "created_at": DOC_START}]


def test_a_too_long_username_is_a_400(api, admin_headers):
    assert refused(api, DATA, {"username": "x" * 151}, **admin_headers).startswith("username:")


def test_a_user_sees_only_its_own_usage_whatever_it_asks(api, record, user_a, user_b, user_a_headers, user_b_headers):
    record(
        {"username": "alice", "created_at": at(10), "quota": 1},
        {"username": "bob", "created_at": at(20), "quota": 2, "model_name": "claude"},
    )
    window = {"start_timestamp": DOC_START, "end_timestamp": DOC_END}
    mine = data(api, SELF, {**window, "username": "bob"}, **user_a_headers)
    assert [(r["username"], r["user_id"], r["model_name"], r["quota"]) for r in mine] == [
        ("alice", user_a.pk, "gpt-4", 1)
    ]
    theirs = data(api, SELF, window, **user_b_headers)
    assert [(r["username"], r["user_id"], r["model_name"], r["quota"]) for r in theirs] == [
        ("bob", user_b.pk, "claude", 2)
    ]


def test_an_admin_asking_for_its_own_data_sees_only_its_own(api, record, admin, admin_headers):
    record(
        {"username": "root", "created_at": at(10), "quota": 5},
        {"username": "alice", "created_at": at(10), "quota": 1},
    )
    rows = data(api, SELF, {"start_timestamp": DOC_START}, **admin_headers)
    assert [(r["username"], r["quota"]) for r in rows] == [("root", 5)]


# --- who may call ---------------------------------------------------------------------------------


@pytest.fixture
def callers(user_a_headers, admin_headers, service_key):
    return {
        "none": {},
        "bad token": {"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"},
        "bad key": {"HTTP_X_API_KEY": "ssk_not-a-real-key"},
        "user": user_a_headers,
        "admin": admin_headers,
        "service": {"HTTP_X_API_KEY": service_key},
        "service bearer": {"HTTP_AUTHORIZATION": f"Bearer {service_key}"},
    }


@pytest.mark.parametrize(
    "path, caller, status",
    [
        (DATA, "none", 401), (DATA, "bad token", 401), (DATA, "bad key", 401), (DATA, "user", 403),
        (DATA, "admin", 200), (DATA, "service", 403), (DATA, "service bearer", 403),
        (SELF, "none", 401), (SELF, "bad token", 401), (SELF, "bad key", 401), (SELF, "user", 200),
        (SELF, "admin", 200), (SELF, "service", 403), (SELF, "service bearer", 403),
    ],
)  # fmt: skip
def test_who_may_call_each_endpoint(api, callers, path, caller, status):
    response = api.get(path, **callers[caller])
    assert response.status_code == status, response.json()
    body = response.json()
    assert body["success"] is (status == 200)
    if status != 200:
        assert body["message"]


# --- cost -----------------------------------------------------------------------------------------


def test_a_month_of_many_models_costs_a_fixed_number_of_queries(
    api, record, admin, admin_headers, user_a_headers, django_assert_max_num_queries
):
    base = NOW - timedelta(days=30)
    calls = []
    for h in range(0, 30 * 24, 7):
        for model in ("gpt-4", "claude", "qwen"):
            for who in ("alice", "bob"):
                moment = base + timedelta(hours=h, seconds=2000)
                calls.append({"username": who, "model_name": model, "created_at": moment, "quota": 1})
    for start in range(0, len(calls), 500):
        record(*calls[start : start + 500])
    # Partial first and last hours: both the rollups and the raw rows are read.
    window = {"start_timestamp": unix(base) + 1800, "end_timestamp": unix(NOW) - 1800}
    # Authentication (token, account, New-Api-User check) plus the account lookup and
    # two aggregate queries, whatever the number of hours and models.
    with django_assert_max_num_queries(6):
        rows = data(api, DATA, window, **admin_headers)
    assert len(rows) == 3 * len(range(0, 30 * 24, 7)) and sum(r["count"] for r in rows) == len(calls)
    with django_assert_max_num_queries(6):
        rows = data(api, DATA, {**window, "username": "alice"}, **admin_headers)
    assert sum(r["count"] for r in rows) == len(calls) // 2
    with django_assert_max_num_queries(6):
        rows = data(api, SELF, window, **user_a_headers)
    assert sum(r["count"] for r in rows) == len(calls) // 2
