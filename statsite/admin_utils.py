"""Admin pieces for the fact tables (logs, tool calls, messages), which grow to
millions of rows: nothing on their pages may cost a scan of the whole table.

- `BoundedCountPaginator` counts at most `count_limit + 1` rows and shows "N+"
  past that, instead of a COUNT(*) over the table on every page view.
- `recent_values_filter` offers the values of a column among the newest rows,
  where the stock filter would run SELECT DISTINCT over all of them.
- `FactAdmin` is read-only: facts are appended by ingest and leave only through
  `logs.services.purge` (the purge page and `manage.py purge`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html


class AtLeast(int):
    """A count that stopped counting: it computes as N and prints as "N+"."""

    def __str__(self) -> str:
        return f"{int(self)}+"

    def __format__(self, spec: str) -> str:
        return f"{format(int(self), spec)}+"


class BoundedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT + 1 rows, with a sliced subquery
    (`SELECT COUNT(*) FROM (SELECT id … LIMIT n)`), so a page of a huge table costs
    an index range, not a scan. Past the limit the count is `AtLeast(limit)`: the
    pages up to it can be browsed and the filters and date drill-down narrow the rest.
    Keep COUNT_LIMIT a multiple of the page size so the last page is a full one."""

    count_limit = 10_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, models.QuerySet):
            return super().count
        limit = self.count_limit
        counted = rows.order_by().values("pk")[: limit + 1].count()
        return AtLeast(limit) if counted > limit else counted


def change_link(model: type[models.Model], pk: Any, label: Any) -> str:
    """A link to the admin change page of MODEL row PK. Built from the id (and a label
    the caller already has), so a list column costs no query per row."""
    if pk is None:
        return "-"
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label if label not in (None, "") else f"#{pk}")


def recent_values_filter(field: str, title: str, *, window: int = 5000, choices: int = 100):
    """A list filter over FIELD whose choices are the distinct values among the
    newest WINDOW rows (by created_at, which every fact table indexes). Any value
    still filters when given in the URL; the choices are only what is offered."""

    class RecentValuesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
            manager = model_admin.model._default_manager
            newest = manager.order_by("-created_at", "-id").values("pk")[:window]
            values = list(
                manager.filter(pk__in=Subquery(newest))
                .exclude(**{field: ""})
                .order_by(field)
                .values_list(field, flat=True)
                .distinct()[:choices]
            )
            current = self.value()
            if current and current not in values:
                values.append(current)
            return [(value, value) for value in values]

        def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
            value = self.value()
            return queryset.filter(**{field: value}) if value else queryset

    RecentValuesFilter.title = title
    RecentValuesFilter.__name__ = f"Recent{field.title().replace('_', '')}Filter"
    return RecentValuesFilter


class FactAdmin(admin.ModelAdmin):
    """Read-only admin for an append-only fact table of any size."""

    paginator = BoundedCountPaginator
    show_full_result_count = False  # the "(N total)" link would COUNT(*) the table
    date_hierarchy = "created_at"
    # Newest first along the (created_at, id) index that every fact table has.
    ordering = ("-created_at", "-id")
    # Sorting by any other column would sort the whole table for one page.
    sortable_by = ("created_at",)
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        # One row at a time would bypass the batched purge; the purge page is the way out.
        return False
