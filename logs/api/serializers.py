"""Ingest records of the log table."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from logs.models import Log
from statsite.ingest import (
    INT64_MAX,
    BoundedJSONField,
    RecordSerializer,
    TextField,
    TimestampField,
    cost_field,
    count_field,
    username_field,
)


class LLMCallRecordSerializer(RecordSerializer):
    """One LLM call. `cost` absent: priced from the model price table; `quota`
    absent: cost x QUOTA_PER_UNIT. `success` false stores an error row (type 4)."""

    request_id = TextField(max_length=128, required=False, allow_blank=True)
    created_at = TimestampField(required=False, default=timezone.now)
    username = username_field(required=False, allow_blank=True)
    token_key = TextField(max_length=200, required=False, allow_blank=True, help_text="Raw relay key; stored hashed.")
    token_name = TextField(max_length=100, required=False, allow_blank=True)
    model_name = TextField(max_length=128)
    channel_id = serializers.IntegerField(min_value=0, max_value=2_147_483_647, required=False, allow_null=True)
    channel_name = TextField(max_length=100, required=False, allow_blank=True)
    group = TextField(max_length=64, required=False, allow_blank=True)
    module = TextField(max_length=64, required=False, allow_blank=True)
    request_type = TextField(max_length=128, required=False, allow_blank=True)
    chat_id = TextField(max_length=128, required=False, allow_blank=True)
    prompt_tokens = count_field(required=False, default=0)
    completion_tokens = count_field(required=False, default=0)
    quota = serializers.IntegerField(min_value=0, max_value=INT64_MAX, required=False, allow_null=True)
    cost = cost_field(required=False, allow_null=True)
    latency_ms = count_field(required=False, allow_null=True)
    is_stream = serializers.BooleanField(required=False, default=False)
    success = serializers.BooleanField(required=False, default=True)
    error = TextField(max_length=10_000, required=False, allow_blank=True)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    content = TextField(max_length=10_000, required=False, allow_blank=True)
    other = BoundedJSONField(required=False, object_only=True)

    def validate_model_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class LogRecordSerializer(RecordSerializer):
    """A log row that is not an LLM call: top-up (1), manage (3), error (4), system (5).
    For error logs `other` may carry `stack` and `context`."""

    type = serializers.ChoiceField(choices=[1, 3, 4, 5])
    level = serializers.ChoiceField(choices=Log.Level.values, required=False)
    content = TextField(max_length=10_000, required=False, allow_blank=True)
    username = username_field(required=False, allow_blank=True)
    created_at = TimestampField(required=False, default=timezone.now)
    other = BoundedJSONField(required=False, object_only=True)
    request_id = TextField(max_length=128, required=False, allow_blank=True)
    quota = serializers.IntegerField(min_value=0, max_value=INT64_MAX, required=False, default=0)
    model_name = TextField(max_length=128, required=False, allow_blank=True)
    module = TextField(max_length=64, required=False, allow_blank=True)
    chat_id = TextField(max_length=128, required=False, allow_blank=True)
