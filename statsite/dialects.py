"""The five API dialects' envelopes, and one exception handler that speaks them all.

A view declares `dialect = GATEWAY` (say), returns `self.dialect.ok(data)`,
and raises DRF exceptions for errors; `exception_handler` turns every error
(bad parameters, credentials, throttling, an unreachable database, a bug)
into that dialect's error envelope and status. Nothing leaves as an HTML 500.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger("statsite.errors")


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; try again shortly."
    default_code = "service_unavailable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than this server accepts."
    default_code = "payload_too_large"


def flatten_errors(detail: Any, path: str = "") -> list[str]:
    """`{"days": ["must be at least 1"]}` → `["days: must be at least 1"]`."""
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += flatten_errors(value, f"{path}.{name}" if path and name else (name or path))
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out += flatten_errors(item, path)
        return out
    return [f"{path}: {detail}" if path else str(detail)]


def error_message(exc: exceptions.APIException) -> str:
    return "; ".join(flatten_errors(exc.detail)) or str(exc.default_detail)


class Dialect:
    """Bare JSON; errors as `{"detail": "..."}` (the bot stats dialect, and ingest)."""

    name = "bare"

    def ok(self, data: Any, status_code: int = 200, **kwargs) -> Response:
        return Response(data, status=status_code, **kwargs)

    def error_body(self, message: str, status_code: int, exc: Exception | None = None) -> dict:
        return {"detail": message}

    def error(self, message: str, status_code: int = 400, exc: Exception | None = None) -> Response:
        return Response(self.error_body(message, status_code, exc), status=status_code)


class ConsoleDialect(Dialect):
    """`{"success": true, "data": ...}`; errors `{"success": false, "error": "..."}`."""

    name = "console"

    def ok(self, data: Any, status_code: int = 200, **kwargs) -> Response:
        return Response({"success": True, "data": data}, status=status_code, **kwargs)

    def error_body(self, message: str, status_code: int, exc: Exception | None = None) -> dict:
        return {"success": False, "error": message}


class GatewayDialect(Dialect):
    """`{"success": true, "message": "", "data": ...}`; errors `{"success": false, "message": "..."}`."""

    name = "gateway"

    def ok(self, data: Any, status_code: int = 200, message: str = "", **kwargs) -> Response:
        return Response({"success": True, "message": message, "data": data}, status=status_code, **kwargs)

    def error_body(self, message: str, status_code: int, exc: Exception | None = None) -> dict:
        return {"success": False, "message": message}


class MeteringDialect(Dialect):
    """`{"status": 0, "msg": "ok", "result": ..., "request_id": ...}`.

    Errors keep the envelope with the document's status numbers (101 no or
    unknown key, 203 bad date, 204 range too long); an exception may carry its
    own as `metering_status`.
    """

    name = "metering"
    STATUS_BY_HTTP = {400: 201, 401: 101, 403: 101, 404: 404, 405: 405, 413: 413, 415: 415, 429: 429, 503: 503}

    @staticmethod
    def request_id() -> str:
        return f"req_{uuid.uuid4().hex}"

    def ok(self, data: Any, status_code: int = 200, **kwargs) -> Response:
        body = {"status": 0, "msg": "ok", "result": data, "request_id": self.request_id()}
        return Response(body, status=status_code, **kwargs)

    def error_body(self, message: str, status_code: int, exc: Exception | None = None) -> dict:
        code = getattr(exc, "metering_status", None) or self.STATUS_BY_HTTP.get(status_code, 500)
        return {"status": code, "msg": message, "result": None, "request_id": self.request_id()}


BARE = Dialect()
CONSOLE = ConsoleDialect()
GATEWAY = GatewayDialect()
METERING = MeteringDialect()


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError(str(exc) or "Bad request")
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        return ServiceUnavailable()
    return None


def exception_handler(exc: Exception, context: dict) -> Response:
    set_rollback()
    view = context.get("view")
    dialect: Dialect = getattr(view, "dialect", BARE)
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        if isinstance(exc, DatabaseError):
            logger.exception("database error in %s", type(view).__name__)
        else:
            logger.exception("unhandled error in %s", type(view).__name__)
        return dialect.error("Internal server error", status.HTTP_500_INTERNAL_SERVER_ERROR, exc)

    response = dialect.error(error_message(api_exc), api_exc.status_code, api_exc)
    if getattr(api_exc, "auth_header", None):
        response["WWW-Authenticate"] = api_exc.auth_header
    if getattr(api_exc, "wait", None) is not None:
        response["Retry-After"] = str(int(api_exc.wait) + (0 if float(api_exc.wait).is_integer() else 1))
    return response
