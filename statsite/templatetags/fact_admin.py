"""The fact tables' admin pages (statsite.admin_utils.FactAdmin)."""

from __future__ import annotations

from django import template

from statsite.admin_utils import date_drill_down

register = template.Library()


@register.inclusion_tag("admin/date_hierarchy.html")
def fact_date_hierarchy(cl):
    """The date hierarchy of a fact table's change list, without a scan of its rows."""
    return date_drill_down(cl)
