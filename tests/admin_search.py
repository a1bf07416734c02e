"""The rows a fact admin's search finds, by the admin as registered or by Django's own
search of the same fields, for tests that the two agree."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.sites import site
from django.db import models
from django.test import RequestFactory


def searched(model: type[models.Model], term: str, *, stock: bool = False) -> set[int]:
    """The ids of MODEL's rows that the admin's search for TERM finds; STOCK: that
    Django's own search of the same `search_fields` finds."""
    registered = site.get_model_admin(model)
    if stock:
        stock_admin = type("StockAdmin", (admin.ModelAdmin,), {"search_fields": registered.search_fields})
        registered = stock_admin(model, site)
    request = RequestFactory().get("/", {"q": term})
    queryset, duplicates = registered.get_search_results(request, model.objects.all(), term)
    assert not duplicates
    return set(queryset.values_list("pk", flat=True))
