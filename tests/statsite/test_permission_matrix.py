"""Who may call what: every endpoint x every kind of caller, one table.

The expected answer of each cell is derived from the endpoint's declared
audience (public, user, admin, service, admin-or-service) and its dialect's
error envelope, so a view whose permission or envelope drifts fails here. The
second half proves that user-scoped endpoints never show one account another
account's rows.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from statsite.models import AccessToken
from statsite.permissions import IsAccount, IsAdminAccount, IsAdminOrService, IsService
from tests.conftest import create_service_key, issue_token

RELAY_KEY = "sk-matrix-relay-key-0123456789"

NO_CREDENTIALS = "Authentication credentials were not provided."
MALFORMED = "Invalid Authorization header: expected 'Bearer <token>'"
BAD_TOKEN = "Invalid or revoked token"
WRONG_USER = "New-Api-User does not match the token's account"
UNKNOWN_RELAY_KEY = "Unknown or disabled key."

# Audiences, as the views declare them (statsite.permissions).
PUBLIC, USER, ADMIN, SERVICE, ADMIN_OR_SERVICE = "public", "user", "admin", "service", "admin-or-service"
FORBIDDEN_MESSAGE = {
    USER: IsAccount.message,
    ADMIN: IsAdminAccount.message,
    SERVICE: IsService.message,
    ADMIN_OR_SERVICE: IsAdminOrService.message,
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    audience: str
    dialect: str  # gateway, console, bare, metering, text
    body: Any = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


INGEST_BODY = {
    "/api/ingest/llm-calls": {"model_name": "gpt-4o"},
    "/api/ingest/tool-calls": {"tool_id": "search"},
    "/api/ingest/messages": {"chat_id": "matrix-chat"},
    "/api/ingest/logs": {"type": 5, "content": "matrix"},
}

ENDPOINTS = [
    # ingest
    *(Endpoint("POST", path, ADMIN_OR_SERVICE, "bare", body) for path, body in INGEST_BODY.items()),
    # gateway logs
    Endpoint("GET", "/api/log/", ADMIN, "gateway"),
    Endpoint("DELETE", "/api/log/?target_timestamp=1", ADMIN, "gateway"),
    Endpoint("GET", "/api/log/self", USER, "gateway"),
    Endpoint("GET", "/api/log/stat", ADMIN, "gateway"),
    Endpoint("GET", "/api/log/self/stat", USER, "gateway"),
    Endpoint("GET", "/api/log/search?keyword=x", ADMIN, "gateway"),
    Endpoint("GET", "/api/log/self/search?keyword=x", USER, "gateway"),
    Endpoint("GET", "/api/log/token", PUBLIC, "gateway"),
    # console logs
    Endpoint("GET", "/api/logs", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/logs/tools", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/logs/errors", ADMIN_OR_SERVICE, "console"),
    # gateway usage data
    Endpoint("GET", "/api/data/", ADMIN, "gateway"),
    Endpoint("GET", "/api/data/self", USER, "gateway"),
    # bot stats
    Endpoint("GET", "/llm/stats", SERVICE, "bare"),
    Endpoint("GET", "/messages/recent", SERVICE, "bare"),
    Endpoint("GET", "/messages/stats_by_chat", SERVICE, "bare"),
    # console stats
    Endpoint("GET", "/api/stats", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/stats/users", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/stats/groups", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/stats/models", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/stats/tools", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/stats/channels", ADMIN_OR_SERVICE, "console"),
    # tool metering
    Endpoint("POST", "/agent/stats", USER, "metering", {}),
    # system
    Endpoint("GET", "/api/system/status", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/system/info", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/system/health", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/api/system/events", ADMIN_OR_SERVICE, "console"),
    Endpoint("GET", "/healthz", PUBLIC, "text"),
]
EVENTS = "/api/system/events"

CALLERS = [
    "no credentials", "malformed header", "revoked token", "user A", "user B", "admin", "service key",
    "relay key", "wrong New-Api-User",
]


def expected(endpoint: Endpoint, caller: str) -> tuple[int, str | None]:
    """(status, error message or None for a success) that CALLER gets from ENDPOINT."""
    if endpoint.path == "/healthz":
        return 200, None
    if endpoint.path == "/api/log/token":
        # The relay key is this endpoint's only credential: a Bearer that is not a
        # known relay key is an unknown key; without one the key is missing.
        if caller == "relay key":
            return 200, None
        if caller in {"no credentials", "malformed header", "service key"}:  # (the service key is an X-API-Key)
            return 400, "key: This parameter is required (or send Authorization: Bearer sk-…)."
        return 401, UNKNOWN_RELAY_KEY
    refusal = {
        "no credentials": NO_CREDENTIALS,
        "malformed header": MALFORMED,
        "revoked token": BAD_TOKEN,
        "relay key": BAD_TOKEN,
        "wrong New-Api-User": WRONG_USER,
    }
    if caller in refusal:
        return 401, refusal[caller]
    allowed = {
        USER: {"user A", "user B", "admin"},
        ADMIN: {"admin"},
        SERVICE: {"service key"},
        ADMIN_OR_SERVICE: {"admin", "service key"},
    }[endpoint.audience]
    if caller in allowed:
        return (201 if endpoint.path.startswith("/api/ingest/") else 200), None
    return 403, FORBIDDEN_MESSAGE[endpoint.audience]


def check_envelope(endpoint: Endpoint, status: int, body: bytes, message: str | None) -> None:
    """The dialect's success or error envelope, and the exact error message."""
    if endpoint.dialect == "text":
        assert body.strip() == b"ok"
        return
    data = json.loads(body)
    if message is None:
        if endpoint.dialect == "gateway":
            assert data["success"] is True and data["message"] == "" and "data" in data
        elif endpoint.dialect == "console":
            assert data["success"] is True and "data" in data
        elif endpoint.dialect == "metering":
            assert data["status"] == 0 and data["msg"] == "ok" and data["request_id"].startswith("req_")
        else:
            assert isinstance(data, dict) and "detail" not in data
        return
    if endpoint.dialect == "gateway":
        assert data == {"success": False, "message": message}
    elif endpoint.dialect == "console":
        assert data == {"success": False, "error": message}
    elif endpoint.dialect == "metering":
        assert data["status"] == 101 and data["msg"] == message and data["result"] is None
        assert data["request_id"].startswith("req_")
    else:
        assert data == {"detail": message}


@pytest.fixture
def credentials(make_user) -> dict[str, dict[str, str]]:
    """Request headers of every kind of caller."""
    alice = make_user("alice")
    bob = make_user("bob")
    root = make_user("root", staff=True)
    revoked_raw = issue_token(root, name="old")
    AccessToken.objects.get(name="old").revoke()
    service = create_service_key("matrix")
    # The relay key exists: it is stored by an LLM call that used it.
    response = Client().post(
        "/api/ingest/llm-calls", {"model_name": "gpt-4o", "username": "root", "token_key": RELAY_KEY},
        content_type="application/json", HTTP_X_API_KEY=service,
    )
    assert response.status_code == 201
    alice_token = issue_token(alice)
    return {
        "no credentials": {},
        "malformed header": {"HTTP_AUTHORIZATION": "Bearer"},
        "revoked token": {"HTTP_AUTHORIZATION": f"Bearer {revoked_raw}"},
        "user A": {"HTTP_AUTHORIZATION": f"Bearer {alice_token}", "HTTP_NEW_API_USER": str(alice.pk)},
        "user B": {"HTTP_AUTHORIZATION": f"Bearer {issue_token(bob)}"},
        "admin": {"HTTP_AUTHORIZATION": f"Bearer {issue_token(root)}"},
        "service key": {"HTTP_X_API_KEY": service},
        "relay key": {"HTTP_AUTHORIZATION": f"Bearer {RELAY_KEY}"},
        "wrong New-Api-User": {"HTTP_AUTHORIZATION": f"Bearer {alice_token}", "HTTP_NEW_API_USER": str(bob.pk)},
    }


def call(endpoint: Endpoint, headers: dict[str, str]):
    client = Client()
    if endpoint.body is not None:
        return client.generic(
            endpoint.method, endpoint.path, json.dumps(endpoint.body), content_type="application/json", **headers
        )
    return client.generic(endpoint.method, endpoint.path, **headers)


def _cells(streaming: bool) -> list:
    return [
        pytest.param(endpoint, caller, id=f"{endpoint} | {caller}")
        for endpoint in ENDPOINTS
        for caller in CALLERS
        if (endpoint.path == EVENTS) == streaming
        # A stream that opens never ends: those cells are read through ASGI below.
        and not (endpoint.path == EVENTS and expected(endpoint, caller)[0] == 200)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint, caller", _cells(streaming=False))
def test_every_endpoint_answers_every_kind_of_caller_as_declared(credentials, endpoint, caller):
    check_cell(credentials, endpoint, caller)


# The event stream checks credentials in a worker thread, with a connection of
# its own: it must see committed rows.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint, caller", _cells(streaming=True))
def test_the_event_stream_refuses_every_kind_of_caller_it_does_not_declare(credentials, endpoint, caller):
    check_cell(credentials, endpoint, caller)


def check_cell(credentials: dict[str, dict[str, str]], endpoint: Endpoint, caller: str) -> None:
    status, message = expected(endpoint, caller)
    response = call(endpoint, credentials[caller])
    assert response.status_code == status, response.content
    check_envelope(endpoint, response.status_code, response.content, message)
    if status == 401 and endpoint.dialect != "text" and endpoint.audience != PUBLIC:
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caller", ["admin", "service key"])
def test_the_event_stream_opens_for_the_callers_it_declares(credentials, caller, monkeypatch):
    from statsite.system import events
    from tests.statsite.test_system_events import AsgiClient, _first_answer

    monkeypatch.setattr(events, "STOP_GRACE_SECONDS", 0.2)
    headers = {
        name[5:].replace("_", "-").title(): value for name, value in credentials[caller].items()
    }
    status, text = asyncio.run(asyncio.wait_for(_first_answer(AsgiClient(EVENTS, headers=headers), b"event: status"), 30))
    assert status == 200
    assert b"event: status" in text


def test_the_table_covers_every_route_of_the_url_configuration():
    """A new endpoint must be added to the table (and so get a declared audience)."""
    from django.urls import get_resolver

    def paths(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                yield from paths(pattern.url_patterns, route)
            else:
                yield "/" + route

    api_routes = {p for p in paths(get_resolver().url_patterns) if not p.startswith(("/admin/", "/api/schema/",
                                                                                      "/api/docs/"))}
    covered = {endpoint.path.split("?")[0] for endpoint in ENDPOINTS}
    assert api_routes <= covered, api_routes - covered


# --- one account never sees another's rows -------------------------------------------------------


@pytest.fixture
def two_accounts_data(credentials):
    """Rows of alice and of bob, each marked with the account's name everywhere it shows."""
    service = credentials["service key"]
    now = timezone.now().replace(microsecond=0).isoformat()
    client = Client()
    for who, quota in (("alice", 100), ("bob", 7000)):
        llm = [
            {"request_id": f"{who}-{n}", "username": who, "model_name": f"{who}-model", "token_name": f"{who}-key",
             "prompt_tokens": 10, "completion_tokens": 5, "quota": quota, "created_at": now, "group": f"{who}-group",
             "success": n != 2, "error": f"{who}-secret failure" if n == 2 else ""}
            for n in range(3)
        ]
        tools = [{"request_id": f"{who}-tool-{n}", "tool_id": f"{who}-tool", "username": who, "created_at": now}
                 for n in range(2)]
        logs = [{"request_id": f"{who}-topup", "type": 1, "username": who, "content": f"{who}-secret top-up",
                 "quota": quota}]
        for path, batch in (("/api/ingest/llm-calls", llm), ("/api/ingest/tool-calls", tools),
                            ("/api/ingest/logs", logs)):
            response = client.post(path, batch, content_type="application/json", **service)
            assert response.status_code == 201, response.content
    return credentials


USER_SCOPED = [
    Endpoint("GET", "/api/log/self?page_size=100", USER, "gateway"),
    Endpoint("GET", "/api/log/self/search?keyword=secret", USER, "gateway"),
    Endpoint("GET", "/api/log/self/search?keyword=", USER, "gateway"),
    Endpoint("GET", "/api/data/self", USER, "gateway"),
    Endpoint("POST", "/agent/stats", USER, "metering", {}),
    Endpoint("POST", "/agent/stats", USER, "metering", {"group_by": "tool"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", USER_SCOPED, ids=str)
@pytest.mark.parametrize("me, other", [("alice", "bob"), ("bob", "alice")])
def test_a_user_scoped_endpoint_shows_only_the_callers_rows(two_accounts_data, endpoint, me, other):
    caller = {"alice": "user A", "bob": "user B"}[me]
    response = call(endpoint, two_accounts_data[caller])
    assert response.status_code == 200, response.content
    text = response.content.decode()
    # The caller's own rows are there (so the check below could fail) ...
    assert me in text
    # ... and nothing of the other account's is.
    assert other not in text


@pytest.mark.django_db
@pytest.mark.parametrize("me, quota", [("alice", 200), ("bob", 14000)])
def test_the_own_stat_sums_only_the_callers_consumption(two_accounts_data, me, quota):
    caller = {"alice": "user A", "bob": "user B"}[me]
    response = call(Endpoint("GET", "/api/log/self/stat", USER, "gateway"), two_accounts_data[caller])
    assert response.status_code == 200
    # Two successful calls of the caller's (the third failed); the other account's quota differs.
    data = response.json()["data"]
    assert data["quota"] == quota
    assert data["rpm"] == 2 and data["tpm"] == 30


@pytest.mark.django_db
def test_an_administrator_sees_both_accounts_rows(two_accounts_data):
    """The markers are findable: the per-user checks above could fail."""
    response = call(Endpoint("GET", "/api/log/?page_size=100", ADMIN, "gateway"), two_accounts_data["admin"])
    text = response.content.decode()
    assert "alice-secret" in text and "bob-secret" in text


@pytest.mark.django_db
@pytest.mark.parametrize("caller", ["user A", "user B"])
def test_a_user_cannot_ask_for_another_accounts_rows_by_filter(two_accounts_data, caller):
    """Admin-only filters sent to the own endpoints are ignored or refused, never obeyed."""
    other = "bob" if caller == "user A" else "alice"
    for path in (f"/api/log/self?username={other}", f"/api/log/self/stat?username={other}",
                 f"/api/data/self?username={other}"):
        response = call(Endpoint("GET", path, USER, "gateway"), two_accounts_data[caller])
        assert response.status_code in (200, 400), (path, response.content)
        assert other not in response.content.decode().replace(f"username={other}", ""), path
        if path.startswith("/api/log/self/stat") and response.status_code == 200:
            assert response.json()["data"]["quota"] in (200, 14000)
            assert response.json()["data"]["quota"] != (14000 if other == "bob" else 200)
