"""The admin's search of the logs (logs.admin.LogAdmin.holding): the rows
Django's search of content, username and model name finds, asked so that each part
can be looked up in an index; on PostgreSQL, a term that few rows hold is found
through the indexes, not by a walk of the table."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from logs.models import Log
from statsite import admin_utils
from tests.admin_search import searched as search_results
from tests.logs.logapi_support import at, record_calls, record_other_logs
from tests.plans import plan

pytestmark = pytest.mark.django_db

TERMS = [
    "timeout", "TIMEOUT", "alice", "ALI", "bob", "gpt-4", "GPT", "claude", "vision", "beta", "o", "Ü", "50%",
    "zzz", "upstream alice", '"after 60s"', "alice gpt", "carol",
]  # fmt: skip


@pytest.fixture
def rows():
    record_calls(
        {"username": "alice", "model_name": "gpt-4o", "content": "", "created_at": at(10)},
        {"username": "bob", "model_name": "claude-3", "content": "upstream timeout after 60s", "success": False,
         "created_at": at(20)},
        {"username": "alice", "model_name": "gpt-4-vision", "content": "Über 50% done", "created_at": at(30)},
        {"username": "carol", "model_name": "o1", "created_at": at(35)},
    )  # fmt: skip
    record_other_logs(
        # A model named by no LLM call, on a top-up and a system row.
        {"type": 1, "username": "bob", "model_name": "beta-model", "content": "top-up", "created_at": at(40)},
        {"type": 5, "model_name": "vision-pro", "content": "cache warmed", "created_at": at(50)},
        {"type": 4, "content": "database timeout", "created_at": at(60)},
        {"type": 3, "username": "alice", "content": "key disabled", "created_at": at(70)},
    )


def searched(term: str, *, stock: bool = False) -> set[int]:
    return search_results(Log, term, stock=stock)


@pytest.mark.parametrize("term", TERMS)
def test_it_finds_what_djangos_search_of_the_same_fields_finds(rows, term):
    assert searched(term) == searched(term, stock=True)


def test_the_terms_find_what_they_should(rows):
    names = dict(Log.objects.values_list("id", "content"))
    assert {names[i] for i in searched("TIMEOUT")} == {"upstream timeout after 60s", "database timeout"}
    assert {names[i] for i in searched("vision")} == {"Über 50% done", "cache warmed"}
    assert {names[i] for i in searched("beta")} == {"top-up"}
    assert searched("zzz") == set()


def test_accounts_past_the_listed_number_are_matched_by_a_subquery(rows, monkeypatch):
    monkeypatch.setattr(admin_utils, "LISTED_ACCOUNTS", 1)
    for term in ("alice", "o", "l"):
        assert searched(term) == searched(term, stock=True)


def test_the_search_page_shows_the_rows(rows, admin_client):
    response = admin_client.get("/admin/logs/log/", {"q": "vision"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the indexes are PostgreSQL's")
def test_on_postgresql_a_term_is_looked_up_in_the_indexes(rows, admin_client):
    with CaptureQueriesContext(connection) as captured:
        # "o": in accounts names (bob, carol), models of LLM calls (gpt-4o, o1), content.
        assert admin_client.get("/admin/logs/log/", {"q": "o"}).status_code == 200
    [sql, *_] = [q["sql"] for q in captured.captured_queries if 'FROM "logs_log"' in q["sql"] and "LIKE" in q["sql"]]
    # The walks along the time index and the table made dear.
    shown = plan(sql, dear=("enable_seqscan", "enable_indexscan"))
    for index in ("log_content_search_idx", "log_user_time_cover", "log_model_time_idx", "log_other_named_model_idx"):
        assert f"Bitmap Index Scan on {index}" in shown, shown
