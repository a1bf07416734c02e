"""Admin for credentials: personal access tokens and service API keys.

The add form has no key field: saving it generates the secret, stores only its
digest and shows the raw value once, in the success message of that save. The
digest is never displayed; the visible prefix tells keys apart.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from statsite.admin_utils import BoundedCountPaginator, change_link
from statsite.models import AccessToken, Credential, ServiceKey


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class CredentialAdmin(admin.ModelAdmin):
    # What an administrator may type; everything else is set by the system.
    editable_fields: tuple[str, ...] = ("name",)
    # Shown on the change page only; key_hash is deliberately absent.
    system_fields: tuple[str, ...] = ("prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (ActiveFilter,)
    search_fields = ("name", "prefix")
    ordering = ("-created_at", "-id")
    actions = ("revoke",)
    noun = "key"

    def get_fields(self, request: HttpRequest, obj: Credential | None = None) -> tuple[str, ...]:
        return self.editable_fields if obj is None else (*self.editable_fields, *self.system_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Credential | None = None) -> tuple[str, ...]:
        return () if obj is None else self.system_fields

    def save_model(self, request: HttpRequest, obj: Credential, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = obj.set_new_secret()
        super().save_model(request, obj, form, change)
        # The message lives until the next page shows it, then it is gone: the only
        # place the raw value ever appears.
        self.message_user(
            request,
            format_html(
                "Copy the new {} now, it will not be shown again: <code class='new-secret'>{}</code>",
                self.noun,
                raw,
            ),
            messages.SUCCESS,
        )

    @admin.action(description="Revoke selected %(verbose_name_plural)s", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        # A bulk UPDATE: authentication looks at revoked_at on every request, so
        # this takes effect at once.
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} {self.noun}(s).", messages.SUCCESS)


@admin.register(AccessToken)
class AccessTokenAdmin(CredentialAdmin):
    editable_fields = ("name", "user")
    system_fields = ("user", *CredentialAdmin.system_fields)  # a token does not change hands
    list_display = ("prefix", "name", "user_link", "created_at", "last_used_at", "revoked_at")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    noun = "token"

    def get_fields(self, request: HttpRequest, obj: Credential | None = None) -> tuple[str, ...]:
        if obj is None:
            return self.editable_fields
        return ("name", *self.system_fields)

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: AccessToken) -> str:
        return change_link(get_user_model(), obj.user_id, obj.user.username)


@admin.register(ServiceKey)
class ServiceKeyAdmin(CredentialAdmin):
    list_display = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
    noun = "service key"


# Ingest creates an account for every platform user it meets, so the user table
# can be as big as a fact table: the stock user admin, without the full counts.
User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    paginator = BoundedCountPaginator
    show_full_result_count = False
