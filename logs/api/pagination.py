"""Pages of the log endpoints.

- Gateway: `p` (1-based) and `page_size` (default 20, at most 100; more is
  capped, as gateway clients expect). `GatewayPagination` answers
  `{"items", "total", "page", "page_size"}` with an exact total (one COUNT);
  `GatewayListPagination` answers the plain list the search and token
  endpoints document. A page past the end is empty, never a 404.
- Console: `limit` (default 50, at most 500) newest rows, with `before` (a
  filter) as the cursor back in time.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination

from logs.selectors import log_page
from statsite.dialects import CONSOLE, GATEWAY
from statsite.ingest import INT32_MAX


def query_params(request, names: tuple[str, ...]) -> dict[str, str]:
    """The non-blank values of NAMES: `?p=&page_size=` means the defaults."""
    return {name: request.query_params[name] for name in names if request.query_params.get(name, "").strip()}


def validated(serializer_class: type[serializers.Serializer], data: dict) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationError(serializer.errors)
    return serializer.validated_data


def integer_parameter(name: str, description: str, default: int, maximum: int | None = None) -> dict:
    schema: dict[str, Any] = {"type": "integer", "minimum": 1, "default": default}
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "required": False, "in": "query", "description": description, "schema": schema}


def gateway_envelope_schema(data: dict) -> dict:
    return {
        "type": "object",
        "required": ["success", "message", "data"],
        "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}, "data": data},
    }


class PageParamsSerializer(serializers.Serializer):
    # p is bounded so that no offset can overflow a database's 64-bit OFFSET.
    p = serializers.IntegerField(min_value=1, max_value=INT32_MAX, required=False)
    page_size = serializers.IntegerField(min_value=1, required=False)


class GatewayListPagination(BasePagination):
    """One page of rows as a plain list (no count: a client reads until a short page)."""

    default_page_size = 20
    max_page_size = 100

    def read_params(self, request) -> tuple[int, int]:
        params = validated(PageParamsSerializer, query_params(request, ("p", "page_size")))
        size = params.get("page_size", self.default_page_size)
        return params.get("p", 1), min(size, self.max_page_size)

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.page, self.page_size = self.read_params(request)
        offset = (self.page - 1) * self.page_size
        return list(queryset[offset : offset + self.page_size])

    def get_paginated_response(self, data):
        return GATEWAY.ok(data)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return gateway_envelope_schema(schema)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            integer_parameter("p", "Page number, from 1.", 1, INT32_MAX),
            integer_parameter(
                "page_size",
                f"Rows per page (default {self.default_page_size}; more than {self.max_page_size} "
                f"gives {self.max_page_size}).",
                self.default_page_size,
            ),
        ]


class GatewayPagination(GatewayListPagination):
    """`{"items", "total", "page", "page_size"}`; `page_size` is the size applied.

    The view's `log_criteria` (the filters it applied) let `logs.selectors.log_page`
    count the rows and find the page from the rollups."""

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.page, self.page_size = self.read_params(request)
        offset = (self.page - 1) * self.page_size
        rows, self.total = log_page(queryset, view.log_criteria, offset=offset, limit=self.page_size)
        return rows

    def get_paginated_response(self, data):
        return GATEWAY.ok({"items": data, "total": self.total, "page": self.page, "page_size": self.page_size})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return gateway_envelope_schema(
            {
                "type": "object",
                "required": ["items", "total", "page", "page_size"],
                "properties": {
                    "items": schema,
                    "total": {"type": "integer", "description": "Rows matching the filters, on every page."},
                    "page": {"type": "integer"},
                    "page_size": {"type": "integer", "description": "The page size applied (after the cap)."},
                },
            }
        )


class LimitParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, required=False)


class ConsolePagination(BasePagination):
    """The newest `limit` rows of an ordered (newest first) queryset, as
    `{"success": true, "data": {RESULTS_KEY: [...]}}`.

    A page never ends inside a group of rows that share one timestamp: the rest of
    the group (up to TIE_LIMIT rows) comes with it, so `before=<last timestamp>`
    continues exactly where the page ended, skipping nothing."""

    results_key = "logs"
    default_limit = 50
    max_limit = 500
    tie_limit = 1000

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        params = validated(LimitParamsSerializer, query_params(request, ("limit",)))
        limit = min(params.get("limit", self.default_limit), self.max_limit)
        rows = list(queryset[:limit])
        if len(rows) == limit:
            last = rows[-1]
            rows += list(queryset.filter(created_at=last.created_at, id__lt=last.id)[: self.tie_limit])
        return rows

    def get_paginated_response(self, data):
        return CONSOLE.ok({self.results_key: data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"type": "boolean"},
                "data": {"type": "object", "required": [self.results_key], "properties": {self.results_key: schema}},
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            integer_parameter(
                "limit",
                f"Rows (default {self.default_limit}; more than {self.max_limit} gives {self.max_limit}).",
                self.default_limit,
            )
        ]


class ConsoleErrorPagination(ConsolePagination):
    results_key = "errors"
