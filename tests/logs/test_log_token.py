"""GET /api/log/token: the public, cross-origin, throttled lookup of a relay key's logs."""

from __future__ import annotations

import pytest

from logs.models import Log
from tests.conftest import issue_token
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    at,
    fresh_throttles,
    many_calls,
    record_calls,
)
from usage.models import RelayKey

pytestmark = pytest.mark.django_db

TOKEN = "/api/log/token"
KEY = "sk-Zb3kD9qLm2Xr7TnV"
OTHER_KEY = "sk-other-key-123456"


@pytest.fixture
def rows(db):
    mine = record_calls(
        {"username": "alice", "token_key": KEY, "token_name": "api_token", "content": "API调用成功",
         "quota": 1000, "created_at": at(10), "channel_id": 1, "ip": "10.1.1.1",
         "other": {"admin_info": {"secret": True}, "model_ratio": 15.0}},
        {"username": "alice", "token_key": KEY, "token_name": "api_token", "created_at": at(20), "success": False},
    )  # fmt: skip
    record_calls({"username": "bob", "token_key": OTHER_KEY, "created_at": at(30)})
    return mine


def found(response) -> list[int]:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["message"] == ""
    return [item["id"] for item in body["data"]]


def test_the_documents_example_returns_the_keys_logs_newest_first(api, rows):
    response = api.get(f"{TOKEN}?key={KEY}", content_type="application/json")
    assert found(response) == [rows[1].id, rows[0].id]
    item = response.json()["data"][1]
    assert {"id", "type", "content", "model_name", "quota", "created_at"} <= set(item)
    assert (item["type"], item["content"], item["model_name"], item["quota"]) == (2, "API调用成功", "gpt-4", 1000)
    assert item["created_at"] == int(at(10).timestamp())
    # What the key's holder sees: no channel, no client address, no admin-only detail.
    assert not {"channel_id", "channel_name", "ip"} & set(item)
    assert item["other"] == '{"model_ratio":15.0}'


def test_the_key_may_be_given_without_its_prefix(api, rows):
    assert found(api.get(TOKEN, {"key": KEY.removeprefix("sk-")})) == [rows[1].id, rows[0].id]


@pytest.mark.parametrize("value", [KEY, KEY.removeprefix("sk-")])
def test_the_key_may_be_sent_as_a_bearer_token(api, rows, value):
    response = api.get(TOKEN, HTTP_AUTHORIZATION=f"Bearer {value}")
    assert found(response) == [rows[1].id, rows[0].id]


def test_the_key_parameter_wins_over_the_header(api, rows):
    response = api.get(TOKEN, {"key": KEY}, HTTP_AUTHORIZATION=f"Bearer {OTHER_KEY}")
    assert found(response) == [rows[1].id, rows[0].id]


def test_a_key_with_no_logs_has_an_empty_list(api, rows):
    key = RelayKey.objects.get(key_hash__isnull=False, logs__username="bob")
    Log.objects.filter(token=key).delete()
    assert found(api.get(TOKEN, {"key": OTHER_KEY})) == []


@pytest.mark.parametrize("value", ["sk-unknown", "unknown", "sk-", KEY.upper()])
def test_an_unknown_key_answers_401_in_the_gateway_envelope(api, rows, value):
    response = api.get(TOKEN, {"key": value})
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Unknown or disabled key."}


def test_a_disabled_key_answers_like_an_unknown_one(api, rows):
    RelayKey.objects.filter(logs__in=rows).update(status=RelayKey.Status.DISABLED)
    for response in (api.get(TOKEN, {"key": KEY}), api.get(TOKEN, HTTP_AUTHORIZATION=f"Bearer {KEY}")):
        assert response.status_code == 401
        assert response.json() == {"success": False, "message": "Unknown or disabled key."}


def test_an_account_token_is_no_relay_key(api, rows, make_user):
    response = api.get(TOKEN, HTTP_AUTHORIZATION=f"Bearer {issue_token(make_user('carol'))}")
    assert response.status_code == 401 and response.json()["success"] is False


def test_other_credentials_are_ignored_here(api, rows):
    response = api.get(TOKEN, {"key": KEY}, HTTP_X_API_KEY="not-a-service-key")
    assert found(response) == [rows[1].id, rows[0].id]


@pytest.mark.parametrize(
    ("params", "headers", "named"),
    [
        ({}, {}, "key"),
        ({"key": "   "}, {}, "key"),
        ({}, {"HTTP_AUTHORIZATION": "Basic abc"}, "key"),
        ({"key": "sk-" + "x" * 200}, {}, "key"),
        ({"key": KEY, "p": 0}, {}, "p"),
        ({"key": KEY, "page_size": "ten"}, {}, "page_size"),
    ],
)
def test_bad_parameters_answer_400_naming_them(api, rows, params, headers, named):
    response = api.get(TOKEN, params, **headers)
    assert response.status_code == 400
    assert response.json()["success"] is False and response.json()["message"].startswith(f"{named}:")


def test_a_key_with_more_than_a_thousand_logs_can_be_read_to_the_end(api, db):
    many_calls(1234, username="alice", token_key=KEY)
    expected = list(Log.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    seen: list[int] = []
    page = 1
    while True:
        ids = found(api.get(TOKEN, {"key": KEY, "p": page, "page_size": 100}))
        seen += ids
        if len(ids) < 100:
            break
        page += 1
    assert page == 13 and seen == expected


def test_pages_default_to_20_rows_and_are_capped_at_100(api, db):
    many_calls(150, token_key=KEY)
    assert len(found(api.get(TOKEN, {"key": KEY}))) == 20
    assert len(found(api.get(TOKEN, {"key": KEY, "page_size": 1000}))) == 100
    assert len(found(api.get(TOKEN, {"key": KEY, "page_size": 1000, "p": 2}))) == 50
    assert found(api.get(TOKEN, {"key": KEY, "p": 99})) == []


# --- cross-origin -------------------------------------------------------------------------------------


def test_it_allows_any_origin(api, rows):
    response = api.get(TOKEN, {"key": KEY}, HTTP_ORIGIN="https://third-party.example")
    assert response["Access-Control-Allow-Origin"] == "*"


def test_a_browser_preflight_is_answered(api, db):
    response = api.options(
        TOKEN,
        HTTP_ORIGIN="https://third-party.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, authorization",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in response["Access-Control-Allow-Headers"].lower()


def test_errors_carry_the_cors_header_too(api, db):
    response = api.get(TOKEN, {"key": "sk-nope"}, HTTP_ORIGIN="https://third-party.example")
    assert response.status_code == 401 and response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path",
    ["/api/log/", "/api/log/self", "/api/log/stat", "/api/log/search", "/api/logs", "/api/logs/errors"],
)
def test_no_other_log_endpoint_is_cross_origin(api, admin_headers, path):
    response = api.get(path, HTTP_ORIGIN="https://third-party.example", **admin_headers)
    assert "Access-Control-Allow-Origin" not in response


# --- throttling ---------------------------------------------------------------------------------------


@pytest.fixture
def two_per_minute(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "log_token": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def test_it_is_throttled_per_client_address_with_retry_after(api, rows, two_per_minute):
    assert api.get(TOKEN, {"key": KEY}).status_code == 200
    assert api.get(TOKEN, {"key": "sk-wrong"}).status_code == 401  # guesses count too
    response = api.get(TOKEN, {"key": KEY}, HTTP_ORIGIN="https://third-party.example")
    assert response.status_code == 429
    assert response.json()["success"] is False and "throttled" in response.json()["message"]
    assert 0 < int(response["Retry-After"]) <= 60
    assert response["Access-Control-Allow-Origin"] == "*"
    # Another client address has a budget of its own.
    assert api.get(TOKEN, {"key": KEY}, REMOTE_ADDR="10.9.8.7").status_code == 200


def test_the_token_rate_comes_from_the_settings(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["log_token"] == "60/min"


def test_a_page_is_two_queries_however_many_rows(api, db, django_assert_max_num_queries):
    many_calls(100, token_key=KEY, channel_id=1)
    with django_assert_max_num_queries(2):  # the key, the page
        assert len(found(api.get(TOKEN, {"key": KEY, "page_size": 100}))) == 100


def test_a_forged_forwarded_for_header_does_not_dodge_the_throttle(api, rows, two_per_minute):
    for n in range(2):
        assert api.get(TOKEN, {"key": KEY}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code == 200
    assert api.get(TOKEN, {"key": KEY}, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


def test_behind_one_trusted_proxy_the_forwarded_client_is_throttled(api, rows, two_per_minute, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for _ in range(2):
        assert api.get(TOKEN, {"key": KEY}, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 200
    assert api.get(TOKEN, {"key": KEY}, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
    assert api.get(TOKEN, {"key": KEY}, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 200
