"""POST /api/ingest/llm-calls: one Log row per LLM call."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.forms.models import model_to_dict
from django.utils import timezone

from logs.models import Log
from tests.ingest_support import LLM_CALLS, assert_nothing_stored, stored_counts
from tests.usage.usage_support import check_clean
from usage import rollups
from usage.models import Channel, ModelPrice, RelayKey

pytestmark = pytest.mark.django_db

User = get_user_model()

FULL_CALL = {
    "request_id": "req-1",
    "created_at": "2024-05-01T10:00:00Z",
    "username": "alice",
    "token_key": "sk-abcd1234efgh5678ijkl9012mnopwxyz",
    "token_name": "main key",
    "model_name": "gpt-4o",
    "channel_id": 7,
    "channel_name": "openai-1",
    "group": "vip",
    "module": "chat",
    "request_type": "chat.completions",
    "chat_id": "group-42",
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "quota": 600,
    "cost": "0.0012",
    "latency_ms": 1850,
    "is_stream": True,
    "success": True,
    "ip": "203.0.113.9",
    "content": "model gpt-4o, ratio 2.5",
    "other": {"model_ratio": 2.5},
}


@pytest.fixture
def post(post_json, service_headers):
    def send(body, **headers):
        return post_json(LLM_CALLS, body, **(headers or service_headers))

    return send


def call(n: int | str = 1, **fields) -> dict:
    return {"request_id": f"req-{n}", "model_name": "gpt-4o", **fields}


# --- storing ------------------------------------------------------------------------


def test_one_call_as_a_single_object_is_stored_as_a_consume_row(post):
    response = post(FULL_CALL)

    assert response.status_code == 201
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0}
    row = Log.objects.get()
    assert row.type == Log.Type.CONSUME
    assert row.level == Log.Level.INFO
    assert row.success is True
    assert row.request_id == "req-1"
    assert row.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.username == "alice"
    assert row.user == User.objects.get(username="alice")
    assert row.token_name == "main key"
    assert row.model_name == "gpt-4o"
    assert row.channel_id == 7
    assert row.group == "vip"
    assert row.module == "chat"
    assert row.request_type == "chat.completions"
    assert row.chat_id == "group-42"
    assert (row.prompt_tokens, row.completion_tokens) == (120, 40)
    assert row.quota == 600
    assert row.cost == Decimal("0.0012")
    assert row.latency_ms == 1850
    assert row.use_time == 2  # the gateway counts whole seconds
    assert row.is_stream is True
    assert row.ip == "203.0.113.9"
    assert row.content == "model gpt-4o, ratio 2.5"
    assert row.other == {"model_ratio": 2.5}


def test_a_batch_is_stored_in_one_request(post):
    response = post([call(1), call(2, success=False, error="timeout"), call(3)])

    assert response.status_code == 201
    assert response.json() == {"received": 3, "created": 3, "duplicates": 0}
    assert sorted(Log.objects.values_list("request_id", flat=True)) == ["req-1", "req-2", "req-3"]


def test_only_the_model_name_is_required(post):
    before = timezone.now()
    assert post({"model_name": "gpt-4o"}).status_code == 201

    row = Log.objects.get()
    assert row.request_id is None
    assert row.user is None and row.username == ""
    assert row.token is None and row.channel is None
    assert (row.prompt_tokens, row.completion_tokens, row.quota, row.cost) == (0, 0, 0, 0)
    assert row.success is True and row.is_stream is False
    assert row.latency_ms is None and row.use_time == 0
    assert before <= row.created_at <= timezone.now()


def test_a_call_without_a_model_name_is_refused(post):
    before = stored_counts()
    response = post({"request_id": "r"})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 0, "errors": {"model_name": ["This field is required."]}}]
    assert_nothing_stored(before)


def test_a_blank_model_name_is_refused(post):
    assert "model_name" in post(call(model_name="   ")).json()["errors"][0]["errors"]


def test_a_failed_call_is_stored_as_an_error_row(post):
    response = post(call(success=False, error="upstream timeout", latency_ms=30_000))

    assert response.status_code == 201
    row = Log.objects.get()
    assert row.type == Log.Type.ERROR
    assert row.level == Log.Level.ERROR
    assert row.success is False
    assert row.content == "upstream timeout"
    assert row.other == {"error": "upstream timeout"}


def test_a_failed_call_keeps_its_content_and_its_error(post):
    post(call(success=False, error="rate limited", content="retry later", other={"status": 429}))
    row = Log.objects.get()
    assert row.content == "retry later"
    assert row.other == {"status": 429, "error": "rate limited"}


def test_a_failed_call_without_an_error_text_still_says_it_failed(post):
    post(call(success=False))
    assert Log.objects.get().content


def test_a_call_at_unix_seconds_is_stored_at_that_time(post):
    post(call(created_at=1714557600))
    assert Log.objects.get().created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_the_ip_may_be_ipv6_or_absent(post):
    assert post([call(1, ip="2001:db8::1"), call(2, ip=None), call(3, ip="")]).status_code == 201
    assert sorted(Log.objects.values_list("ip", flat=True), key=str) == ["2001:db8::1", None, None]


# --- retries ------------------------------------------------------------------------------


def test_resending_a_batch_stores_nothing_twice(post):
    batch = [call(1), call(2), call(3)]
    assert post(batch).json() == {"received": 3, "created": 3, "duplicates": 0}

    response = post(batch)

    assert response.status_code == 201
    assert response.json() == {"received": 3, "created": 0, "duplicates": 3}
    assert Log.objects.count() == 3


def test_a_batch_overlapping_an_earlier_one_stores_only_the_new_calls(post):
    post([call(1), call(2)])
    assert post([call(2), call(3), call(1), call(4)]).json() == {"received": 4, "created": 2, "duplicates": 2}
    assert Log.objects.count() == 4


def test_a_request_id_repeated_within_one_batch_is_stored_once(post):
    response = post([call(1, prompt_tokens=5), call(1, prompt_tokens=9), call(2)])

    assert response.json() == {"received": 3, "created": 2, "duplicates": 1}
    assert Log.objects.get(request_id="req-1").prompt_tokens == 5  # the first one wins


def test_a_duplicate_does_not_touch_the_stored_row(post):
    post(call(1, prompt_tokens=5, username="alice"))
    post(call(1, prompt_tokens=99, username="mallory"))
    assert Log.objects.get().prompt_tokens == 5
    assert not User.objects.filter(username="mallory").exists()


def test_calls_without_a_request_id_are_never_duplicates(post):
    post([{"model_name": "m"}, {"model_name": "m", "request_id": ""}])
    assert post({"model_name": "m"}).json() == {"received": 1, "created": 1, "duplicates": 0}
    assert Log.objects.count() == 3


def test_request_ids_are_case_sensitive(post):
    assert post([call("abc"), call("ABC")]).json()["created"] == 2


# --- all or nothing -----------------------------------------------------------------------


def test_one_bad_record_stores_nothing_of_the_batch(post):
    before = stored_counts()
    batch = [
        call(1, username="new-user", token_key="sk-abcdefghijklmnop", channel_name="fresh"),
        call(2, prompt_tokens=-1),
        call(3),
    ]

    response = post(batch)

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "1 of 3 records are invalid; nothing was stored."
    assert [e["index"] for e in body["errors"]] == [1]
    assert list(body["errors"][0]["errors"]) == ["prompt_tokens"]
    assert_nothing_stored(before)


def test_a_failure_while_storing_rolls_back_the_whole_batch(post, monkeypatch):
    before = stored_counts()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    # Accounts, keys and channels are written before the log rows: they must go too.
    monkeypatch.setattr("logs.services.mark_keys_used", explode)
    response = post([call(1, username="dave", token_key="sk-zzzzzzzzzzzzzzzz", channel_id=3)])

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert_nothing_stored(before)


# --- pricing -------------------------------------------------------------------------------


@pytest.fixture
def gpt4o_price(db) -> ModelPrice:
    return ModelPrice.objects.create(
        model_name="gpt-4o", input_per_million=Decimal("2.50"), output_per_million=Decimal("10.00")
    )


def test_a_call_without_a_cost_is_priced_from_the_model_price_table(post, gpt4o_price):
    post(call(prompt_tokens=1_000, completion_tokens=500))

    row = Log.objects.get()
    # 1000 x 2.50/1M + 500 x 10/1M = 0.0025 + 0.005
    assert row.cost == Decimal("0.0075")
    assert row.quota == 3750  # 0.0075 x 500000


def test_a_call_to_an_unpriced_model_costs_nothing(post, gpt4o_price):
    post(call(model_name="local-llama", prompt_tokens=1_000, completion_tokens=500))
    row = Log.objects.get()
    assert row.cost == 0
    assert row.quota == 0


def test_a_recorded_cost_wins_over_the_price_table(post, gpt4o_price):
    post(call(prompt_tokens=1_000, completion_tokens=500, cost="0.5"))
    row = Log.objects.get()
    assert row.cost == Decimal("0.5")
    assert row.quota == 250_000


def test_a_recorded_zero_cost_is_kept_rather_than_priced(post, gpt4o_price):
    post(call(prompt_tokens=1_000, completion_tokens=500, cost=0))
    assert Log.objects.get().cost == 0


def test_a_null_cost_is_priced_like_an_absent_one(post, gpt4o_price):
    post(call(prompt_tokens=1_000_000, cost=None))
    assert Log.objects.get().cost == Decimal("2.5")


def test_a_recorded_quota_wins_over_the_cost(post, gpt4o_price):
    post([call(1, prompt_tokens=1_000, quota=42), call(2, cost="1", quota=7), call(3, cost="1", quota=0)])
    assert dict(Log.objects.values_list("request_id", "quota")) == {"req-1": 42, "req-2": 7, "req-3": 0}
    assert Log.objects.get(request_id="req-1").cost == Decimal("0.0025")


def test_quota_follows_the_quota_per_unit_setting(post, settings):
    settings.QUOTA_PER_UNIT = 1_000
    post(call(cost="0.25"))
    assert Log.objects.get().quota == 250


def test_quota_is_rounded_to_a_whole_unit(post):
    post([call(1, cost="0.0000008"), call(2, cost="0.0000009"), call(3, cost="0.0000011")])
    # 0.4, 0.45 and 0.55 quota units
    assert dict(Log.objects.values_list("request_id", "quota")) == {"req-1": 0, "req-2": 0, "req-3": 1}


def test_a_price_change_applies_to_calls_recorded_after_it(post, gpt4o_price):
    post(call(1, prompt_tokens=1_000_000))
    gpt4o_price.input_per_million = Decimal("1.00")
    gpt4o_price.save()
    post(call(2, prompt_tokens=1_000_000))
    assert dict(Log.objects.values_list("request_id", "cost")) == {"req-1": Decimal("2.5"), "req-2": Decimal("1")}


# --- accounts ---------------------------------------------------------------------------------


def test_an_unknown_username_creates_an_account_without_a_usable_password(post):
    post([call(1, username="carol"), call(2, username="carol"), call(3, username="dave")])

    carol = User.objects.get(username="carol")
    assert not carol.has_usable_password()
    assert not carol.is_staff and not carol.is_superuser
    assert User.objects.filter(username="dave").exists()
    assert Log.objects.filter(user=carol).count() == 2


def test_a_known_username_is_attached_to_its_account(post, user_a):
    post(call(username="alice"))
    assert Log.objects.get().user == user_a
    assert User.objects.filter(username="alice").count() == 1


def test_a_username_that_is_a_platform_user_id_is_accepted(post):
    assert post(call(username="10086")).status_code == 201
    assert User.objects.filter(username="10086").exists()


# --- relay keys ----------------------------------------------------------------------------------

RAW_KEY = "sk-abcd1234efgh5678ijkl9012mnopwxyz"


def test_a_relay_key_is_stored_only_as_a_digest_and_a_hint(post):
    post(call(username="alice", token_key=RAW_KEY, token_name="main key"))

    key = RelayKey.objects.get()
    assert key.key_hash == hashlib.sha256(RAW_KEY.encode()).hexdigest()
    assert key.prefix == "sk-abcd…wxyz"
    assert key.name == "main key"
    assert key.owner == User.objects.get(username="alice")
    row = Log.objects.get()
    assert row.token == key
    secret = RAW_KEY.removeprefix("sk-")
    for stored in (key, row):
        assert secret not in repr(model_to_dict(stored)) + repr(vars(stored))


def test_a_relay_key_without_its_sk_prefix_is_the_same_key(post):
    post([call(1, token_key=RAW_KEY), call(2, token_key=RAW_KEY.removeprefix("sk-"))])
    post(call(3, token_key=RAW_KEY.removeprefix("sk-")))

    key = RelayKey.objects.get()
    assert key.key_hash == hashlib.sha256(RAW_KEY.encode()).hexdigest()
    assert set(Log.objects.values_list("token_id", flat=True)) == {key.pk}


def test_a_relay_key_without_a_name_is_named_by_its_hint(post):
    post(call(token_key=RAW_KEY))
    assert RelayKey.objects.get().name == "sk-abcd…wxyz"
    assert Log.objects.get().token_name == "sk-abcd…wxyz"


def test_a_short_relay_key_shows_almost_nothing_of_itself(post):
    post(call(token_key="sk-short"))
    assert RelayKey.objects.get().prefix == "sk-s…"


def test_different_relay_keys_are_different_keys(post):
    post([call(1, token_key=RAW_KEY), call(2, token_key=RAW_KEY[:-1] + "Z")])
    assert RelayKey.objects.count() == 2


def test_a_relay_key_named_but_not_given_is_one_key_per_owner_and_name(post):
    post([call(1, username="alice", token_name="bot"), call(2, username="alice", token_name="bot")])
    post([call(3, username="alice", token_name="bot"), call(4, username="bob", token_name="bot")])

    assert RelayKey.objects.count() == 2
    alice_key = RelayKey.objects.get(owner__username="alice")
    assert alice_key.key_hash is None
    assert Log.objects.filter(token=alice_key).count() == 3


def test_a_relay_key_records_its_last_use_after_the_commit(post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post([call(1, token_key=RAW_KEY, created_at="2024-05-01T10:00:00Z")])
    assert RelayKey.objects.get().last_used_at == datetime(2024, 5, 1, 10, tzinfo=UTC)

    with django_capture_on_commit_callbacks(execute=True):
        post([call(2, token_key=RAW_KEY, created_at="2024-04-01T10:00:00Z")])
    # An older call arriving late does not move the last use back.
    assert RelayKey.objects.get().last_used_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_each_relay_key_records_its_own_last_use(post, django_capture_on_commit_callbacks):
    other_key = "sk-0000111122223333444455556666"
    with django_capture_on_commit_callbacks(execute=True):
        post(
            [
                call(1, token_key=RAW_KEY, created_at="2024-05-01T10:00:00Z"),
                call(2, token_key=other_key, created_at="2024-05-03T10:00:00Z"),
            ]
        )
    assert RelayKey.objects.get(prefix="sk-abcd…wxyz").last_used_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert RelayKey.objects.get(prefix="sk-0000…6666").last_used_at == datetime(2024, 5, 3, 10, tzinfo=UTC)


# --- channels ----------------------------------------------------------------------------------------


def test_a_channel_is_created_by_id_with_its_name(post):
    post(call(channel_id=12, channel_name="azure-east"))
    channel = Channel.objects.get()
    assert (channel.id, channel.name) == (12, "azure-east")
    assert Log.objects.get().channel == channel


def test_a_channel_by_id_without_a_name_gets_a_placeholder_name(post):
    post(call(channel_id=12))
    assert Channel.objects.get(id=12).name == "channel-12"


def test_a_channel_named_by_any_record_of_the_batch_keeps_that_name(post):
    post([call(1, channel_id=12, channel_name="azure-east"), call(2, channel_id=12)])
    assert Channel.objects.get(id=12).name == "azure-east"


def test_a_known_channel_id_is_reused(post):
    Channel.objects.create(id=12, name="azure-east")
    post(call(channel_id=12, channel_name="ignored"))
    assert Channel.objects.count() == 1
    assert Log.objects.get().channel_id == 12


def test_a_channel_is_created_by_name_with_the_next_free_id(post):
    Channel.objects.create(id=40, name="existing")
    post([call(1, channel_name="new-b"), call(2, channel_name="new-a"), call(3, channel_name="new-b")])

    assert dict(Channel.objects.values_list("name", "id")) == {"existing": 40, "new-a": 41, "new-b": 42}
    assert dict(Log.objects.values_list("request_id", "channel_id")) == {"req-1": 42, "req-2": 41, "req-3": 42}


def test_a_known_channel_name_is_reused(post):
    Channel.objects.create(id=5, name="openai")
    post(call(channel_name="openai"))
    assert Channel.objects.count() == 1
    assert Log.objects.get().channel_id == 5


def test_a_channel_created_by_id_is_found_by_name_in_the_same_batch(post):
    post([call(1, channel_id=9, channel_name="gemini"), call(2, channel_name="gemini")])
    assert Channel.objects.count() == 1
    assert set(Log.objects.values_list("channel_id", flat=True)) == {9}


def test_every_log_row_of_a_batch_is_stored_once_even_when_many(post):
    batch = [call(i, username=f"user{i % 7}", channel_id=i % 3, token_key=f"sk-key-{i % 5:020}") for i in range(300)]
    assert post(batch).json() == {"received": 300, "created": 300, "duplicates": 0}
    assert Log.objects.count() == 300
    assert RelayKey.objects.count() == 5
    assert Channel.objects.count() == 3
    assert User.objects.filter(username__startswith="user").count() == 7


def test_times_are_kept_to_the_microsecond(post):
    moment = timezone.now() - timedelta(minutes=3)
    post(call(created_at=moment.isoformat()))
    assert Log.objects.get().created_at == moment


# --- counting ------------------------------------------------------------------------


def test_failed_calls_are_counted_as_they_are_stored(post, gpt4o_price):
    # On PostgreSQL the rollups count a batch's error rows from their values, before the
    # rows go in (logs.services): what they count must be what is stored, to the
    # microsecond, the priced cost's last decimal and every dimension.
    moment = timezone.now() - timedelta(hours=2, microseconds=7)
    failed = {"success": False, "error": "upstream timeout", "created_at": moment.isoformat()}
    batch = [
        call(1, prompt_tokens=333, completion_tokens=77, latency_ms=912, username="ann", channel_id=3, **failed),
        call(2, model_name="unpriced", chat_id="room-1", group="vip", module="agent", token_name="k", **failed),
        call(3, prompt_tokens=10, created_at=moment.isoformat(), username="ann", latency_ms=15),
        call(4, request_type="chat.reply", **{**failed, "created_at": (moment - timedelta(days=1)).isoformat()}),
        # Columns no rollup reads, which their fields prepare for the insert.
        call(5, ip="fe80::1%eth0", other={"n": [1.5, None]}, **failed),
    ]
    post(batch)

    failures = Log.objects.filter(type=Log.Type.ERROR)
    assert failures.count() == 4
    assert str(failures.get(request_id="req-5").ip) == "fe80::1"
    assert failures.get(request_id="req-1").cost == Decimal("0.00160250")  # 333 x 2.5/1M + 77 x 10/1M
    check_clean("llm")
    whole = rollups.spec("llm").table.objects.get(grain="total:all")
    assert (whole.requests, whole.errors, whole.prompt_tokens, whole.cost) == (5, 4, 343, Decimal("0.00162750"))
    assert whole.last_at == moment
