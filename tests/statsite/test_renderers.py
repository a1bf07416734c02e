"""The JSON renderer writes what DRF's own renderer writes, faster."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer

from statsite.renderers import JSONRenderer

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
