"""How ingest writes facts: a batch goes in by COPY on PostgreSQL (a single record, and
everything on SQLite, by INSERT), and every way stores the same rows, with ids the
rollups count them by; a conflict the COPY meets is retried and counted as duplicates;
long membership lists are one array parameter on PostgreSQL, in SQL compiled once."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.sql.query import Query
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

import logs.services
import statsite.ingest
from logs.models import Log
from messaging.models import Message
from statsite.ingest import COPY_MIN_ROWS, each_part, instances_among, rows_among
from tests.ingest_support import LLM_CALLS, MESSAGES, TOOL_CALLS
from usage import rollups
from usage.models import Channel, ModelPrice, ToolCall

pytestmark = pytest.mark.django_db

# Enough for COPY to take the error rows of a batch of LLM calls (a sixth of them) too.
BATCH = max(24, 6 * COPY_MIN_ROWS)


def llm_call(n: int, prefix: str) -> dict:
    """Calls of every shape: failed ones, with and without cost, key, channel, address or `other`."""
    call = {
        "request_id": f"{prefix}-{n}",
        "created_at": f"2024-05-01T10:{n // 60:02d}:{n % 60:02d}Z",
        "username": f"user-{n % 3}",
        "model_name": f"model-{n % 2}",
        "prompt_tokens": 10 * n,
        "completion_tokens": n,
        "request_type": "chat.reply",
    }
    variants = [
        {"token_key": f"sk-key-{n % 4}-abcdefghijklmnop", "channel_id": 1 + n % 3, "latency_ms": 100 * n},
        {"token_name": "named", "channel_name": f"by-name-{n % 2}", "cost": "0.123456789"},
        {"success": False, "error": "rate limited", "ip": "2001:DB8::1", "other": {"try": n, "tags": ["a"]}},
        {"ip": "203.0.113.9", "quota": 7, "is_stream": True, "content": "tab\there, newline\nthere \\ done"},
        {"ip": "", "other": {}, "group": "vip", "module": "m", "chat_id": "c-1"},
        {"created_at": f"2024-05-01T09:{n // 60:02d}:{n % 60:02d}"},  # no offset: read in TIME_ZONE
    ]
    return {**call, **variants[n % len(variants)]}


def tool_call(n: int, prefix: str) -> dict:
    return {
        "request_id": f"{prefix}-{n}",
        "created_at": f"2024-05-01T11:{n // 60:02d}:{n % 60:02d}Z",
        "tool_id": f"tool-{n % 3}",
        "username": "alice" if n % 2 else "",
        "args": {"q": f"query {n}", "deep": {"list": [1, None, "x"]}},
        **({"result": None} if n % 3 else {"result": [n, "ok"]}),
        "success": n % 4 != 0,
        "duration_ms": n,
        **({"cost": "0.01"} if n % 2 else {}),
    }


def message(n: int, prefix: str) -> dict:
    return {
        "message_id": f"{prefix}-{n}",
        "chat_id": f"chat-{n % 2}",
        "user_id": f"person-{n % 3}" if n % 4 else "",
        "sent_by_bot": n % 5 == 0,
        "created_at": f"2024-05-01T12:{n // 60:02d}:{n % 60:02d}Z",
        "text": f"hello {n}\t\u540d",
    }


def stored(model, key: str, prefix: str) -> dict[int, dict]:
    """The rows whose KEY starts with PREFIX, by record number, without ids and keys."""
    rows = {}
    for row in model.objects.filter(**{f"{key}__startswith": f"{prefix}-"}):
        number = int(getattr(row, key).rsplit("-", 1)[1])
        rows[number] = {name: value for name, value in model_to_dict(row).items() if name not in ("id", key)}
    return rows


@pytest.mark.parametrize(
    ("path", "make", "model", "key"),
    [
        (LLM_CALLS, llm_call, Log, "request_id"),
        (TOOL_CALLS, tool_call, ToolCall, "request_id"),
        (MESSAGES, message, Message, "message_id"),
    ],
    ids=["llm-calls", "tool-calls", "messages"],
)
def test_a_batch_stores_the_rows_that_single_records_store(
    post_json, service_headers, settings, path: str, make: Callable[[int, str], dict], model, key: str
):
    settings.TIME_ZONE = "Asia/Kolkata"  # times without an offset are read at +05:30
    with CaptureQueriesContext(connection) as queries:
        response = post_json(path, [make(n, "batch") for n in range(BATCH)], **service_headers)
    assert response.json() == {"received": BATCH, "created": BATCH, "duplicates": 0}
    inserts = [q for q in queries if q["sql"].startswith(f'INSERT INTO "{model._meta.db_table}"')]
    assert (not inserts) == (connection.vendor == "postgresql")  # COPY goes unlogged
    for n in range(BATCH):
        assert post_json(path, make(n, "single"), **service_headers).status_code == 201

    assert stored(model, key, "batch") == stored(model, key, "single")
    assert len(stored(model, key, "batch")) == BATCH


def test_every_row_of_a_batch_is_counted_in_the_rollups_failed_calls_included(post_json, service_headers):
    calls = [llm_call(n, "counted") for n in range(BATCH)]
    post_json(LLM_CALLS, calls, **service_headers)

    assert Log.objects.filter(type=Log.Type.ERROR).count() == BATCH // 6
    assert rollups.check("llm") == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_copy_writes_an_ipv4_address_as_its_text_and_prepares_the_others(post_json, service_headers, monkeypatch):
    prepared = []
    field = Log._meta.get_field("ip")
    prepare = field.get_db_prep_save
    monkeypatch.setattr(field, "get_db_prep_save", lambda value, connection: prepared.append(value) or prepare(
        value, connection))
    addresses = ["192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:DB8::1", "::ffff:192.0.2.9", " 198.51.100.7 "]
    calls = [{"request_id": f"address-{n}", "model_name": "m", "ip": address} for n, address in enumerate(addresses)]

    assert post_json(LLM_CALLS, calls, **service_headers).status_code == 201

    assert prepared == ["2001:db8::1"]  # IPv4-mapped addresses are unpacked in validation
    stored_ips = dict(Log.objects.filter(request_id__startswith="address-").values_list("request_id", "ip"))
    assert [stored_ips[f"address-{n}"] for n in range(len(addresses))] == [
        "192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "192.0.2.9", "198.51.100.7"
    ]


def test_a_conflict_the_insert_meets_is_retried_and_counted_as_a_duplicate(post_json, service_headers, monkeypatch):
    """A concurrent batch may store a request id between our look-up and our insert:
    the insert then fails on the unique index, and the retry counts the row as a duplicate."""
    early = [llm_call(n, "raced") for n in range(0, BATCH, 4)]
    post_json(LLM_CALLS, early, **service_headers)
    looked_up = []
    real_lookup = logs.services._stored_request_ids

    def blind_at_first(records: list[dict]) -> set[str]:
        looked_up.append(len(records))
        return set() if len(looked_up) == 1 else real_lookup(records)

    monkeypatch.setattr(logs.services, "_stored_request_ids", blind_at_first)
    response = post_json(LLM_CALLS, [llm_call(n, "raced") for n in range(BATCH)], **service_headers)

    assert response.status_code == 201
    assert response.json() == {"received": BATCH, "created": BATCH - len(early), "duplicates": len(early)}
    assert looked_up == [BATCH, BATCH]
    assert Log.objects.filter(request_id__startswith="raced-").count() == BATCH
    assert rollups.check("llm") == []


def test_membership_in_a_long_list_is_one_array_parameter_on_postgresql(make_user):
    longest = "x" * 150  # the column's length
    for name in ("ann", "ben", "cat", longest):
        make_user(name)
    names = ["ann", "cat", longest + "y", *(f"nobody-{i}" for i in range(1200))]

    parts = list(each_part("username", names))
    found = {u.username for where in parts for u in get_user_model().objects.filter(where)}

    assert found == {"ann", "cat"}  # a longer name is not cut down to a stored one
    assert len(parts) == (1 if connection.vendor == "postgresql" else 3)


def test_membership_in_a_long_list_of_ids(make_user):
    kept = [make_user(name).pk for name in ("ann", "ben", "cat")]
    ids = [kept[0], kept[2], -1, 0, 2**31 - 1, *range(10**6, 10**6 + 2000)]

    parts = list(each_part("pk", ids))
    found = {u.pk for where in parts for u in get_user_model().objects.filter(where)}

    assert found == {kept[0], kept[2]}
    assert len(parts) == (1 if connection.vendor == "postgresql" else 5)


def test_rows_among_are_the_rows_the_orm_selects(make_user):
    User = get_user_model()
    longest = "x" * 150
    kept = {name: make_user(name).pk for name in ("ann", "ben", "cat", longest)}
    names = ["cat", "ann", longest + "y", "ann", *(f"nobody-{i}" for i in range(1200))]
    ids = [kept["ann"], kept["cat"], -1, 0, 2**31 - 1, *range(10**6, 10**6 + 1200)]

    by_name = rows_among(User, "username", names, "username", "pk", "is_active", "date_joined")
    by_id = rows_among(User, "pk", ids, "pk", "username")

    orm = User.objects.order_by()
    assert sorted(by_name) == sorted(orm.filter(username__in=names).values_list("username", "pk", "is_active",
                                                                                 "date_joined"))
    assert {name for name, *_ in by_name} == {"ann", "cat"}  # a longer name is not cut down to a stored one
    assert sorted(by_id) == [(kept["ann"], "ann"), (kept["cat"], "cat")]
    assert rows_among(User, "username", [], "pk") == []


def test_rows_among_compile_their_sql_once_per_model_field_and_columns(make_user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the SQL is compiled once on PostgreSQL only")
    for name in ("ann", "ben"):
        make_user(name)
    compiled = []
    real = Query.sql_with_params
    monkeypatch.setattr(Query, "sql_with_params", lambda query: compiled.append(query) or real(query))
    monkeypatch.setattr(statsite.ingest, "_AMONG_SQL", {})  # whatever earlier tests compiled
    columns = ("username", "pk", "email")

    with CaptureQueriesContext(connection) as queries:
        first = rows_among(get_user_model(), "username", ["ann"], *columns)
        second = rows_among(get_user_model(), "username", ["ben", "nobody"], *columns)

    assert [row[0] for row in first + second] == ["ann", "ben"]
    assert len(compiled) == 1
    assert len(queries) == 2


def test_instances_among_are_the_instances_the_orm_loads(db):
    Channel.objects.bulk_create([Channel(id=3, name="main"), Channel(id=7, name="spare", status=2)])
    ModelPrice.objects.create(model_name="gpt-4o", input_per_million=Decimal("2.5"), output_per_million=Decimal(10))

    channels = instances_among(Channel, "id", [7, 3, 4])
    prices = instances_among(ModelPrice, "model_name", ["gpt-4o", "gpt-5"])

    assert [model_to_dict(c) for c in channels] == [model_to_dict(c) for c in Channel.objects.order_by("id")]
    assert [c.created_at for c in channels] == [c.created_at for c in Channel.objects.order_by("id")]
    assert [(p.model_name, p.cost_of(1000, 100), p.updated_at) for p in prices] == [
        (p.model_name, p.cost_of(1000, 100), p.updated_at) for p in ModelPrice.objects.all()
    ]
    assert all(not c._state.adding and c._state.db == "default" for c in [*channels, *prices])
