"""Chainable filters on chats and messages."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models

from statsite.querysets import TimeWindowQuerySet


class ChatQuerySet(models.QuerySet):
    def groups(self):
        return self.filter(kind="group")

    def private(self):
        return self.filter(kind="private")

    def with_pks(self, pks: Iterable[int] | models.Expression):
        """Chats by pk: an iterable, or an expression that yields them (a subquery)."""
        return self.filter(pk__in=pks if isinstance(pks, models.Expression) else list(pks))

    def with_chat_ids(self, chat_ids: Iterable[str] | models.Expression):
        """Chats by their platform ids (an iterable, or an expression that yields them)."""
        return self.filter(chat_id__in=chat_ids if isinstance(chat_ids, models.Expression) else list(chat_ids))


class MessageQuerySet(TimeWindowQuerySet):
    def sent_by_bot(self, sent: bool = True):
        return self.filter(sent_by_bot=sent)

    def in_chat(self, chat_id: str):
        return self.filter(chat__chat_id=chat_id)
