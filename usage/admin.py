"""Admin for relay keys, channels, model prices (editable) and tool calls (read-only facts)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from statsite.admin_utils import FactAdmin, accounts_named, change_link, recent_values_filter
from usage.models import Channel, ModelPrice, RelayKey, ToolCall
from usage.selectors import tools_containing


@admin.register(RelayKey)
class RelayKeyAdmin(admin.ModelAdmin):
    # key_hash is not editable and is listed nowhere: the admin never shows it.
    list_display = ("name", "prefix", "owner_link", "status", "created_at", "last_used_at")
    list_filter = ("status",)
    search_fields = ("name", "prefix", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    fields = ("name", "prefix", "owner", "status", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    ordering = ("-created_at", "-id")
    actions = ("disable", "enable")

    @admin.display(description="owner", ordering="owner__username")
    def owner_link(self, obj: RelayKey) -> str:
        return change_link(get_user_model(), obj.owner_id, obj.owner.username if obj.owner_id else None)

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: RelayKey.Status) -> None:
        changed = queryset.exclude(status=status).update(status=status)
        self.message_user(request, f"{changed} relay key(s) {status.label}.", messages.SUCCESS)

    @admin.action(description="Disable selected relay keys", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, RelayKey.Status.DISABLED)

    @admin.action(description="Enable selected relay keys", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, RelayKey.Status.ENABLED)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "=id")


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model_name", "input_per_million", "output_per_million", "currency", "updated_at")
    list_editable = ("input_per_million", "output_per_million", "currency")
    search_fields = ("model_name",)


@admin.register(ToolCall)
class ToolCallAdmin(FactAdmin):
    list_display = (
        "created_at",
        "tool_id",
        "tool_name",
        "user_link",
        "chat_id",
        "success",
        "duration_ms",
        "cost",
    )
    list_filter = ("success", recent_values_filter("tool_name", "tool"))
    # What the search matches; holding says how.
    search_fields = ("tool_id", "tool_name", "username", "=request_id")
    # The user column is drawn from the row's own username: nothing to join.
    list_select_related = ()
    raw_id_fields = ("user",)

    def holding(self, term: str) -> Q:
        """Rows whose tool id, tool name or account name contains TERM in any case, or
        whose request id is TERM: what Django's search of `search_fields` finds (it
        reads the row's copy of the account name, this the account's; it compares
        request ids in any case, this exactly), asked so that an index answers each
        part. The tools and the accounts that hold the term are looked up in the tool
        rollups' all-time rows and the accounts table (both small), then their rows in
        the (tool_name, created_at) and (user, created_at) indexes. Django's
        `UPPER(tool_id) LIKE …` can be answered by no index: a term that few rows hold
        was a walk of the whole table, for the page and again for its count."""
        names, pairs = tools_containing(term)
        # A row's tool id holds the term when it is one of the ids that do; the names
        # those ids were recorded with lead the rows to the tool name's index.
        by_id = Q(tool_id__in={tool_id for tool_id, _ in pairs}, tool_name__in={name for _, name in pairs})
        return Q(tool_name__in=names) | by_id | accounts_named(term) | Q(request_id=term)

    @admin.display(description="user")
    def user_link(self, obj: ToolCall) -> str:
        return change_link(get_user_model(), obj.user_id, obj.username)
