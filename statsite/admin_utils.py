"""Admin pieces for the fact tables (logs, tool calls, messages), which grow to
millions of rows: nothing on their pages may cost a scan of the whole table.

- `BoundedCountPaginator` counts at most `count_limit + 1` rows and shows "N+"
  past that, instead of a COUNT(*) over the table on every page view.
- `recent_values_filter` offers the values of a column among the newest rows,
  where the stock filter would run SELECT DISTINCT over all of them.
- `date_drill_down` draws the date hierarchy from the table's first and last
  timestamps (two index probes), where the stock one runs SELECT DISTINCT of the
  year, month or day over every row the page's filters and search select.
- `FactAdmin` is read-only: facts are appended by ingest and leave only through
  `logs.services.purge` (the purge page and `manage.py purge`).
- `FactAdmin.holding` lets an admin search each term in a way an index answers
  (`accounts_named` is a part the fact tables share), where Django's search of its
  fields would walk the table.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Q, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst, smart_split, unescape_string_literal
from django.utils.translation import gettext as _


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


def _local_date(value: datetime | date) -> date:
    if isinstance(value, datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


def _table_span(cl: ChangeList, field: str) -> tuple[date, date] | None:
    """The local dates of the first and last FIELD value of CL's whole table: one
    probe at each end of FIELD's index (one aggregate of both would be a scan on
    SQLite), whatever the page's filters."""
    rows = cl.model._default_manager.exclude(**{f"{field}__isnull": True}).values_list(field, flat=True)
    first, last = rows.order_by(field).first(), rows.order_by(f"-{field}").first()
    if first is None or last is None:
        return None
    return _local_date(first), _local_date(last)


def date_drill_down(cl: ChangeList) -> dict[str, Any]:
    """The context of admin/date_hierarchy.html for CL, as Django's `date_hierarchy`
    tag builds it (the same levels, links and titles), but with the choices every
    year, month or day from the first row of the table to its last, not only those
    that hold a row the page selects: finding those is a scan of every selected row,
    seconds at ten million. A choice may so lead to an empty page."""
    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    # A chosen day shows itself alone: the table's span is not needed there.
    span = None if (year and month and day) else _table_span(cl, field)
    if not (year or month or day) and span is not None:
        # As Django does: start at the year, or the month, that holds every row.
        first, last = span
        if first.year == last.year:
            year = first.year
            if first.month == last.month:
                month = first.month
    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {"link": link({year_field: year, month_field: month}),
                     "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT"))},
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }  # fmt: skip
    if year and month:
        year, month = int(year), int(month)
        days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {"link": link({year_field: year, month_field: month, day_field: d.day}),
                 "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT"))}
                for d in _within(days, span)
            ],
        }  # fmt: skip
    if year:
        year = int(year)
        months = [date(year, m, 1) for m in range(1, 13)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {"link": link({year_field: year, month_field: m.month}),
                 "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT"))}
                for m in _within(months, span, month=True)
            ],
        }  # fmt: skip
    years = range(span[0].year, span[1].year + 1) if span else range(0)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
    }


def _within(dates: list[date], span: tuple[date, date] | None, *, month: bool = False) -> list[date]:
    """DATES (days, or the firsts of months when MONTH) that fall within SPAN."""
    if span is None:
        return []
    first, last = span
    if month:
        first = first.replace(day=1)
    return [d for d in dates if first <= d <= last]


# Past this many accounts a search term names, their rows are matched by a subquery:
# such a term is common, and the newest rows hold it.
LISTED_ACCOUNTS = 1000


def search_terms(search_term: str) -> list[str]:
    """The terms of an admin search as Django splits them: words, and "quoted phrases"
    without their quotes. A row matches the search when it matches every term."""
    terms = []
    for term in smart_split(search_term):
        if term.startswith(('"', "'")) and term[0] == term[-1]:
            term = unescape_string_literal(term)
        terms.append(term)
    return terms


def accounts_named(term: str) -> Q:
    """The rows of the accounts whose username contains TERM in any case, as the
    database compares text: the account's name (not the row's copy of it), looked up
    in the small accounts table, then their rows by id in the (user, created_at) index
    of every fact table."""
    accounts = get_user_model().objects.filter(username__icontains=term).values_list("pk", flat=True)
    listed = list(accounts[: LISTED_ACCOUNTS + 1])
    return Q(user__in=listed) if len(listed) <= LISTED_ACCOUNTS else Q(user__in=accounts)


class FactAdmin(admin.ModelAdmin):
    """Read-only admin for an append-only fact table of any size."""

    paginator = BoundedCountPaginator
    show_full_result_count = False  # the "(N total)" link would COUNT(*) the table
    date_hierarchy = "created_at"
    # Draws the date hierarchy with date_drill_down.
    change_list_template = "admin/fact_change_list.html"
    # Newest first along the (created_at, id) index that every fact table has.
    ordering = ("-created_at", "-id")
    # Sorting by any other column would sort the whole table for one page.
    sortable_by = ("created_at",)
    list_per_page = 100

    def holding(self, term: str) -> Q | None:
        """The rows that match one search TERM, asked so that an index answers each
        part of it; None (as here): Django's own search of `search_fields`."""
        return None

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet, search_term: str
    ) -> tuple[models.QuerySet, bool]:
        """The rows that match every term of SEARCH_TERM (words, or "quoted phrases",
        as Django splits them): each term's from `holding` where the admin says how,
        else Django's own search."""
        parts = [self.holding(term) for term in search_terms(search_term)]
        if any(part is None for part in parts):
            return super().get_search_results(request, queryset, search_term)
        for part in parts:
            queryset = queryset.filter(part)
        return queryset, False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        # One row at a time would bypass the batched purge; the purge page is the way out.
        return False
