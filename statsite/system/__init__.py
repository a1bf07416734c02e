"""The system endpoints of the bot console dialect: status, info and health
snapshots (`/api/system/status|info|health`, `/healthz`) and the live event
stream (`/api/system/events`).

- `sources`: which client sent data last (the `bot` of the status snapshot).
- `snapshots`: the snapshots and the stream's metrics, as plain data.
- `notify`: what the ingest transaction does so the stream learns of new errors.
- `events`: the per-process hub that feeds every open stream, and SSE framing.
- `views`, `serializers`, `urls`: the HTTP side.
"""
