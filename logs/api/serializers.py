"""Ingest records of the log table, and what the log endpoints read and answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from logs.models import Log
from statsite.ingest import (
    INT32_MAX,
    INT64_MAX,
    BoundedJSONField,
    RecordSerializer,
    TextField,
    TimestampField,
    cost_field,
    count_field,
    username_field,
)
from statsite.timeparse import iso_utc


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
    # Gateways send "" when they did not see the client's address: taken as absent.
    ip = serializers.IPAddressField(required=False, allow_null=True, allow_blank=True)
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


# --- read side: the gateway and console log endpoints -------------------------------
# (Response items are rendered from rows; parameter serializers validate queries.)

# Keys of `other` that only administrators see.
ADMIN_ONLY_OTHER_KEYS = frozenset({"admin_info"})
# Unix seconds are accepted up to the end of year 2999, so that an inclusive end
# (`end + 1 s`) still fits in a datetime and no bound can overflow a database.
MAX_UNIX_SECONDS = 32_503_679_999
LOG_TYPES = [(0, "all"), *Log.Type.choices]


@extend_schema_field(OpenApiTypes.INT)
class UnixSecondsField(serializers.Field):
    """A datetime as whole unix seconds, as the gateway dialect writes time."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: datetime) -> int:
        return int(value.timestamp())


@extend_schema_field(OpenApiTypes.DATETIME)
class IsoUtcField(serializers.Field):
    """A datetime as ISO 8601 in UTC with a Z, as the console dialect writes time."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: datetime) -> str:
        return iso_utc(value)


def json_text(value: Any) -> str:
    """`other` as the gateway keeps it: compact JSON text (`{}` when empty)."""
    return json.dumps(value if value is not None else {}, ensure_ascii=False, separators=(",", ":"))


class GatewayLogSerializer(serializers.Serializer):
    """A log row as administrators see it (`/api/log/`, `/api/log/search`).
    Absent ids are 0 and absent texts "", as the gateway writes them: no nulls."""

    id = serializers.IntegerField()
    user_id = serializers.SerializerMethodField()
    created_at = UnixSecondsField(help_text="Unix seconds.")
    type = serializers.IntegerField(help_text="1 top-up, 2 consume, 3 manage, 4 error, 5 system.")
    content = serializers.CharField()
    username = serializers.CharField()
    token_name = serializers.CharField()
    model_name = serializers.CharField()
    quota = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    use_time = serializers.IntegerField(help_text="Seconds.")
    is_stream = serializers.BooleanField()
    channel_id = serializers.SerializerMethodField()
    channel_name = serializers.SerializerMethodField()
    token_id = serializers.SerializerMethodField()
    group = serializers.CharField()
    ip = serializers.SerializerMethodField()
    other = serializers.SerializerMethodField(help_text='JSON text, e.g. "{\\"model_ratio\\":15.0}".')

    hidden_other_keys: frozenset[str] = frozenset()

    def get_user_id(self, log: Log) -> int:
        return log.user_id or 0

    def get_channel_id(self, log: Log) -> int:
        return log.channel_id or 0

    def get_channel_name(self, log: Log) -> str:
        # The view selects the channel with the row: no query per row.
        return log.channel.name if log.channel_id else ""

    def get_token_id(self, log: Log) -> int:
        return log.token_id or 0

    def get_ip(self, log: Log) -> str:
        return log.ip or ""

    def get_other(self, log: Log) -> str:
        other = log.other
        if self.hidden_other_keys and isinstance(other, dict):
            other = {k: v for k, v in other.items() if k not in self.hidden_other_keys}
        return json_text(other)


class OwnGatewayLogSerializer(GatewayLogSerializer):
    """A log row as its account (or its relay key's holder) sees it: without the
    channel, the client ip and the admin-only parts of `other`."""

    channel_id = None
    channel_name = None
    ip = None
    hidden_other_keys = ADMIN_ONLY_OTHER_KEYS


# The search and token endpoints answer a page as a plain list. many=False keeps the
# schema generator from wrapping these envelopes in the paged one.
@extend_schema_serializer(many=False)
class GatewayLogListResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = GatewayLogSerializer(many=True)


@extend_schema_serializer(many=False)
class OwnGatewayLogListResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = OwnGatewayLogSerializer(many=True)


class OwnLogStatParamsSerializer(serializers.Serializer):
    """Parameters of `/api/log/self/stat` (those of `/api/log/self`, without paging)."""

    type = serializers.ChoiceField(
        choices=LOG_TYPES, required=False, help_text="1 top-up, 2 consume, 3 manage, 4 error, 5 system; 0: all."
    )
    start_timestamp = serializers.IntegerField(
        min_value=0, max_value=MAX_UNIX_SECONDS, required=False, help_text="Unix seconds; 0: no lower bound."
    )
    end_timestamp = serializers.IntegerField(
        min_value=0,
        max_value=MAX_UNIX_SECONDS,
        required=False,
        help_text="Unix seconds, inclusive (the whole second); 0: no upper bound.",
    )
    token_name = TextField(max_length=100, required=False)
    model_name = TextField(max_length=128, required=False)
    group = TextField(max_length=64, required=False)

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start_timestamp"), attrs.get("end_timestamp")
        if start and end and start > end:
            raise serializers.ValidationError({"end_timestamp": "must not be before start_timestamp."})
        return attrs


class LogStatParamsSerializer(OwnLogStatParamsSerializer):
    """Parameters of `/api/log/stat` (those of `/api/log/`, without paging)."""

    username = TextField(max_length=150, required=False)
    channel = serializers.IntegerField(min_value=0, max_value=INT32_MAX, required=False, help_text="0: all.")


class LogStatSerializer(serializers.Serializer):
    quota = serializers.IntegerField(help_text="Quota of the consume rows in the window.")
    rpm = serializers.IntegerField(help_text="Consume requests in the last 60 seconds.")
    tpm = serializers.IntegerField(help_text="Their prompt + completion tokens.")


class LogStatResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = LogStatSerializer()


class LogPurgeParamsSerializer(serializers.Serializer):
    target_timestamp = serializers.IntegerField(
        min_value=1, max_value=MAX_UNIX_SECONDS, help_text="Unix seconds: every log created before it is deleted."
    )


class LogPurgeResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = serializers.IntegerField(help_text="How many logs were deleted.")


class LogTokenParamsSerializer(serializers.Serializer):
    key = TextField(
        max_length=200,
        required=False,
        help_text="The relay key, with or without sk- (or send it as Authorization: Bearer sk-…).",
    )


class GatewayLogErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()


class ConsoleLogSerializer(serializers.Serializer):
    """A system or error log row as the console shows it."""

    timestamp = IsoUtcField(source="created_at")
    level = serializers.CharField()
    message = serializers.CharField(source="content")
    meta = serializers.SerializerMethodField()

    def get_meta(self, log: Log) -> dict[str, Any]:
        """`other`, with who, which model and which module when the row says."""
        meta: dict[str, Any] = dict(log.other) if isinstance(log.other, dict) else {}
        for key, value in (("userId", log.username), ("model", log.model_name), ("module", log.module)):
            if value:
                meta[key] = value
        return meta


class ConsoleToolLogSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    toolName = serializers.CharField(source="tool_name")
    args = serializers.JSONField()
    result = serializers.JSONField()
    status = serializers.SerializerMethodField()
    duration = serializers.IntegerField(source="duration_ms", allow_null=True, help_text="Milliseconds.")
    userId = serializers.CharField(source="username")
    timestamp = IsoUtcField(source="created_at")

    def get_id(self, call) -> str:
        return str(call.pk)

    def get_status(self, call) -> str:
        return "success" if call.success else "error"


class ConsoleErrorLogSerializer(serializers.Serializer):
    timestamp = IsoUtcField(source="created_at")
    error = serializers.SerializerMethodField()
    stack = serializers.SerializerMethodField()
    context = serializers.SerializerMethodField()

    @staticmethod
    def _other(log: Log) -> dict[str, Any]:
        return log.other if isinstance(log.other, dict) else {}

    def get_error(self, log: Log) -> str:
        error = self._other(log).get("error")
        return error if isinstance(error, str) and error else log.content

    def get_stack(self, log: Log) -> str:
        stack = self._other(log).get("stack")
        return stack if isinstance(stack, str) else ""

    def get_context(self, log: Log) -> dict[str, Any]:
        """The row's own `context`, with the channel and model of a failed LLM call."""
        given = self._other(log).get("context")
        context: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        if log.channel_id:
            context.setdefault("channel", log.channel.name)
        if log.model_name:
            context.setdefault("model", log.model_name)
        return context


class ConsoleLogErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    error = serializers.CharField()
