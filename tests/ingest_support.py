"""What the ingest tests share: the endpoints, a minimal valid record for each,
and a way to prove that a refused request stored nothing at all."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from logs.models import Log
from messaging.models import Chat, Message, Participant
from usage.models import Channel, RelayKey, ToolCall

LLM_CALLS = "/api/ingest/llm-calls"
TOOL_CALLS = "/api/ingest/tool-calls"
MESSAGES = "/api/ingest/messages"
LOGS = "/api/ingest/logs"

# The smallest record each endpoint accepts.
MINIMAL: dict[str, dict] = {
    LLM_CALLS: {"model_name": "gpt-4o"},
    TOOL_CALLS: {"tool_id": "search"},
    MESSAGES: {"chat_id": "chat-1"},
    LOGS: {"type": 5},
}
ENDPOINTS = list(MINIMAL)


def stored_counts() -> dict[str, int]:
    """How many rows every table that ingest writes to holds."""
    return {
        "logs": Log.objects.count(),
        "tool calls": ToolCall.objects.count(),
        "messages": Message.objects.count(),
        "chats": Chat.objects.count(),
        "participants": Participant.objects.count(),
        "relay keys": RelayKey.objects.count(),
        "channels": Channel.objects.count(),
        "accounts": get_user_model().objects.count(),
    }


def assert_nothing_stored(before: dict[str, int]) -> None:
    assert stored_counts() == before


def iso(value: datetime) -> str:
    return value.isoformat()
