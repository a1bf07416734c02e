"""Admin for the log table: read-only, built for millions of rows."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model

from logs.models import Log
from statsite.admin_utils import FactAdmin, change_link, recent_values_filter
from usage.models import Channel, RelayKey


@admin.register(Log)
class LogAdmin(FactAdmin):
    list_display = (
        "created_at",
        "type",
        "level",
        "user_link",
        "model_name",
        "channel_link",
        "token_link",
        "tokens",
        "cost",
        "quota",
        "latency_ms",
        "success",
    )
    list_filter = (
        "type",
        "level",
        "success",
        recent_values_filter("model_name", "model"),
        "channel",
        recent_values_filter("group", "group"),
    )
    search_fields = ("content", "username", "model_name")
    # Only the channel is joined: the user and relay key columns are drawn from the
    # row's own copies of their names (username, token_name), so no join is needed.
    list_select_related = ("channel",)
    raw_id_fields = ("user", "token", "channel")
    fieldsets = (
        (None, {"fields": ("created_at", "type", "level", "success", "content")}),
        (
            "Call",
            {
                "fields": (
                    ("user", "username"),
                    ("token", "token_name"),
                    "model_name",
                    "channel",
                    "group",
                    "is_stream",
                    "ip",
                )
            },
        ),
        (
            "Usage",
            {"fields": ("prompt_tokens", "completion_tokens", "quota", "cost", "latency_ms", "use_time")},
        ),
        ("Bot", {"fields": ("module", "request_type", "chat_id", "request_id")}),
        ("Other", {"fields": ("other",)}),
    )

    @admin.display(description="user")
    def user_link(self, obj: Log) -> str:
        return change_link(get_user_model(), obj.user_id, obj.username)

    @admin.display(description="channel")
    def channel_link(self, obj: Log) -> str:
        return change_link(Channel, obj.channel_id, obj.channel.name if obj.channel_id else None)

    @admin.display(description="relay key")
    def token_link(self, obj: Log) -> str:
        return change_link(RelayKey, obj.token_id, obj.token_name)

    @admin.display(description="tokens")
    def tokens(self, obj: Log) -> int:
        return obj.total_tokens
