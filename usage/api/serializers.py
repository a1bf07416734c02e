"""Ingest records of tool calls."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from statsite.ingest import (
    BoundedJSONField,
    RecordSerializer,
    TextField,
    TimestampField,
    cost_field,
    count_field,
    username_field,
)


class ToolCallRecordSerializer(RecordSerializer):
    """One tool execution. `tool_name` defaults to `tool_id`."""

    request_id = TextField(max_length=128, required=False, allow_blank=True)
    created_at = TimestampField(required=False, default=timezone.now)
    username = username_field(required=False, allow_blank=True)
    tool_id = TextField(max_length=128)
    tool_name = TextField(max_length=200, required=False, allow_blank=True)
    chat_id = TextField(max_length=128, required=False, allow_blank=True)
    args = BoundedJSONField(required=False)
    result = BoundedJSONField(required=False, allow_null=True)
    success = serializers.BooleanField(required=False, default=True)
    duration_ms = count_field(required=False, allow_null=True)
    cost = cost_field(required=False, allow_null=True)

    def validate_tool_id(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value
