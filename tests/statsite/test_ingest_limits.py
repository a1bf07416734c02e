"""Limits and hostile input on every ingest endpoint: each one a 400 (or 413/415)
that names what is wrong, never a 500, and never a row stored."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from logs.models import Log
from statsite.ingest import INT64_MAX
from tests.ingest_support import (
    ENDPOINTS,
    LLM_CALLS,
    LOGS,
    MESSAGES,
    MINIMAL,
    TOOL_CALLS,
    assert_nothing_stored,
    iso,
    stored_counts,
)
from usage.models import ToolCall

pytestmark = pytest.mark.django_db


@pytest.fixture
def before(service_headers) -> dict[str, int]:
    """Row counts once every caller exists, so a refused request must leave them as they are."""
    return stored_counts()


@pytest.fixture
def send(api, service_headers):
    """POST a raw body (bytes or str) as JSON."""

    def post(path: str, body: bytes | str, content_type: str = "application/json"):
        return api.generic("POST", path, body, content_type=content_type, **service_headers)

    return post


@pytest.fixture
def post(post_json, service_headers):
    def send(path: str, body):
        return post_json(path, body, **service_headers)

    return send


def record(path: str, **fields) -> dict:
    return {**MINIMAL[path], **fields}


def field_errors(response, index: int = 0) -> dict:
    body = response.json()
    assert body["detail"]
    entry = next(e for e in body["errors"] if e["index"] == index)
    return entry["errors"]


# --- the body as a whole ---------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_body_larger_than_the_cap_is_refused_with_413_in_the_envelope(path, send, settings, before):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps([record(path, request_id=f"r{i:04}") for i in range(100)])
    assert len(body) > 2048

    response = send(path, body)

    assert response.status_code == 413
    assert set(response.json()) == {"detail"}
    assert_nothing_stored(before)


def test_a_body_within_the_cap_is_accepted(post, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = post(LLM_CALLS, [record(LLM_CALLS, request_id=f"r{i}") for i in range(10)])
    assert response.status_code == 201


@pytest.mark.parametrize("path", ENDPOINTS)
def test_more_records_than_the_limit_are_refused(path, post, settings, before):
    settings.INGEST_MAX_RECORDS = 3
    response = post(path, [record(path) for _ in range(4)])

    assert response.status_code == 400
    assert "3" in response.json()["detail"]
    assert_nothing_stored(before)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_exactly_the_limit_is_accepted(path, post, settings):
    settings.INGEST_MAX_RECORDS = 3
    response = post(path, [record(path) for _ in range(3)])

    assert response.status_code == 201
    assert response.json()["received"] == 3


def test_the_default_limit_is_a_thousand_records(post):
    batch = [record(LOGS, request_id=f"r{i}") for i in range(1000)]
    assert post(LOGS, batch).json() == {"received": 1000, "created": 1000, "duplicates": 0}
    assert post(LOGS, batch + [record(LOGS)]).status_code == 400


@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_empty_array_is_refused(path, post, before):
    response = post(path, [])
    assert response.status_code == 400
    assert_nothing_stored(before)


@pytest.mark.parametrize("body", ["a string", 42, None, True])
def test_a_body_that_is_neither_an_object_nor_an_array_is_refused(body, send, before):
    response = send(LLM_CALLS, json.dumps(body))
    assert response.status_code == 400
    assert response.json()["detail"]
    assert_nothing_stored(before)


@pytest.mark.parametrize("item", ["text", 1, None, [], [{"model_name": "m"}]])
def test_an_array_item_that_is_not_an_object_is_named_by_its_index(item, post, before):
    response = post(LLM_CALLS, [record(LLM_CALLS), item])

    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert_nothing_stored(before)


def test_a_body_that_is_not_json_is_refused(send, before):
    response = send(LLM_CALLS, '{"model_name": "gpt-4o",')
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert_nothing_stored(before)


def test_a_body_that_is_not_declared_as_json_is_refused_with_415(send, before):
    response = send(LLM_CALLS, "model_name=gpt-4o", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert set(response.json()) == {"detail"}
    assert_nothing_stored(before)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "path,field", [(LLM_CALLS, "cost"), (LLM_CALLS, "prompt_tokens"), (TOOL_CALLS, "duration_ms"), (LOGS, "quota")]
)
def test_nan_and_infinity_are_refused(constant, path, field, send, before):
    body = json.dumps(MINIMAL[path])[:-1] + f', "{field}": {constant}}}'
    response = send(path, body)

    assert response.status_code == 400
    assert_nothing_stored(before)


@pytest.mark.parametrize("constant", ["NaN", "Infinity"])
def test_nan_inside_a_json_field_is_refused(constant, send, before):
    response = send(LLM_CALLS, f'{{"model_name": "m", "other": {{"x": {constant}}}}}')
    assert response.status_code == 400
    assert_nothing_stored(before)


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_json_nested_beyond_the_decoder_is_refused(depth, send, before):
    body = '{"model_name": "m", "other": {"x": ' + "[" * depth + "]" * depth + "}}"
    response = send(LLM_CALLS, body)

    assert response.status_code == 400
    assert_nothing_stored(before)


def test_json_nested_just_within_what_the_decoder_takes_is_refused_not_crashed(send, before):
    # Depths around the interpreter's recursion limit: the decoder may accept them
    # while a later re-encoding of the same value would overflow the stack.
    for depth in range(850, 1000):
        body = '{"model_name": "m", "other": {"x": ' + "[" * depth + "]" * depth + "}}"
        response = send(LLM_CALLS, body)
        assert response.status_code == 400, (depth, response.content[:200])
    assert_nothing_stored(before)


@pytest.mark.parametrize(
    "path,field", [(LLM_CALLS, "other"), (TOOL_CALLS, "args"), (TOOL_CALLS, "result"), (LOGS, "other")]
)
def test_a_json_field_nested_deeper_than_twenty_levels_is_refused(path, field, post, before):
    value: object = {"leaf": 1}
    for _ in range(25):
        value = {"x": value}
    response = post(path, record(path, **{field: value}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


def test_a_json_field_larger_than_64_kib_is_refused(post, before):
    response = post(LLM_CALLS, record(LLM_CALLS, other={"blob": "x" * 70_000}))
    assert response.status_code == 400
    assert "other" in field_errors(response)
    assert_nothing_stored(before)


def test_an_integer_too_long_to_convert_is_refused(send, before):
    # Python refuses to convert integers of more than 4300 digits (a CPU-time guard).
    response = send(LLM_CALLS, '{"model_name": "m", "prompt_tokens": ' + "9" * 5000 + "}")
    assert response.status_code == 400
    assert_nothing_stored(before)


def test_a_body_that_is_not_valid_utf8_is_refused(send, before):
    response = send(LLM_CALLS, b'{"model_name": "gpt-\xff\xfe"}')
    assert response.status_code == 400
    assert_nothing_stored(before)


def test_a_bogus_charset_does_not_crash(send, before):
    response = send(LLM_CALLS, '{"model_name": "m"}', content_type="application/json; charset=no-such-codec")
    assert response.status_code in (201, 400, 415)


# --- NUL characters and lone surrogates ------------------------------------------------


@pytest.mark.parametrize(
    "path,field",
    [
        (LLM_CALLS, "model_name"),
        (LLM_CALLS, "content"),
        (LLM_CALLS, "request_id"),
        (TOOL_CALLS, "tool_id"),
        (MESSAGES, "text"),
        (MESSAGES, "chat_id"),
        (LOGS, "content"),
    ],
)
def test_a_nul_character_in_a_string_is_refused(path, field, post, before):
    response = post(path, record(path, **{field: "a\x00b"}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize(
    "path,field,value",
    [
        (LLM_CALLS, "other", {"note": "a\x00b"}),
        (LLM_CALLS, "other", {"a\x00b": 1}),
        (TOOL_CALLS, "args", ["a\x00b"]),
        (TOOL_CALLS, "result", "a\x00b"),
        (LOGS, "other", {"stack": ["a\x00b"]}),
    ],
)
def test_a_nul_character_in_a_json_field_is_refused(path, field, value, post, before):
    response = post(path, record(path, **{field: value}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


def test_a_json_field_may_hold_a_literal_backslash_u0000_text(post):
    # Six ordinary characters, not a NUL: nothing a database refuses.
    response = post(LLM_CALLS, record(LLM_CALLS, other={"path": "C:\\u0000dir"}))
    assert response.status_code == 201
    assert Log.objects.get().other == {"path": "C:\\u0000dir"}


@pytest.mark.parametrize(
    "path,field",
    [
        (LLM_CALLS, "model_name"),
        (LLM_CALLS, "username"),
        (LLM_CALLS, "token_key"),
        (TOOL_CALLS, "tool_name"),
        (MESSAGES, "text"),
        (MESSAGES, "nickname"),
        (LOGS, "content"),
    ],
)
def test_a_lone_surrogate_in_a_string_is_refused(path, field, send, before):
    body = json.dumps(MINIMAL[path])[:-1] + f', "{field}": "x\\ud800y"}}'
    response = send(path, body)

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize(
    "path,field,value",
    [
        (LLM_CALLS, "other", '{"k": "\\udc00"}'),
        (LLM_CALLS, "other", '{"\\ud800": 1}'),
        (TOOL_CALLS, "args", '["\\ud800"]'),
        (LOGS, "other", '{"context": {"k": "\\ud800"}}'),
    ],
)
def test_a_lone_surrogate_in_a_json_field_is_refused(path, field, value, send, before):
    body = json.dumps(MINIMAL[path])[:-1] + f', "{field}": {value}}}'
    response = send(path, body)

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize(
    "path,field", [(MESSAGES, "chat_type"), (LOGS, "level"), (LOGS, "type"), (LLM_CALLS, "ip")]
)
def test_a_lone_surrogate_in_a_choice_is_refused_without_echoing_it_into_a_crash(path, field, send, before):
    body = json.dumps(MINIMAL[path])[:-1] + f', "{field}": "\\ud800"}}'
    response = send(path, body)

    assert response.status_code == 400
    assert field in field_errors(response)
    response.content.decode("utf-8")  # the answer itself is valid UTF-8
    assert_nothing_stored(before)


def test_a_lone_surrogate_in_an_unknown_field_name_is_refused(send, before):
    response = send(LLM_CALLS, '{"model_name": "m", "\\ud800": 1}')

    assert response.status_code == 400
    assert len(field_errors(response)) == 1
    response.content.decode("utf-8")
    assert_nothing_stored(before)


def test_characters_outside_the_basic_plane_are_kept(post):
    response = post(MESSAGES, record(MESSAGES, text="ok \U0001f600", nickname="\U0001f916 bot", user_id="u1"))
    assert response.status_code == 201


# --- unknown fields ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_unknown_fields_are_refused_by_name(path, post, before):
    response = post(path, [record(path), record(path, colour="blue", size=3)])

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [1]
    assert set(errors[0]["errors"]) == {"colour", "size"}
    assert_nothing_stored(before)


def test_unknown_fields_and_bad_values_are_listed_together(post, before):
    response = post(LLM_CALLS, {"prompt_tokens": -1, "colour": "blue"})

    assert response.status_code == 400
    assert set(field_errors(response)) == {"model_name", "prompt_tokens", "colour"}
    assert_nothing_stored(before)


def test_a_record_of_very_many_unknown_fields_gets_a_bounded_answer(post, before):
    response = post(LLM_CALLS, record(LLM_CALLS, **{f"k{i:05}": i for i in range(10_000)}))

    assert response.status_code == 400
    assert len(field_errors(response)) == 20
    assert_nothing_stored(before)


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,field",
    [
        (LLM_CALLS, "prompt_tokens"),
        (LLM_CALLS, "completion_tokens"),
        (LLM_CALLS, "quota"),
        (LLM_CALLS, "cost"),
        (LLM_CALLS, "latency_ms"),
        (LLM_CALLS, "channel_id"),
        (TOOL_CALLS, "duration_ms"),
        (TOOL_CALLS, "cost"),
        (LOGS, "quota"),
    ],
)
@pytest.mark.parametrize("value", [-1, "-0.5"])
def test_negative_numbers_are_refused(path, field, value, post, before):
    response = post(path, record(path, **{field: value}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize(
    "path,field,value",
    [
        (LLM_CALLS, "prompt_tokens", 2**31),
        (LLM_CALLS, "latency_ms", 10**20),
        (LLM_CALLS, "quota", 2**63),
        (LLM_CALLS, "cost", 10**12),
        (LLM_CALLS, "cost", "1e30"),
        (LLM_CALLS, "cost", "999999999999.999999999"),  # rounds up past twelve whole digits
        (LLM_CALLS, "cost", "9" * 2000),
        (LLM_CALLS, "channel_id", 2**31),
        (TOOL_CALLS, "duration_ms", 2**31),
        (LOGS, "quota", 10**30),
    ],
)
def test_numbers_too_large_to_store_are_refused(path, field, value, post, before):
    response = post(path, record(path, **{field: value}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize("cost", [0.1 + 0.2, 0.0000123456789, "0.000000004", 1e-12])
def test_a_cost_with_more_than_eight_decimals_is_rounded_not_refused(cost, post):
    # Clients compute cost in floating point: 0.1 + 0.2 has seventeen decimals.
    response = post(LLM_CALLS, record(LLM_CALLS, cost=cost))

    assert response.status_code == 201, response.json()
    stored = Log.objects.get().cost
    assert stored == round(stored, 8)
    assert abs(float(stored) - float(cost)) < 1e-8


@pytest.mark.parametrize("path", [LLM_CALLS, TOOL_CALLS])
def test_a_negative_cost_that_would_round_to_zero_is_still_refused(path, post, before):
    response = post(path, record(path, cost="-0.000000001"))

    assert response.status_code == 400
    assert "cost" in field_errors(response)
    assert_nothing_stored(before)


def test_the_largest_cost_that_fits_is_accepted(post):
    assert post(LLM_CALLS, record(LLM_CALLS, cost="999999999998.99999999")).status_code == 201
    stored = Log.objects.get().cost
    if connection.vendor == "postgresql":
        assert str(stored) == "999999999998.99999999"
    else:
        # SQLite keeps decimals as doubles, about 15 significant digits.
        assert abs(stored - Decimal("999999999998.99999999")) < Decimal("0.001")


@pytest.mark.parametrize(
    "path,field,value",
    [
        (LLM_CALLS, "prompt_tokens", "many"),
        (LLM_CALLS, "prompt_tokens", 1.5),
        (LLM_CALLS, "prompt_tokens", True),
        (LLM_CALLS, "prompt_tokens", [1]),
        (LLM_CALLS, "prompt_tokens", {"n": 1}),
        (LLM_CALLS, "cost", "cheap"),
        (LLM_CALLS, "cost", True),
        (LLM_CALLS, "cost", {"usd": 1}),
        (LLM_CALLS, "quota", "lots"),
        (LLM_CALLS, "channel_id", "main"),
        (LLM_CALLS, "success", "maybe"),
        (LLM_CALLS, "is_stream", [True]),
        (LLM_CALLS, "ip", "300.1.1.1"),
        (LLM_CALLS, "other", [1, 2]),
        (LLM_CALLS, "other", "text"),
        (LLM_CALLS, "model_name", {"name": "gpt"}),
        (LLM_CALLS, "model_name", ["gpt"]),
        (LLM_CALLS, "model_name", True),
        (LLM_CALLS, "model_name", None),
        (LLM_CALLS, "username", "has spaces"),
        (TOOL_CALLS, "duration_ms", "slow"),
        (TOOL_CALLS, "tool_id", ["a"]),
        (TOOL_CALLS, "args", None),
        (MESSAGES, "sent_by_bot", "perhaps"),
        (MESSAGES, "chat_type", "channel"),
        (MESSAGES, "chat_id", {"id": 1}),
        (MESSAGES, "text", ["hello"]),
        (LOGS, "type", 2),
        (LOGS, "type", 6),
        (LOGS, "type", True),
        (LOGS, "type", "error"),
        (LOGS, "level", "fatal"),
        (LOGS, "other", ["stack"]),
        (LOGS, "quota", "x"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_field(path, field, value, post, before):
    response = post(path, record(path, **{field: value}))

    assert response.status_code == 400
    assert field in field_errors(response)
    assert_nothing_stored(before)


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "value",
    [
        "1999-12-31T23:59:59Z",
        946684799,  # 1999-12-31T23:59:59Z in unix seconds
        0,
        -5,
        "not a time",
        "2024-13-45T00:00:00",
        "2024-05-01T10:00:00+99:00",
        "1e9",
        "NaN",
        "",
        True,
        False,
        [2024, 1, 1],
        {"seconds": 1},
        1e300,
        10**30,
        "1" * 400,
        1700000000000,  # milliseconds, not seconds
    ],
)
def test_a_timestamp_that_is_not_sane_is_refused(path, value, post, before):
    response = post(path, record(path, created_at=value))

    assert response.status_code == 400
    assert "created_at" in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_timestamp_more_than_a_day_ahead_is_refused(path, post, before):
    ahead = timezone.now() + timedelta(days=1, minutes=5)
    for value in (iso(ahead), int(ahead.timestamp())):
        response = post(path, record(path, created_at=value))
        assert response.status_code == 400
        assert "created_at" in field_errors(response)
    assert_nothing_stored(before)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_timestamp_a_few_hours_ahead_is_accepted_for_clock_skew(path, post):
    ahead = timezone.now() + timedelta(hours=20)
    assert post(path, record(path, created_at=iso(ahead))).status_code == 201


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00+00:00"),
        (946684800, "2000-01-01T00:00:00+00:00"),
        ("946684800", "2000-01-01T00:00:00+00:00"),
        (1700000000.5, "2023-11-14T22:13:20.500000+00:00"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T12:00:00", "2024-05-01T12:00:00+00:00"),  # naive: taken in TIME_ZONE (UTC here)
    ],
)
def test_a_timestamp_is_iso_8601_or_unix_seconds(value, expected, post):
    assert post(TOOL_CALLS, record(TOOL_CALLS, created_at=value)).status_code == 201
    assert ToolCall.objects.get().created_at.astimezone(UTC).isoformat() == expected


# --- string lengths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,field,limit",
    [
        (LLM_CALLS, "request_id", 128),
        (LLM_CALLS, "model_name", 128),
        (LLM_CALLS, "username", 150),
        (LLM_CALLS, "token_key", 200),
        (LLM_CALLS, "token_name", 100),
        (LLM_CALLS, "channel_name", 100),
        (LLM_CALLS, "group", 64),
        (LLM_CALLS, "module", 64),
        (LLM_CALLS, "request_type", 128),
        (LLM_CALLS, "chat_id", 128),
        (LLM_CALLS, "error", 10_000),
        (LLM_CALLS, "content", 10_000),
        (TOOL_CALLS, "request_id", 128),
        (TOOL_CALLS, "username", 150),
        (TOOL_CALLS, "tool_id", 128),
        (TOOL_CALLS, "tool_name", 200),
        (TOOL_CALLS, "chat_id", 128),
        (MESSAGES, "message_id", 128),
        (MESSAGES, "chat_id", 128),
        (MESSAGES, "chat_name", 200),
        (MESSAGES, "user_id", 150),
        (MESSAGES, "nickname", 200),
        (MESSAGES, "text", 20_000),
        (LOGS, "content", 10_000),
        (LOGS, "username", 150),
        (LOGS, "request_id", 128),
    ],
)
def test_strings_are_length_limited(path, field, limit, post, before):
    assert post(path, record(path, **{field: "a" * (limit + 1)})).status_code == 400
    assert_nothing_stored(before)
    response = post(path, record(path, **{field: "a" * limit}))
    assert response.status_code == 201, response.json()


def test_every_bad_field_of_every_bad_record_is_listed(post, before):
    response = post(
        LLM_CALLS,
        [
            record(LLM_CALLS),
            {"prompt_tokens": -1},
            record(LLM_CALLS),
            record(LLM_CALLS, created_at="1990-01-01T00:00:00Z", cost="x"),
        ],
    )

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "2 of 4 records are invalid; nothing was stored."
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert set(body["errors"][0]["errors"]) == {"model_name", "prompt_tokens"}
    assert set(body["errors"][1]["errors"]) == {"created_at", "cost"}
    assert all(isinstance(m, str) for e in body["errors"] for ms in e["errors"].values() for m in ms)
    assert_nothing_stored(before)


def test_a_call_that_would_take_a_stored_total_past_64_bits_is_refused(post):
    # Each quota fits on its own; together they pass what a rollup total can hold (on
    # PostgreSQL the upsert fails; SQLite would keep an inexact float). Other logs add
    # no quota to any total, and every other summed value is a 32-bit one.
    now = timezone.now()
    first = post(LLM_CALLS, record(LLM_CALLS, quota=INT64_MAX, created_at=iso(now - timedelta(days=2))))
    assert first.status_code == 201, first.json()
    before = stored_counts()
    kept = _rollup_totals()

    response = post(LLM_CALLS, record(LLM_CALLS, quota=INT64_MAX, created_at=iso(now - timedelta(days=1))))

    assert response.status_code == 400, response.json()
    assert "total" in response.json()["detail"]
    assert_nothing_stored(before)
    assert _rollup_totals() == kept


def _rollup_totals() -> list[tuple]:
    from usage.models import EventRollup, LLMRollup

    return [
        tuple(table.objects.order_by("grain", "key", "bucket").values_list("grain", "key", "bucket", measure))
        for table, measure in ((LLMRollup, "quota"), (EventRollup, "rows"))
    ]


def test_a_batch_whose_own_total_passes_64_bits_is_refused(post, before):
    calls = [record(LLM_CALLS, quota=INT64_MAX), record(LLM_CALLS, quota=INT64_MAX)]

    response = post(LLM_CALLS, calls)

    assert response.status_code == 400, response.json()
    assert "total" in response.json()["detail"]
    assert_nothing_stored(before)
