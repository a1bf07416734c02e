"""QuerySet pieces shared by every fact table."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection, models
from django.db.models import Q


class TimeWindowQuerySet(models.QuerySet):
    """Half-open windows `[start, end)` on `created_at`; either bound may be open."""

    def between(self, start: datetime | None = None, end: datetime | None = None):
        qs = self
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return qs

    def before(self, cutoff: datetime):
        return self.filter(created_at__lt=cutoff)

    def for_user(self, user):
        return self.filter(user=user)

    def newest_first(self):
        return self.order_by("-created_at", "-id")


# --- SQL compiled once per query shape ------------------------------------------------------
#
# Building a queryset and compiling it to SQL costs Django a millisecond or two per
# query, more than running the small aggregate queries the statistics send (the two of
# /api/stats/tools: 2.0 of 2.5 ms). Their SQL depends only on the query's shape: which
# table, groups and measures, and the structure of its conditions; only the values in
# the conditions change from call to call. So the SQL is compiled once per shape, with
# stand-ins for those values, and each call binds its own values in their places.

# Stand-ins, one per value of a query: values no condition of ours holds, of the type
# Django passes through to the driver as it is. Integers stay small enough for every
# integer column (a PositiveSmallIntegerField takes up to 32767).
_STAND_IN_TIME = datetime(1, 1, 1, tzinfo=UTC)
_STAND_IN_INT = 31000
_MOST_VALUES = 32767 - _STAND_IN_INT
_MOST_SHAPES = 1000

# Per shape: its SQL, and for each parameter (True, the value's position, the wrapper
# Django put it in) or (False, the constant, None).
_Slot = tuple[bool, Any, Callable[[Any], Any] | None]
_compiled: dict[Hashable, tuple[str, tuple[_Slot, ...]] | None] = {}
_UNSEEN = object()


def rows_by_shape(shape: Hashable, conditions: Sequence[Q | None], build: Callable[..., models.QuerySet]) -> list:
    """The rows of BUILD(*CONDITIONS), a values_list queryset whose columns need no
    conversion by Django on PostgreSQL (integers, text, booleans, decimals, dates and
    times), as tuples. SHAPE names whatever else BUILD's SQL depends on.

    On PostgreSQL the SQL is compiled once per SHAPE and structure of the CONDITIONS,
    and the conditions' values bound into it; the rows come straight from the driver.
    Elsewhere (SQLite, the embedded default) the queryset is built and run each time."""
    if connection.vendor != "postgresql":
        return list(build(*conditions))
    try:
        sql, params = _sql(shape, conditions, build)
    except EmptyResultSet:
        return []  # Django found that no row can match (a value beyond its column's range)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _sql(shape: Hashable, conditions: Sequence[Q | None], build: Callable[..., models.QuerySet]) -> tuple[str, Any]:
    """The SQL and parameters of BUILD(*CONDITIONS), the SQL compiled once per shape."""
    values: list[Any] = []
    stand_ins: list[Q | None] = []
    try:
        key = (shape, tuple(_standing_in(condition, values, stand_ins) for condition in conditions))
        compiled = _compiled.get(key, _UNSEEN)
    except (_Unshaped, TypeError):  # an expression or a list among the conditions: no shape to keep
        compiled = None
    else:
        if compiled is _UNSEEN:
            compiled = _compile(build, stand_ins, len(values))
            if len(_compiled) >= _MOST_SHAPES:
                _compiled.clear()
            _compiled[key] = compiled
    if compiled is None:
        return build(*conditions).query.sql_with_params()
    sql, slots = compiled
    params = []
    for bound, at, wrap in slots:
        if not bound:
            params.append(at)
        elif wrap is None:
            params.append(values[at])
        elif _fits(wrap, values[at]):
            params.append(wrap(values[at]))
        else:
            # Beyond its column's range: Django answers such a comparison itself (no row),
            # where the database would refuse the value.
            return build(*conditions).query.sql_with_params()
    return sql, params


# The range of each integer wrapper Django hands values to psycopg in, by name.
_WRAPPER_BITS = {"Int2": 16, "Int4": 32, "Int8": 64}


def _fits(wrap: Callable[[Any], Any], value: int) -> bool:
    bits = _WRAPPER_BITS.get(getattr(wrap, "__name__", ""))
    return bits is not None and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


class _Unshaped(Exception):
    """A condition holding an expression or a list: its SQL is built each time."""


def _standing_in(condition: Q | None, values: list[Any], stand_ins: list[Q | None]) -> Hashable:
    """The structure of CONDITION (its values left out), its values appended to VALUES
    and its copy holding stand-ins for them to STAND_INS."""
    if condition is None:
        stand_ins.append(None)
        return None
    structure, copy = _stand_in_q(condition, values)
    stand_ins.append(copy)
    return structure


def _stand_in_q(q: Q, values: list[Any]) -> tuple[Hashable, Q]:
    structure: list[Hashable] = []
    children: list[Any] = []
    for child in q.children:
        if isinstance(child, Q):
            part, copy = _stand_in_q(child, values)
            structure.append(part)
            children.append(copy)
            continue
        if not isinstance(child, tuple):
            raise _Unshaped(child)
        lookup, value = child
        stand_in = _stand_in(value, len(values))
        if stand_in is None:
            if not isinstance(value, Hashable):
                raise _Unshaped(child)
            # Kept in the SQL as it is (a boolean, None): part of the shape.
            structure.append((lookup, type(value), value))
            children.append(child)
        else:
            structure.append((lookup, type(value)))
            children.append((lookup, stand_in))
            values.append(value)
    copy = Q(*children, _connector=q.connector, _negated=q.negated)
    return (q.connector, q.negated, tuple(structure)), copy


def _stand_in(value: Any, at: int) -> Any:
    if type(value) is str:
        return f"\x00{at}"  # no stored text holds NUL (PostgreSQL refuses it)
    if type(value) is int and -(2**63) <= value < 2**63:
        return _STAND_IN_INT + at
    if type(value) is datetime and value.tzinfo is not None:
        return _STAND_IN_TIME + timedelta(microseconds=at)
    return None


def _compile(
    build: Callable[..., models.QuerySet], stand_ins: list[Q | None], count: int
) -> tuple[str, tuple[_Slot, ...]] | None:
    """The SQL of BUILD(*STAND_INS) (conditions holding COUNT stand-ins) and, for each
    of its parameters, (True, the value it stands in for, the wrapper Django put it in)
    or (False, the constant it is, None). Django hands an integer compared with an
    integer column to the driver wrapped in its column's type (psycopg's Int2, Int4,
    Int8): each call's value is wrapped likewise. None when a field refuses a stand-in
    (an integer compared with a boolean column), or a stand-in did not come through to
    the parameters (then it cannot be told from a constant): that shape is then built
    each time."""
    if count > _MOST_VALUES:
        return None
    try:
        sql, params = build(*stand_ins).query.sql_with_params()
    except (ValidationError, ValueError, TypeError, EmptyResultSet):
        return None
    slots = []
    seen = set()
    for param in params:
        at = _stood_in(param, count)
        if at is None:
            slots.append((False, param, None))
        else:
            wrapped = isinstance(param, int) and type(param) is not int
            slots.append((True, at, type(param) if wrapped else None))
            seen.add(at)
    return (sql, tuple(slots)) if len(seen) == count else None


def _stood_in(param: Any, count: int) -> int | None:
    """Which stand-in PARAM is, or None for a constant."""
    if type(param) is str and param.startswith("\x00") and param[1:].isdigit():
        at = int(param[1:])
    elif isinstance(param, int) and not isinstance(param, bool):
        at = int(param) - _STAND_IN_INT  # a plain int, or one in a driver's integer wrapper
    elif type(param) is datetime and param.tzinfo is not None and param.year == 1:
        at = (param - _STAND_IN_TIME) // timedelta(microseconds=1)
    else:
        return None
    return at if 0 <= at < count else None
