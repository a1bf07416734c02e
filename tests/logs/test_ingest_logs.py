"""POST /api/ingest/logs: top-up, manage, error and system log rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from logs.models import Log
from tests.ingest_support import LLM_CALLS, LOGS, assert_nothing_stored, stored_counts

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def post(post_json, service_headers):
    def send(body, path: str = LOGS):
        return post_json(path, body, **service_headers)

    return send


def test_one_system_log_is_stored(post):
    response = post({"type": 5, "content": "bot restarted", "created_at": "2024-05-01T10:00:00Z"})

    assert response.status_code == 201
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0}
    row = Log.objects.get()
    assert row.type == Log.Type.SYSTEM
    assert row.level == Log.Level.INFO
    assert row.success is True
    assert row.content == "bot restarted"
    assert row.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.request_id is None


def test_a_batch_of_every_accepted_type_is_stored(post):
    batch = [
        {"type": 1, "username": "alice", "quota": 500_000, "content": "top-up"},
        {"type": 3, "username": "root", "content": "disabled channel 3"},
        {"type": 4, "content": "ValueError: bad", "other": {"stack": "Traceback …", "context": {"chat": "g1"}}},
        {"type": 5, "level": "warn", "content": "slow database"},
    ]

    response = post(batch)

    assert response.json() == {"received": 4, "created": 4, "duplicates": 0}
    assert sorted(Log.objects.values_list("type", flat=True)) == [1, 3, 4, 5]


def test_an_error_log_keeps_its_stack_and_context(post):
    other = {"stack": "Traceback (most recent call last):\n  …", "context": {"chat_id": "g1", "attempt": 2}}
    post({"type": 4, "content": "KeyError: 'x'", "other": other})

    row = Log.objects.get()
    assert row.type == Log.Type.ERROR
    assert row.level == Log.Level.ERROR
    assert row.success is False
    assert row.other == other


def test_an_explicit_level_wins(post):
    post([{"type": 4, "level": "warn"}, {"type": 5, "level": "debug"}])
    assert dict(Log.objects.values_list("type", "level")) == {4: "warn", 5: "debug"}


def test_a_top_up_records_its_quota_and_account(post):
    post({"type": 1, "username": "carol", "quota": 1_000_000})

    row = Log.objects.get()
    carol = User.objects.get(username="carol")
    assert row.user == carol
    assert row.quota == 1_000_000
    assert not carol.has_usable_password()


def test_a_log_for_a_known_account_is_attached_to_it(post, user_a):
    post({"type": 3, "username": "alice"})
    assert Log.objects.get().user == user_a


@pytest.mark.parametrize("log_type", [0, 2, 6, "consume"])
def test_types_other_than_1_3_4_and_5_are_refused(log_type, post):
    before = stored_counts()
    response = post({"type": log_type})
    assert response.status_code == 400
    assert "type" in response.json()["errors"][0]["errors"]
    assert_nothing_stored(before)


def test_the_type_is_required(post):
    response = post({"content": "no type"})
    assert response.json()["errors"] == [{"index": 0, "errors": {"type": ["This field is required."]}}]


def test_resending_logs_with_request_ids_stores_nothing_twice(post):
    batch = [{"type": 5, "request_id": "a"}, {"type": 5, "request_id": "b"}]
    post(batch)
    assert post(batch).json() == {"received": 2, "created": 0, "duplicates": 2}
    assert Log.objects.count() == 2


def test_a_request_id_repeated_within_one_batch_is_stored_once(post):
    response = post([{"type": 5, "request_id": "a", "content": "first"}, {"type": 4, "request_id": "a"}])
    assert response.json() == {"received": 2, "created": 1, "duplicates": 1}
    assert Log.objects.get().content == "first"


def test_logs_without_a_request_id_are_never_duplicates(post):
    post([{"type": 5, "content": "tick"}, {"type": 5, "content": "tick"}])
    post({"type": 5, "content": "tick"})
    assert Log.objects.count() == 3


def test_a_log_may_not_reuse_the_request_id_of_an_llm_call(post):
    # One table, one idempotency key: a retried LLM call cannot turn into a log row.
    post({"model_name": "m", "request_id": "shared"}, path=LLM_CALLS)
    assert post({"type": 4, "request_id": "shared"}).json() == {"received": 1, "created": 0, "duplicates": 1}
    assert Log.objects.get().type == Log.Type.CONSUME


def test_one_bad_log_stores_nothing_of_the_batch(post):
    before = stored_counts()
    response = post([{"type": 5, "username": "erin"}, {"type": 5, "level": "loud"}, {"type": 1}])

    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert_nothing_stored(before)


def test_llm_call_fields_are_not_accepted_as_logs(post):
    response = post({"type": 4, "prompt_tokens": 5, "token_key": "sk-x"})
    assert set(response.json()["errors"][0]["errors"]) == {"prompt_tokens", "token_key"}
