"""OpenAPI for what drf-spectacular cannot see by itself: the plain Django views
(the event stream and /healthz) and the ingest client headers. Run as a
postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""

from __future__ import annotations

from typing import Any

CONSOLE_ERROR = {
    "type": "object",
    "properties": {"success": {"type": "boolean"}, "error": {"type": "string"}},
    "required": ["success", "error"],
}

CLIENT_HEADERS = [
    {
        "name": "X-Client-Platform",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 64},
        "description": "The sending client's platform (e.g. icqq); /api/system/status reports it as bot.platform.",
    },
    {
        "name": "X-Client-Account",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "The sending bot's own account; /api/system/status reports it as bot.uin.",
    },
]

EVENTS_DESCRIPTION = """Server-Sent Events (`text/event-stream`). Events:

- `status`: the /api/system/status data, at once and every SSE_STATUS_INTERVAL seconds (default 5);
- `metric`: `{timestamp, window, rpm, tpm, errorRate, p95Latency}` of the LLM calls of the last 60 s, every interval;
- `error`: each new error log, as an /api/logs/errors item plus its `id`, within about a second of its ingest;
- `channel`: `{id, name, status, requests, errors, errorRate, previous}` for a channel whose status or
  error rate (to the percentage point) changed since the previous interval;
- `: keep-alive` comments every SSE_KEEPALIVE_SECONDS (default 15).

Every `error` event has `id:` = its log id, every `status` event `id:` = the stream's position (all errors up
to it were sent). Reconnecting with `Last-Event-ID` (EventSource does it by itself) or `?lastEventId=` sends
every error after that id (at most the newest 1000), then the live stream: no gap, no repeat.

Credentials: `X-API-Key`, `Authorization: Bearer`, `?token=` (EventSource cannot send headers) or a staff
session. Errors before the stream starts are JSON: 401 (no or bad credential), 403 (not an administrator),
503 (database unavailable or server shutting down)."""


def _events_operation() -> dict[str, Any]:
    error = {"application/json": {"schema": CONSOLE_ERROR}}
    return {
        "operationId": "system_events",
        "summary": "Live events: status, metrics, errors and channel changes (SSE)",
        "description": EVENTS_DESCRIPTION,
        "tags": ["system"],
        "parameters": [
            {
                "name": "token",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "A service key or an administrator's token, for clients that cannot send headers.",
            },
            {
                "name": "lastEventId",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "Resume after this event id (the Last-Event-ID header wins when both are sent).",
            },
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "Resume after this event id.",
            },
        ],
        "security": [{"ApiKey": []}, {"Bearer": []}, {"cookieAuth": []}],
        "responses": {
            "200": {
                "description": "The event stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "401": {"description": "No or bad credential.", "content": error},
            "403": {"description": "Not an administrator or service.", "content": error},
            "503": {"description": "Database unavailable, or the server is shutting down.", "content": error},
        },
    }


def _healthz_operation() -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "operationId": "healthz",
        "summary": "Liveness for load balancers: the database answers",
        "description": "No credentials and no detail: `ok` (200) or `unavailable` (503).",
        "tags": ["system"],
        "security": [{}],
        "responses": {
            "200": {"description": "The database answers.", "content": text},
            "503": {"description": "The database does not answer.", "content": text},
        },
    }


def add_plain_views(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    paths = result.setdefault("paths", {})
    paths["/api/system/events"] = {"get": _events_operation()}
    paths["/healthz"] = {"get": _healthz_operation()}
    for path, operations in paths.items():
        if path.startswith("/api/ingest/") and "post" in operations:
            parameters = operations["post"].setdefault("parameters", [])
            known = {(p.get("name"), p.get("in")) for p in parameters}
            parameters += [h for h in CLIENT_HEADERS if (h["name"], h["in"]) not in known]
    return result
