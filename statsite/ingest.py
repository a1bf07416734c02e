"""The write side's shared machinery: record fields, batch validation, retries.

Every ingest endpoint takes one JSON object or an array of up to
INGEST_MAX_RECORDS objects, validates all of them before storing any, stores
them in one transaction (all or nothing), and answers
`201 {"received", "created", "duplicates"}`. A record whose idempotency key
was stored before, or appears earlier in the same batch, is a duplicate:
clients may resend a whole batch safely.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, cached_property
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
    validate_ipv4_address,
    validate_ipv46_address,
)
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.db.models import F, Lookup, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from rest_framework.views import APIView

from statsite import dialects
from statsite.permissions import IsAdminOrService
from statsite.system.sources import note_ingest_source
from usage.rollups import TotalTooLarge

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 20
INT32_MAX = 2_147_483_647
INT64_MAX = 9_223_372_036_854_775_807
COST_MAX = 10**12 - 1

# How many times a batch is retried when a concurrent request stored the same
# idempotency key between our check and our insert. Each such retry is caused by
# a competing batch that committed meanwhile, so it is bounded by how many clients
# send overlapping batches at once; ten covers a client retrying into a crowd.
CONFLICT_RETRIES = 10
# SQLSTATEs after which PostgreSQL says the transaction may simply be run again:
# serialization failure and deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def chunked(items: list[T], size: int = 500) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- record fields ------------------------------------------------------------


def _check_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise serializers.ValidationError("Text is not valid Unicode (lone surrogate).") from exc
    return value


class TextField(serializers.CharField):
    """A CharField that refuses what databases refuse: NUL characters and lone surrogates."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            raise serializers.ValidationError("Expected a string.")
        return _check_text(super().to_internal_value(data))


def _json_depth(value: Any, limit: int) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        depth = max(depth, level)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return depth


def _json_has_nul(value: Any) -> bool:
    """Whether any string in VALUE, key or value, holds a NUL (which jsonb refuses).
    Walked rather than searched for in the encoding, where a literal backslash
    followed by `u0000` would look the same."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class BoundedJSONField(serializers.JSONField):
    """Free-form JSON, bounded in size and depth, storable in jsonb (no NUL)."""

    def __init__(self, *args, object_only: bool = False, **kwargs):
        self.object_only = object_only
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        # Depth first, by an iterative walk: encoding a value nested close to the
        # interpreter's recursion limit (as JSONField itself does) could overflow the stack.
        if _json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise serializers.ValidationError(f"Nested deeper than {MAX_JSON_DEPTH} levels.")
        data = super().to_internal_value(data)
        if self.object_only and not isinstance(data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        try:
            encoded = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:
            raise serializers.ValidationError("Not storable JSON (NaN, Infinity or invalid Unicode).") from exc
        if len(encoded) > MAX_JSON_BYTES:
            raise serializers.ValidationError(f"At most {MAX_JSON_BYTES} bytes of JSON.")
        if _json_has_nul(data):
            raise serializers.ValidationError("NUL characters are not allowed.")
        return data


@extend_schema_field(OpenApiTypes.DATETIME)
class TimestampField(serializers.Field):
    """ISO 8601 (a naive time is taken in TIME_ZONE) or unix seconds; sane range only."""

    default_error_messages = {
        "invalid": "Expected an ISO 8601 date-time or unix seconds.",
        "too_early": "Must not be before 2000-01-01.",
        "too_late": "Must not be more than a day in the future.",
    }

    def to_internal_value(self, data) -> datetime:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, (int, float)):
            if not math.isfinite(data) or not (0 <= data < 32503680000):  # before year 3000
                self.fail("too_early" if math.isfinite(data) and data < 0 else "invalid")
            value = datetime.fromtimestamp(data, tz=UTC)
        elif isinstance(data, str):
            text = data.strip()
            try:
                value = datetime.fromtimestamp(float(text), tz=UTC) if _looks_numeric(text) else parse_datetime(text)
            except (ValueError, OverflowError, OSError):
                value = None
            if value is None:
                self.fail("invalid")
            if timezone.is_naive(value):
                value = timezone.make_aware(value)
        else:
            self.fail("invalid")
        if value < EARLIEST:
            self.fail("too_early")
        if value > timezone.now() + MAX_FUTURE:
            self.fail("too_late")
        return value

    def to_representation(self, value):
        return value.isoformat()


def _looks_numeric(text: str) -> bool:
    return bool(text) and text.replace(".", "", 1).isdigit()


def count_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=INT32_MAX, **kwargs)


class CostField(serializers.DecimalField):
    """A non-negative amount of money. Digits past `decimal_places` are rounded,
    not refused: clients compute costs in floating point, where 0.1 + 0.2 has
    seventeen decimals. Only the whole part is limited."""

    def validate_precision(self, value: Decimal) -> Decimal:
        # Checked before rounding, so -0.000000001 is refused rather than stored as 0.
        if value < 0:
            self.fail("min_value", min_value=self.min_value if self.min_value is not None else 0)
        _sign, digits, exponent = value.as_tuple()
        whole_digits = max(len(digits) + int(exponent), 0)
        if self.max_whole_digits is not None and whole_digits > self.max_whole_digits:
            self.fail("max_whole_digits", max_whole_digits=self.max_whole_digits)
        return value

    def quantize(self, value: Decimal) -> Decimal:
        try:
            return super().quantize(value)
        except InvalidOperation:
            # 999999999999.999999999 rounds up to 13 whole digits, past max_digits.
            self.fail("max_whole_digits", max_whole_digits=self.max_whole_digits)


def cost_field(**kwargs) -> CostField:
    return CostField(
        max_digits=20, decimal_places=8, min_value=0, max_value=COST_MAX, rounding=ROUND_HALF_UP, **kwargs
    )


def username_field(**kwargs) -> TextField:
    return TextField(max_length=150, validators=[UnicodeUsernameValidator()], **kwargs)


class RecordSerializer(serializers.Serializer):
    """Base of every ingest record: unknown fields are refused, not silently dropped."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        # At most 20 named, so a record of a million keys does not make a million-line answer.
        errors: dict[str, list[str]] = {name: ["Unknown field."] for name in unknown[:20]}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not errors or not isinstance(exc.detail, dict):
                raise
            # One answer lists every problem of the record, unknown fields and bad values alike.
            raise serializers.ValidationError({**exc.detail, **errors}) from exc
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --- fast validation ------------------------------------------------------------
#
# Ingest batches are large and almost always valid, and DRF's per-field machinery
# costs about 0.2 ms a record. A RecordPlan, derived once per record serializer from
# its declared fields, accepts a plainly valid record in one tight loop. Whatever it
# does not accept (a bad value, an unknown field, a value of an unusual type) goes to
# the serializer itself, so the messages and shapes of every error stay DRF's own.
# For every record a plan accepts, its result is the serializer's validated data
# (tests/statsite/test_ingest_fast_validation.py proves it on generated records).


class _Refused(Exception):
    """A value the plan leaves to the serializer: invalid, or not plainly valid."""


Check = Callable[[Any], Any]


def _validator_call(validator: Callable, field: serializers.Field) -> Check:
    """VALIDATOR called as DRF calls it (with the field when it asks for context)."""
    if getattr(validator, "requires_context", False):
        return lambda value: validator(value, field)
    return validator


def _bounds(
    field: serializers.Field, low_type: type, high_type: type, covered: tuple[type, ...] = ()
) -> tuple[float, float, list[Check]]:
    """The tightest (low, high) limits that FIELD's validators of LOW_TYPE and HIGH_TYPE
    set, and the rest of its validators, less those of COVERED types (checked inline)."""
    low, high, others = -math.inf, math.inf, []
    for validator in field.validators:
        limit = getattr(validator, "limit_value", None)
        if isinstance(validator, low_type) and not callable(limit):
            low = max(low, limit)
        elif isinstance(validator, high_type) and not callable(limit):
            high = min(high, limit)
        elif not isinstance(validator, covered):
            others.append(_validator_call(validator, field))
    return low, high, others


# The validators DRF's CharField adds to every text field (an IP address field is one),
# whose checks the inline ones below make themselves.
_CHAR_FIELD_VALIDATORS = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)


def _text_check(field: serializers.CharField) -> Check:
    """CharField/TextField validation of a str, inline: blank, trimming, length, NUL
    and surrogates as DRF and TextField check them; other validators as they are."""
    shortest, longest, others = _bounds(
        field,
        MinLengthValidator,
        MaxLengthValidator,
        covered=_CHAR_FIELD_VALIDATORS,
    )
    trim, allow_blank = field.trim_whitespace, field.allow_blank

    def check(value: Any) -> Any:
        if type(value) is not str:
            return field.run_validation(value)
        text = value.strip() if trim else value
        if not text:
            if allow_blank:
                return ""
            raise _Refused
        if not shortest <= len(text) <= longest or "\x00" in text or not (text.isascii() or _encodable(text)):
            raise _Refused
        for validate in others:
            validate(text)
        return text

    return check


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer_check(field: serializers.IntegerField) -> Check:
    """IntegerField validation of an int, inline. Only for bounded fields: DRF reads an
    int through its text, and Python refuses the text of an int of more than 4300
    digits, which an unbounded field would have to mirror."""
    low, high, others = _bounds(field, MinValueValidator, MaxValueValidator)
    if math.isinf(low) or math.isinf(high):
        return field.run_validation

    def check(value: Any) -> Any:
        if type(value) is not int:
            return field.run_validation(value)
        if not low <= value <= high:
            raise _Refused
        for validate in others:
            validate(value)
        return value

    return check


def _boolean_check(field: serializers.BooleanField) -> Check:
    def check(value: Any) -> Any:
        return value if value is True or value is False else field.run_validation(value)

    return check


# A dotted-quad IPv4 address exactly as ipaddress.IPv4Address reads one: four decimal
# numbers of 0-255 in ASCII digits, without leading zeros.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_ADDRESS = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def _ip_check(field: serializers.IPAddressField) -> Check:
    """IPAddressField validation of a dotted-quad IPv4 address, inline (DRF would trim
    it, then parse it with ipaddress); any other value (IPv6, blank, invalid) by the
    field itself. Only for the field's own validators, which the pattern mirrors."""
    mirrored = field.protocol in ("both", "ipv4") and all(
        isinstance(v, _CHAR_FIELD_VALIDATORS) or v in (validate_ipv46_address, validate_ipv4_address)
        for v in field.validators
    )
    if not mirrored:
        return field.run_validation
    trim = field.trim_whitespace

    def check(value: Any) -> Any:
        if type(value) is str:
            text = value.strip() if trim else value
            if IPV4_ADDRESS.fullmatch(text):
                return text
        return field.run_validation(value)

    return check


def _field_check(field: serializers.Field) -> Check:
    """How a present, non-null value of FIELD is validated: inline for the plain field
    classes, else by the field's own run_validation (timestamps, costs, JSON, choices…)."""
    kind = type(field)
    if kind in (serializers.CharField, TextField):
        return _text_check(field)
    if kind is serializers.IPAddressField:
        return _ip_check(field)
    if kind is serializers.IntegerField:
        return _integer_check(field)
    if kind is serializers.BooleanField and not field.validators:
        return _boolean_check(field)
    return field.run_validation


class _Step(NamedTuple):
    """One field of a RecordPlan (a tuple: the loop unpacks it, the cheapest access)."""

    name: str
    check: Check  # a present, non-null value -> its internal value
    validate: Check | None  # the serializer's validate_<name>
    allow_null: bool
    absent: Callable[[], Any] | None  # the value when absent (the default); None: skipped
    required: bool


class RecordPlan:
    """Validates plainly valid records of one RecordSerializer quickly (see above)."""

    def __init__(self, serializer_class: type[RecordSerializer]) -> None:
        serializer = serializer_class()
        self._refuse_what_it_cannot_mirror(serializer)
        self._names = frozenset(serializer.fields)
        self._steps = [
            _Step(
                name=field.field_name,
                check=_field_check(field),
                validate=getattr(serializer, f"validate_{field.field_name}", None),
                allow_null=field.allow_null,
                absent=None if field.default is empty else field.get_default,
                required=field.required,
            )
            for field in serializer._writable_fields
        ]
        self._validate = serializer.validate

    @staticmethod
    def _refuse_what_it_cannot_mirror(serializer: serializers.Serializer) -> None:
        kind = type(serializer)
        mirrored = (
            isinstance(serializer, RecordSerializer)
            and kind.to_internal_value is RecordSerializer.to_internal_value
            and kind.run_validation is serializers.Serializer.run_validation
            and not serializer.validators
            and all(field.source_attrs == [field.field_name] for field in serializer.fields.values())
        )
        if not mirrored:
            raise TypeError(
                f"{kind.__name__}: a record serializer declares plain fields (no sources, overridden "
                "validation or serializer validators), which RecordPlan mirrors"
            )

    def __call__(self, item: Any) -> dict | None:
        """ITEM's validated data, or None when it is not plainly valid."""
        if type(item) is not dict or not self._names.issuperset(item):
            return None
        data: dict[str, Any] = {}
        try:
            for name, check, validate, allow_null, absent, required in self._steps:
                value = item.get(name, empty)
                if value is empty:
                    if required:
                        return None
                    if absent is None:
                        continue
                    value = absent()
                elif value is not None:
                    value = check(value)
                elif not allow_null:
                    return None
                if validate is not None:
                    value = validate(value)
                data[name] = value
            return self._validate(data)
        except (_Refused, serializers.ValidationError, DjangoValidationError):
            return None


@cache
def record_plan(serializer_class: type[RecordSerializer]) -> RecordPlan:
    return RecordPlan(serializer_class)


# --- storing --------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    received: int
    created: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        return {"received": self.received, "created": self.created, "duplicates": self.duplicates}


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def store_batch(store: Callable[[list[dict]], int], records: list[dict]) -> IngestResult:
    """Run STORE (which returns how many it created) in one transaction, retrying
    when a concurrent writer won a race for a unique key: the next attempt sees
    the winner's rows and counts them as duplicates."""
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            with transaction.atomic():
                created = store(records)
            return IngestResult(received=len(records), created=created, duplicates=len(records) - created)
        except (IntegrityError, OperationalError) as exc:
            if attempt == CONFLICT_RETRIES or not _is_retryable(exc):
                raise
            # A little jitter, so the batches that collided do not collide again in lockstep.
            time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 4)))
    raise AssertionError("unreachable")


def in_key_order(rows: list[T], key: Callable[[T], Any]) -> list[T]:
    """ROWS with those that have an idempotency key first, in key order, then the rest
    as they came.

    PostgreSQL locks each new unique-index entry as a row goes in, and a second
    writer of the same key waits for the first to finish. Two batches inserting
    overlapping keys in different orders could each wait for the other (a
    deadlock); in one order, one of them merely waits."""
    keyed = sorted((r for r in rows if key(r) is not None), key=key)
    return keyed + [r for r in rows if key(r) is None]


def first_of_each(records: Iterable[dict], key: Callable[[dict], Any], stored: set) -> list[dict]:
    """The records whose key is new: neither in STORED nor seen earlier in the batch.
    Records whose key is None have no idempotency key and are always new."""
    seen = set(stored)
    fresh = []
    for record in records:
        k = key(record)
        if k is None:
            fresh.append(record)
        elif k not in seen:
            seen.add(k)
            fresh.append(record)
    return fresh


class _AnyOf(Lookup):
    """`column = ANY(%s)`: membership in a list sent as one array parameter (PostgreSQL).
    Text is compared as text: a cast to the column's varchar(n) would cut a longer
    value down to one that may be stored."""

    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        element = _element_type(self.lhs.output_field, connection)
        return f"{lhs} = ANY(%s::{element}[])", [*params, _array_parameter(element, self.rhs)]


def _element_type(field: models.Field, connection) -> str:
    return "text" if isinstance(field, (models.CharField, models.TextField)) else field.db_type(connection)


def _array_parameter(element: str, values: list[Any]) -> Any:
    if element != "text" and all(type(value) is int for value in values):
        # The driver quotes a list element by element (0.6 ms for 2,000 ids); an
        # array literal of integers is one string to quote (0.1 ms).
        return "{" + ",".join(map(str, values)) + "}"
    return values


def each_part(field: str, values: Iterable[Any]) -> Iterator[Q | Lookup]:
    """Filters that together select the rows whose FIELD is one of VALUES. On PostgreSQL
    one, with VALUES as one array parameter: the driver parses a statement for its
    placeholders, and an IN list of a thousand costs it milliseconds. Elsewhere one per
    chunk, within the database's limit of parameters."""
    values = list(values)
    if not values:
        return
    if connection.vendor == "postgresql":
        yield _AnyOf(F(field), values)
    else:
        for part in chunked(values):
            yield Q(**{f"{field}__in": part})


# The SELECT of each (model, field, columns) that rows_among has run on PostgreSQL, and
# its array's element type.
_AMONG_SQL: dict[tuple[type[models.Model], str, tuple[str, ...]], tuple[str, str]] = {}
_STAND_IN_VALUES = ["\x00"]  # what the array stands in for while the SQL is compiled


def rows_among(model: type[models.Model], field: str, values: Iterable[Any], *columns: str) -> list[tuple]:
    """The COLUMNS of MODEL's rows whose FIELD is one of VALUES, as tuples: the rows of
    `filter(<FIELD>__in=VALUES).values_list(*COLUMNS)` over every row of the table (the
    base manager's, whatever the default manager leaves out). Columns must be of the types
    PostgreSQL's driver gives as Django would (text, integers, decimals, booleans,
    times). On PostgreSQL its SQL is compiled once per (MODEL, FIELD, COLUMNS), VALUES
    bound as its one array parameter: building and compiling the queryset cost Django
    about as much as running the look-up (a look-up took 0.35-0.52 ms through a queryset,
    0.25-0.31 ms this way, on a 2-core machine), and one LLM call looks up five things.
    Elsewhere the queryset is built for each chunk (each_part)."""
    values = list(values)
    if not values:
        return []
    if connection.vendor != "postgresql":
        rows = model._base_manager.values_list(*columns)
        return [row for part in each_part(field, values) for row in rows.filter(part)]
    key = (model, field, columns)
    if key not in _AMONG_SQL:
        element = _element_type(model._meta.pk if field == "pk" else model._meta.get_field(field), connection)
        rows = model._base_manager.filter(_AnyOf(F(field), _STAND_IN_VALUES)).values_list(*columns)
        sql, params = rows.query.sql_with_params()
        assert list(params) == [_STAND_IN_VALUES], "the array is the one parameter"
        _AMONG_SQL[key] = (sql, element)
    sql, element = _AMONG_SQL[key]
    with connection.cursor() as cursor:
        cursor.execute(sql, [_array_parameter(element, values)])
        return cursor.fetchall()


def instances_among(model: type[M], field: str, values: Iterable[Any]) -> list[M]:
    """MODEL's rows whose FIELD is one of VALUES, as instances (rows_among): for models
    whose every column is of a type rows_among takes."""
    names = [f.attname for f in model._meta.concrete_fields]
    return [model.from_db(connection.alias, names, row) for row in rows_among(model, field, values, *names)]


# Column types whose values the services build as the driver takes them (str, int,
# bool, Decimal, an aware datetime, a related row's id): COPY writes them as they are.
# Other columns (JSON, IP addresses) are prepared by their field, as an INSERT would.
PLAIN_COLUMNS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.DateTimeField,
    models.DecimalField,
    models.ForeignKey,
)
# A single row goes in by INSERT (one round trip, where drawing its id and COPY take
# three); from two rows on, COPY is the cheaper (measured: 0.5 ms against 1.3 ms for 2
# rows, 1.9 ms against 6.4 ms for 64).
COPY_MIN_ROWS = 2


def _stored_text(value: Any) -> str:
    """A datetime (to the microsecond) or a decimal as its column reads it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not stored as text")


def _as_text(field: models.Field, value: Any) -> bool:
    """Whether COPY writes VALUE of a prepared column as the text it is: a dotted-quad
    IPv4 address, which PostgreSQL reads as it reads the address object its field would
    make of it (the common case, spared a second parse in Python)."""
    return type(field) is models.GenericIPAddressField and type(value) is str and bool(IPV4_ADDRESS.fullmatch(value))


class FactRows:
    """One fact table's rows as named tuples, and their bulk insert.

    A row holds the model's columns by attribute name (`id`, `user_id`, `cost`, …) and
    has `pk`, so whatever reads model instances of the facts (the rollups) reads it
    alike. It costs a tenth of an instance to build, and on PostgreSQL a batch of rows
    goes in by COPY, which spares the driver and the server a parameter per value."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model

    @cached_property
    def _fields(self) -> list[models.Field]:
        """The table's columns, the primary key first."""
        pk = self.model._meta.pk
        return [pk, *(f for f in self.model._meta.concrete_fields if f is not pk)]

    @cached_property
    def row_type(self) -> type[tuple]:
        base = namedtuple(f"{self.model.__name__}Row", [f.attname for f in self._fields])
        return type(base.__name__, (base,), {"__slots__": (), "pk": property(attrgetter(self._fields[0].attname))})

    @cached_property
    def _defaults(self) -> dict[str, Any]:
        # A callable default (now, a fresh dict) is per row: such columns must be given.
        return {f.attname: f.get_default() for f in self._fields if not (f.has_default() and callable(f.default))}

    def row(self, **values: Any) -> tuple:
        """A row of VALUES, the model's defaults for the columns not given, no id yet."""
        return self.row_type(**{**self._defaults, **values})

    def insert(self, rows: list[tuple]) -> list[tuple]:
        """Insert ROWS, in their order (in_key_order), in the caller's transaction; returns
        them with their ids. A unique violation raises django.db.IntegrityError."""
        if connection.vendor == "postgresql":
            return self._copy(rows) if len(rows) >= COPY_MIN_ROWS else [self._insert_one(row) for row in rows]
        created = self.model.objects.bulk_create([self.model(**row._asdict()) for row in rows])
        return [self.row_type(obj.pk, *row[1:]) for row, obj in zip(rows, created)]

    def as_json(self, rows: list[tuple]) -> str:
        """ROWS (not inserted yet) as a JSON array of objects keyed by column, each value as
        the table stores it: PostgreSQL reads them back as the table's rows
        (`jsonb_populate_recordset`), for the rollups to count. The id, not drawn yet,
        is 0. Only the plain columns are written: no rollup reads the others (JSON, IP
        addresses), which their fields prepare for the insert, and they read back NULL."""
        plain = [(i, f.column) for i, f in enumerate(self._fields) if i and isinstance(f, PLAIN_COLUMNS)]
        pk = self._fields[0].column
        return json.dumps([{pk: 0, **{column: row[i] for i, column in plain}} for row in rows], default=_stored_text)

    @cached_property
    def _prepared_columns(self) -> list[tuple[int, models.Field]]:
        return [(i, f) for i, f in enumerate(self._fields) if not isinstance(f, PLAIN_COLUMNS)]

    def _values(self, row: tuple) -> Sequence[Any]:
        """ROW's values as the driver takes them (PostgreSQL): the plain columns' as they
        are, the others' prepared by their field, as an INSERT would (an IPv4 address
        stays the text it is). None is NULL whatever the column (the common case of the
        nullable ones)."""
        if not self._prepared_columns:
            return row
        values = list(row)
        for i, field in self._prepared_columns:
            if values[i] is not None and not _as_text(field, values[i]):
                values[i] = field.get_db_prep_save(values[i], connection)
        return values

    @cached_property
    def _insert_sql(self) -> str:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in self._fields[1:])
        places = ", ".join(["%s"] * (len(self._fields) - 1))
        return (
            f"INSERT INTO {qn(self.model._meta.db_table)} ({columns}) VALUES ({places}) "
            f"RETURNING {qn(self._fields[0].column)}"
        )

    def _insert_one(self, row: tuple) -> tuple:
        """ROW inserted by an INSERT whose SQL is written once (PostgreSQL): what
        bulk_create sends, without building a model instance and compiling the statement
        for every record (a log row took 0.76 ms to insert that way, 0.41 ms this way)."""
        with connection.cursor() as cursor:
            cursor.execute(self._insert_sql, self._values(row)[1:])
            (new_id,) = cursor.fetchone()
        return self.row_type(new_id, *row[1:])

    def _copy(self, rows: list[tuple]) -> list[tuple]:
        qn = connection.ops.quote_name
        table = qn(self.model._meta.db_table)
        with connection.cursor() as cursor:
            # Ids drawn from the table's own sequence, as an INSERT would draw them.
            cursor.execute(
                "SELECT nextval(seq) FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) AS s, "
                "generate_series(1, %s)",
                [table, self._fields[0].column, len(rows)],
            )
            rows = [self.row_type(new_id, *row[1:]) for (new_id,), row in zip(cursor.fetchall(), rows)]
            columns = ", ".join(qn(f.column) for f in self._fields)
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(self._values(row))
        return rows


def resolve_accounts(usernames: Iterable[str]) -> dict[str, int]:
    """Account ids by username, creating the unknown accounts with no usable password."""
    User = get_user_model()
    names = {n for n in usernames if n}
    if not names:
        return {}
    found = dict(rows_among(User, "username", sorted(names), "username", "pk"))
    missing = sorted(names - found.keys())
    if missing:
        # ignore_conflicts: an account that a concurrent batch creates meanwhile is
        # waited for and then found below, instead of failing this whole batch.
        User.objects.bulk_create(
            [User(username=n, password=make_password(None)) for n in missing], ignore_conflicts=True
        )
        found.update(rows_among(User, "username", missing, "username", "pk"))
    if len(found) < len(names):
        # Not expected (an insert that meets a concurrent one waits for its outcome),
        # but a missing account must rerun the batch, not fail it with a KeyError.
        raise IntegrityError("an account being created concurrently is missing")
    return found


# --- the endpoint -----------------------------------------------------------------


def echo_safe(value: Any) -> Any:
    """VALUE with every string made encodable as UTF-8. Error messages may echo
    the input (an unknown field's name, a bad choice), and a lone surrogate
    echoed into the response would make rendering it fail."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {echo_safe(k): echo_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [echo_safe(v) for v in value]
    return value


def validate_records(
    serializer_class: type[RecordSerializer], items: list[Any]
) -> tuple[list[dict], list[dict]]:
    """(validated records, errors as `{"index", "errors"}`) of ITEMS.

    Plainly valid records pass the serializer's RecordPlan. The others go through one
    list serializer, which runs every check of the record serializer on each and words
    the errors (its fields are built once rather than deep-copied per record)."""
    plan = record_plan(serializer_class)
    validated = [plan(item) for item in items]
    pending = [index for index, record in enumerate(validated) if record is None]
    if not pending:
        return validated, []
    serializer = serializer_class(data=[items[index] for index in pending], many=True)
    if serializer.is_valid():
        for index, record in zip(pending, serializer.validated_data):
            validated[index] = record
        return validated, []
    found = serializer.errors
    # A list aligned with the pending items, or (newer DRF) a dict of the bad ones' positions.
    pairs = sorted(found.items()) if isinstance(found, dict) else enumerate(found)
    # An item that is not an object has no fields: its messages go under
    # `non_field_errors`, so `errors` is always field → messages, as documented.
    errors = [
        {
            "index": pending[int(position)],
            "errors": echo_safe(detail if isinstance(detail, dict) else {"non_field_errors": detail}),
        }
        for position, detail in pairs
        if detail
    ]
    return [], errors


class BatchIngestView(APIView):
    """POST one record or an array of records; all stored or none."""

    permission_classes = [IsAdminOrService]
    dialect = dialects.BARE
    record_serializer_class: type[serializers.Serializer]

    def store(self, records: list[dict]) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        payload = request.data
        if isinstance(payload, dict):
            items = [payload]
        elif isinstance(payload, list):
            items = payload
        else:
            return self.dialect.error("Expected a JSON object or an array of objects.", status.HTTP_400_BAD_REQUEST)
        limit = settings.INGEST_MAX_RECORDS
        if not items:
            return self.dialect.error("The array is empty: nothing to record.", status.HTTP_400_BAD_REQUEST)
        if len(items) > limit:
            return self.dialect.error(
                f"At most {limit} records per request; got {len(items)}.", status.HTTP_400_BAD_REQUEST
            )

        valid, errors = validate_records(self.record_serializer_class, items)
        if errors:
            body = {
                "detail": f"{len(errors)} of {len(items)} records are invalid; nothing was stored.",
                "errors": errors,
            }
            return self.dialect.ok(body, status.HTTP_400_BAD_REQUEST)

        try:
            result = store_batch(self.store, valid)
        except TotalTooLarge as exc:
            return self.dialect.error(str(exc), status.HTTP_400_BAD_REQUEST)
        # After the commit, and at most every few seconds: /api/system/status reports it.
        note_ingest_source(request)
        return self.dialect.ok(result.as_dict(), status.HTTP_201_CREATED)
