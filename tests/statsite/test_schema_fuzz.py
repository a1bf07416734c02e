"""Schema fuzzing: every operation of the served OpenAPI schema, with generated
parameters and bodies (valid and invalid), called by every kind of caller.

For each generated request and each caller the answer must be documented:
no 5xx other than a documented 503, a status code the schema lists, a body of
the documented content type that conforms to the documented schema, and the
documented headers. The schema is the one the app serves at /api/schema/,
loaded through the in-process WSGI application at collection time, so a view
whose `@extend_schema` lies fails here.

Bounded: a fixed number of examples per operation, derandomized, so a run is
the same every time and takes about a minute.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import create_service_key, issue_token
from tests.statsite.test_system_events import AsgiClient

# Examples per operation (each sent by every caller): enough to reach every
# parameter's edge cases, few enough that the whole run stays near a minute.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EVENTS = "/api/system/events"
RELAY_KEY = "sk-fuzz-relay-key-0123456789"

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
# The coverage phase enumerates every boundary of every parameter, hundreds of
# requests per operation: minutes per run. The fuzzing phase (valid and invalid
# data, MAX_EXAMPLES per operation) plus the schema's own examples keep the run
# near a minute; tests/statsite/test_bad_input.py covers the boundaries by name.
schema.config.phases.coverage.enabled = False


def _seed(owner_username: str) -> None:
    """A little of every kind of fact, so list and stats answers have rows to
    shape (an empty database would check only empty lists)."""
    client = Client()
    key = create_service_key("fuzz-seed")
    now = timezone.now().replace(microsecond=0)
    headers = {"HTTP_X_API_KEY": key}
    batches: dict[str, list[dict[str, Any]]] = {
        "/api/ingest/llm-calls": [
            {"request_id": f"fuzz-llm-{n}", "username": owner_username if n % 2 else "other", "model_name": "gpt-4o",
             "token_key": RELAY_KEY, "token_name": "default", "channel_id": 1, "channel_name": "main",
             "prompt_tokens": 10 * n, "completion_tokens": n, "latency_ms": 100 + n, "chat_id": "g-1",
             "success": n != 3, "error": "upstream 502" if n == 3 else "", "created_at": now.isoformat()}
            for n in range(6)
        ],
        "/api/ingest/tool-calls": [
            {"request_id": f"fuzz-tool-{n}", "tool_id": "search", "tool_name": "Search", "username": owner_username,
             "success": n != 1, "duration_ms": 20, "args": {"q": "x"}, "result": {"n": n}, "chat_id": "g-1"}
            for n in range(3)
        ],
        "/api/ingest/messages": [
            {"chat_id": "g-1", "message_id": f"m-{n}", "chat_type": "group", "chat_name": "Group",
             "user_id": owner_username, "nickname": "A", "text": "hello", "sent_by_bot": n == 2}
            for n in range(3)
        ],
        "/api/ingest/logs": [
            {"request_id": "fuzz-log-1", "type": 5, "content": "started", "level": "info"},
            {"request_id": "fuzz-log-2", "type": 4, "content": "boom", "other": {"stack": "s", "context": {}}},
            {"request_id": "fuzz-log-3", "type": 1, "content": "top-up", "username": owner_username, "quota": 5},
        ],
    }
    for path, records in batches.items():
        response = client.post(path, records, content_type="application/json", **headers)
        assert response.status_code == 201, (path, response.content)


def _callers(make_user) -> dict[str, dict[str, str]]:
    user = make_user("fuzz-user")
    admin = make_user("fuzz-admin", staff=True)
    _seed(user.username)
    return {
        "service key": {"X-API-Key": create_service_key("fuzz")},
        "admin token": {"Authorization": f"Bearer {issue_token(admin)}"},
        "user token": {"Authorization": f"Bearer {issue_token(user)}", "New-Api-User": str(user.pk)},
        # The relay key is only a credential for the public token lookup; elsewhere it must be a clean 401.
        "relay key": {"Authorization": f"Bearer {RELAY_KEY}"},
    }


@pytest.fixture
def callers(db, make_user) -> dict[str, dict[str, str]]:
    """Headers of every kind of caller with valid credentials, and data to see."""
    return _callers(make_user)


@pytest.fixture
def stream_callers(transactional_db, make_user, monkeypatch) -> dict[str, dict[str, str]]:
    """The same for the event stream, whose hub reads the database from threads of
    its own: they must see committed rows, so this one commits."""
    from statsite.system import events

    monkeypatch.setattr(events, "STOP_GRACE_SECONDS", 0.2)
    return _callers(make_user)


def _opens_a_stream(case, caller: str) -> bool:
    # A valid staff or service credential on the event stream gets an endless
    # text/event-stream body, which a WSGI call would read forever. Those calls
    # go through the ASGI application with a bounded read instead (below).
    return case.path == EVENTS and caller in {"service key", "admin token"}


@pytest.fixture
def keep_the_test_connection(callers):
    """As Django's test client does: the WSGI handler would otherwise close the
    connection after each request (its autocommit is off inside the test's
    transaction), which on PostgreSQL ends the test's transaction under it.
    After `callers`, whose seeding test client connects the handlers again."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def generous_throttles(settings):
    """The throttles would answer 429 after the first few dozen examples; the
    fuzz wants the endpoints' own answers. The throttles have their own tests."""
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {scope: "100000/min" for scope in rates},
    }


@schema.exclude(path=EVENTS).parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_for_every_caller(case, callers, keep_the_test_connection):
    for headers in callers.values():
        # The generated case may carry its own Authorization (the token lookup documents one);
        # the caller's credential replaces it.
        case.call_and_validate(headers=headers, checks=CHECKS)
    # And with no credential but what the case itself sends (never a valid one).
    case.call_and_validate(checks=CHECKS)


def _check_stream_opens(case, headers: dict[str, str]) -> None:
    """The stream's start, through the ASGI application, read for at most a few
    seconds: a documented status and, for 200, the event-stream content type."""
    from urllib.parse import urlencode

    from statsite.asgi import application

    operation = case.operation.definition.raw
    documented = set(operation["responses"])
    query = urlencode({k: v for k, v in (case.query or {}).items() if k != "token"}, doseq=True)
    sent = {**{k: str(v) for k, v in (case.headers or {}).items()}, **headers}

    async def start() -> tuple[int, dict[bytes, bytes]]:
        client = AsgiClient(EVENTS, query, sent)
        task = client.start(application)
        message = await client.response_start()
        client.gone.set()
        await asyncio.wait_for(task, 10)
        return message["status"], dict(message["headers"])

    status, response_headers = asyncio.run(asyncio.wait_for(start(), 20))
    assert str(status) in documented, status
    if status == 200:
        assert response_headers[b"Content-Type"] == b"text/event-stream"


# The coverage phase: every boundary of every parameter and body field (missing,
# too long, wrong type, just outside a range), sent once by the caller each
# operation is for.
boundaries = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
boundaries.config.phases.fuzzing.enabled = False
boundaries.config.phases.examples.enabled = False

NATURAL_CALLER = {
    "/api/log/": "admin token", "/api/log/stat": "admin token", "/api/log/search": "admin token",
    "/api/data/": "admin token", "/api/log/self": "user token", "/api/log/self/stat": "user token",
    "/api/log/self/search": "user token", "/api/data/self": "user token", "/agent/stats": "user token",
    "/api/log/token": "relay key",
}


@boundaries.exclude(path=EVENTS).parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_boundary_of_every_operation_answers_as_documented(case, callers, keep_the_test_connection):
    caller = NATURAL_CALLER.get(case.path, "service key")
    case.call_and_validate(headers=callers[caller], checks=CHECKS)


@schema.include(path=EVENTS).parametrize()
@settings(max_examples=10, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_event_stream_answers_as_documented_for_every_caller(case, stream_callers):
    """Refusals are JSON and checked in full; a stream that opens is checked by its
    start (status, content type) and then dropped: its body never ends."""
    for caller, headers in stream_callers.items():
        if _opens_a_stream(case, caller):
            _check_stream_opens(case, headers)
        else:
            case.call_and_validate(headers=headers, checks=CHECKS)
    case.call_and_validate(checks=CHECKS)
