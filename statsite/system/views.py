"""The system endpoints: `/api/system/status|info|health` (DRF, console envelope),
the live stream `/api/system/events` (an async Django view) and `/healthz`.

Callers: a service key (`X-API-Key` or Bearer) or an administrator's token; other
accounts get 403. The stream also takes the credential as `?token=`, because a
browser's EventSource cannot send headers, and a signed-in staff session.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.views import APIView

from statsite import dialects
from statsite.authentication import ApiKeyAuthentication, BearerAuthentication
from statsite.permissions import IsAdminOrService, is_account
from statsite.system import events, snapshots
from statsite.system.serializers import (
    SystemConsoleErrorSerializer,
    SystemHealthResponseSerializer,
    SystemInfoResponseSerializer,
    SystemStatusResponseSerializer,
)

logger = logging.getLogger("statsite.system")

TAG = "system"
ERRORS = {code: SystemConsoleErrorSerializer for code in (401, 403, 503)}


class SystemView(APIView):
    dialect = dialects.CONSOLE
    permission_classes = [IsAdminOrService]


class SystemStatusView(SystemView):
    @extend_schema(
        operation_id="system_status",
        tags=[TAG],
        summary="Server status: version, uptime, memory and the latest data source",
        responses={200: SystemStatusResponseSerializer, **ERRORS},
    )
    def get(self, request):
        return self.dialect.ok(snapshots.status_snapshot())


class SystemInfoView(SystemView):
    @extend_schema(
        operation_id="system_info",
        tags=[TAG],
        summary="Server information: runtime, features, channels and tools seen",
        responses={200: SystemInfoResponseSerializer, **ERRORS},
    )
    def get(self, request):
        return self.dialect.ok(snapshots.info_snapshot())


class SystemHealthView(SystemView):
    @extend_schema(
        operation_id="system_health",
        tags=[TAG],
        summary="Health checks: database round trip, data source, channels",
        description='A 503 carries the same body, with `healthy` false and the failing check at "error".',
        responses={
            200: SystemHealthResponseSerializer,
            503: SystemHealthResponseSerializer,
            401: SystemConsoleErrorSerializer,
            403: SystemConsoleErrorSerializer,
        },
    )
    def get(self, request):
        data = snapshots.health_snapshot()
        return self.dialect.ok(data, status_code=200 if data["healthy"] else 503)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: no credentials, no detail. It probes the database only: a
    disabled channel is no reason to take this server out of rotation."""
    ok = snapshots.check_database()["status"] == "ok"
    return HttpResponse(b"ok" if ok else b"unavailable", status=200 if ok else 503, content_type="text/plain")


# --- the event stream ----------------------------------------------------------------------


def console_error(message: str, status: int) -> JsonResponse:
    response = JsonResponse({"success": False, "error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="statsite"'
    return response


class Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _request_with(meta: dict[str, Any]) -> HttpRequest:
    """A bare request carrying META, for the DRF authentication classes (which read
    only its headers); built fresh so the real request is left as it is."""
    request = HttpRequest()
    request.META = meta
    return request


def authenticate_stream(meta: dict[str, Any], token: str | None) -> Any | None:
    """The caller of a stream request, by the same rules as every other endpoint
    (`X-API-Key`, then `Authorization: Bearer`), then `?token=` (taken as a Bearer
    credential). None when no credential was sent. Runs queries: call it off the loop."""
    requests = [_request_with(meta)]
    if token is not None:
        # A query string may hold any character; a header (which the token is read as)
        # only latin-1 ones. A token that is not printable ASCII cannot be a credential.
        if not (token.isascii() and token.strip().isprintable()):
            raise Refused("Invalid or revoked token", 401)
        requests.append(_request_with({"HTTP_AUTHORIZATION": f"Bearer {token.strip()}"}))
    for request in requests:
        for method in (ApiKeyAuthentication(), BearerAuthentication()):
            try:
                found = method.authenticate(request)
            except exceptions.AuthenticationFailed as exc:
                raise Refused(dialects.error_message(exc), 401) from exc
            if found is not None:
                return found[0]
    return None


def parse_event_id(raw: str | None) -> int | None:
    """A Last-Event-ID: a non-negative whole number, else ignored (the stream then
    starts from now, as for a first connection)."""
    if raw is None:
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


# Only GET is served and nothing is changed; exempt so other methods get the JSON 405
# rather than the CSRF middleware's HTML 403.
@csrf_exempt
async def system_events(request: HttpRequest) -> HttpResponse:
    """`GET /api/system/events`: the Server-Sent Events stream (see statsite.system.events).

    Credentials: `X-API-Key`, `Authorization: Bearer`, `?token=` or a staff session.
    Resume: the `Last-Event-ID` header (sent by EventSource when it reconnects) or
    `?lastEventId=`; the header wins when both are sent."""
    try:
        return await _open_stream(request)
    except Exception:
        # As the DRF views do: an error is JSON in the console envelope, never an HTML page.
        logger.exception("unhandled error opening an event stream")
        return console_error("Internal server error", 500)


async def _open_stream(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        response = console_error(f'Method "{request.method}" not allowed.', 405)
        response["Allow"] = "GET"
        return response
    try:
        headers = {name: value for name, value in request.META.items() if name.startswith("HTTP_")}
        user = await events.in_worker(authenticate_stream, headers, request.GET.get("token"))
        if user is None:
            # No credential sent: a signed-in staff member's browser session will do.
            session_user = await request.auser()
            user = session_user if session_user.is_authenticated else None
            # The session lookup's connection belongs to this request's context, which
            # lives as long as the stream: close it rather than hold it for hours.
            await sync_to_async(connections.close_all)()
    except Refused as refused:
        return console_error(refused.message, refused.status)
    except DatabaseError:
        logger.warning("the event stream could not check credentials", exc_info=True)
        return console_error(str(dialects.ServiceUnavailable.default_detail), 503)
    if user is None:
        return console_error(str(exceptions.NotAuthenticated.default_detail), 401)
    if not IsAdminOrService().has_permission(SimpleNamespace(user=user), None):
        status = 403 if is_account(user) else 401
        return console_error(IsAdminOrService.message, status)

    hub = events.get_hub()
    try:
        await hub.ready()
    except events.HubUnavailable as exc:
        return console_error(str(exc), 503)

    start_after = parse_event_id(request.META.get("HTTP_LAST_EVENT_ID"))
    if start_after is None:
        start_after = parse_event_id(request.GET.get("lastEventId"))
    response = StreamingHttpResponse(events.stream(hub, start_after), content_type="text/event-stream")
    # Neither caches nor proxies may hold events back (X-Accel-Buffering: nginx).
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response
