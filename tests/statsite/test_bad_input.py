"""Bad input across every dialect: query-string garbage on every GET endpoint,
bad bodies on the tool metering endpoint, credentials that are not text, and
search and filter text that looks like SQL. Each is a clear 4xx in the calling
dialect's envelope (or, for text that is merely odd, an ordinary answer), and
nothing is stored.

Ingest bodies (sizes, depth, NaN, numbers, timestamps, UTF-8) are covered field
by field in tests/statsite/test_ingest_limits.py, and gateway log search
wildcards in tests/logs/test_log_search.py.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import create_service_key, issue_token
from tests.ingest_support import assert_nothing_stored, stored_counts

# Every GET operation of the schema, with its documented query parameters.
_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
GET_PARAMETERS = [
    (path, param["name"], param.get("schema", {}).get("type", "string"))
    for path, operations in sorted(_SCHEMA["paths"].items())
    if "get" in operations and path not in {"/api/system/events", "/healthz"}
    for param in operations["get"].get("parameters", [])
    if param["in"] == "query"
]
GET_PATHS = sorted({path for path, _, _ in GET_PARAMETERS} | {
    path for path, ops in _SCHEMA["paths"].items() if "get" in ops and path not in {"/api/system/events", "/healthz"}
})

# The caller each endpoint is for, and its dialect's error envelope.
USER_PATHS = {"/api/log/self", "/api/log/self/stat", "/api/log/self/search", "/api/data/self"}
ADMIN_PATHS = {"/api/log/", "/api/log/stat", "/api/log/search", "/api/data/"}
GATEWAY_PATHS = USER_PATHS | ADMIN_PATHS | {"/api/log/token"}
BARE_PATHS = {"/llm/stats", "/messages/recent", "/messages/stats_by_chat"}
RELAY_KEY = "sk-bad-input-relay-key-0123"
# Page sizes that the documents clamp rather than refuse (page_size: 100; the console logs' limit: 500).
CLAMPED = {"page_size", "limit"}

# Raw query-string values (already percent-encoded where they must be).
GARBAGE = {
    "invalid UTF-8": "%ff%fe",
    "NUL": "%00",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "negative": "-1",
    "enormous": "9" * 40,
    "float overflow": "1e309",
    "fraction": "1.5",
    "far past": "-62135596800",
    "far future": "253402300800",
    "long text": "x" * 5000,
    "SQL": "%27%20OR%201%3D1%20--",
    "LIKE wildcards": "%25_%25",
    "lone surrogate": "%ed%a0%80",
}


def error_message(path: str, body: dict) -> str:
    """The error text of PATH's dialect envelope, asserting the envelope's shape."""
    if path in GATEWAY_PATHS:
        assert set(body) == {"success", "message"} and body["success"] is False, body
        return body["message"]
    if path in BARE_PATHS:
        assert set(body) == {"detail"}, body
        return body["detail"]
    assert set(body) == {"success", "error"} and body["success"] is False, body
    return body["error"]


@pytest.fixture
def headers_for(db, make_user):
    user = make_user("garbage-user")
    admin = make_user("garbage-admin", staff=True)
    service = {"HTTP_X_API_KEY": create_service_key("garbage")}
    user_headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user)}"}
    admin_headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(admin)}"}
    response = Client().post(
        "/api/ingest/llm-calls", {"model_name": "m", "username": "garbage-user", "token_key": RELAY_KEY},
        content_type="application/json", **service,
    )
    assert response.status_code == 201

    def headers(path: str) -> dict[str, str]:
        if path in USER_PATHS:
            return user_headers
        if path in ADMIN_PATHS:
            return admin_headers
        if path == "/api/log/token":
            return {"HTTP_AUTHORIZATION": f"Bearer {RELAY_KEY}"}
        return service

    return headers


@pytest.mark.django_db
@pytest.mark.parametrize("path, name, kind", GET_PARAMETERS, ids=[f"{p}?{n}" for p, n, _ in GET_PARAMETERS])
def test_garbage_in_any_query_parameter_is_a_clear_answer_in_the_envelope(headers_for, path, name, kind):
    before = stored_counts()
    client = Client()
    for label, raw in GARBAGE.items():
        if name == "key" and path == "/api/log/token":
            # The relay key itself: any text is an unknown key (or refused text).
            expected = {400, 401}
        elif label == "enormous" and name in CLAMPED and path.startswith("/api/log"):
            # Documented: a larger page than the largest gives the largest.
            expected = {200}
        elif kind in {"integer", "number"} and label not in {"negative", "far past", "far future"}:
            # Not a whole number (or out of any range): always refused.
            expected = {400}
        else:
            expected = {200, 400}
        response = client.get(f"{path}?{name}={raw}", **headers_for(path))
        assert response.status_code in expected, (label, response.status_code, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), label
        body = response.json()
        if response.status_code == 400:
            message = error_message(path, body)
            # The message names the parameter that was refused.
            assert name in message, (label, message)
        elif response.status_code == 401:
            assert error_message(path, body) == "Unknown or disabled key."
    assert_nothing_stored(before)


@pytest.mark.django_db
@pytest.mark.parametrize("path", GET_PATHS)
def test_garbage_parameter_names_and_encodings_never_break_an_endpoint(headers_for, path):
    """Undocumented names, repeated names, a bare `?`, `%` sequences that decode to
    nothing: ignored or refused, never a crash."""
    client = Client()
    for query in ("%ff=%ff", "&&&", "=", "a=1&a=2&a=3", "%", "%zz", "p[]=1", "x=" + "%ff" * 2000,
                  "&".join(f"k{n}=v" for n in range(500))):
        response = client.get(f"{path}?{query}", **headers_for(path))
        assert response.status_code in (200, 400), (query, response.content[:300])
        assert response["Content-Type"].startswith("application/json")
        if response.status_code == 400:
            error_message(path, response.json())


@pytest.mark.django_db
@pytest.mark.parametrize("path", GET_PATHS)
@pytest.mark.parametrize(
    "header",
    ["Bearer \xff\xfe", "Bearer " + "a" * 10_000, "Bearer sst_\x00", "Bearer a b", "\x00"],
    ids=["latin-1 bytes", "huge", "nul", "three parts", "nul only"],
)
def test_an_authorization_header_that_is_not_a_token_is_a_401_in_the_envelope(db, path, header):
    response = Client().get(path, HTTP_AUTHORIZATION=header)
    if path == "/api/log/token":
        # The token lookup reads the header as a relay key: unknown or missing.
        assert response.status_code in (400, 401)
    else:
        assert response.status_code == 401, response.content[:300]
    error_message(path, response.json())


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["\xff\xfe", "x" * 10_000, "\x00"], ids=["latin-1 bytes", "huge", "nul"])
def test_an_x_api_key_that_is_not_a_key_is_a_401(value):
    response = Client().get("/llm/stats", HTTP_X_API_KEY=value)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


# --- the tool metering body -------------------------------------------------------------------------------


@pytest.fixture
def metering(db, make_user):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(make_user('meter'))}"}

    def post(body: bytes, content_type: str = "application/json"):
        return Client().generic("POST", "/agent/stats", body, content_type=content_type, **headers)

    return post


def assert_metering_error(response, http: int, status: int) -> None:
    assert response.status_code == http, response.content[:300]
    body = response.json()
    assert set(body) == {"status", "msg", "result", "request_id"}
    assert body["status"] == status and body["result"] is None and body["msg"]
    assert body["request_id"].startswith("req_")


@pytest.mark.parametrize(
    "body",
    [
        b'{"start_date": NaN}', b'{"tool_id": Infinity}', b'{"tool_id": -Infinity}',
        b"\xff\xfe{}", b'{"tool_id": "\xff"}', b"[" * 100_000 + b"]" * 100_000, b"{" * 5000,
        b'{"tool_id": ' + b"1" * 5000 + b"}", b'"just a string"', b"null", b"[]", b"{}}",
    ],
    ids=["NaN", "Infinity", "-Infinity", "BOM garbage", "invalid UTF-8", "deep", "unclosed", "huge int",
         "string", "null", "array", "trailing"],
)
def test_a_bad_metering_body_is_status_201_in_the_envelope(metering, body):
    assert_metering_error(metering(body), 400, 201)


@pytest.mark.parametrize(
    "body",
    [
        {"tool_id": ["a"]}, {"tool_id": {"a": 1}}, {"group_by": True}, {"group_by": "%"},
        {"tool_id": "x" * 129}, {"start_date": 20260101}, {"start_date": True},
    ],
)
def test_a_metering_field_of_the_wrong_type_is_refused(metering, body):
    response = metering(json.dumps(body).encode())
    assert response.status_code == 400
    assert response.json()["status"] in (201, 203)


@pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31", "1969-12-31", "3000-01-01", "2026-02-30", "-1"])
def test_a_metering_date_far_in_the_past_or_future_is_status_203(metering, date):
    assert_metering_error(metering(json.dumps({"start_date": date, "end_date": date}).encode()), 400, 203)


def test_a_metering_body_larger_than_the_cap_is_413_in_the_envelope(metering, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    assert_metering_error(metering(json.dumps({"tool_id": "x" * 2000}).encode()), 413, 413)


def test_a_metering_body_that_is_not_json_is_415(metering):
    assert_metering_error(metering(b"tool_id=x", "application/x-www-form-urlencoded"), 415, 415)


def test_sql_and_like_wildcards_in_a_metering_tool_id_are_plain_text(metering, db):
    """A tool id of `%` or `_` matches no tool (it is compared as text, not a pattern)."""
    service = create_service_key("meter-seed")
    Client().post(
        "/api/ingest/tool-calls", [{"tool_id": "search", "username": "meter"}], content_type="application/json",
        HTTP_X_API_KEY=service,
    )
    assert metering(b"{}").json()["result"]["summary"]["total_calls"] == 1
    for tool_id in ("%", "_", "se%", "search' OR '1'='1", "search\\"):
        result = metering(json.dumps({"tool_id": tool_id}).encode()).json()["result"]
        assert result["summary"]["total_calls"] == 0, tool_id


# --- filters that look like patterns ----------------------------------------------------------------------


@pytest.mark.django_db
def test_console_tool_log_filters_treat_wildcards_and_quotes_as_text(service_headers):
    client = Client()
    calls = [
        {"tool_id": tool, "tool_name": tool, "username": user}
        for tool, user in (("a_b", "u_1"), ("axb", "ux1"), ("100%", "u_2"), ("1000", "ux2"), ("o'1", "u3"))
    ]
    assert client.post("/api/ingest/tool-calls", calls, content_type="application/json",
                       **service_headers).status_code == 201

    def names(query: str) -> list[str]:
        response = client.get(f"/api/logs/tools?{query}", **service_headers)
        assert response.status_code == 200
        return sorted(log["toolName"] for log in response.json()["data"]["logs"])

    assert names("toolName=a_b") == ["a_b"]
    assert names("toolName=%25") == []
    assert names("toolName=100%25") == ["100%"]
    assert names("userId=u_1") == ["a_b"]
    assert names("userId=u%25") == []
    assert names("toolName=o%271") == ["o'1"]
    assert names("toolName=%27%20OR%20%271%27%3D%271") == []
    assert names("userId=%27%20OR%20%271%27%3D%271") == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/log/", "/api/log/stat"])
def test_gateway_log_text_filters_treat_wildcards_and_quotes_as_text(path, admin_headers, service_headers):
    client = Client()
    calls = [
        {"model_name": model, "username": "u", "quota": 1, "token_name": "k"} for model in ("gpt_4", "gptx4", "o'1")
    ]
    assert client.post("/api/ingest/llm-calls", calls, content_type="application/json",
                       **service_headers).status_code == 201
    for model, expected in (("gpt_4", 1), ("gpt%25", 0), ("o%271", 1), ("%27%20OR%20%271%27%3D%271", 0), ("_", 0)):
        data = client.get(f"{path}?model_name={model}", **admin_headers).json()["data"]
        found = data["total"] if path == "/api/log/" else data["quota"]
        assert found == expected, model


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("token", ["%F0%9F%98%80", "%ff", "%00", "sst_%E2%80%A6"], ids=["emoji", "ff", "nul", "ellipsis"])
def test_an_event_stream_token_that_is_not_text_is_a_401_not_a_crash(token):
    """The stream reads `?token=` as a header would be read; a character no header
    can hold used to crash the credential check (found by the schema fuzz)."""
    response = Client().get(f"/api/system/events?token={token}")
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid or revoked token"}


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["sst_\x00abc", "sst_abc\x00", "ssk_\x00"])
def test_a_credential_with_a_nul_is_refused_before_the_database(token):
    """PostgreSQL refuses NUL in a query parameter: such a credential used to be a 500
    there (found by the schema fuzz on PostgreSQL)."""
    response = Client().get("/api/log/self", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Invalid or revoked token"}


@pytest.mark.django_db
def test_a_batch_item_that_is_not_an_object_has_its_errors_by_field(service_headers):
    """`errors` is always field → messages, as the schema documents (found by the fuzz)."""
    response = Client().post("/api/ingest/logs", [None, 5], content_type="application/json", **service_headers)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [0, 1]
    assert all(set(e["errors"]) == {"non_field_errors"} for e in errors)
