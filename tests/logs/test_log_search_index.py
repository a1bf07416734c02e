"""On PostgreSQL, the keyword searches find content through the trigram index of
migration logs 0004, rather than by walking every row: a keyword that few rows
hold costs an index lookup at any size. If the searches' SQL drifts from the
index's expression (`UPPER(content)`), these tests say so."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from statsite.migration_operations import MissingExtension, concurrent_postgres_indexes
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    at,
    fresh_throttles,
    record_calls,
    record_other_logs,
)
from tests.plans import plan

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index is PostgreSQL's"),
]

INDEX = "log_content_search_idx"
# The walks along the time index and the table.
WALKS = ("enable_seqscan", "enable_indexscan")


@pytest.fixture
def rows():
    record_calls(
        {"username": "alice", "content": "upstream timeout after 60s", "created_at": at(10)},
        {"username": "alice", "content": "", "created_at": at(20)},
    )
    record_other_logs({"type": 5, "content": "configuration reloaded", "created_at": at(30)})


# A search of one's own logs may also be looked up so; whether the planner prefers
# the account's own index instead depends on how many rows the account has, which a
# test's few rows cannot show (BENCH.md measures it at ten million).


def search_plan(api, path: str, headers: dict) -> str:
    """The plan of the row query the search at PATH sends, with the walks along the
    time index and the table made dear: what it shows is what the indexes can do."""
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path, **headers)
    assert response.status_code == 200, response.json()
    [sql] = [q["sql"] for q in captured.captured_queries if 'FROM "logs_log"' in q["sql"] and "LIKE" in q["sql"]]
    return plan(sql, dear=WALKS)


def test_an_admin_search_looks_the_keyword_up_in_the_trigram_index(api, rows, admin_headers):
    plan = search_plan(api, "/api/log/search?keyword=Reloaded", admin_headers)
    assert f"Bitmap Index Scan on {INDEX}" in plan, plan


def test_a_keyword_that_names_a_type_is_looked_up_in_both_indexes(api, rows, admin_headers):
    # "error" names type 4: content containing it, or that type.
    plan = search_plan(api, "/api/log/search?keyword=error", admin_headers)
    assert f"Bitmap Index Scan on {INDEX}" in plan and "log_type_time_idx" in plan, plan


def test_the_index_holds_the_upper_cased_content_trigrams():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX])
        (definition,) = cursor.fetchone()
    assert "USING gin (upper(content) gin_trgm_ops)" in definition, definition


@pytest.mark.django_db(transaction=True)
def test_the_migration_builds_again_an_index_an_interrupted_build_left_invalid():
    migration = importlib.import_module("logs.migrations.0004_content_search_index")
    with connection.cursor() as cursor:
        # What a cancelled CREATE INDEX CONCURRENTLY leaves behind.
        cursor.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{INDEX}'::regclass")
    with connection.schema_editor(atomic=False) as editor:
        migration.create(apps, editor)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [INDEX])
        assert cursor.fetchone() == (True,)


@pytest.mark.django_db(transaction=True)
def test_an_extension_that_cannot_be_created_is_named_with_what_to_do():
    create, _ = concurrent_postgres_indexes({}, extensions=("statsite_no_such_extension",))
    with connection.schema_editor(atomic=False) as editor, pytest.raises(MissingExtension) as raised:
        create(apps, editor)
    message = str(raised.value)
    assert "'statsite_no_such_extension'" in message and 'CREATE EXTENSION "statsite_no_such_extension"' in message
    # The connection is still usable: the failed statement was rolled back alone.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.django_db(transaction=True)
def test_an_extension_already_there_is_not_created_again():
    create, _ = concurrent_postgres_indexes({}, extensions=("pg_trgm",))
    with CaptureQueriesContext(connection) as captured, connection.schema_editor(atomic=False) as editor:
        create(apps, editor)
    assert not [q for q in captured.captured_queries if "CREATE EXTENSION" in q["sql"]]
