"""Concurrent retries: several clients sending overlapping batches at the same
moment must each get a 201, and every record must be stored exactly once.

Only PostgreSQL runs writers truly in parallel (SQLite takes one write lock per
database), so only there can the races these tests look for happen."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from logs.models import Log
from messaging.models import Chat, Message, Participant
from tests.conftest import create_service_key
from tests.ingest_support import LLM_CALLS, LOGS, MESSAGES, TOOL_CALLS
from usage.models import Channel, RelayKey, ToolCall

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's concurrent writers"),
    pytest.mark.django_db(transaction=True),
]

THREADS = 8
ROUNDS = 3


def post_concurrently(path: str, batches: list[list[dict]]) -> list[tuple[int, dict]]:
    """POST each batch from its own thread (own client, own connection), all
    released at once; returns (status, body) per batch."""
    key = create_service_key("concurrency")
    barrier = threading.Barrier(len(batches))
    results: list[tuple[int, dict] | None] = [None] * len(batches)

    def worker(index: int) -> None:
        try:
            client = APIClient()
            barrier.wait()
            response = client.post(path, batches[index], format="json", HTTP_X_API_KEY=key)
            results[index] = (response.status_code, response.json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(result is not None for result in results), "a client did not finish"
    return results  # type: ignore[return-value]


def overlapping_batches(make: Callable[[int], dict], *, seed: int) -> tuple[list[list[dict]], set[int]]:
    """THREADS batches of 60 records over 150 ids, each sharing most ids with
    its neighbours, each in its own order (so unique keys are met in different orders)."""
    rng = random.Random(seed)
    batches, ids = [], set()
    for t in range(THREADS):
        numbers = list(range(t * 12, t * 12 + 60))
        rng.shuffle(numbers)
        batches.append([make(n) for n in numbers])
        ids.update(numbers)
    return batches, ids


def assert_each_stored_once(results: list[tuple[int, dict]], distinct: int) -> None:
    assert [status for status, _ in results] == [201] * len(results), results
    assert sum(body["created"] for _, body in results) == distinct
    for status, body in results:
        assert body["created"] + body["duplicates"] == body["received"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_overlapping_llm_call_batches_store_each_call_once(round_):
    def call(n: int) -> dict:
        return {
            "request_id": f"call-{n}",
            "model_name": "gpt-4o",
            # Shared dimensions created on first sight, raced for by every client.
            "username": f"user-{n % 5}",
            "token_key": f"sk-relay-key-number-{n % 4:04}",
            "channel_name": f"upstream-{n % 3}",
            "prompt_tokens": n,
        }

    batches, ids = overlapping_batches(call, seed=round_)

    results = post_concurrently(LLM_CALLS, batches)

    assert_each_stored_once(results, len(ids))
    assert Log.objects.count() == len(ids)
    assert set(Log.objects.values_list("request_id", flat=True)) == {f"call-{n}" for n in ids}
    assert RelayKey.objects.count() == 4
    assert Channel.objects.count() == 3
    assert sorted(Log.objects.values_list("prompt_tokens", flat=True)) == sorted(ids)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_overlapping_channel_ids_and_named_keys_are_created_once(round_):
    def call(n: int) -> dict:
        return {
            "request_id": f"call-{n}",
            "model_name": "gpt-4o",
            "username": f"user-{n % 3}",
            "token_name": f"key-{n % 2}",
            "channel_id": n % 4,
            "channel_name": f"channel-{n % 4}",
        }

    batches, ids = overlapping_batches(call, seed=100 + round_)

    results = post_concurrently(LLM_CALLS, batches)

    assert_each_stored_once(results, len(ids))
    assert Log.objects.count() == len(ids)
    assert Channel.objects.count() == 4
    assert RelayKey.objects.count() == 6  # two names for each of three owners


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_overlapping_log_batches_store_each_log_once(round_):
    batches, ids = overlapping_batches(
        lambda n: {"type": 5, "request_id": f"log-{n}", "username": f"user-{n % 5}"}, seed=200 + round_
    )

    results = post_concurrently(LOGS, batches)

    assert_each_stored_once(results, len(ids))
    assert Log.objects.count() == len(ids)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_overlapping_tool_call_batches_store_each_call_once(round_):
    batches, ids = overlapping_batches(
        lambda n: {"request_id": f"tool-{n}", "tool_id": "search", "username": f"user-{n % 5}"}, seed=300 + round_
    )

    results = post_concurrently(TOOL_CALLS, batches)

    assert_each_stored_once(results, len(ids))
    assert ToolCall.objects.count() == len(ids)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_overlapping_message_batches_store_each_message_once(round_):
    def message(n: int) -> dict:
        return {
            "message_id": f"m{n}",
            "chat_id": f"chat-{n % 3}",
            "chat_name": f"Chat {n % 3}",
            "user_id": f"person-{n % 7}",
            "nickname": f"Person {n % 7}",
        }

    batches, ids = overlapping_batches(message, seed=400 + round_)

    results = post_concurrently(MESSAGES, batches)

    assert_each_stored_once(results, len(ids))
    assert Message.objects.count() == len(ids)
    assert Chat.objects.count() == 3
    assert Participant.objects.count() == 7


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_same_batch_resent_by_every_client_at_once_is_stored_once(round_):
    rng = random.Random(500 + round_)
    calls = [{"request_id": f"call-{n}", "model_name": "gpt-4o", "username": f"new-user-{n % 9}"} for n in range(200)]
    batches = [rng.sample(calls, len(calls)) for _ in range(THREADS)]

    results = post_concurrently(LLM_CALLS, batches)

    assert_each_stored_once(results, len(calls))
    assert Log.objects.count() == len(calls)
