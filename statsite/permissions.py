"""Who may call what. Every endpoint names one of these.

- public: `AllowAny`
- user: `IsAccount` — any signed-in account, which sees only its own rows
- admin: `IsAdminAccount` — a staff account, which sees everything
- service: `IsService` — a service key, which acts for the whole installation
- `IsAdminOrService`: the console, ingest and bot-stats default
"""

from __future__ import annotations

from rest_framework.permissions import AllowAny, BasePermission

__all__ = ["AllowAny", "IsAccount", "IsAdminAccount", "IsService", "IsAdminOrService", "is_service"]


def is_service(user) -> bool:
    return bool(getattr(user, "is_service", False))


def is_account(user) -> bool:
    return bool(user and user.is_authenticated and not is_service(user))


class IsAccount(BasePermission):
    message = "This endpoint needs a personal access token or a signed-in account."

    def has_permission(self, request, view) -> bool:
        return is_account(request.user)


class IsAdminAccount(BasePermission):
    message = "Only administrators may call this endpoint."

    def has_permission(self, request, view) -> bool:
        return is_account(request.user) and request.user.is_staff


class IsService(BasePermission):
    message = "This endpoint needs a service API key."

    def has_permission(self, request, view) -> bool:
        return is_service(request.user)


class IsAdminOrService(BasePermission):
    message = "This endpoint needs a service API key or an administrator's token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return is_service(user) or (is_account(user) and user.is_staff)
