"""Ingest records of chat messages."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from messaging.models import Chat
from statsite.ingest import RecordSerializer, TextField, TimestampField


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
