"""The fact tables carry no index another one already serves: every insert writes each
index, so one whose columns begin another's (a foreign key's own index beside a
(key, created_at) one), or the LIKE index PostgreSQL builds for `unique=True` text,
is paid for at ingest and read by nothing (migrations logs 0003 and 0005, usage
0007, messaging 0004). And the request ids stay unique: retries depend on it."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from logs.models import Log
from messaging.models import Message
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

FACTS = (Log, ToolCall, Message)


def indexes(model) -> dict[str, dict]:
    """MODEL's indexes of columns. An index of an expression (the log content's
    trigrams, on PostgreSQL) names no column: it neither serves a key nor repeats one."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: info for name, info in found.items() if (info["index"] or info["unique"]) and info["columns"]}


@pytest.mark.parametrize("model", FACTS, ids=lambda m: m.__name__)
def test_no_plain_index_is_the_leading_columns_of_another(model):
    found = indexes(model)
    surplus = [
        (name, other)
        for name, info in found.items()
        if not info["unique"] and not info["primary_key"]
        for other, wider in found.items()
        if other != name and wider["columns"][: len(info["columns"])] == info["columns"]
    ]
    assert not surplus, surplus


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's LIKE indexes")
@pytest.mark.parametrize("model", FACTS, ids=lambda m: m.__name__)
def test_no_pattern_matching_index(model):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [model._meta.db_table])
        definitions = [definition for (definition,) in cursor.fetchall()]
    assert definitions and not [d for d in definitions if "pattern_ops" in d], definitions


@pytest.mark.parametrize("model", FACTS, ids=lambda m: m.__name__)
def test_each_foreign_key_is_still_served_by_an_index_that_leads_with_it(model):
    leading = {info["columns"][0] for info in indexes(model).values()}
    keys = [f.column for f in model._meta.concrete_fields if f.is_relation]
    assert keys and set(keys) <= leading, (keys, leading)


@pytest.mark.parametrize("model", (Log, ToolCall), ids=lambda m: m.__name__)
def test_a_request_id_is_stored_once(model):
    fields = {"tool_id": "search"} if model is ToolCall else {"type": Log.Type.CONSUME}
    model.objects.create(request_id="req-1", **fields)
    model.objects.create(request_id=None, **fields)
    model.objects.create(request_id=None, **fields)  # no id: never a duplicate
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(request_id="req-1", **fields)
    assert model.objects.filter(request_id="req-1").count() == 1


class _Editor:
    """What the migrations' functions use of a schema editor: its connection and execute()."""

    connection = connection

    def execute(self, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)


# Outside a transaction: migration logs 0005 drops and builds concurrently on PostgreSQL.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "migration, model, foreign_key_indexes, postgres_also",
    [
        ("logs.migrations.0003_no_duplicate_indexes", Log, {"logs_log_user_id_f24e8690", "logs_log_token_id_633204ad"},
         2),
        ("usage.migrations.0007_no_duplicate_indexes", ToolCall, {"usage_toolcall_user_id_a629ffc9"}, 2),
        ("messaging.migrations.0004_no_duplicate_indexes", Message,
         {"messaging_message_chat_id_fe8aa54c", "messaging_message_sender_id_7a7088e6"}, 0),
        ("logs.migrations.0005_channel_and_chat_time_indexes", Log, {"logs_log_channel_id_baedd0eb"}, 0),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_the_migrations_build_the_indexes_again_when_reversed_and_drop_them_again(
    migration, model, foreign_key_indexes, postgres_also
):
    operation = importlib.import_module(migration).SURPLUS_INDEXES
    current = set(indexes(model))
    operation.reverse_code(apps, _Editor())
    back = set(indexes(model)) - current
    postgres = connection.vendor == "postgresql"
    assert foreign_key_indexes <= back
    # On PostgreSQL: the unique request id's LIKE index, and the constraint's old name.
    assert len(back - foreign_key_indexes) == (postgres_also if postgres else 0), back
    operation.code(apps, _Editor())
    assert set(indexes(model)) == current
    operation.code(apps, _Editor())  # again: what is gone already is skipped
    assert set(indexes(model)) == current


@pytest.mark.django_db(transaction=True)  # CONCURRENTLY: outside any transaction
def test_the_channel_and_chat_indexes_are_dropped_when_reversed_and_built_again():
    """Migration logs 0005 builds its indexes on either database (concurrently on
    PostgreSQL), and its reverse drops them."""
    migration = importlib.import_module("logs.migrations.0005_channel_and_chat_time_indexes")
    built = {"log_channel_time_idx": ["channel_id", "created_at"], "log_chat_time_idx": ["chat_id", "created_at"]}
    before = set(indexes(Log))
    assert "log_chat_time_idx" in before and "log_channel_time_idx" not in before  # 0006 replaced it
    with connection.schema_editor(atomic=False) as editor:
        migration.drop(apps, editor)
        assert not set(built) & set(indexes(Log))
        migration.create(apps, editor)
        migration.create(apps, editor)  # again: what is there already is kept
        assert {name: indexes(Log)[name]["columns"] for name in built} == built
        editor.execute('DROP INDEX IF EXISTS "log_channel_time_idx"')
    assert set(indexes(Log)) == before


@pytest.mark.django_db(transaction=True)  # CONCURRENTLY: outside any transaction
def test_the_covering_indexes_take_the_place_of_the_plain_ones_and_give_it_back():
    """Migration logs 0006: the account's and the channel's indexes over time, covering
    on PostgreSQL (plain on SQLite), in place of the plain ones, which its reverse
    builds again."""
    migration = importlib.import_module("logs.migrations.0006_covering_account_and_channel_indexes")
    covers = {"log_user_time_cover": ["user_id", "created_at"], "log_channel_time_cover": ["channel_id", "created_at"]}
    plain = {"log_user_time_idx": ["user_id", "created_at"], "log_channel_time_idx": ["channel_id", "created_at"]}
    current = indexes(Log)
    # Introspection lists the included columns after the key's (PostgreSQL).
    assert {name: current[name]["columns"][:2] for name in covers} == covers and not set(plain) & set(current)
    with connection.schema_editor(atomic=False) as editor:
        migration.REPLACED.reverse_code(apps, editor)
        migration.drop(apps, editor)
        back = indexes(Log)
        assert {name: back[name]["columns"] for name in plain} == plain and not set(covers) & set(back)
        migration.create(apps, editor)
        migration.REPLACED.code(apps, editor)
    assert set(indexes(Log)) == set(current)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'log_%%_time_cover'")
            found = dict(cursor.fetchall())
        measures = "id, type, model_name, success, prompt_tokens, completion_tokens, cost"
        assert f"INCLUDE ({measures}, channel_id, chat_id)" in found["log_user_time_cover"]
        assert f"INCLUDE ({measures}, user_id, chat_id, latency_ms)" in found["log_channel_time_cover"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="CONCURRENTLY is PostgreSQL's")
def test_the_channels_own_index_is_dropped_and_built_again_concurrently():
    """Migration logs 0005 runs beside ingest: its drop (and the reverse's build) of the
    channel's own index must not lock the log table's writers out."""
    operation = importlib.import_module("logs.migrations.0005_channel_and_chat_time_indexes").SURPLUS_INDEXES
    with CaptureQueriesContext(connection) as captured:
        operation.reverse_code(apps, _Editor())
        operation.code(apps, _Editor())
    assert [q["sql"] for q in captured.captured_queries if " INDEX " in q["sql"]] == [
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "logs_log_channel_id_baedd0eb" ON "logs_log" ("channel_id")',
        'DROP INDEX CONCURRENTLY IF EXISTS "logs_log_channel_id_baedd0eb"',
    ]
