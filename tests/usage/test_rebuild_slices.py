"""`rollups.rebuild` goes a slice of time at a time, each slice in a transaction of its
own, so that ingest and purges wait for one slice, not for the whole rebuild. These
tests make slices of a few facts and act between them, on one connection; the
concurrent cases are in test_rollup_maintenance_races."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from logs.models import Log
from logs.services import purge
from tests.usage.usage_support import check_clean
from usage import rollups
from usage.models import LLMRollup, ToolRollup
from usage.rollups import DAY, stored_grain

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
PER_SLICE = 4


def calls(n: int, *, start: float = 0, step: float = 70, prefix: str = "c") -> list[dict]:
    """N calls STEP minutes apart from START minutes after T0."""
    return [
        {"request_id": f"{prefix}-{i}", "created_at": (T0 + timedelta(minutes=start + i * step)).isoformat(),
         "username": ["alice", "bob"][i % 2], "model_name": "gpt-4o", "prompt_tokens": 10 + i}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def small_slices(monkeypatch) -> None:
    monkeypatch.setattr(rollups, "REBUILD_ROWS_PER_TRANSACTION", PER_SLICE)


def watch_slices(monkeypatch, before: Callable[[rollups._Slice, int], None] | None = None) -> list:
    """Record each slice the rebuild takes, in order; BEFORE(slice, n) runs ahead of the
    Nth (from 0), outside its transaction."""
    taken: list = []
    original = rollups._rebuild_slice

    def recording(rollup, piece, since):
        if before is not None:
            before(piece, len(taken))
        taken.append(piece)
        return original(rollup, piece, since)

    monkeypatch.setattr(rollups, "_rebuild_slice", recording)
    return taken


def all_time(grain: str = "total") -> int:
    return LLMRollup.objects.filter(grain=stored_grain(grain, "all")).aggregate(n=Sum("requests"))["n"]


def test_slices_hold_a_few_facts_each_and_cover_every_hour_between(
    monkeypatch, small_slices, post_json, service_headers
):
    post_json("/api/ingest/llm-calls", calls(30), **service_headers)  # 34 hours, two UTC days
    taken = watch_slices(monkeypatch)
    assert rollups.rebuild("llm") > 0
    hours = [piece for piece in taken if piece.tier == "hour"]
    assert len(hours) == 8  # 30 facts, at most 4 to a slice (no hour holds more than one)
    assert hours[0].start == T0 and hours[-1].end == T0 + timedelta(hours=34)
    assert all(a.end == b.start for a, b in zip(hours, hours[1:]))  # no gap, no overlap
    for piece in hours:
        assert Log.objects.llm_calls().between(piece.start, piece.end).count() <= PER_SLICE
    # The day rows of the pair grains are counted from the facts, a day at a time (each
    # day holds more facts than a slice), ahead of those added up from the hours.
    assert [(piece.tier, piece.from_facts) for piece in taken] == (
        [("hour", False)] * 8 + [("day", True)] * 2 + [("day", False)] * 2 + [("week", False), ("all", False)]
    )
    day = rollups.floor_day(T0)
    assert [(p.start, p.end) for p in taken if p.from_facts] == [(day, day + DAY), (day + DAY, day + 2 * DAY)]
    check_clean()


def test_an_hour_with_more_facts_than_a_slice_holds_is_one_slice(
    monkeypatch, small_slices, post_json, service_headers
):
    post_json("/api/ingest/llm-calls", calls(10, step=1) + calls(3, start=120, step=1, prefix="d"), **service_headers)
    taken = watch_slices(monkeypatch)
    rollups.rebuild("llm")
    hours = [(piece.start, piece.end) for piece in taken if piece.tier == "hour"]
    assert hours == [(T0, T0 + timedelta(hours=2)), (T0 + timedelta(hours=2), T0 + timedelta(hours=3))]
    check_clean()


def test_rows_with_no_facts_anywhere_in_time_are_removed(small_slices, post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(12), **service_headers)
    model_hour = LLMRollup.objects.filter(grain="model").first()
    # Left behind far from every fact: an hour, a day, a week and an all-time row.
    for grain, bucket in (("model", T0 + timedelta(days=40)), ("model:day", T0 - timedelta(days=30)),
                          ("user:week", rollups.floor_week(T0 + timedelta(days=90))), ("model:all", None)):
        LLMRollup.objects.create(
            grain=grain, key="ghost", bucket=bucket or rollups.ALL_BUCKET, requests=5,
            model_name="ghost", last_at=model_hour.last_at,
        )  # fmt: skip
    assert len(rollups.check("llm")) >= 4
    rollups.rebuild("llm")
    assert not LLMRollup.objects.filter(key="ghost").exists()
    check_clean()


def test_ingest_between_two_slices_is_counted_once_whichever_side_it_lands(
    monkeypatch, small_slices, post_json, service_headers
):
    post_json("/api/ingest/llm-calls", calls(30), **service_headers)
    LLMRollup.objects.update(requests=0)  # something to repair

    def ingest_midway(piece, n):
        if n == 3:
            late = [
                # an hour already rebuilt, one still to come, and one past every slice
                *calls(2, start=5, step=1, prefix="rebuilt"),
                *calls(2, start=30 * 60, step=1, prefix="ahead"),
                *calls(2, start=60 * 60, step=1, prefix="beyond"),
            ]
            assert post_json("/api/ingest/llm-calls", late, **service_headers).status_code == 201

    watch_slices(monkeypatch, ingest_midway)
    rollups.rebuild("llm")
    assert all_time() == Log.objects.llm_calls().count() == 36
    check_clean()


def test_a_purge_between_two_slices_keeps_the_purged_hours_history(
    monkeypatch, small_slices, post_json, service_headers
):
    post_json("/api/ingest/llm-calls", calls(30), **service_headers)
    cutoff = T0 + timedelta(hours=20)

    def purge_midway(piece, n):
        if n == 2:  # hours up to the cutoff not yet recounted: after the purge they cannot be
            assert purge("logs", before=cutoff) > 0

    watch_slices(monkeypatch, purge_midway)
    rollups.rebuild("llm")
    assert all_time() == 30  # the purged calls are still counted
    assert LLMRollup.objects.filter(grain="total", bucket__lt=cutoff).aggregate(n=Sum("requests"))["n"] > 0
    check_clean()


def test_a_rebuild_since_an_instant_slices_only_from_its_hour(monkeypatch, small_slices, post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(30), **service_headers)
    taken = watch_slices(monkeypatch)
    since = T0 + timedelta(hours=20, minutes=30)
    rollups.rebuild("llm", since=since)
    hours = [piece for piece in taken if piece.tier == "hour"]
    assert hours[0].start == T0 + timedelta(hours=20)
    assert [piece.start for piece in taken if piece.tier == "day"][0] == rollups.floor_day(since)
    check_clean()


def test_a_kind_without_facts_or_rows_rebuilds_its_all_tier_alone(monkeypatch, post_json, service_headers):
    post_json("/api/ingest/llm-calls", calls(3), **service_headers)
    taken = watch_slices(monkeypatch)
    assert rollups.rebuild("tools") == 0
    assert [piece.tier for piece in taken] == ["all"]
    assert not ToolRollup.objects.exists()
