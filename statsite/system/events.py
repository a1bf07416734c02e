"""The live event stream's engine: one hub per server process feeds every open stream.

What a stream sends (Server-Sent Events):
- `status`: the status snapshot, on connect and every SSE_STATUS_INTERVAL seconds;
- `metric`: LLM calls of the last minute (rpm, tpm, errorRate, p95Latency), every interval;
- `error`: each new error log (type 4), with `id:` = its log id;
- `channel`: a channel whose status or error rate changed since the previous interval;
- `: keep-alive` comments every SSE_KEEPALIVE_SECONDS.

Ids and resuming. Event ids are log ids. An `error` event's id is its row's id; a
`status` event's id is the stream's position: every error with a smaller or equal
id has been sent. A client that reconnects with `Last-Event-ID: N` (EventSource
does so by itself) gets every error with an id above N, then the live stream:
nothing skipped, nothing twice. That holds because error ids grow in commit order
(`statsite.system.notify`) and positions are read under the same lock.

The hub. Per process, not per stream, so a hundred open dashboards cost what one
does: one task finds new errors (on PostgreSQL woken by LISTEN/NOTIFY on ONE shared
psycopg connection, with a scan every interval to advance positions; on SQLite a
scan every POLL_SECONDS, which is one `MAX(id)` probe and a range read of the rows
added since), reads each new error once, encodes it once and puts the bytes in
every stream's queue; the same task computes the status, metric and channel data
once per interval. Its queries run on one worker thread, whose database connection
is closed when the last stream goes. The hub starts with the first stream and stops
STOP_GRACE_SECONDS after the last one ends.

A stream is an async generator awaiting its queue: while idle it holds no thread
and no database connection. The few queries of its own (credentials, the replay on
connect) run on the event loop's worker threads and close their connection at once.
It ends when the client goes away (the ASGI server's disconnect cancels it), when
it falls QUEUE_MAX events behind (it is dropped and the client resumes from its
Last-Event-ID), or when the server shuts down (the hub chains onto the server's
SIGTERM/SIGINT handler and ends every stream, so the server's graceful shutdown
is not held open by streams that would never finish).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import F, Max

from statsite.request_threads import current_request_thread
from statsite.system import notify, snapshots

logger = logging.getLogger("statsite.events")

T = TypeVar("T")

# Most errors a reconnecting client is sent again (the newest of those it missed);
# older ones are in /api/logs/errors.
REPLAY_LIMIT = 1000
# A stream's replay that meets a passing database error (a lock, a failover) is tried
# again this many times, after this long (then twice as long), before the stream ends.
REPLAY_ATTEMPTS = 3
REPLAY_RETRY_SECONDS = 0.1
# Errors read per query.
PAGE = 500
# Events a stream may lag behind before it is dropped (its client then resumes).
QUEUE_MAX = 2000
# SQLite has no NOTIFY: the hub looks for new rows this often.
POLL_SECONDS = 0.5
# The hub keeps running this long after its last stream ends, for quick reconnects.
STOP_GRACE_SECONDS = 2.0
# How long a new stream waits for the hub's first look at the database.
READY_TIMEOUT = 10.0
# A status snapshot this fresh is reused for a new stream's first event.
STATUS_REUSE_SECONDS = 1.0
# EventSource reconnects this many milliseconds after losing the stream.
RETRY_MS = 3000
KEEPALIVE = b": keep-alive\n\n"


# --- SSE framing --------------------------------------------------------------------


def frame(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    """One SSE event. The data is compact JSON on one line: JSON escapes line breaks
    inside strings, so no `data:` line can be cut short."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


def position_line(position: int) -> bytes:
    return f"id: {position}\n".encode()


# --- what the hub reads (sync; on a worker thread) ------------------------------------------


def _log_model():
    from logs.models import Log

    return Log


def error_chunks(rows: Iterable[Any]) -> list[tuple[int, bytes]]:
    """Error log rows as `error` events: the /api/logs/errors item plus its id."""
    from logs.api.serializers import ConsoleErrorLogSerializer

    chunks = []
    for row in rows:
        data = {"id": row.pk, **ConsoleErrorLogSerializer(row).data}
        chunks.append((row.pk, frame("error", data, event_id=row.pk)))
    return chunks


def _errors_after(after: int):
    """Error logs with an id above AFTER. The type is compared as `type + 0` on purpose:
    it keeps the planner off the (type, created_at) index, which would read every
    error ever logged, and on the primary key, which reads only the rows after AFTER
    (the few added since the last look)."""
    Log = _log_model()
    return (
        Log.objects.alias(log_type=F("type") + 0)
        .filter(log_type=Log.Type.ERROR, id__gt=after)
        .select_related("channel")
    )


def errors_between(after: int, upto: int) -> list[tuple[int, bytes]]:
    """Every error log with `after < id <= upto`, oldest first, read a page at a time."""
    out: list[tuple[int, bytes]] = []
    while after < upto:
        rows = list(_errors_after(after).filter(id__lte=upto).order_by("id")[:PAGE])
        out += error_chunks(rows)
        if len(rows) < PAGE:
            break
        after = rows[-1].pk
    return out


def safe_position() -> int:
    """The highest log id such that every error log up to it has committed and no
    error log will ever be added below it. On PostgreSQL read while holding the lock
    that ingest of errors takes (so no such ingest is half-way); on SQLite every
    writer waits for the one before, so the highest committed id is safe as it is."""
    logs = _log_model().objects
    if not notify.uses_notify():
        return logs.aggregate(top=Max("id"))["top"] or 0
    with transaction.atomic():
        notify.serialise_error_commits(True)
        return logs.aggregate(top=Max("id"))["top"] or 0


def scan(position: int) -> tuple[int, list[tuple[int, bytes]]]:
    """The new safe position and the errors stored since POSITION."""
    top = max(position, safe_position())
    return top, errors_between(position, top) if top > position else []


def replay(after: int, limit: int = REPLAY_LIMIT) -> tuple[int, list[tuple[int, bytes]]]:
    """What a (re)connecting stream owes: the newest LIMIT errors with an id above
    AFTER, oldest first. AFTER is first capped at the highest log id, so an id from
    some other database does not silence the stream."""
    top = _log_model().objects.aggregate(top=Max("id"))["top"] or 0
    after = min(after, top)
    rows = list(_errors_after(after).order_by("-id")[:limit])
    rows.reverse()
    return after, error_chunks(rows)


def tick_data(previous_channels: dict | None) -> tuple[dict, dict, dict, list]:
    status = snapshots.status_snapshot()
    metric = snapshots.metric_snapshot()
    channels = snapshots.channel_states()
    return status, metric, channels, snapshots.channel_changes(previous_channels, channels)


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run FN on one of the event loop's worker threads and close the database
    connection it opened, so nothing is held once the answer is in."""

    def call() -> T:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return await sync_to_async(call, thread_sensitive=False)()


# --- the hub ----------------------------------------------------------------------------


class HubUnavailable(Exception):
    """The server is shutting down, or the database has not answered the hub."""


CLOSE = ("close", None, b"")


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_MAX))
    dropped: bool = False


class EventHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.position = 0
        self.subscribers: set[Subscriber] = set()
        self.listening = False
        self._closing = False
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._demand_at = loop.time()
        self._executor: ThreadPoolExecutor | None = None
        self._channels: dict | None = None
        self._status: tuple[float, bytes] | None = None
        self._status_lock = asyncio.Lock()
        self._failing = False

    # --- for the streams ---

    async def ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the hub if needed and wait until it knows its position."""
        if self._closing:
            raise HubUnavailable("The server is shutting down.")
        self._demand_at = self.loop.time()
        if self._task is None:
            self._ready.clear()
            self._task = self.loop.create_task(self._run(), name="statsite-event-hub")
            install_shutdown_hook()
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            raise HubUnavailable("The event stream cannot reach the database.") from None
        if self._closing:
            raise HubUnavailable("The server is shutting down.")

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        self._demand_at = self.loop.time()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._demand_at = self.loop.time()
        self._wake.set()

    async def status_chunk(self) -> bytes:
        """A `status` event (without its id, which is each stream's own)."""
        async with self._status_lock:
            if self._status is None or self.loop.time() - self._status[0] > STATUS_REUSE_SECONDS:
                data = await self._db(snapshots.status_snapshot)
                self._status = (self.loop.time(), frame("status", data))
            return self._status[1]

    def close_all(self) -> None:
        """End every stream and refuse new ones (the server is shutting down)."""
        self._closing = True
        for subscriber in list(self.subscribers):
            self._offer(subscriber, CLOSE)
        self._wake.set()

    # --- inside ---

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run FN on the hub's own thread, whose connection lives as long as the hub."""
        executor = self._executor
        if executor is None:
            return await in_worker(fn, *args)

        def call() -> T:
            try:
                return fn(*args)
            except BaseException:
                # A failed query may have broken the connection: the next call opens a fresh one.
                connection.close()
                raise

        return await self.loop.run_in_executor(executor, call)

    def _offer(self, subscriber: Subscriber, item: tuple) -> None:
        try:
            subscriber.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Too far behind: drop it; its client reconnects and resumes from its last id.
            subscriber.dropped = True
            self.subscribers.discard(subscriber)

    def _broadcast(self, item: tuple) -> None:
        for subscriber in list(self.subscribers):
            self._offer(subscriber, item)

    def _idle(self) -> bool:
        return self._closing or (
            not self.subscribers and self.loop.time() - self._demand_at >= STOP_GRACE_SECONDS
        )

    async def _run(self) -> None:
        # Kept in locals: a new run may start while this one is still cleaning up.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statsite-events")
        self._executor = executor
        listener: asyncio.Task | None = None
        failed = False
        try:
            if not await self._start_position():
                return
            self._ready.set()
            if connection.vendor == "postgresql":
                listener = self.loop.create_task(self._listen(), name="statsite-event-listener")
            await self._loop()
        except Exception:
            failed = True
            logger.exception("the event hub failed")
        finally:
            self._ready.clear()
            self._task = None
            self.listening = False
            if self._executor is executor:
                self._executor = None
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            try:
                await self.loop.run_in_executor(executor, connections.close_all)
            finally:
                executor.shutdown(wait=False)
            if failed:
                # Its streams end, and their clients reconnect to a fresh hub.
                for subscriber in list(self.subscribers):
                    self._offer(subscriber, CLOSE)

    async def _start_position(self) -> bool:
        delay = 0.5
        while not self._idle():
            try:
                self.position = await self._db(safe_position)
                return True
            except Exception:
                logger.warning("the event hub cannot read the log table; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        return False

    async def _loop(self) -> None:
        interval = float(settings.SSE_STATUS_INTERVAL)
        now = self.loop.time()
        next_tick = now + interval
        next_scan = now + POLL_SECONDS
        while not self._idle():
            poll = interval if self.listening else POLL_SECONDS
            deadline = min(next_tick, next_scan)
            if not self.subscribers:
                deadline = min(deadline, self._demand_at + STOP_GRACE_SECONDS)
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
                woken = True
            except TimeoutError:
                woken = False
            self._wake.clear()
            if self._idle():
                return
            now = self.loop.time()
            if woken or now >= next_scan or now >= next_tick:
                await self._scan()
                next_scan = now + poll
            if now >= next_tick:
                await self._tick()
                next_tick = max(next_tick + interval, now + interval / 2)

    def _database_failed(self, what: str) -> None:
        # Once per outage: the hub retries every fraction of a second.
        if not self._failing:
            self._failing = True
            logger.warning("the event hub could not %s; retrying", what, exc_info=True)

    def _database_answered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("the event hub reads the database again")

    async def _scan(self) -> None:
        try:
            top, chunks = await self._db(scan, self.position)
        except Exception:
            self._database_failed("read new errors")
            return
        self._database_answered()
        for error_id, chunk in chunks:
            self._broadcast(("error", error_id, chunk))
        if top > self.position:
            self.position = top
            self._broadcast(("position", top, b""))

    async def _tick(self) -> None:
        if not self.subscribers:
            return
        try:
            status, metric, channels, changed = await self._db(tick_data, self._channels)
        except Exception:
            self._database_failed("read the status")
            return
        self._database_answered()
        self._channels = channels
        status_chunk = frame("status", status)
        self._status = (self.loop.time(), status_chunk)
        self._broadcast(("status", None, status_chunk))
        self._broadcast(("metric", None, frame("metric", metric)))
        for change in changed:
            self._broadcast(("channel", None, frame("channel", change)))

    async def _listen(self) -> None:
        """LISTEN on one connection for the whole process; each NOTIFY wakes the scan.
        Reconnects when the connection is lost, meanwhile the hub polls."""
        import psycopg

        delay = 0.5
        while True:
            try:
                params = listener_params()
                async with await psycopg.AsyncConnection.connect(autocommit=True, **params) as conn:
                    await conn.execute(f"LISTEN {notify.CHANNEL}")
                    self.listening = True
                    delay = 0.5
                    # Anything committed before LISTEN took effect is found by this scan.
                    self._wake.set()
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def listener_params() -> dict[str, Any]:
    """psycopg connection arguments for the LISTEN connection: the default database's,
    with TCP keepalives so a silently dead network is noticed."""
    params = dict(connections["default"].get_connection_params())
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params.setdefault("application_name", "statsite-events")
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 30)
    params.setdefault("keepalives_interval", 10)
    params.setdefault("keepalives_count", 3)
    return params


_hub: EventHub | None = None


def get_hub() -> EventHub:
    """This process's hub (a new one for a new event loop, as in tests)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = EventHub(loop)
    return _hub


# --- shutdown ------------------------------------------------------------------------------

_hooked: set[int] = set()
_hook_lock = threading.Lock()


def install_shutdown_hook() -> None:
    """Chain onto the server's own SIGTERM/SIGINT handlers so that shutting down ends
    every stream: uvicorn's graceful shutdown waits for open responses, and a stream
    would otherwise keep it waiting forever. Only where a server installed a handler
    (not under a test runner, whose handlers stay as they are); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _hook_lock:
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signum in _hooked:
                continue
            previous = signal.getsignal(signum)
            if not callable(previous) or previous is signal.default_int_handler:
                continue

            def handler(received, frame_, previous=previous):
                hub = _hub
                if hub is not None:
                    hub.loop.call_soon_threadsafe(hub.close_all)
                previous(received, frame_)

            signal.signal(signum, handler)
            _hooked.add(signum)


# --- one stream ---------------------------------------------------------------------------------


def release_request_thread() -> None:
    """Let go of the thread this request was given for its synchronous middleware.

    The request holds that thread until its response ends: for a stream, hours of an
    idle thread per client. By the time the stream starts, the middleware has run
    and the thread is idle, so it goes back now to the application's kept threads
    (statsite.request_threads); the few synchronous calls at the very end of the
    response borrow one again. Outside the application (no request thread) there is
    nothing to let go of."""
    request_thread = current_request_thread.get()
    if request_thread is not None:
        request_thread.release()


async def replay_in_worker(after: int) -> tuple[int, list[tuple[int, bytes]]]:
    """`replay(after)` on a worker thread, tried again on a passing database error: a
    stream that has begun should not end for one (on SQLite a reader can meet a
    writer's table lock; on PostgreSQL a failover)."""
    delay = REPLAY_RETRY_SECONDS
    for attempt in range(1, REPLAY_ATTEMPTS + 1):
        try:
            return await in_worker(replay, after)
        except DatabaseError:
            if attempt == REPLAY_ATTEMPTS:
                raise
            logger.info("an event stream's replay met a database error; trying again", exc_info=True)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def stream(hub: EventHub, start_after: int | None) -> AsyncIterator[bytes]:
    """One client's events: `status` at once, the errors it missed, then live events."""
    subscriber = hub.subscribe()
    try:
        release_request_thread()
        # Normally at once: the view waited for the hub. It restarts the hub should
        # the stream have started after the hub's grace period.
        await hub.ready()
        cursor = hub.position if start_after is None else start_after
        status = await hub.status_chunk()
        yield f"retry: {RETRY_MS}\n".encode() + position_line(cursor) + status
        cursor, missed = await replay_in_worker(cursor)
        for error_id, chunk in missed:
            cursor = max(cursor, error_id)
            yield chunk

        keepalive = float(settings.SSE_KEEPALIVE_SECONDS)
        next_keepalive = hub.loop.time() + keepalive
        while not subscriber.dropped:
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # meets an item arriving in the same turn of the loop, and the stream
                # of a client gone would live on unseen. timeout_at lets it through.
                async with asyncio.timeout_at(next_keepalive):
                    kind, value, chunk = await subscriber.queue.get()
            except TimeoutError:
                next_keepalive = hub.loop.time() + keepalive
                yield KEEPALIVE
                continue
            if subscriber.dropped or kind == "close":
                return
            out = b""
            if kind == "error":
                if value <= cursor:
                    continue  # sent already, by the replay
                cursor = value
                out = chunk
            elif kind == "position":
                cursor = max(cursor, value)
            elif kind == "status":
                out = position_line(cursor) + chunk
            else:
                out = chunk
            if hub.loop.time() >= next_keepalive:
                out += KEEPALIVE
                next_keepalive = hub.loop.time() + keepalive
            if out:
                yield out
    except Exception:
        # The stream is already under way: the client sees it end and reconnects.
        logger.warning("an event stream ended on an error", exc_info=True)
    finally:
        hub.unsubscribe(subscriber)
