"""POST /api/ingest/tool-calls: one ToolCall row per tool execution."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from tests.ingest_support import TOOL_CALLS, assert_nothing_stored, stored_counts
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def post(post_json, service_headers):
    def send(body):
        return post_json(TOOL_CALLS, body, **service_headers)

    return send


def tool_call(n: int | str = 1, **fields) -> dict:
    return {"request_id": f"tool-{n}", "tool_id": "web_search", **fields}


def test_one_tool_call_is_stored_with_every_field(post):
    response = post(
        {
            "request_id": "tool-1",
            "created_at": "2024-05-01T10:00:00Z",
            "username": "alice",
            "tool_id": "web_search",
            "tool_name": "Web search",
            "chat_id": "group-42",
            "args": {"q": "weather", "limit": 3},
            "result": {"hits": [1, 2, 3]},
            "success": True,
            "duration_ms": 420,
            "cost": "0.002",
        }
    )

    assert response.status_code == 201
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0}
    row = ToolCall.objects.get()
    assert row.request_id == "tool-1"
    assert row.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.user == User.objects.get(username="alice")
    assert row.username == "alice"
    assert (row.tool_id, row.tool_name) == ("web_search", "Web search")
    assert row.chat_id == "group-42"
    assert row.args == {"q": "weather", "limit": 3}
    assert row.result == {"hits": [1, 2, 3]}
    assert row.success is True
    assert row.duration_ms == 420
    assert row.cost == Decimal("0.002")


def test_only_the_tool_id_is_required(post):
    assert post({"tool_id": "calc"}).status_code == 201
    row = ToolCall.objects.get()
    assert row.tool_name == "calc"  # defaults to the id
    assert row.user is None
    assert row.args == {}
    assert row.result is None
    assert row.success is True
    assert row.duration_ms is None
    assert row.cost == 0
    assert row.request_id is None


def test_a_tool_call_without_a_tool_id_is_refused(post):
    before = stored_counts()
    response = post({"tool_name": "Calculator"})
    assert response.json()["errors"] == [{"index": 0, "errors": {"tool_id": ["This field is required."]}}]
    assert_nothing_stored(before)


def test_a_blank_tool_id_is_refused(post):
    assert "tool_id" in post(tool_call(tool_id="  ")).json()["errors"][0]["errors"]


def test_a_batch_is_stored_in_one_request(post):
    response = post([tool_call(1), tool_call(2, success=False, result={"error": "timeout"}), tool_call(3)])

    assert response.json() == {"received": 3, "created": 3, "duplicates": 0}
    assert ToolCall.objects.filter(success=False).get().result == {"error": "timeout"}


@pytest.mark.parametrize("args", [["a", 1], "plain text", 42, {"nested": {"deep": [1, {"x": None}]}}])
def test_args_and_result_may_be_any_json(args, post):
    assert post(tool_call(args=args, result=args)).status_code == 201
    row = ToolCall.objects.get()
    assert row.args == args
    assert row.result == args


def test_resending_a_batch_stores_nothing_twice(post):
    batch = [tool_call(1), tool_call(2)]
    post(batch)
    assert post(batch).json() == {"received": 2, "created": 0, "duplicates": 2}
    assert ToolCall.objects.count() == 2


def test_a_request_id_repeated_within_one_batch_is_stored_once(post):
    response = post([tool_call(1, duration_ms=5), tool_call(1, duration_ms=6), tool_call(2)])
    assert response.json() == {"received": 3, "created": 2, "duplicates": 1}
    assert ToolCall.objects.get(request_id="tool-1").duration_ms == 5


def test_tool_calls_without_a_request_id_are_never_duplicates(post):
    post([{"tool_id": "a"}, {"tool_id": "a", "request_id": ""}])
    post({"tool_id": "a"})
    assert ToolCall.objects.count() == 3


def test_one_bad_tool_call_stores_nothing_of_the_batch(post):
    before = stored_counts()
    response = post([tool_call(1, username="frank"), tool_call(2, duration_ms=-5), tool_call(3, cost="x")])

    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [1, 2]
    assert_nothing_stored(before)


def test_an_unknown_username_creates_an_account_without_a_usable_password(post):
    post([tool_call(1, username="grace"), tool_call(2, username="grace")])
    grace = User.objects.get(username="grace")
    assert not grace.has_usable_password()
    assert ToolCall.objects.filter(user=grace).count() == 2


def test_a_known_username_is_attached_to_its_account(post, user_b):
    post(tool_call(username="bob"))
    assert ToolCall.objects.get().user == user_b
