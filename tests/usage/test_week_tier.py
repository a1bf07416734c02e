"""The week tier: rows per UTC week (from Monday) for the grains whose many groups a
month's statistic reads (the account's LLM usage, a chat member's messages), kept by
ingest, checked and rebuilt from the day rows, and read by the planner for the whole
weeks of a window, with an edge week read whole less its outside days where those are
fewer. Every answer still equals a scan of the raw rows."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logs.models import Log
from logs.services import purge
from tests.usage.usage_support import assert_same, check_clean, expected_llm
from messaging.models import Message, MessageRollup
from usage import rollups, selectors
from usage.models import LLMRollup
from usage.rollups import DAY, WEEK, floor_week, stored_grain

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
T0 = MONDAY + timedelta(days=2, hours=9)  # Wednesday 09:00
SPAN = timedelta(days=33)  # into a sixth week
MESSAGES = "/api/ingest/messages"


def d(days: float) -> datetime:
    return MONDAY + timedelta(days=days)


# --- the planner ---------------------------------------------------------------------------


def test_whole_weeks_inside_a_window_are_read_as_week_rows():
    plan = selectors.plan_window(d(2.5), d(26.25), weeks=True)
    assert plan.weeks == ((d(7), d(21)),)
    assert plan.days == ((d(3), d(7)), (d(21), d(26)))
    assert plan.hours == ((d(2.5), d(3)), (d(26), d(26.25)))
    # Without weeks (a series, or a grain kept without them): the same window by the day.
    assert selectors.plan_window(d(2.5), d(26.25)).days == ((d(3), d(26)),)


def test_a_window_of_less_than_a_whole_week_has_no_week_rows():
    assert selectors.plan_window(d(1), d(7.5), weeks=True).weeks == ()
    assert selectors.plan_window(d(0), d(7), weeks=True).weeks == ((d(0), d(7)),)


def test_an_edge_week_mostly_inside_is_its_week_row_less_the_outside_days():
    # Tuesday of week 0 to Saturday of week 3: both edge weeks are mostly inside.
    start, end, minus = selectors._whole_edge_weeks(d(1), d(26), None, None)
    assert (start, end) == (d(0), d(28))
    assert minus == selectors.Plan(days=((d(0), d(1)), (d(26), d(28))))
    # Mostly outside (Saturday to Tuesday): read by the day.
    assert selectors._whole_edge_weeks(d(5), d(22), None, None) == (d(5), d(22), selectors.Plan())
    # The week row is one more row per group: from a Thursday (three days out, four in)
    # the days are as few; from a Wednesday (two out, five in) the week is fewer.
    assert selectors._whole_edge_weeks(d(3), d(21), None, None)[0] == d(3)
    assert selectors._whole_edge_weeks(d(2), d(21), None, None)[0] == d(0)


def test_an_edge_week_is_only_widened_from_a_midnight_after_the_horizon():
    # An edge inside a day is the day planner's (its hours); the week waits for it.
    assert selectors._whole_edge_weeks(d(1.5), d(25.5), None, None) == (d(1.5), d(25.5), selectors.Plan())
    # Before the purge horizon, where raw rows may be gone, nothing is taken away.
    assert selectors._whole_edge_weeks(d(1), d(26), None, d(0.5))[:2] == (d(1), d(28))
    # A newest-fact query takes away only what lies ahead (here: all of it is past).
    assert selectors._whole_edge_weeks(d(1), d(26), d(400), None)[2] == selectors.Plan()


@pytest.mark.parametrize("weekday", range(7))
def test_the_future_costs_nothing_to_take_away(weekday):
    # A window ending now: today's rest and the week's rest are in the future, so today
    # is read whole however early in the day it is, and this week from its second day on
    # (on a Monday the week row would be one more row than today's).
    today = MONDAY + timedelta(weeks=30, days=weekday)
    now = today + timedelta(minutes=20)
    with mock.patch("django.utils.timezone.now", return_value=now):
        start, end, minus = selectors._whole_edge_days(today - 3 * DAY, now, [], None, None)
        assert end == today + DAY and minus == selectors.plan_window(now, today + DAY, days=False)
        start, end, minus = selectors._whole_edge_weeks(today - 30 * DAY, today + DAY, None, None)
    week_end = floor_week(today) + WEEK
    assert end == (today + DAY if weekday == 0 else week_end)
    if today + DAY < end:  # the days after today are taken away
        assert minus.days[-1] == (today + DAY, end)
    # The same window seen a month later, when the rest of that day is past: 23h40
    # outside against 20 minutes inside, read by the hour.
    with mock.patch("django.utils.timezone.now", return_value=today + 30 * DAY):
        assert selectors._whole_edge_days(today - 3 * DAY, now, [], None, None)[1] == now


@pytest.mark.parametrize("weekday", range(7))
@pytest.mark.parametrize("hour", [0.5, 12, 23.5])
def test_a_month_by_account_ending_now_reads_week_rows_and_no_hour_of_today(weekday, hour):
    now = MONDAY + timedelta(weeks=30, days=weekday, hours=hour)
    query = selectors._query("llm", ("user_id",), {}, None, None, ("requests",))
    with mock.patch("django.utils.timezone.now", return_value=now):
        planned = selectors._plan(query, now - 30 * DAY, now, "counted")
    assert planned.week_grain == "user" and len(planned.positive.weeks) == 1
    weeks = planned.positive.weeks[0]
    # Four whole weeks at least, up to this week's end (or, on a Monday, to today).
    assert weeks[1] - weeks[0] >= 4 * WEEK and weeks[1] >= rollups.floor_day(now)
    # Nothing of today by the hour: this week's row, or on a Monday today's day row.
    today = rollups.floor_day(now)
    assert all(hi <= now - 29 * DAY for _, hi in (*planned.positive.hours, *planned.positive.raw))
    assert all(hi <= now - 20 * DAY or lo == today for lo, hi in planned.positive.days)
    # What is taken away at the end lies ahead of now.
    assert all(lo >= now for lo, _ in (*planned.negative.raw, *planned.negative.hours) if lo >= today)


# --- the rows ------------------------------------------------------------------------------


def llm_calls(n: int, rng: random.Random) -> list[dict]:
    return [
        {
            "request_id": f"w-{i}",
            "created_at": (T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))).isoformat(),
            "username": rng.choice(["ann", "ben", "cy", ""]),
            "model_name": rng.choice(["gpt-4o", "qwen"]),
            "prompt_tokens": rng.randrange(0, 900),
            "completion_tokens": rng.randrange(0, 300),
            "cost": "0.0001",
            "success": rng.random() > 0.1,
        }
        for i in range(n)
    ]


@pytest.fixture
def weeks_of_calls(post_json, service_headers):
    batch = llm_calls(240, random.Random(5))
    for start in range(0, len(batch), 80):
        assert post_json("/api/ingest/llm-calls", batch[start : start + 80], **service_headers).status_code == 201


def test_week_rows_sum_the_day_rows_of_their_monday_week(weeks_of_calls):
    weeks = LLMRollup.objects.filter(grain="user:week")
    mondays = {floor_week(at) for at in Log.objects.llm_calls().values_list("created_at", flat=True)}
    assert {row.bucket for row in weeks} == mondays and len(mondays) >= 5
    assert all(monday.weekday() == 0 and monday == rollups.floor_day(monday) for monday in mondays)
    for week in weeks:
        days = LLMRollup.objects.filter(
            grain="user:day", user_id=week.user_id, bucket__gte=week.bucket, bucket__lt=week.bucket + WEEK
        ).aggregate(requests=Sum("requests"), tokens=Sum("prompt_tokens"))
        assert (week.requests, week.prompt_tokens) == (days["requests"], days["tokens"])
    assert weeks.aggregate(n=Sum("requests"))["n"] == Log.objects.llm_calls().count() == 240
    # Only the grains that keep a week tier have one.
    assert set(LLMRollup.objects.filter(grain__endswith=":week").values_list("grain", flat=True)) == {"user:week"}
    check_clean("llm")


def test_check_finds_and_rebuild_repairs_tampered_week_rows(weeks_of_calls):
    LLMRollup.objects.filter(grain="user:week", bucket=d(14)).update(requests=999)
    LLMRollup.objects.filter(grain="user:week", bucket=d(21)).delete()
    found = {(x.grain, x.bucket, x.field) for x in rollups.check("llm")}
    assert ("user:week", d(14), "requests") in found and ("user:week", d(21), "requests") in found
    rollups.rebuild("llm", since=d(15.5))  # the week of d(14) is rebuilt whole, from its Monday
    check_clean("llm")


def test_the_week_tier_alone_is_rebuilt_from_the_day_rows(weeks_of_calls):
    before = list(LLMRollup.objects.filter(grain="user:week").order_by("key", "bucket").values_list())
    LLMRollup.objects.filter(grain="user:week").delete()
    purge("logs", before=d(40))  # the facts are gone: the day rows are all that is left
    assert rollups.rebuild_week_tier("llm") == len(before)
    after = list(LLMRollup.objects.filter(grain="user:week").order_by("key", "bucket").values_list())
    assert [row[1:] for row in after] == [row[1:] for row in before]


def test_message_week_rows_are_kept_per_chat_member(post_json, service_headers):
    rng = random.Random(3)
    batch = [
        {"message_id": f"wm-{i}", "chat_id": rng.choice(["g1", "g2"]), "user_id": rng.choice(["ann", "ben"]),
         "sent_by_bot": rng.random() < 0.3,
         "created_at": (T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))).isoformat(), "text": "hi"}
        for i in range(120)
    ]  # fmt: skip
    assert post_json(MESSAGES, batch, **service_headers).status_code == 201
    weeks = MessageRollup.objects.filter(grain=stored_grain("chat_sender", "week"))
    assert weeks.aggregate(n=Sum("messages"))["n"] == 120
    assert {row.bucket.weekday() for row in weeks} == {0}
    check_clean("messages")


# --- equivalence with the raw rows -----------------------------------------------------------


def expected(start, end, group_by) -> dict:
    return expected_llm(start, end, group_by, None, UTC)


SUMS = ["requests", "errors", "prompt_tokens", "completion_tokens"]
# From before the first fact to after the last, to the minute.
weeks_window = st.tuples(st.integers(-3 * 24 * 60, 34 * 24 * 60), st.integers(0, 36 * 24 * 60))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=weeks_window,
    seconds=st.tuples(st.integers(0, 59), st.integers(0, 59)),
    at_midnight=st.booleans(),
    group_by=st.sampled_from([("user_id",), (), ("model_name",)]),
    sums_only=st.booleans(),
)
def test_usage_over_weeks_equals_a_scan_of_the_raw_rows(
    weeks_of_calls, edges, seconds, at_midnight, group_by, sums_only
):
    start = T0 + timedelta(minutes=edges[0], seconds=seconds[0])
    end = start + timedelta(minutes=edges[1], seconds=seconds[1])
    if at_midnight:  # edges on midnights, where whole edge weeks are read less their outside days
        start, end = rollups.floor_day(start), rollups.floor_day(end)
    measures = SUMS if sums_only else None
    got = selectors.usage("llm", start=start, end=end, group_by=group_by, measures=measures)
    assert_same(got, expected(start, end, group_by), group_by, SUMS if sums_only else [*SUMS, "last_at"])


@pytest.fixture
def purged_mid_week(weeks_of_calls):
    purge("logs", before=d(17) + timedelta(hours=5, minutes=13))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=weeks_window, at_midnight=st.booleans(), purged=st.sampled_from(["counted", "excluded"]))
def test_usage_over_weeks_after_a_purge_equals_the_rollups_or_the_stored_rows(
    purged_mid_week, edges, at_midnight, purged
):
    start = T0 + timedelta(minutes=edges[0], seconds=3)
    end = start + timedelta(minutes=edges[1], seconds=50)
    if at_midnight:
        start, end = rollups.floor_day(start), rollups.floor_day(end)
    got = selectors.usage("llm", start=start, end=end, group_by=("user_id",), measures=SUMS, purged=purged)
    if purged == "excluded":
        want = expected(start, end, ("user_id",))
    else:
        # Counted: what the day rows say of whole days, plus the stored rows of the rest.
        want = expected_counting_history(start, end)
    assert_same(got, want, ("user_id",), SUMS)


def expected_counting_history(start: datetime, end: datetime) -> dict:
    """Usage by account over [START, END) as statistics count it after the purge: each
    hour before the horizon (05:13 of day 17, rounded up to 06:00) whole, from the
    rollups' hour rows of the account x model grain; the stored rows after it."""
    horizon = d(17) + timedelta(hours=6)
    out: dict = defaultdict(lambda: defaultdict(int))
    if start < horizon:
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = LLMRollup.objects.filter(grain="user_model", bucket__gte=first, bucket__lt=min(end, horizon))
        for row in hours:
            acc = out[(row.user_id,)]
            for name in SUMS:
                acc[name] += getattr(row, name)
    for key, acc in expected(max(start, horizon), end, ("user_id",)).items():
        for name in SUMS:
            out[key][name] += acc[name]
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=weeks_window, at_midnight=st.booleans())
def test_messages_by_chat_member_over_weeks_equal_a_scan_of_the_raw_rows(
    post_json, service_headers, edges, at_midnight
):
    if not Message.objects.exists():
        rng = random.Random(9)
        batch = [
            {"message_id": f"we-{i}", "chat_id": rng.choice(["g1", "g2", "g3"]),
             "user_id": rng.choice(["ann", "ben", "cy", ""]), "sent_by_bot": rng.random() < 0.3,
             "created_at": (T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))).isoformat(),
             "text": "x"}
            for i in range(200)
        ]  # fmt: skip
        assert post_json(MESSAGES, batch, **service_headers).status_code == 201
    start = T0 + timedelta(minutes=edges[0], seconds=11)
    end = start + timedelta(minutes=edges[1], seconds=37)
    if at_midnight:
        start, end = rollups.floor_day(start), rollups.floor_day(end)
    group_by = ("chat_id", "sender_id")
    got = selectors.usage("messages", start=start, end=end, group_by=group_by, filters={"sent_by_bot": False},
                          measures=("messages",))  # fmt: skip
    want: dict = defaultdict(lambda: defaultdict(int))
    for row in Message.objects.filter(created_at__gte=start, created_at__lt=end, sent_by_bot=False):
        want[(row.chat_id, row.sender_id or 0)]["messages"] += 1
    assert_same(got, want, group_by, ["messages"])



def test_every_midnight_to_midnight_window_equals_a_scan_of_the_raw_rows(weeks_of_calls):
    # Edges on every weekday, so that each edge week is read whole less its outside days
    # (where those are fewer) or by the day.
    for first in range(7, 15):
        for days in (6, 9, 13, 20):
            start, end = d(first), d(first + days)
            got = selectors.usage("llm", start=start, end=end, group_by=("user_id",), measures=SUMS)
            assert_same(got, expected(start, end, ("user_id",)), ("user_id",), SUMS)
