"""Who is calling: DRF authentication classes for every credential form.

- `X-API-Key: <service key>` → the installation (a `ServicePrincipal`).
- `Authorization: Bearer <personal access token>` → its account; a
  `New-Api-User` header, when sent, must name that account's id (`5` or
  `Bearer 5`), else the request is refused.
- `Authorization: Bearer <service key>` → the installation.
- Django session (admin, browsable API), with CSRF enforced: DRF's own
  `SessionAuthentication`.

Relay keys (`sk-…`) are not credentials here: only the public token lookup
reads them, itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from rest_framework import authentication, exceptions

from statsite import credentials
from statsite.models import AccessToken, ServiceKey


@dataclass(frozen=True)
class ServicePrincipal:
    """The caller behind a service key. Not an account: it owns no rows, sees all."""

    name: str
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_service: bool = True
    pk: None = None
    id: None = None

    def __str__(self) -> str:
        return f"service:{self.name}"


def _env_service_key(raw: str) -> ServicePrincipal | None:
    """Keys from STATSITE_API_KEYS, compared in constant time against every one."""
    wanted = credentials.digest(raw)
    found = None
    for index, key in enumerate(settings.STATSITE_API_KEYS, start=1):
        # Every key is compared, found or not, so timing says nothing about which matched.
        if credentials.same_digest(key, wanted) and found is None:
            found = ServicePrincipal(name=f"env-{index}")
    return found


def resolve_service_key(raw: str) -> ServicePrincipal | None:
    key = ServiceKey.find(raw)
    if key is not None:
        key.touch()
        return ServicePrincipal(name=key.name)
    return _env_service_key(raw)


def _header_value(value: str) -> str:
    value = value.strip()
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return value


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: <service key>` (the bot stats dialect's header)."""

    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw = request.META.get(self.header)
        if raw is None:
            return None
        raw = raw.strip()
        principal = resolve_service_key(raw) if raw else None
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid API key")
        return principal, principal

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="statsite"'


class BearerAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token or service key>`."""

    keyword = "bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'")
        try:
            raw = parts[1].decode("utf-8")
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: token is not valid UTF-8") from exc

        token = AccessToken.find(raw) if raw.startswith(credentials.TOKEN_PREFIX) else None
        if token is not None:
            if not token.user.is_active:
                raise exceptions.AuthenticationFailed("Invalid or revoked token")
            self._check_new_api_user(request, token.user)
            token.touch()
            return token.user, token

        # Not a personal token: a service key, possibly one from STATSITE_API_KEYS,
        # whose text the operator chose freely (even starting with `sst_`).
        principal = resolve_service_key(raw)
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token")
        return principal, principal

    @staticmethod
    def _check_new_api_user(request, user) -> None:
        sent = request.META.get("HTTP_NEW_API_USER")
        if sent is None:
            return
        if _header_value(sent) != str(user.pk):
            raise exceptions.AuthenticationFailed("New-Api-User does not match the token's account")

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="statsite"'

