"""The admin site: Django's own, plus staff-only pages: the purge page at /admin/purge/
and the usage dashboard at /admin/dashboard/.

It replaces the default site through `AdminConfig.default_site` (the documented
way), so `django.contrib.admin.site`, `@admin.register` and every third-party
registration keep working unchanged. This module is imported while the app
registry is being built, so it must not import models at module level.

Every ModelAdmin it registers, Django's own included, gets `InputGuard`
(`statsite/admin_input.py`): bad lookups and selections in the admin's URLs and
forms get the admin's own error answers instead of a 500.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path


class StatsiteAdminSite(admin.AdminSite):
    site_header = "statsite administration"
    site_title = "statsite admin"
    index_title = "Data and access"

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        from statsite.admin_input import InputGuard  # imports the admin's change list, so not at module level

        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, InputGuard):
            admin_class = type(
                admin_class.__name__,
                (InputGuard, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
            )
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        # admin_view() gives the page the admin's staff check (non-staff go to the
        # login page), CSRF protection and no caching.
        return [
            path("purge/", self.admin_view(self.purge_view), name="purge"),
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]

    def purge_view(self, request: HttpRequest) -> HttpResponse:
        from logs.admin_views import purge_page  # needs models, so only once the apps are ready

        return purge_page(request, site=self)

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        from statsite.dashboard_views import dashboard_page  # needs models, so only once the apps are ready

        return dashboard_page(request, site=self)


class StatsiteAdminConfig(AdminConfig):
    default_site = "statsite.admin_site.StatsiteAdminSite"
