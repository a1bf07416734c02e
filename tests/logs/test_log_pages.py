"""Every page of a gateway log list, and its total, equal a plain query of the rows,
whatever the filters, the window, the page and its size, before and after a purge."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logs.models import Log
from logs.selectors import LogCriteria, log_count, log_page, rollups_answer
from logs.services import purge
from tests.logs.logapi_support import T0, record_calls, record_other_logs

pytestmark = pytest.mark.django_db

SPAN_HOURS = 5 * 24


@pytest.fixture
def logs(make_user):
    """LLM calls and other rows over five days, busy hours and quiet ones, many sharing
    a second (ties go by id)."""
    rng = random.Random(3)
    accounts = {name: make_user(name).pk for name in ("ann", "ben")}
    moments = sorted(T0 + timedelta(hours=rng.choice(range(0, SPAN_HOURS, 7)), seconds=rng.randrange(0, 3600, 600))
                     for _ in range(220))
    calls = [
        {
            "created_at": at,
            "username": rng.choice(["ann", "ben", ""]),
            "model_name": rng.choice(["gpt-4o", "qwen"]),
            "token_name": rng.choice(["", "k1", "k2"]),
            "channel_id": rng.choice([None, 1, 2]),
            "group": rng.choice(["", "vip"]),
            "success": rng.random() > 0.2,
        }
        for at in moments[:180]
    ]
    for start in range(0, len(calls), 60):
        record_calls(*calls[start : start + 60])
    record_other_logs(
        *[{"type": rng.choice([1, 3, 4, 5]), "username": rng.choice(["ann", ""]), "created_at": at}
          for at in moments[180:]]
    )  # fmt: skip
    return accounts


CRITERIA = [
    {},
    {"log_type": 2},
    {"log_type": 4},
    {"log_type": 1},
    {"user": "ann"},
    {"user": "ann", "log_type": 4},
    {"token_name": "k1"},
    {"model_name": "qwen"},
    {"channel_id": 2},
    {"group": "vip", "log_type": 2},
    {"user": "ben", "model_name": "gpt-4o"},
    {"token_name": "k2", "group": "vip"},  # no grain holds both: the raw rows answer
]


def reference(criteria: LogCriteria) -> list[int]:
    return list(criteria.apply(Log.objects.newest_first()).values_list("id", flat=True))


def check(criteria: LogCriteria, page: int, size: int) -> None:
    every = reference(criteria)
    offset = (page - 1) * size
    rows, total = log_page(criteria.apply(Log.objects.newest_first()), criteria, offset=offset, limit=size)
    assert total == len(every) == log_count(criteria)
    assert [row.id for row in rows] == every[offset : offset + size]


def build(accounts, chosen: dict, window: tuple[int | None, int | None]) -> LogCriteria:
    fields = {k: v for k, v in chosen.items() if k != "user"}
    if "user" in chosen:
        fields["user_id"] = accounts[chosen["user"]]
    start, end = window
    return LogCriteria(
        start=T0 + timedelta(minutes=start) if start is not None else None,
        end=T0 + timedelta(minutes=end) if end is not None else None,
        **fields,
    )


windows = st.tuples(
    st.one_of(st.none(), st.integers(-60, SPAN_HOURS * 60)), st.one_of(st.none(), st.integers(0, SPAN_HOURS * 60 + 60))
).filter(lambda w: w[0] is None or w[1] is None or w[0] < w[1])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sampled_from(CRITERIA), window=windows, page=st.integers(1, 12), size=st.sampled_from([1, 3, 7, 20]))
def test_every_page_and_total_equal_a_plain_query(logs, chosen, window, page, size):
    check(build(logs, chosen, window), page, size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sampled_from(CRITERIA), window=windows, page=st.integers(1, 8), size=st.sampled_from([1, 5, 20]))
def test_pages_count_only_the_rows_left_after_a_purge(logs, chosen, window, page, size):
    # Once: later examples find the rows already gone.
    purge("logs", before=T0 + timedelta(hours=50, minutes=20))
    check(build(logs, chosen, window), page, size)


def test_a_typed_purge_keeps_the_other_rows_counted(logs):
    purge("logs", before=T0 + timedelta(hours=80), log_type=2)
    for chosen in ({}, {"log_type": 4}, {"log_type": 2}, {"user": "ann"}):
        check(build(logs, chosen, (None, None)), 1, 20)


def test_criteria_the_rollups_hold(logs):
    assert rollups_answer(LogCriteria(user_id=1, model_name="qwen", log_type=2))
    assert rollups_answer(LogCriteria(channel_id=3, start=T0))
    assert not rollups_answer(LogCriteria(token_name="k1", group="vip"))


def test_a_deep_page_reads_only_its_own_hours(logs, django_assert_max_num_queries):
    criteria = LogCriteria()
    every = reference(criteria)
    # Rows per day and per hour, of calls and of other rows; the page; the purge horizon (cached).
    with django_assert_max_num_queries(6):
        rows, _ = log_page(criteria.apply(Log.objects.newest_first()), criteria, offset=150, limit=20)
    assert [row.id for row in rows] == every[150:170]
