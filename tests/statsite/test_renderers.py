"""The JSON renderer writes what DRF's own renderer writes, faster."""

from __future__ import annotations

import gc
import json
import uuid
import weakref
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer
from rest_framework.test import APIRequestFactory

from statsite.renderers import JSONRenderer
from usage.api.views import LLMStatsView

SAMPLES = [
    {"success": True, "message": "", "data": [{"model_name": "gpt-4o", "count": 3, "created_at": 1640995200}]},
    {"when": datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC), "day": date(2026, 5, 1)},
    {"naive": datetime(2026, 5, 1, 12, 30), "offset": datetime(2026, 5, 1, 12, tzinfo=timezone(timedelta(hours=8)))},
    {"cost": Decimal("0.00000123"), "big": Decimal("123456789012.5"), "rate": 0.9512, "tiny": 1e-07},
    {"lazy": gettext_lazy("Invalid API key"), "id": uuid.UUID(int=7), "text": "中文 and \u2028 and \u2029"},
    {1: "int keys", 2: {"nested": [None, True, False, [], {}]}},
    [{"chat_123456": {"chat_name": "技术交流群", "total_stats": {"total": 450}}}],
    {"huge": 2**70},
    {"near separators": "wait… → done — ok", "mixed": "… \u2028 →"},  # the separators' lead byte, other characters
]


@pytest.mark.parametrize("data", SAMPLES)
def test_it_renders_what_drf_renders(data):
    ours = JSONRenderer().render(data)
    theirs = DRFJSONRenderer().render(data)
    assert json.loads(ours) == json.loads(theirs)
    assert b"\xe2\x80\xa8" not in ours and b"\xe2\x80\xa9" not in ours


def test_times_read_exactly_as_drf_writes_them():
    data = {"when": datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)}
    assert JSONRenderer().render(data) == DRFJSONRenderer().render(data) == b'{"when":"2026-05-01T12:30:15.123456Z"}'


def test_a_pretty_printed_answer_is_drfs_own():
    data = {"a": [1, 2]}
    rendered = JSONRenderer().render(data, "application/json; indent=2")
    assert rendered == DRFJSONRenderer().render(data, "application/json; indent=2")
    assert b"\n" in rendered


def test_nothing_renders_as_an_empty_body():
    assert JSONRenderer().render(None) == b""


# --- letting go of the answer ------------------------------------------------------------------

LLM_STATS = "/llm/stats?period_type=daily&days=7"


def rendered_answer(service_key):
    request = APIRequestFactory().get(LLM_STATS, HTTP_X_API_KEY=service_key)
    response = LLMStatsView.as_view()(request)
    response.render()
    assert response.status_code == 200
    assert json.loads(response.content)["total_requests"] == 0
    return response


def test_a_rendered_answer_is_freed_as_soon_as_the_server_drops_it(service_key, without_the_collector):
    response = rendered_answer(service_key)
    answer = weakref.ref(response)
    del response
    assert answer() is None


def test_drf_alone_would_leave_the_answer_to_the_collector(service_key, without_the_collector, monkeypatch):
    # What the renderer's release prevents: the answer outlives the request in cycles.
    monkeypatch.setattr(JSONRenderer, "_release", lambda self, context: None)
    response = rendered_answer(service_key)
    answer = weakref.ref(response)
    del response
    assert answer() is not None
    gc.collect()
    assert answer() is None


def test_rendering_twice_writes_the_same_body(service_key):
    response = rendered_answer(service_key)
    assert response.rendered_content == response.content


def test_the_browsable_api_still_reads_the_response_it_renders(client, admin, admin_headers):
    response = client.get("/api/data/self", HTTP_ACCEPT="text/html", **admin_headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"&quot;success&quot;: true" in response.content
