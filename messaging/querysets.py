"""Chainable filters on messages."""

from __future__ import annotations

from statsite.querysets import TimeWindowQuerySet


class MessageQuerySet(TimeWindowQuerySet):
    def sent_by_bot(self, sent: bool = True):
        return self.filter(sent_by_bot=sent)

    def in_chat(self, chat_id: str):
        return self.filter(chat__chat_id=chat_id)
