"""Ingest records of chat messages, and the parameters and answers of the message statistics."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from logs.api.serializers import IsoUtcField
from messaging.models import Chat
from statsite.ingest import RecordSerializer, TextField, TimestampField
from statsite.periods import CONSOLE_PERIODS


class MessageRecordSerializer(RecordSerializer):
    """One chat message. The chat is created on first sight; `chat_name`,
    `chat_type` and `nickname`, when sent, update the chat and the sender."""

    message_id = TextField(max_length=128, required=False, allow_blank=True)
    chat_id = TextField(max_length=128)
    chat_name = TextField(max_length=200, required=False, allow_blank=True)
    chat_type = serializers.ChoiceField(choices=Chat.Kind.values, required=False)
    user_id = TextField(max_length=150, required=False, allow_blank=True, help_text="The sender's platform user id.")
    nickname = TextField(max_length=200, required=False, allow_blank=True)
    sent_by_bot = serializers.BooleanField(required=False, default=False)
    created_at = TimestampField(required=False, default=timezone.now)
    text = TextField(max_length=20_000, required=False, allow_blank=True, trim_whitespace=False)

    def validate_chat_id(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


# --- statistics: parameters and answers -----------------------------------------------------
#
# Parameter serializers validate the query string and document it (`@extend_schema(parameters=
# [...])`); answer serializers document, and for the console render, each response shape.

# The widest window the bot stats answer in calendar days (ten years).
MAX_DAYS = 3660
MESSAGE_TYPES = ("sent", "received", "all")
SOURCES = ("user", "bot")
RANK_SORTS = ("messages", "tokens")
RANK_LIMIT_DEFAULT = 20
RANK_LIMIT_MAX = 100


def _one_of(choices) -> dict[str, str]:
    return {"invalid_choice": f'must be one of {", ".join(choices)}; got "{{input}}".'}


@extend_schema_field(OpenApiTypes.BOOL)
class FlagField(serializers.Field):
    """A query-string boolean: true, false, 1 or 0 (any case); nothing else."""

    default_error_messages = {"invalid": 'must be true, false, 1 or 0; got "{input}".'}
    TRUE = frozenset({"true", "1"})
    FALSE = frozenset({"false", "0"})

    def to_internal_value(self, data) -> bool:
        if isinstance(data, bool):
            return data
        text = str(data).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        self.fail("invalid", input=str(data)[:50])

    def to_representation(self, value) -> bool:
        return bool(value)


def days_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=MAX_DAYS,
        default=1,
        help_text=f"Calendar days, today included (days in STATS_TIME_ZONE), up to now; 1 to {MAX_DAYS}.",
    )


class RecentMessagesParamsSerializer(serializers.Serializer):
    days = days_field()
    message_type = serializers.ChoiceField(
        choices=MESSAGE_TYPES,
        default="all",
        error_messages=_one_of(MESSAGE_TYPES),
        help_text="sent: messages the bot sent; received: everyone else's (what the bot received); all: both.",
    )


class RecentMessagesAllSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    message_type = serializers.ChoiceField(choices=["all"])
    sent_count = serializers.IntegerField(help_text="Messages the bot sent.")
    received_count = serializers.IntegerField(help_text="Messages the bot received (everyone else's).")
    total_count = serializers.IntegerField(help_text="sent_count + received_count.")


class RecentMessagesCountSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    message_type = serializers.ChoiceField(choices=["sent", "received"])
    count = serializers.IntegerField()


RECENT_MESSAGES_RESPONSE = PolymorphicProxySerializer(
    component_name="RecentMessages",
    serializers=[RecentMessagesAllSerializer, RecentMessagesCountSerializer],
    resource_type_field_name=None,
    many=False,
)


class ChatStatsParamsSerializer(serializers.Serializer):
    days = days_field()
    source = serializers.ChoiceField(
        choices=SOURCES,
        default="user",
        error_messages=_one_of(SOURCES),
        help_text="user: messages people sent; bot: messages the bot sent.",
    )
    group_by_user = FlagField(
        default=False, help_text="Also count per sender (source=user only; ignored for bot). true/false/1/0."
    )
    format = FlagField(default=False, help_text="Add chat names and nicknames. true/false/1/0.")


def _object(properties: dict[str, dict], **extra) -> dict:
    # Closed objects: the shapes below differ only by which keys they have, so an
    # open object would match several `oneOf` branches at once (an invalid answer).
    return {
        "type": "object", "properties": properties, "required": list(properties), "additionalProperties": False,
        **extra,
    }


def _map_of(value: dict, description: str) -> dict:
    return {"type": "object", "additionalProperties": value, "description": description}


_COUNT = {"type": "integer"}
_NAME = {
    "type": "string",
    "description": 'The group\'s name, or a private chat\'s peer nickname; "unknown" if never recorded.',
}
_TOTAL = _object({"total": _COUNT})
_PLAIN_USERS = _map_of(_COUNT, "Platform user id → messages (\"\" for messages without a sender).")
_NAMED_USERS = _map_of(
    _object({"nickname": {"type": "string"}, "count": _COUNT}),
    'Platform user id → nickname ("unknown" if never recorded) and messages.',
)
CHAT_STATS_RESPONSE = _map_of(
    {
        "oneOf": [
            {**_COUNT, "description": "source=bot, format=false."},
            _object({"chat_name": _NAME, "count": _COUNT}, description="source=bot, format=true."),
            _object({"total": _COUNT}, description="source=user, group_by_user=false, format=false."),
            _object(
                {"chat_name": _NAME, "total_stats": _TOTAL},
                description="source=user, group_by_user=false, format=true.",
            ),
            _object(
                {"total_stats": _TOTAL, "user_stats": _PLAIN_USERS},
                description="source=user, group_by_user=true, format=false.",
            ),
            _object(
                {"chat_name": _NAME, "total_stats": _TOTAL, "user_stats": _NAMED_USERS},
                description="source=user, group_by_user=true, format=true.",
            ),
        ]
    },
    "Platform chat id → its messages, in the shape the parameters choose; busiest chat first.",
)


class ConsoleStatsParamsSerializer(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=list(CONSOLE_PERIODS),
        default="all",
        error_messages=_one_of(CONSOLE_PERIODS),
        help_text="day: today; week: the last 7 calendar days; month: the last 30 (today included, days in "
        "STATS_TIME_ZONE); all: everything. Default all, as the other console stats.",
    )
    groupId = TextField(
        max_length=128, required=False, help_text="A platform chat id: every number is of that chat only."
    )


class ConsoleSummarySerializer(serializers.Serializer):
    totalMessages = serializers.IntegerField(source="total_messages", help_text="Every message, people's and bot's.")
    aiResponses = serializers.IntegerField(source="ai_responses", help_text="Messages the bot sent.")
    toolCalls = serializers.IntegerField(source="tool_calls")
    tokensUsed = serializers.IntegerField(source="tokens_used", help_text="LLM prompt + completion tokens.")
    activeUsers = serializers.IntegerField(source="active_users", help_text="Distinct people who wrote.")
    activeGroups = serializers.IntegerField(source="active_groups", help_text="Distinct group chats with messages.")


class ConsoleDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The day in STATS_TIME_ZONE.")
    messages = serializers.IntegerField()
    responses = serializers.IntegerField(help_text="Messages the bot sent.")
    toolCalls = serializers.IntegerField(source="tool_calls")
    tokens = serializers.IntegerField()


class ConsoleStatsSerializer(serializers.Serializer):
    summary = ConsoleSummarySerializer()
    daily = ConsoleDaySerializer(
        many=True,
        help_text="Every day of the period, oldest first, zero-filled; for all, from the first day with data "
        "(at most 366 days back; today alone when there is none).",
    )


class ConsoleStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ConsoleStatsSerializer()


class RankingParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1,
        max_value=RANK_LIMIT_MAX,
        default=RANK_LIMIT_DEFAULT,
        help_text=f"How many, 1 to {RANK_LIMIT_MAX}; default {RANK_LIMIT_DEFAULT}.",
    )
    sort = serializers.ChoiceField(
        choices=RANK_SORTS,
        default="messages",
        error_messages=_one_of(RANK_SORTS),
        help_text="Descending by this field, ties by id.",
    )


class UserRankSerializer(serializers.Serializer):
    userId = serializers.CharField(source="user_id", help_text="Platform user id (= the account's username).")
    nickname = serializers.CharField(help_text='"unknown" if never recorded.')
    messages = serializers.IntegerField(help_text="Messages the person wrote (not the bot's).")
    tokens = serializers.IntegerField(help_text="LLM prompt + completion tokens of their account.")
    lastActive = IsoUtcField(source="last_active", help_text="Newest message or LLM call (ISO 8601 UTC).")


class GroupRankSerializer(serializers.Serializer):
    groupId = serializers.CharField(source="group_id", help_text="Platform chat id.")
    name = serializers.CharField(help_text='"unknown" if never recorded.')
    messages = serializers.IntegerField(help_text="Every message in the group, people's and bot's.")
    users = serializers.IntegerField(help_text="Distinct people who wrote there.")
    tokens = serializers.IntegerField(help_text="LLM prompt + completion tokens of calls in the chat.")
    lastActive = IsoUtcField(source="last_active", help_text="Newest message or LLM call (ISO 8601 UTC).")


class UserRankingSerializer(serializers.Serializer):
    users = UserRankSerializer(many=True)


class GroupRankingSerializer(serializers.Serializer):
    groups = GroupRankSerializer(many=True)


class UserRankingResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = UserRankingSerializer()


class GroupRankingResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = GroupRankingSerializer()
