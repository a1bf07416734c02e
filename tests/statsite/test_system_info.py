"""`GET /api/system/info`: runtime, features, channels seen and tools called."""

from __future__ import annotations

import platform
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

import statsite
from logs.services import purge
from statsite.system.snapshots import namespace_of
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

URL = "/api/system/info"
TOOLS = "/api/ingest/tool-calls"
LLM_CALLS = "/api/ingest/llm-calls"


def info(api, headers) -> dict:
    response = api.get(URL, **headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def test_it_describes_the_runtime_and_its_features(api, service_headers):
    data = info(api, service_headers)
    assert set(data) == {"version", "platform", "arch", "python", "features", "adapters", "mcpServers", "totalTools"}
    assert data["version"] == statsite.__version__
    assert data["platform"] == sys.platform
    assert data["arch"] == platform.machine()
    assert data["python"] == platform.python_version()
    on_postgres = connection.vendor == "postgresql"
    assert data["features"] == {"postgres": on_postgres, "ssePush": on_postgres, "retention": False, "rollups": True}
    assert data["adapters"] == [] and data["mcpServers"] == 0 and data["totalTools"] == 0


@pytest.mark.parametrize("setting", ["LOG_RETENTION_DAYS", "TOOL_CALL_RETENTION_DAYS", "MESSAGE_RETENTION_DAYS"])
def test_retention_is_on_when_any_retention_period_is_set(api, service_headers, settings, setting):
    setattr(settings, setting, 30)
    assert info(api, service_headers)["features"]["retention"] is True


def test_adapters_are_the_channels_seen_by_name(api, post_json, service_headers):
    calls = [
        {"model_name": "gpt-4o", "channel_id": 3, "channel_name": "openai"},
        {"model_name": "claude", "channel_id": 1, "channel_name": "claude"},
        {"model_name": "gemini", "channel_name": "gemini"},
        {"model_name": "gpt-4o", "channel_id": 3, "channel_name": "openai"},
    ]
    assert post_json(LLM_CALLS, calls, **service_headers).status_code == 201
    assert info(api, service_headers)["adapters"] == ["claude", "gemini", "openai"]


def test_tools_and_mcp_servers_are_counted_from_every_hour_of_the_rollups(api, post_json, service_headers):
    now = timezone.now()
    ids = ["github.create_issue", "github:search", "fs.read", "weather", ".hidden", "fs:write"]
    calls = [
        {"tool_id": tool_id, "created_at": (now - timedelta(hours=hours)).isoformat()}
        for tool_id in ids
        for hours in (0, 5, 30)
    ]
    # The same id under another display name is still one tool.
    calls.append({"tool_id": "weather", "tool_name": "Weather (v2)"})
    assert post_json(TOOLS, calls, **service_headers).status_code == 201
    data = info(api, service_headers)
    assert data["totalTools"] == 6
    assert data["mcpServers"] == 2  # github, fs


def test_tool_counts_outlive_the_purge_of_the_tool_calls(api, post_json, service_headers):
    old = (timezone.now() - timedelta(days=40)).isoformat()
    calls = [{"tool_id": "mcp.a", "created_at": old}, {"tool_id": "b"}]
    assert post_json(TOOLS, calls, **service_headers).status_code == 201
    purge("tool-calls", before=timezone.now() + timedelta(minutes=1))
    assert not ToolCall.objects.exists()
    data = info(api, service_headers)
    assert (data["totalTools"], data["mcpServers"]) == (2, 1)


def test_counting_tools_costs_the_same_few_queries_however_many_tools(
    api, post_json, service_headers, django_assert_max_num_queries
):
    calls = [{"tool_id": f"server{n % 7}.tool{n}"} for n in range(60)]
    assert post_json(TOOLS, calls, **service_headers).status_code == 201
    # Authentication (2) + its last-use stamp (1) + tools (1) + channels (1).
    with django_assert_max_num_queries(5):
        data = info(api, service_headers)
    assert (data["totalTools"], data["mcpServers"]) == (60, 7)


@pytest.mark.parametrize(
    "tool_id, namespace",
    [("github.create_issue", "github"), ("github:search", "github"), ("a:b.c", "a"), ("a.b:c", "a"),
     ("search", None), (".dot", None), (":colon", None), ("", None)],
)
def test_a_namespace_is_what_comes_before_the_first_separator(tool_id, namespace):
    assert namespace_of(tool_id) == namespace


@pytest.mark.parametrize(
    "caller, expected",
    [("nobody", 401), ("bad token", 401), ("user", 403), ("admin", 200), ("service", 200)],
)
def test_only_administrators_and_services_may_read_it(api, caller, expected, request):
    headers = {
        "nobody": lambda: {},
        "bad token": lambda: {"HTTP_X_API_KEY": "ssk_not-a-real-key"},
        "user": lambda: request.getfixturevalue("user_a_headers"),
        "admin": lambda: request.getfixturevalue("admin_headers"),
        "service": lambda: request.getfixturevalue("service_headers"),
    }[caller]()
    response = api.get(URL, **headers)
    assert response.status_code == expected
    assert response.json()["success"] is (expected == 200)
