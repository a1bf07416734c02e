"""Admin for chats and participants (editable) and messages (read-only facts)."""

from __future__ import annotations

from django.contrib import admin

from messaging.models import Chat, Message, Participant
from statsite.admin_utils import FactAdmin, change_link


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ("chat_id", "name", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("=chat_id", "name")


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("user_id", "nickname", "created_at")
    search_fields = ("=user_id", "nickname")


@admin.register(Message)
class MessageAdmin(FactAdmin):
    list_display = ("created_at", "chat_link", "chat_kind", "sender_link", "sent_by_bot", "text_length", "message_id")
    list_filter = ("sent_by_bot", "chat__kind")
    search_fields = ("text", "=message_id")
    list_select_related = ("chat", "sender")
    raw_id_fields = ("chat", "sender")
    fields = ("created_at", "chat", "sender", "sent_by_bot", "message_id", "text_length", "text")

    @admin.display(description="chat")
    def chat_link(self, obj: Message) -> str:
        return change_link(Chat, obj.chat_id, str(obj.chat))

    @admin.display(description="kind")
    def chat_kind(self, obj: Message) -> str:
        return obj.chat.get_kind_display()

    @admin.display(description="sender")
    def sender_link(self, obj: Message) -> str:
        return change_link(Participant, obj.sender_id, str(obj.sender) if obj.sender_id else None)
