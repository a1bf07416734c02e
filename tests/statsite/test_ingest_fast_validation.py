"""The fast validation of ingest records (statsite.ingest.RecordPlan) against DRF.

A plan may leave any record to the serializer, but a record it accepts must come
out exactly as the serializer's validated data, and a batch must be answered
exactly as the list serializer alone answers it: the same records, or the same
errors at the same indexes. Generated records mix plainly valid values with every
kind of bad or unusual one for each field's type."""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from logs.api.serializers import LLMCallRecordSerializer, LogRecordSerializer
from messaging.api.serializers import MessageRecordSerializer
from statsite.ingest import (
    IPV4_ADDRESS,
    BoundedJSONField,
    CostField,
    RecordPlan,
    RecordSerializer,
    TextField,
    TimestampField,
    echo_safe,
    record_plan,
    validate_records,
)
from usage.api.serializers import ToolCallRecordSerializer

# Validation alone: the same on every database, so run once (tests/conftest.py).
pytestmark = pytest.mark.database_free

RECORD_SERIALIZERS = [LLMCallRecordSerializer, LogRecordSerializer, ToolCallRecordSerializer, MessageRecordSerializer]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
ODD = st.sampled_from([None, True, False, 0, -1, 1.5, "", " ", "\x00", "\ud800", [], {}, ["x"], {"a": 1}])
# Dotted addresses, valid or nearly: octets past 255, leading zeros, signs, spaces, other
# digits than ASCII's, three to five parts.
OCTETS = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 99).map(lambda n: f"0{n}"),
    st.sampled_from(["", "+1", " 1", "1\u0661", "\u0661", "1e1", "0x1"]),
)
DOTTED = st.lists(OCTETS, min_size=3, max_size=5).map(".".join)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2026, 1, 1), timezones=st.just(UTC))


def plausible(field: serializers.Field) -> st.SearchStrategy:
    """Values a client would send in FIELD, most of them valid, in every accepted form."""
    if isinstance(field, TimestampField):
        return st.one_of(
            MOMENTS.map(lambda m: m.isoformat()),
            MOMENTS.map(lambda m: m.replace(tzinfo=None).isoformat()),
            MOMENTS.map(lambda m: int(m.timestamp())),
            MOMENTS.map(lambda m: m.timestamp()),
            MOMENTS.map(lambda m: f" {m.timestamp()} "),
        )
    if isinstance(field, CostField):
        return st.one_of(
            st.decimals(min_value=0, max_value=10**12, allow_nan=False, places=10).map(str),
            st.floats(min_value=0, max_value=1e12),
            st.integers(0, 10**12),
        )
    if isinstance(field, BoundedJSONField):
        return st.dictionaries(st.text(max_size=5), JSON, max_size=4)
    if isinstance(field, serializers.IPAddressField):
        return st.one_of(
            st.sampled_from(["127.0.0.1", "::ffff:10.0.0.1", "2001:DB8::1", ""]),
            DOTTED,
            DOTTED.map(lambda address: f" {address}\n"),
        )
    if isinstance(field, serializers.ChoiceField):
        return st.one_of(st.sampled_from(list(field.choices)), st.sampled_from([str(c) for c in field.choices]))
    if isinstance(field, serializers.BooleanField):
        return st.one_of(st.booleans(), st.sampled_from(["true", "False", "yes", 1, 0]))
    if isinstance(field, serializers.IntegerField):
        high = min(field.max_value, 10**20)
        return st.one_of(st.integers(0, high), st.just(high), st.integers(0, 99).map(str), st.just(3.0), st.just("4.0"))
    if isinstance(field, serializers.CharField):
        limit = field.max_length or 50
        return st.one_of(
            st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=min(limit, 12)),
            st.from_regex(r"[\w.@+-]{1,12}", fullmatch=True),  # an account name
            st.text(max_size=6).map(lambda t: f"  {t} "),
            st.text(max_size=4).map(lambda tail: "y" * (limit - 2) + tail),  # around the limit
            st.integers(-5, 5),
        )
    raise AssertionError(f"no values for {field!r}")  # pragma: no cover - every record field kind is above


def unusual(field: serializers.Field) -> st.SearchStrategy:
    """Values of the wrong type, out of range or otherwise odd for FIELD."""
    if isinstance(field, TimestampField):
        odd = st.sampled_from(
            ["yesterday", "1999-12-31T23:59:59Z", (datetime.now(UTC) + timedelta(days=2)).isoformat(), -5, 1e30]
        )
    elif isinstance(field, (CostField, serializers.IntegerField)):
        odd = st.sampled_from(["x", "1.5", "-0.000000001", "999999999999.999999999", "1e3", -1, 2**63, math.inf, True])
    elif isinstance(field, serializers.CharField):
        odd = st.sampled_from(["x\x00y", "x\udcffy", "\t", "\n\n", "a b", 2.5, "y" * 20_001])
    else:
        odd = st.sampled_from(["maybe", "300.1.1.1", "host", 2, 9, "warning", "[1]"])
    return st.one_of(odd, ODD, JSON)


@st.composite
def records(draw, serializer_class: type[RecordSerializer]) -> dict[str, Any]:
    """A record of some of the serializer's fields (mostly the required ones among them),
    a few with unusual values, and now and then an unknown field."""
    fields = serializer_class().fields
    names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
    if draw(st.integers(0, 9)):
        names = list(dict.fromkeys([*(n for n, f in fields.items() if f.required), *names]))
    odd = draw(st.sets(st.sampled_from(names), max_size=2)) if names and draw(st.booleans()) else set()
    record = {name: draw(unusual(fields[name]) if name in odd else plausible(fields[name])) for name in names}
    if not draw(st.integers(0, 19)):
        record["colour"] = "red"
    return record


def same_value(ours: Any, theirs: Any) -> bool:
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, Decimal):
        return ours.as_tuple() == theirs.as_tuple()
    return ours == theirs


def assert_same_record(item: dict, ours: dict, theirs: dict) -> None:
    """OURS is THEIRS, key order included. An absent created_at defaults to now,
    read by each path at its own moment: those two only have to be close."""
    assert list(ours) == list(theirs)
    for name, value in ours.items():
        if name == "created_at" and name not in item:
            assert abs(value - theirs[name]) < timedelta(seconds=5)
        else:
            assert same_value(value, theirs[name]), (name, value, theirs[name])


@pytest.mark.parametrize("serializer_class", RECORD_SERIALIZERS, ids=lambda c: c.__name__)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_a_record_the_plan_accepts_is_what_the_serializer_validates(serializer_class, data):
    item = data.draw(records(serializer_class))
    ours = record_plan(serializer_class)(item)
    serializer = serializer_class(data=item)
    valid = serializer.is_valid()
    if ours is not None:
        assert valid, serializer.errors
        assert_same_record(item, ours, serializer.validated_data)


def drf_alone(serializer_class: type[RecordSerializer], items: list[Any]) -> tuple[list[dict], list[dict]]:
    """What validate_records answered before it had a plan: the list serializer alone."""
    serializer = serializer_class(data=items, many=True)
    if serializer.is_valid():
        return list(serializer.validated_data), []
    found = serializer.errors
    pairs = sorted(found.items()) if isinstance(found, dict) else enumerate(found)
    errors = [
        {"index": int(i), "errors": echo_safe(d if isinstance(d, dict) else {"non_field_errors": d})}
        for i, d in pairs
        if d
    ]
    return [], errors


@pytest.mark.parametrize("serializer_class", RECORD_SERIALIZERS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_batch_is_answered_as_the_list_serializer_alone_answers_it(serializer_class, data):
    items = data.draw(st.lists(records(serializer_class) | ODD, min_size=1, max_size=5))
    valid, errors = validate_records(serializer_class, items)
    expected_valid, expected_errors = drf_alone(serializer_class, items)
    assert errors == expected_errors
    assert len(valid) == len(expected_valid)
    for item, ours, theirs in zip(items, valid, expected_valid):
        assert_same_record(item, ours, theirs)


def test_plainly_valid_records_do_not_reach_the_serializer(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the list serializer was used")

    monkeypatch.setattr(LLMCallRecordSerializer, "many_init", classmethod(refuse))
    records_in = [
        {"request_id": f"r-{i}", "model_name": "gpt-4o", "username": "alice", "prompt_tokens": i, "success": True,
         "created_at": "2024-05-01T10:00:00Z", "cost": "0.5", "other": {"k": [1]}, "ip": "10.0.0.1"}
        for i in range(3)
    ]
    valid, errors = validate_records(LLMCallRecordSerializer, records_in)
    assert errors == []
    assert [r["prompt_tokens"] for r in valid] == [0, 1, 2]
    assert valid[0]["cost"] == Decimal("0.50000000")
    assert valid[0]["created_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_a_valid_record_the_plan_leaves_to_the_serializer_is_accepted_all_the_same():
    # A mapping other than a plain dict (no JSON body makes one) is not plainly valid.
    items = [{"model_name": "a"}, OrderedDict(model_name="b", prompt_tokens="7")]
    assert record_plan(LLMCallRecordSerializer)(items[1]) is None

    valid, errors = validate_records(LLMCallRecordSerializer, items)

    assert errors == []
    assert [(r["model_name"], r["prompt_tokens"]) for r in valid] == [("a", 0), ("b", 7)]


def test_errors_keep_the_index_of_the_record_in_the_request():
    items = [{"model_name": "a"}, {"model_name": ""}, {"model_name": "b"}, {"model_name": "c", "colour": 1}]
    valid, errors = validate_records(LLMCallRecordSerializer, items)
    assert valid == []
    assert errors == [
        {"index": 1, "errors": {"model_name": ["This field may not be blank."]}},
        {"index": 3, "errors": {"colour": ["Unknown field."]}},
    ]


def test_a_record_serializer_the_plan_cannot_mirror_is_refused_at_once():
    class Checked(RecordSerializer):
        name = TextField(max_length=10)

        def to_internal_value(self, data):
            return super().to_internal_value(data)

    with pytest.raises(TypeError, match="Checked"):
        RecordPlan(Checked)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(DOTTED, st.text(alphabet="0123456789.\u0661 /:%\n", max_size=18)))
def test_the_ipv4_pattern_accepts_exactly_what_ipaddress_reads(text):
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        parsed = False
    else:
        parsed = True
    assert bool(IPV4_ADDRESS.fullmatch(text)) == parsed


def test_an_address_field_the_plan_cannot_mirror_is_left_to_the_field():
    def no_private(value):
        if ipaddress.ip_address(value).is_private:
            raise serializers.ValidationError("No private addresses.")

    class Addresses(RecordSerializer):
        v6 = serializers.IPAddressField(protocol="IPv6", required=False)
        public = serializers.IPAddressField(validators=[no_private], required=False)

    plan = RecordPlan(Addresses)
    assert plan({"v6": "10.0.0.1"}) is None
    assert plan({"public": "10.0.0.1"}) is None
    assert plan({"public": " 8.8.8.8 ", "v6": "2001:db8::1"}) == {"public": "8.8.8.8", "v6": "2001:db8::1"}
