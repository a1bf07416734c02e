"""Chats, the people in them, their messages, and the hourly rollups of the messages."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from messaging.querysets import ChatQuerySet, MessageQuerySet
from usage.models import EARLIEST_FACT, Rollup


class Chat(models.Model):
    class Kind(models.TextChoices):
        GROUP = "group"
        PRIVATE = "private"

    chat_id = models.CharField(max_length=128, unique=True, help_text="The chat platform's id.")
    kind = models.CharField(max_length=7, choices=Kind.choices, default=Kind.GROUP)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ChatQuerySet.as_manager()

    class Meta:
        ordering = ["chat_id"]

    def __str__(self) -> str:
        return self.name or self.chat_id


class Participant(models.Model):
    """A chat platform user. `user_id` matches an account's username when both exist."""

    user_id = models.CharField(max_length=150, unique=True)
    nickname = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"{self.nickname} ({self.user_id})" if self.nickname else self.user_id


class Message(models.Model):
    """One chat message (append-only fact)."""

    message_id = models.CharField(max_length=128, null=True, blank=True)
    # Both keys are served by indexes below that lead with them: no index of their own.
    chat = models.ForeignKey(Chat, on_delete=models.PROTECT, related_name="messages", db_index=False)
    sender = models.ForeignKey(
        Participant, null=True, blank=True, on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    sent_by_bot = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    text_length = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        constraints = [
            # Ingest retries: a message id is stored once per chat.
            models.UniqueConstraint(fields=["chat", "message_id"], name="message_unique_per_chat"),
            models.CheckConstraint(condition=models.Q(created_at__gte=EARLIEST_FACT), name="message_not_before_2000"),
        ]
        indexes = [
            # /messages/recent and purge by age.
            models.Index(fields=["created_at", "id"], name="message_time_idx"),
            # /messages/stats_by_chat and ?groupId=: one chat over a window.
            models.Index(fields=["chat", "created_at"], name="message_chat_time_idx"),
            # /api/stats/users: one sender over a window.
            models.Index(fields=["sender", "created_at"], name="message_sender_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id or self.pk} in {self.chat_id}"


class MessageRollup(Rollup):
    """Exact hourly aggregates (UTC hours) of messages, kept by `usage.rollups` like the
    LLM and tool rollups. Dimensions are Message columns: the chat (its pk), the sender
    (Participant pk, 0 for none) and whether the bot sent it; every grain keeps
    `sent_by_bot`, so sent and received can always be told apart.

    Messages belong to no account and cost nothing, so the `user_id` and `cost` columns
    of the other rollups are left out, and `chat_id` is the Chat pk (the fact's FK
    column) rather than a platform id string."""

    user_id = None
    cost = None
    chat_id = models.BigIntegerField(default=0, help_text="Chat pk (0 in grains without the chat).")
    sender_id = models.BigIntegerField(default=0, help_text="Participant pk (0: no sender, or a grain without it).")
    sent_by_bot = models.BooleanField(default=False)

    messages = models.BigIntegerField(default=0)
    text_length = models.BigIntegerField(default=0, help_text="Sum of the messages' text lengths.")

    class Meta(Rollup.Meta):
        indexes = [
            # Every message stat over a window for one grain (/messages/*, /api/stats*).
            models.Index(fields=["grain", "bucket"], name="messagerollup_grain_time_idx"),
            # One chat over a window: /api/stats?groupId=, and a private chat's peer.
            models.Index(fields=["grain", "chat_id", "bucket"], name="messagerollup_chat_time_idx"),
        ]
