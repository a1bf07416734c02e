"""Message rollups: kept exact by ingest, provable by `rollups check`, repaired by
`rollups rebuild`, left alone by purges, and read by `usage("messages", …)` exactly
as a scan of the raw rows would answer, in any window and time zone."""

from __future__ import annotations

import io
import random
import zoneinfo
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logs.services import purge
from messaging.models import Chat, Message, MessageRollup, Participant
from usage import rollups, selectors
from usage.models import RawDataHorizon

pytestmark = pytest.mark.django_db

MESSAGES = "/api/ingest/messages"
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def messages(n: int, *, start: float = 0, step: float = 7, prefix: str = "m", **fields) -> list[dict]:
    """N messages STEP minutes apart: two chats, three people and the bot, some with no sender."""
    return [
        {
            "message_id": f"{prefix}-{i}",
            "chat_id": ["g1", "dm-ann"][i % 2],
            "chat_type": ["group", "private"][i % 2],
            "user_id": ["ann", "ben", "", "bot"][i % 4],
            "sent_by_bot": i % 4 == 3,
            "created_at": at(start + i * step),
            "text": "x" * (i % 9),
            **fields,
        }
        for i in range(n)
    ]


@pytest.fixture
def ingest(post_json, service_headers):
    def send(batch: list[dict]):
        response = post_json(MESSAGES, batch, **service_headers)
        assert response.status_code == 201, response.json()
        return response.json()

    return send


def check_clean() -> None:
    differences = rollups.check("messages")
    assert differences == [], [str(d) for d in differences[:10]]


def totals(grain: str = "direction", **filters) -> dict:
    return MessageRollup.objects.filter(grain=grain, **filters).aggregate(
        messages=Sum("messages"), text_length=Sum("text_length")
    )


def stored_rollups() -> list[tuple]:
    return list(
        MessageRollup.objects.order_by("grain", "key", "bucket").values_list(
            "grain", "key", "bucket", "chat_id", "sender_id", "sent_by_bot", "messages", "text_length", "last_at"
        )
    )


# --- kept at ingest ----------------------------------------------------------------------


def test_ingest_keeps_the_message_rollups_equal_to_the_facts(ingest):
    ingest(messages(60))
    check_clean()
    assert totals() == {
        "messages": Message.objects.count(),
        "text_length": Message.objects.aggregate(n=Sum("text_length"))["n"],
    }
    assert totals(sent_by_bot=True)["messages"] == Message.objects.filter(sent_by_bot=True).count() == 15


def test_every_grain_adds_up_to_the_same_totals(ingest):
    ingest(messages(40))
    expected = totals("direction")
    assert expected["messages"] == 40
    for grain, kept in rollups.spec("messages").grains.items():
        for tier in kept.tiers:
            assert totals(rollups.stored_grain(grain, tier)) == expected, (grain, tier)


def test_dimensions_are_the_message_columns(ingest):
    ingest(messages(4, step=1))
    group = Chat.objects.get(chat_id="g1")
    ann = Participant.objects.get(user_id="ann")
    row = MessageRollup.objects.get(grain="chat_sender", chat_id=group.pk, sender_id=ann.pk)
    assert (row.sent_by_bot, row.messages, row.bucket) == (False, 1, T0)
    # A message without a sender is counted under sender 0.
    nobody = MessageRollup.objects.get(grain="sender:day", sender_id=0)
    assert nobody.messages == 1
    # Booleans are keyed 1/0 on every database, so rebuild writes the same keys.
    assert set(MessageRollup.objects.filter(grain="direction").values_list("key", flat=True)) == {"0", "1"}


def test_the_newest_message_time_is_kept_per_bucket(ingest):
    ingest(messages(3, step=10, chat_id="g1", sent_by_bot=False))
    row = MessageRollup.objects.get(grain="direction")
    assert row.last_at == T0 + timedelta(minutes=20)


def test_a_second_batch_into_the_same_hour_increments_the_bucket(ingest):
    ingest(messages(5, step=1, prefix="a", chat_id="g1", sent_by_bot=False))
    ingest(messages(3, step=1, prefix="b", chat_id="g1", sent_by_bot=False))
    assert MessageRollup.objects.get(grain="direction").messages == 8
    check_clean()


def test_a_retried_batch_adds_nothing_to_the_rollups(ingest):
    batch = messages(10)
    ingest(batch)
    before = stored_rollups()
    assert ingest(batch)["duplicates"] == 10
    assert stored_rollups() == before


def test_a_rejected_batch_adds_nothing_to_the_rollups(post_json, service_headers):
    batch = messages(5) + [{"message_id": "bad", "text": "no chat"}]
    assert post_json(MESSAGES, batch, **service_headers).status_code == 400
    assert not MessageRollup.objects.exists()


# --- purge, rebuild, check ---------------------------------------------------------------


def test_purging_messages_moves_the_messages_horizon_and_keeps_the_rollups(ingest):
    ingest(messages(30, step=10))
    before = stored_rollups()
    deleted = purge("messages", before=T0 + timedelta(minutes=95))
    assert deleted == 10
    assert stored_rollups() == before
    assert RawDataHorizon.objects.get(kind="messages").purged_before == T0 + timedelta(minutes=95)
    # Buckets that lost raw rows are history now; the rest still agree with the facts.
    assert rollups.horizon("messages") == T0 + timedelta(hours=2)
    check_clean()


def test_purging_other_kinds_does_not_move_the_messages_horizon(ingest, post_json, service_headers):
    ingest(messages(5))
    post_json("/api/ingest/llm-calls", [{"model_name": "m", "created_at": at(1)}], **service_headers)
    purge("logs", before=T0 + timedelta(hours=1))
    assert rollups.horizon("messages") is None


def test_rebuild_after_a_purge_keeps_the_history(ingest):
    ingest(messages(30, step=10))
    before = totals()
    purge("messages", before=T0 + timedelta(minutes=95))
    rollups.rebuild("messages")
    assert totals() == before
    check_clean()


def test_rebuild_writes_exactly_what_ingest_wrote(ingest):
    ingest(messages(50, step=3))
    before = stored_rollups()
    rollups.rebuild("messages")
    assert stored_rollups() == before


def test_rebuild_repairs_tampered_rollups(ingest):
    ingest(messages(20))
    MessageRollup.objects.filter(grain="chat").update(messages=999)
    MessageRollup.objects.filter(grain="sender:day").delete()
    found = {d.grain for d in rollups.check("messages")}
    # The day rows of the chats now disagree with their hours too.
    assert {"chat", "chat:day", "sender:day"} <= found and "direction" not in found
    rollups.rebuild("messages")
    check_clean()


def test_the_command_checks_and_rebuilds_messages_with_the_other_kinds(ingest):
    ingest(messages(10))
    out = io.StringIO()
    call_command("rollups", "check", stdout=out)
    assert "messages: rollups agree with the facts" in out.getvalue()

    MessageRollup.objects.filter(grain="direction").update(text_length=0)
    out = io.StringIO()
    with pytest.raises(CommandError, match="disagree"):
        call_command("rollups", "check", "--kind", "messages", stdout=out)
    assert "text_length: rollup=0" in out.getvalue()

    out = io.StringIO()
    call_command("rollups", "rebuild", "--kind", "messages", stdout=out)
    assert "messages: rebuilt" in out.getvalue()
    call_command("rollups", "check", "--kind", "messages", stdout=io.StringIO())


# --- read by usage() ---------------------------------------------------------------------


def test_usage_groups_and_filters_by_a_boolean(ingest, django_assert_max_num_queries):
    ingest(messages(40, step=5))
    start, end = T0 + timedelta(minutes=12), T0 + timedelta(minutes=170)
    # The rollups, the raw edges and the purge horizons (cached afterwards).
    with django_assert_max_num_queries(3):
        rows = selectors.usage("messages", start=start, end=end, group_by=("sent_by_bot",))
    window = Message.objects.filter(created_at__gte=start, created_at__lt=end)
    assert [(r["sent_by_bot"], r["messages"]) for r in rows] == [
        (False, window.filter(sent_by_bot=False).count()),
        (True, window.filter(sent_by_bot=True).count()),
    ]
    bot = selectors.totals("messages", start=start, end=end, filters={"sent_by_bot": True})
    assert bot["messages"] == window.filter(sent_by_bot=True).count()


def test_totals_after_a_purge_come_from_the_rollups(ingest):
    ingest(messages(30, step=10))
    window = {"start": T0, "end": T0 + timedelta(hours=6), "group_by": ("sent_by_bot",)}
    before = selectors.usage("messages", **window)
    purge("messages", before=T0 + timedelta(hours=3))
    assert selectors.usage("messages", **window) == before


# --- equivalence with the raw rows ---------------------------------------------------------

SPAN = timedelta(days=3)
ZONES = ["UTC", "Asia/Shanghai", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"]
DIMENSION_SETS = [
    (),
    ("sent_by_bot",),
    ("chat_id",),
    ("chat_id", "sent_by_bot"),
    ("sender_id",),
    ("sender_id", "sent_by_bot"),
    ("chat_id", "sender_id"),
    ("chat_id", "sender_id", "sent_by_bot"),
]


@pytest.fixture
def dataset(ingest):
    rng = random.Random(11)
    batch = []
    for i in range(300):
        moment = T0 + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        batch.append(
            {
                "message_id": f"eq-{i}",
                "chat_id": rng.choice(["g1", "g2", "dm-1"]),
                "user_id": rng.choice(["ann", "ben", "cy", ""]),
                "sent_by_bot": rng.random() < 0.3,
                "created_at": moment.isoformat(),
                "text": "y" * rng.randrange(0, 40),
            }
        )
    for start in range(0, len(batch), 100):
        ingest(batch[start : start + 100])


def expected(start, end, group_by, series, tz) -> dict:
    """What a scan of the raw rows says, computed in Python from every row."""
    out: dict = defaultdict(lambda: {"messages": 0, "text_length": 0, "last_at": None})
    for row in Message.objects.filter(created_at__gte=start, created_at__lt=end):
        key = tuple(getattr(row, name) or (False if name == "sent_by_bot" else 0) for name in group_by)
        if series == "hour":
            key += (row.created_at.replace(minute=0, second=0, microsecond=0),)
        elif series == "day":
            key += (row.created_at.astimezone(tz).date(),)
        acc = out[key]
        acc["messages"] += 1
        acc["text_length"] += row.text_length
        acc["last_at"] = max(acc["last_at"] or row.created_at, row.created_at)
    return out


window = st.tuples(st.integers(-120, 3 * 24 * 60 + 120), st.integers(0, 3 * 24 * 60))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edges=window,
    seconds=st.tuples(st.integers(0, 59), st.integers(0, 59)),
    group_by=st.sampled_from(DIMENSION_SETS),
    series=st.sampled_from([None, "hour", "day"]),
    zone=st.sampled_from(ZONES),
)
def test_message_usage_equals_a_scan_of_the_raw_rows(dataset, edges, seconds, group_by, series, zone):
    tz = zoneinfo.ZoneInfo(zone)
    start = T0 + timedelta(minutes=edges[0], seconds=seconds[0])
    end = start + timedelta(minutes=edges[1], seconds=seconds[1])
    got = selectors.usage("messages", start=start, end=end, group_by=group_by, series=series, tz=tz)
    want = expected(start, end, group_by, series, tz)
    keys = [*group_by, *({"hour": ["bucket"], "day": ["day"]}.get(series or "", []))]
    got_by_key = {tuple(row[k] for k in keys): row for row in got}
    assert set(got_by_key) == set(want)
    for key, acc in want.items():
        row = got_by_key[key]
        assert (row["messages"], row["text_length"], row["last_at"]) == (
            acc["messages"],
            acc["text_length"],
            acc["last_at"],
        ), key


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=window, bot=st.booleans(), zone=st.sampled_from(ZONES))
def test_filtered_daily_usage_equals_a_scan_of_the_raw_rows(dataset, edges, bot, zone):
    tz = zoneinfo.ZoneInfo(zone)
    chat = Chat.objects.get(chat_id="g1")
    start = T0 + timedelta(minutes=edges[0], seconds=31)
    end = start + timedelta(minutes=edges[1])
    got = selectors.usage(
        "messages", start=start, end=end, group_by=("sender_id",), series="day", tz=tz,
        filters={"chat_id": chat.pk, "sent_by_bot": bot},
    )  # fmt: skip
    want: dict = defaultdict(int)
    rows = Message.objects.filter(created_at__gte=start, created_at__lt=end, chat=chat, sent_by_bot=bot)
    for row in rows:
        want[(row.sender_id or 0, row.created_at.astimezone(tz).date())] += 1
    assert {(r["sender_id"], r["day"]): r["messages"] for r in got} == dict(want)


def test_a_daily_series_costs_three_queries_whatever_the_window(dataset, django_assert_max_num_queries):
    # The rollups, the raw hours, and the purge horizons (a cached read afterwards).
    with django_assert_max_num_queries(3):
        selectors.usage(
            "messages", start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=71, minutes=30),
            group_by=("chat_id", "sender_id"), series="day", tz=zoneinfo.ZoneInfo("Asia/Kolkata"),
        )  # fmt: skip
