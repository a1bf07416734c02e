"""SQL compiled once per query shape (statsite.querysets.rows_by_shape)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from statsite import querysets
from statsite.querysets import rows_by_shape
from usage.models import LLMRollup

pytestmark = pytest.mark.django_db

User = get_user_model()
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def people():
    for i, name in enumerate(["ann", "ben", "cy", "dee", "eve"]):
        User.objects.create(username=name, is_staff=i % 2 == 0, date_joined=T0 + timedelta(days=i))


class Builds:
    """A query builder that counts how often it is asked to build."""

    def __init__(self):
        self.calls = 0

    def __call__(self, where, staff=None):
        self.calls += 1
        rows = User.objects.filter(where)
        if staff is not None:
            rows = rows.filter(staff)
        return rows.values_list("username", "is_staff", "date_joined").order_by("username")


def orm(where, staff=None):
    rows = User.objects.filter(where)
    if staff is not None:
        rows = rows.filter(staff)
    return list(rows.values_list("username", "is_staff", "date_joined").order_by("username"))


CASES = [
    Q(date_joined__gte=T0 + timedelta(days=1), date_joined__lt=T0 + timedelta(days=4)),
    Q(date_joined__gte=T0, date_joined__lt=T0 + timedelta(days=2)) | Q(username="eve"),
    Q(date_joined__gte=T0 + timedelta(days=3), date_joined__lt=T0 + timedelta(days=9)) | Q(username="nobody"),
    Q(username__startswith="d") | Q(id=-5),
]


@pytest.mark.parametrize("where", CASES)
def test_each_call_answers_what_the_orm_answers(people, where):
    assert rows_by_shape(("people",), (where, None), Builds()) == orm(where)


def test_one_shape_is_built_once_and_answers_each_calls_own_values(people):
    builds = Builds()
    shape = ("people", "once")
    for days in range(6):
        where = Q(date_joined__gte=T0 + timedelta(days=days), date_joined__lt=T0 + timedelta(days=days + 2))
        assert rows_by_shape(shape, (where, Q(is_staff=True)), builds) == orm(where, Q(is_staff=True))
    # On PostgreSQL the stand-in query is built once; elsewhere every call builds its own.
    assert builds.calls == (1 if settings.IS_POSTGRES else 6)


def test_literals_are_part_of_the_shape(people):
    builds = Builds()
    where = Q(date_joined__gte=T0)
    staff = rows_by_shape(("people", "literal"), (where, Q(is_staff=True)), builds)
    others = rows_by_shape(("people", "literal"), (where, Q(is_staff=False)), builds)
    assert [row[0] for row in staff] == ["ann", "cy", "eve"]
    assert [row[0] for row in others] == ["ben", "dee"]


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="the SQL is compiled once per shape on PostgreSQL only")
def test_a_value_a_field_refuses_as_a_stand_in_is_built_each_time(people):
    # An integer compared with a boolean column: Django takes 0 and 1, not the stand-in.
    builds = Builds()
    for value in (1, 0, 1):
        got = rows_by_shape(("people", "refused"), (Q(is_staff=value), None), builds)
        assert got == orm(Q(is_staff=value))
    assert builds.calls == 4  # the stand-in attempt, then each call


def test_a_list_or_an_expression_is_built_each_time(people):
    builds = Builds()
    where = Q(username__in=["ann", "cy"])
    assert rows_by_shape(("people", "list"), (where, None), builds) == orm(where)
    assert rows_by_shape(("people", "list"), (where, None), builds) == orm(where)
    assert builds.calls == 2


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="the SQL is compiled once per shape on PostgreSQL only")
def test_out_of_range_integers_are_built_by_the_orm(people):
    # Beyond 64 bits Django answers "no row" itself; such a value is never bound.
    where = Q(id=2**70) | Q(username="ann")
    assert rows_by_shape(("people", "huge"), (where, None), Builds()) == orm(where)


def test_the_shapes_kept_are_bounded(people, monkeypatch):
    monkeypatch.setattr(querysets, "_MOST_SHAPES", 3)
    monkeypatch.setattr(querysets, "_compiled", {})
    for i in range(10):
        rows_by_shape(("people", "bound", i), (Q(username="ann"), None), Builds())
    assert len(querysets._compiled) <= 3


def by_account(where, other=None):
    """A query of an integer column (BigIntegerField: Django hands its values to psycopg
    wrapped as Int8)."""
    return LLMRollup.objects.filter(where).values_list("user_id", "requests").order_by("user_id")


def test_integer_columns_are_built_once_and_bound_each_call(db):
    LLMRollup.objects.bulk_create(
        LLMRollup(grain="user", key=str(account), bucket=T0, user_id=account, requests=account * 10)
        for account in (1, 2, 3, 2**40)
    )
    calls = []

    def build(where, other=None):
        calls.append(where)
        return by_account(where)

    for account in (1, 3, 2**40, 2, 7):
        where = Q(grain="user", user_id=account)
        assert rows_by_shape(("accounts",), (where, None), build) == list(by_account(where))
    assert len(calls) == (1 if settings.IS_POSTGRES else 5)


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="the SQL is compiled once per shape on PostgreSQL only")
def test_an_integer_is_bound_in_the_wrapper_django_gives_its_column(db):
    from psycopg.types.numeric import Int2, Int8

    from usage.models import EventRollup

    where = Q(grain="type", user_id=5, type=2)
    querysets._sql(("wrappers",), (where, None), lambda w, o=None: EventRollup.objects.filter(w).values_list("rows"))
    sql, params = querysets._sql(
        ("wrappers",), (Q(grain="type", user_id=6, type=4), None),
        lambda w, o=None: pytest.fail("built again"),
    )  # fmt: skip
    assert params == ["type", 4, 6]  # Q orders its keyword arguments by name
    assert [type(p) for p in params] == [str, Int2, Int8]


def test_an_integer_beyond_its_columns_range_finds_no_row_instead_of_failing(db):
    from usage.models import EventRollup

    EventRollup.objects.create(grain="type", key="2", bucket=T0, type=2, rows=5)
    calls = []

    def build(where, other=None):
        calls.append(where)
        return EventRollup.objects.filter(where).values_list("type", "rows")

    # A small integer column (PostgreSQL smallint): 40000 and 2**40 are past it, as
    # 2**70 is past every integer column.
    for value, want in ((2, [(2, 5)]), (40000, []), (2**40, []), (-(2**20), []), (2**70, []), (2, [(2, 5)])):
        assert rows_by_shape(("small",), (Q(grain="type", type=value), None), build) == want, value


def test_a_condition_no_row_can_match_answers_no_row(people):
    # Beyond 64 bits: Django finds no row can match and sends no query at all.
    assert rows_by_shape(("people", "nothing"), (Q(id=2**70), None), Builds()) == []
    assert rows_by_shape(("people", "nothing"), (Q(id=-(2**70)), None), Builds()) == []
