"""What one ingest request costs the database: one look-up per dimension, the insert,
the rollups; no write for a credential's or a relay key's last use more than once a
minute (README: `last_used_at` is recorded at most once a minute)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from statsite.models import AccessToken, ServiceKey
from tests.conftest import issue_token
from tests.ingest_support import LLM_CALLS
from usage import rollups
from usage.models import RelayKey

pytestmark = pytest.mark.django_db

KEY = "sk-abcd1234efgh5678ijkl9012mnopwxyz"


def call(n: int, **fields) -> dict:
    return {"request_id": f"q-{n}", "model_name": "gpt-4o", "username": "alice", "token_key": KEY, "channel_id": 3} | fields


WRITE = re.compile(r'\b(INSERT INTO|UPDATE|DELETE FROM) "?(\w+)')
NAME = re.compile(r'"(\w+)"')


def statements(queries: CaptureQueriesContext) -> list[tuple[str, str]]:
    """(verb, table) of each data statement."""
    found = []
    for query in queries.captured_queries:
        sql = query["sql"]
        write = WRITE.search(sql)
        if write:
            found.append((write.group(1).split()[0], write.group(2)))
        elif sql.startswith("SELECT") and NAME.search(sql):
            found.append(("SELECT", NAME.search(sql).group(1)))
    return found


def test_a_single_record_costs_a_look_up_per_dimension_and_its_insert(
    post_json, service_headers, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(rollups, "apply", lambda kind, facts, **_: 0)  # the rollups' statements are theirs to count
    with django_capture_on_commit_callbacks(execute=True):
        post_json(LLM_CALLS, call(1), **service_headers)  # creates the account, key and channel

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        response = post_json(LLM_CALLS, call(2), **service_headers)

    assert response.status_code == 201
    assert statements(queries) == [
        ("SELECT", "statsite_servicekey"),
        ("SELECT", "logs_log"),  # stored before?
        ("SELECT", "auth_user"),
        ("SELECT", "usage_relaykey"),
        ("SELECT", "usage_channel"),
        ("SELECT", "usage_modelprice"),
        ("INSERT", "logs_log"),
    ]


def test_a_relay_key_last_use_moves_at_most_once_a_minute(
    post_json, service_headers, django_capture_on_commit_callbacks
):
    def last_use_after(n: int, created_at: str) -> datetime:
        with django_capture_on_commit_callbacks(execute=True):
            post_json(LLM_CALLS, call(n, created_at=created_at), **service_headers)
        return RelayKey.objects.get().last_used_at

    assert last_use_after(1, "2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert last_use_after(2, "2024-05-01T10:00:59Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert last_use_after(3, "2024-05-01T10:01:00Z") == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    assert last_use_after(4, "2024-05-01T09:00:00Z") == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize("credential", ["service key", "access token"])
def test_a_credential_last_use_is_written_at_most_once_a_minute(post_json, service_key, admin, credential):
    if credential == "service key":
        model, headers = ServiceKey, {"HTTP_X_API_KEY": service_key}
    else:
        model, headers = AccessToken, {"HTTP_AUTHORIZATION": f"Bearer {issue_token(admin)}"}

    post_json(LLM_CALLS, call(1), **headers)
    first = model.objects.get().last_used_at
    with CaptureQueriesContext(connection) as queries:
        post_json(LLM_CALLS, call(2), **headers)
    assert model.objects.get().last_used_at == first
    assert ("UPDATE", model._meta.db_table) not in statements(queries)

    model.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    post_json(LLM_CALLS, call(3), **headers)
    assert timezone.now() - model.objects.get().last_used_at < timedelta(seconds=5)
