"""Chainable filters on chats and messages."""

from __future__ import annotations

from django.db import models

from statsite.querysets import TimeWindowQuerySet


class ChatQuerySet(models.QuerySet):
    def groups(self):
        return self.filter(kind="group")

    def private(self):
        return self.filter(kind="private")


class MessageQuerySet(TimeWindowQuerySet):
    def sent_by_bot(self, sent: bool = True):
        return self.filter(sent_by_bot=sent)

    def in_chat(self, chat_id: str):
        return self.filter(chat__chat_id=chat_id)
