"""The admin's search of the tool calls (usage.admin.ToolCallAdmin.holding):
the rows Django's search of tool id, tool name, username and request id finds, asked
so that each part can be looked up in an index; on PostgreSQL, a term that few rows
hold is found through the indexes, not by a walk of the table."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from statsite import admin_utils
from tests.admin_search import searched as search_results
from tests.plans import plan
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

TERMS = [
    "search", "SEARCH", "web", "Web Search", "github:", "alice", "ALI", "bob", "o", "Ü", "50%", "zzz",
    "alice search", '"web search"', "req-7", "carol", "get_time",
]  # fmt: skip


@pytest.fixture
def rows(post_json, service_headers):
    calls = [
        {"tool_id": "web_search", "tool_name": "Web Search", "username": "alice", "request_id": "req-7"},
        {"tool_id": "web_search", "tool_name": "web search (old)", "username": "bob"},
        {"tool_id": "github:search_code", "tool_name": "Code search", "username": "carol"},
        {"tool_id": "get_time", "username": "alice"},  # named after its id
        {"tool_id": "über_tool", "tool_name": "50% off", "username": "bob"},
        {"tool_id": "calc", "tool_name": "Calculator"},  # nobody's
    ]
    response = post_json("/api/ingest/tool-calls", calls, **service_headers)
    assert response.status_code == 201, response.json()


def searched(term: str, *, stock: bool = False) -> set[int]:
    return search_results(ToolCall, term, stock=stock)


@pytest.mark.parametrize("term", TERMS)
def test_it_finds_what_djangos_search_of_the_same_fields_finds(rows, term):
    assert searched(term) == searched(term, stock=True)


def test_the_terms_find_what_they_should(rows):
    names = dict(ToolCall.objects.values_list("id", "tool_name"))
    assert {names[i] for i in searched("search")} == {"Web Search", "web search (old)", "Code search"}
    # By id alone: the names these rows carry hold no "github".
    assert {names[i] for i in searched("github")} == {"Code search"}
    assert {names[i] for i in searched("alice")} == {"Web Search", "get_time"}
    assert {names[i] for i in searched("req-7")} == {"Web Search"}
    assert searched("zzz") == set()


def test_an_id_matches_only_the_rows_of_that_id_whatever_names_other_ids_share(rows, post_json, service_headers):
    # "Code search" is the name of a github: tool; a tool of another id with that name
    # holds no "github" in its id or its name.
    response = post_json("/api/ingest/tool-calls", [{"tool_id": "local_grep", "tool_name": "Code search"}],
                         **service_headers)  # fmt: skip
    assert response.status_code == 201
    assert searched("github") == searched("github", stock=True)
    assert len(searched("github")) == 1


def test_a_request_id_is_matched_exactly(rows):
    """Django's `=request_id` compares in any case (iexact), which no index answers;
    request ids are matched exactly, through their unique index."""
    assert len(searched("req-7")) == 1
    assert searched("REQ-7") == set()


def test_accounts_past_the_listed_number_are_matched_by_a_subquery(rows, monkeypatch):
    monkeypatch.setattr(admin_utils, "LISTED_ACCOUNTS", 1)
    for term in ("alice", "o", "b"):
        assert searched(term) == searched(term, stock=True)


def test_the_search_page_shows_the_rows(rows, admin_client):
    response = admin_client.get("/admin/usage/toolcall/", {"q": "search"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_on_postgresql_a_term_is_looked_up_in_the_indexes(rows, admin_client):
    with CaptureQueriesContext(connection) as captured:
        # "o": in tool names and ids (Code search, get_time, über_tool), accounts (bob, carol).
        assert admin_client.get("/admin/usage/toolcall/", {"q": "o"}).status_code == 200
    [sql, *_] = [q["sql"] for q in captured.captured_queries if '"usage_toolcall"."request_id" = ' in q["sql"]]
    # The walks along the time index and the table made dear.
    shown = plan(sql, dear=("enable_seqscan", "enable_indexscan"))
    for index in ("toolcall_tool_time_idx", "toolcall_user_time_idx", "toolcall_request_id_unique"):
        assert f"Bitmap Index Scan on {index}" in shown, shown
