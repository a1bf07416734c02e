"""QuerySet pieces shared by every fact table."""

from __future__ import annotations

from datetime import datetime

from django.db import models


class TimeWindowQuerySet(models.QuerySet):
    """Half-open windows `[start, end)` on `created_at`; either bound may be open."""

    def between(self, start: datetime | None = None, end: datetime | None = None):
        qs = self
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return qs

    def before(self, cutoff: datetime):
        return self.filter(created_at__lt=cutoff)

    def for_user(self, user):
        return self.filter(user=user)

    def newest_first(self):
        return self.order_by("-created_at", "-id")
