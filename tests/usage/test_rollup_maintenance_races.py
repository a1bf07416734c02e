"""`rollups check` and `rollups rebuild` beside live ingest and purges.

A check compares each grain's facts and rollups of one instant, so batches committed
while it reads are no differences. A rebuild's slice holds off what would change what
it reads until it commits: ingest of its kind waits (and so cannot deadlock with it),
and a purge waits before moving the horizon (and so cannot delete rows of hours the
slice is recounting); between two slices both go on. Each race is set up step by step: the rebuild or check is stopped at a
known point on one connection while another connection does its work."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from logs.models import Log
from logs.services import purge
from tests.ingest_support import LLM_CALLS
from tests.usage.usage_support import check_clean
from usage import rollups
from usage.models import LLMRollup

pytestmark = pytest.mark.django_db(transaction=True)
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")

# How long a step that must wait is watched before it is taken to be waiting.
WAITING = 1.0
DONE = 60


def calls(prefix: str, n: int, *, days_ago: float = 0) -> list[dict]:
    when = (timezone.now() - timedelta(days=days_ago)).isoformat()
    return [
        {"request_id": f"{prefix}-{i}", "model_name": "gpt-4o", "username": f"user{i % 3}", "prompt_tokens": 1 + i,
         "created_at": when}
        for i in range(n)
    ]


def ingest(key: str, records: list[dict]) -> int:
    response = APIClient().post(LLM_CALLS, records, format="json", HTTP_X_API_KEY=key)
    assert response.status_code == 201, response.content
    return response.json()["created"]


class Step(threading.Thread):
    """FN on a connection of its own; what it returned or raised is kept."""

    def __init__(self, fn: Callable[[], object]):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            connections.close_all()
            self.finished.set()

    def outcome(self) -> object:
        self.join(DONE)
        assert self.finished.is_set(), "the step did not finish"
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def stopped(monkeypatch, name: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Stop the first call of `usage.rollups.<NAME>` until released: (reached, release)."""
    original = getattr(rollups, name)
    reached, release = threading.Event(), threading.Event()

    def stopping(*args, **kwargs):
        if not reached.is_set():
            reached.set()
            assert release.wait(DONE), "never released"
        return original(*args, **kwargs)

    monkeypatch.setattr(rollups, name, stopping)
    try:
        yield reached, release
    finally:
        release.set()


def all_time_requests() -> int:
    return LLMRollup.objects.filter(grain=rollups.stored_grain("total", "all")).aggregate(n=Sum("requests"))["n"]


@postgres_only
def test_a_check_beside_ingest_compares_one_instant(monkeypatch, service_key):
    ingest(service_key, calls("before", 30))
    # The check has read the horizon in its first grain's snapshot, not yet the rows.
    with stopped(monkeypatch, "_disagreeing") as (reached, release):
        check = Step(lambda: rollups.check("llm"))
        check.start()
        assert reached.wait(DONE)
        ingest(service_key, calls("during", 20))  # committed between the two reads
        release.set()
        differences = check.outcome()
    assert differences == []
    check_clean()


def beside_a_rebuild(monkeypatch, other: Callable[[], object]) -> tuple[object, object]:
    """Start OTHER once a rebuild of the LLM calls' rollups has taken its locks and read
    nothing yet, prove that OTHER waits for it, then let both finish: what each returned."""
    with stopped(monkeypatch, "_recount_statement") as (reached, release):
        rebuild = Step(lambda: rollups.rebuild("llm"))
        rebuild.start()
        assert reached.wait(DONE)
        step = Step(other)
        step.start()
        assert not step.finished.wait(WAITING), "it went on beside the rebuild"
        release.set()
        return rebuild.outcome(), step.outcome()


@postgres_only
def test_ingest_waits_for_a_rebuild_and_neither_fails(monkeypatch, service_key):
    ingest(service_key, calls("old", 40, days_ago=3))
    # A day no rollup row has yet: without the lock, nothing would hold this batch back.
    _, created = beside_a_rebuild(monkeypatch, lambda: ingest(service_key, calls("late", 25, days_ago=40)))
    assert created == 25
    assert all_time_requests() == 65
    check_clean()


@postgres_only
def test_a_purge_waits_for_a_rebuild_so_purged_hours_keep_their_history(monkeypatch, service_key):
    ingest(service_key, calls("old", 40, days_ago=10))
    ingest(service_key, calls("new", 10))
    cutoff = timezone.now() - timedelta(days=5)
    # The rebuild has read the horizon (none: nothing was ever purged), not yet the facts.
    _, purged = beside_a_rebuild(monkeypatch, lambda: purge("logs", before=cutoff))
    assert purged == 40
    assert Log.objects.count() == 10
    # The purged days are still counted: the rebuild recounted them before their rows went.
    assert all_time_requests() == 50
    old_day = rollups.floor_day(timezone.now() - timedelta(days=10))
    assert LLMRollup.objects.get(grain=rollups.stored_grain("total", "day"), bucket=old_day).requests == 40
    check_clean()


@postgres_only
def test_two_rebuilds_of_one_kind_take_turns(monkeypatch, service_key):
    ingest(service_key, calls("c", 30))
    first, second = beside_a_rebuild(monkeypatch, lambda: rollups.rebuild("llm"))
    assert first == second
    assert all_time_requests() == 30
    check_clean()


def test_a_check_outside_any_transaction_leaves_the_connection_as_it_found_it(service_key):
    """On SQLite the check reads in a deferred transaction (no write lock); afterwards the
    connection's own transactions begin as configured again."""
    ingest(service_key, calls("c", 12))
    mode = getattr(connection, "transaction_mode", None)
    assert rollups.check("llm") == []
    assert getattr(connection, "transaction_mode", None) == mode
    assert connection.get_autocommit() and not connection.in_atomic_block
    ingest(service_key, calls("d", 3))  # a write still works, in its own transaction
    assert all_time_requests() == 15


@postgres_only
def test_ingest_waits_for_the_slice_being_rebuilt_not_for_the_rebuild(monkeypatch, service_key):
    monkeypatch.setattr(rollups, "REBUILD_ROWS_PER_TRANSACTION", 10)
    ingest(service_key, calls("old", 30, days_ago=3))
    ingest(service_key, calls("new", 30))  # the second slice
    # The rebuild stops inside its first slice's transaction, then before its second.
    original = rollups._rebuild_slice
    second, go_on = threading.Event(), threading.Event()

    def slice_by_slice(rollup, piece, since):
        if piece.tier == "hour" and piece.start > rollups.floor_hour(timezone.now() - timedelta(days=1)):
            second.set()
            assert go_on.wait(DONE), "never released"
        return original(rollup, piece, since)

    monkeypatch.setattr(rollups, "_rebuild_slice", slice_by_slice)
    try:
        with stopped(monkeypatch, "_recount_statement") as (reached, release):
            rebuild = Step(lambda: rollups.rebuild("llm"))
            rebuild.start()
            assert reached.wait(DONE)
            late = Step(lambda: ingest(service_key, calls("late", 25, days_ago=1)))
            late.start()
            assert not late.finished.wait(WAITING), "it went on beside the slice being rebuilt"
            release.set()
            assert second.wait(DONE)
            # Between the two slices: the rebuild is not over, and the batch is in.
            assert late.outcome() == 25 and rebuild.is_alive()
    finally:
        go_on.set()
    assert rebuild.outcome() > 0
    assert all_time_requests() == 85
    check_clean()
