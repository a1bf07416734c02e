"""Chats, the people in them, and their messages."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from messaging.querysets import MessageQuerySet


class Chat(models.Model):
    class Kind(models.TextChoices):
        GROUP = "group"
        PRIVATE = "private"

    chat_id = models.CharField(max_length=128, unique=True, help_text="The chat platform's id.")
    kind = models.CharField(max_length=7, choices=Kind.choices, default=Kind.GROUP)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

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
    chat = models.ForeignKey(Chat, on_delete=models.PROTECT, related_name="messages")
    sender = models.ForeignKey(
        Participant, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
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
