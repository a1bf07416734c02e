"""Admin for the log table: read-only, built for millions of rows."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q

from logs.models import Log
from statsite.admin_utils import FactAdmin, accounts_named, change_link, recent_values_filter
from usage.models import Channel, RelayKey
from usage.selectors import models_containing

# The types of the rows that are never LLM calls (logs.querysets.LLM_CALL).
NOT_LLM_CALL_TYPES = (Log.Type.TOPUP, Log.Type.MANAGE, Log.Type.SYSTEM)


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
    # What the search matches; holding says how.
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

    def holding(self, term: str) -> Q:
        """Rows whose content, account name or model name contains TERM in any case:
        what Django's search of `search_fields` finds (it reads the row's copy of the
        account name, this the account's), asked so that each part can be looked up
        in an index: the content in its trigram index (PostgreSQL, migration logs
        0004), the accounts and models that hold the term by their ids and names (the
        accounts table and the LLM rollups' all-time rows are small) in the (user,
        created_at) and (model_name, created_at) indexes. Django's `UPPER(username)
        LIKE … OR UPPER(model_name) LIKE …` can be answered by no index: a term that
        few rows hold was a scan of the whole table, for the page and again for its
        count (4 s at ten million rows)."""
        return (
            Q(content__icontains=term)
            | accounts_named(term)
            # The models the LLM calls have named, and the model names of the other rows
            # (consume rows, and error rows that name a model, are LLM calls), which
            # an index of their own holds (migration logs 0004).
            | Q(model_name__in=models_containing(term))
            | (Q(type__in=NOT_LLM_CALL_TYPES, model_name__icontains=term) & ~Q(model_name=""))
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
