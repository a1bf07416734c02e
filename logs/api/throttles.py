"""Throttles of the log endpoints, at the rates REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] sets."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class SettingsScopedRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (per account when signed in, else per client address),
    reading its rate when a request comes rather than once at import, so the rate
    in force is always the configured one."""

    def get_rate(self) -> str | None:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as exc:
            raise ImproperlyConfigured(f"No throttle rate is set for the {self.scope!r} scope.") from exc
