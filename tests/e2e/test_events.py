"""The live event stream `/api/system/events`, as a client meets it on the real
server (uvicorn): credentials, the event schedule, error push, resuming with
Last-Event-ID, channel changes, fifty streams at once, and shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from django.conf import settings

from statsite.request_threads import KEPT_REQUEST_THREADS
from tests.e2e.conftest import Server, run_server

INTERVAL = 1  # SSE_STATUS_INTERVAL of this module's server
KEEPALIVE = 2  # SSE_KEEPALIVE_SECONDS
ERROR_DEADLINE = 2.0  # an error must be on the stream this soon after its ingest
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"SSE_STATUS_INTERVAL": str(INTERVAL), "SSE_KEEPALIVE_SECONDS": str(KEEPALIVE)}


@dataclass
class Callers:
    service: str
    admin: str
    user: str


@pytest.fixture(scope="module")
def callers(live_server_process) -> Callers:
    server = live_server_process

    def secret(*command: str) -> str:
        return server.manage(*command).strip().splitlines()[-1]  # the secret is the last line

    return Callers(
        service=secret("create_api_key", "events"),
        admin=secret("issue_token", "root", "--admin"),
        user=secret("issue_token", "bob"),
    )


# --- a small SSE client on raw asyncio streams ----------------------------------------------


@dataclass
class Event:
    event: str = "message"
    data: Any = None
    id: str | None = None
    comment: str | None = None
    at: float = 0.0


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    body: bytes = b""
    buffer: bytes = b""
    ended: bool = False
    finished: bool = False  # the body ended with its last chunk, not a cut connection

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None) -> Stream:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                found[name.strip().lower()] = value.strip()
        stream = cls(int(status_line.split()[1]), found, reader, writer)
        if "content-length" in found:
            stream.body = await asyncio.wait_for(reader.readexactly(int(found["content-length"])), 5)
            stream.ended = True
        return stream

    def json(self) -> Any:
        return json.loads(self.body)

    async def _chunk(self) -> bytes:
        """The next piece of the chunked body; b"" at its end."""
        size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await self.reader.readuntil(b"\r\n")
            self.ended = self.finished = True
            return b""
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def next(self, timeout: float = 5.0) -> Event | None:
        """The next event or comment; None once the stream has ended."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buffer:
            if self.ended:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event in time")
            try:
                self.buffer += await asyncio.wait_for(self._chunk(), remaining)
            except asyncio.IncompleteReadError:
                self.ended = True
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        event = Event(at=time.monotonic())
        data: list[str] = []
        for line in block.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                event.comment = value
            elif name == "data":
                data.append(value)
            elif name == "event":
                event.event = value
            elif name == "id":
                event.id = value
        if data:
            event.data = json.loads("\n".join(data))
        return event

    async def until(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event is None:
                raise EOFError("the stream ended")
            if predicate(event):
                return event

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def run(coroutine: Awaitable, timeout: float = 30) -> Any:
    """Run an async test body, bounded in time."""

    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


def is_error(event: Event) -> bool:
    return event.event == "error"


async def ingest(server: Server, key: str, path: str, body) -> None:
    status, answer, _ = await asyncio.to_thread(server.request, "POST", path, body, {"X-API-Key": key})
    assert status == 201, answer


def error_log(text: str, **extra) -> dict:
    return {"type": 4, "content": text, "other": {"stack": f"at {text}", "context": {"where": "test"}}, **extra}


# --- credentials ------------------------------------------------------------------------------


def test_the_stream_refuses_missing_bad_and_non_admin_credentials(live_server_process, callers):
    port = live_server_process.port

    async def body():
        cases = [
            ("/api/system/events", {}, 401),
            ("/api/system/events", {"X-API-Key": "ssk_not-a-key"}, 401),
            ("/api/system/events", {"Authorization": "Bearer sst_not-a-token"}, 401),
            ("/api/system/events?token=nope", {}, 401),
            ("/api/system/events", {"Authorization": f"Bearer {callers.user}"}, 403),
            (f"/api/system/events?token={callers.user}", {}, 403),
        ]
        for path, headers, expected in cases:
            stream = await Stream.open(port, path, headers)
            assert stream.status == expected, (path, headers, stream.body)
            answer = stream.json()
            assert answer["success"] is False and answer["error"], answer
            if expected == 401:
                assert stream.headers["www-authenticate"].startswith("Bearer")
            await stream.close()

    run(body())
    status, answer, _ = live_server_process.request("POST", "/api/system/events", {}, {"X-API-Key": callers.service})
    assert status == 405
    assert json.loads(answer)["success"] is False


@pytest.mark.parametrize("how", ["query token", "service header", "admin bearer"])
def test_the_stream_accepts_a_service_key_or_admin_token_and_sends_status_at_once(live_server_process, callers, how):
    port = live_server_process.port
    path, headers = {
        "query token": (f"/api/system/events?token={callers.service}", {}),
        "service header": ("/api/system/events", {"X-API-Key": callers.service}),
        "admin bearer": ("/api/system/events", {"Authorization": f"Bearer {callers.admin}"}),
    }[how]

    async def body():
        began = time.monotonic()
        stream = await Stream.open(port, path, headers)
        assert stream.status == 200, stream.body
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in stream.headers["cache-control"]
        first = await stream.next(timeout=2)
        assert first.event == "status"
        assert first.at - began < 1.0
        assert first.id is not None and first.id.isdigit()
        data = first.data
        assert data["status"] == "running" and isinstance(data["uptime"], int)
        assert set(data) == {"status", "version", "uptime", "startTime", "python", "memory", "bot"}
        await stream.close()

    run(body())


def test_status_and_metric_come_every_interval_with_keep_alive_comments(live_server_process, callers):
    port = live_server_process.port

    async def body():
        stream = await Stream.open(port, f"/api/system/events?token={callers.service}")
        events: list[Event] = []
        watch_until = time.monotonic() + 2 * KEEPALIVE + 0.6
        while time.monotonic() < watch_until:
            events.append(await stream.next(timeout=3))
        await stream.close()
        return events

    events = run(body())
    statuses = [e for e in events if e.event == "status"]
    metrics = [e for e in events if e.event == "metric"]
    keepalives = [e for e in events if e.comment == "keep-alive"]
    assert len(statuses) >= 4 and len(metrics) >= 3, [e.event for e in events]
    assert len(keepalives) >= 2
    gaps = [b.at - a.at for a, b in zip(statuses[1:], statuses[2:])]
    assert all(0.5 * INTERVAL <= gap <= 1.8 * INTERVAL for gap in gaps), gaps
    metric = metrics[-1].data
    assert set(metric) == {"timestamp", "window", "rpm", "tpm", "errorRate", "p95Latency"}
    assert metric["window"] == 60 and isinstance(metric["rpm"], int) and isinstance(metric["tpm"], int)
    assert 0 <= metric["errorRate"] <= 1


# --- errors -----------------------------------------------------------------------------------


def test_an_error_logged_after_connecting_arrives_within_two_seconds(live_server_process, callers):
    server = live_server_process

    async def body():
        stream = await Stream.open(server.port, "/api/system/events", {"Authorization": f"Bearer {callers.admin}"})
        await stream.until(lambda e: e.event == "status")
        await ingest(server, callers.service, "/api/ingest/logs", error_log("disk full"))
        stored = time.monotonic()
        event = await stream.until(is_error, timeout=ERROR_DEADLINE + 1)
        latency = event.at - stored
        assert event.data["error"] == "disk full"
        assert event.data["stack"] == "at disk full"
        assert event.data["context"] == {"where": "test"}
        assert event.id == str(event.data["id"])

        # A failed LLM call is an error log too, with its channel and model as context.
        failed = {"model_name": "gpt-4o", "success": False, "error": "upstream 502", "channel_id": 7,
                  "channel_name": "azure-east"}
        await ingest(server, callers.service, "/api/ingest/llm-calls", failed)
        second = await stream.until(is_error, timeout=ERROR_DEADLINE + 1)
        assert second.data["error"] == "upstream 502"
        assert second.data["context"] == {"channel": "azure-east", "model": "gpt-4o"}
        assert int(second.id) > int(event.id)
        await stream.close()
        return latency

    latency = run(body())
    print(f"\nerror event delivered {latency * 1000:.0f} ms after its ingest was answered")
    assert latency < ERROR_DEADLINE


def test_a_client_resuming_from_its_last_event_id_gets_every_missed_error_once(live_server_process, callers):
    server = live_server_process
    key = callers.service

    async def collect_errors(stream: Stream, count: int) -> list[Event]:
        return [await stream.until(is_error, timeout=ERROR_DEADLINE + 1) for _ in range(count)]

    async def body():
        first = await Stream.open(server.port, f"/api/system/events?token={key}")
        await first.until(lambda e: e.event == "status")
        await ingest(server, key, "/api/ingest/logs", error_log("e1"))
        [e1] = await collect_errors(first, 1)
        await first.close()

        # Missed while disconnected: two batches, one of them of two errors.
        await ingest(server, key, "/api/ingest/logs", error_log("e2"))
        batch = [error_log("e3"), {"type": 5, "content": "fine"}, error_log("e4")]
        await ingest(server, key, "/api/ingest/logs", batch)

        again = await Stream.open(server.port, f"/api/system/events?token={key}", {"Last-Event-ID": e1.id})
        assert (await again.next()).event == "status"
        missed = await collect_errors(again, 3)
        assert [e.data["error"] for e in missed] == ["e2", "e3", "e4"]
        ids = [int(e.id) for e in missed]
        assert ids == sorted(ids) and ids[0] > int(e1.id)

        # Live again: the next error comes once, and nothing comes twice.
        await ingest(server, key, "/api/ingest/logs", error_log("e5"))
        [e5] = await collect_errors(again, 1)
        assert e5.data["error"] == "e5"
        with pytest.raises(TimeoutError):
            await again.until(is_error, timeout=2 * INTERVAL + 0.5)
        await again.close()

        # ?lastEventId= does the same for a client that cannot send the header.
        by_query = await Stream.open(server.port, f"/api/system/events?token={key}&lastEventId={missed[1].id}")
        assert [e.data["error"] for e in await collect_errors(by_query, 2)] == ["e4", "e5"]
        # The id of a status event is a position too: resuming from it sends only what came after.
        position = (await by_query.until(lambda e: e.event == "status")).id
        await by_query.close()
        await ingest(server, key, "/api/ingest/logs", error_log("e6"))
        resumed = await Stream.open(server.port, f"/api/system/events?token={key}", {"Last-Event-ID": position})
        [e6] = await collect_errors(resumed, 1)
        assert e6.data["error"] == "e6"
        await resumed.close()

    run(body())


def test_a_channel_whose_error_rate_changes_is_announced(live_server_process, callers):
    server = live_server_process

    async def body():
        stream = await Stream.open(server.port, f"/api/system/events?token={callers.service}")
        # Two ticks: the hub's channel baseline is set before the change.
        await stream.until(lambda e: e.event == "metric", timeout=3)
        await stream.until(lambda e: e.event == "metric", timeout=3)
        calls = [
            {"model_name": "gpt-4o", "channel_id": 42, "channel_name": "flaky", "success": ok} for ok in (True, False)
        ]
        await ingest(server, callers.service, "/api/ingest/llm-calls", calls)
        event = await stream.until(lambda e: e.event == "channel" and e.data["id"] == 42, timeout=3 * INTERVAL + 1)
        await stream.close()
        return event.data

    change = run(body())
    assert change["name"] == "flaky" and change["status"] == "enabled"
    assert change["requests"] == 2 and change["errors"] == 1 and change["errorRate"] == 0.5
    assert change["previous"] is None  # a channel first seen


# --- many streams, and shutdown -----------------------------------------------------------------


def _pg_connections(server: Server, application: str | None = None) -> int:
    """The server's connections to its database (those of APPLICATION only, if given)."""
    import psycopg

    url = server.env["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    params = [name]
    if application is not None:
        sql += " AND application_name = %s"
        params.append(application)
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_fifty_streams_at_once_all_get_errors_and_leave_nothing_behind(live_server_process, callers):
    server = live_server_process
    process = psutil.Process(server.process.pid)
    path = f"/api/system/events?token={callers.service}"
    time.sleep(2.5)  # earlier streams' hub has wound down
    baseline_connections = _pg_connections(server) if ON_POSTGRES else 0

    async def body():
        one = await Stream.open(server.port, path)
        await one.next()
        threads_one, rss_one = process.num_threads(), process.memory_info().rss

        streams = list(await asyncio.gather(*(Stream.open(server.port, path) for _ in range(50))))
        assert all(s.status == 200 for s in streams)
        firsts = await asyncio.gather(*(s.next(timeout=10) for s in streams))
        assert all(e.event == "status" for e in firsts)
        await asyncio.sleep(0.5)
        threads_all, rss_all = process.num_threads(), process.memory_info().rss
        connections_all = _pg_connections(server) if ON_POSTGRES else 0
        listeners_all = _pg_connections(server, "statsite-events") if ON_POSTGRES else 1

        await ingest(server, callers.service, "/api/ingest/logs", error_log("to everyone"))
        stored = time.monotonic()
        got = await asyncio.gather(*(s.until(is_error, timeout=ERROR_DEADLINE + 2) for s in streams))
        slowest = max(e.at for e in got) - stored
        assert {e.data["error"] for e in got} == {"to everyone"}
        assert len({e.id for e in got}) == 1

        for stream in [one, *streams]:
            await stream.close()
        return threads_one, threads_all, rss_one, rss_all, connections_all, listeners_all, slowest

    threads_one, threads_all, rss_one, rss_all, connections_all, listeners_all, slowest = run(body(), timeout=45)
    per_stream_kib = (rss_all - rss_one) / 50 / 1024
    print(
        f"\n50 streams: {threads_one} -> {threads_all} threads, {per_stream_kib:.0f} KiB each, "
        f"slowest error delivery {slowest * 1000:.0f} ms"
        + (f", {baseline_connections} -> {connections_all} PostgreSQL connections" if ON_POSTGRES else "")
    )
    # An idle stream holds no thread (a few pool threads may start for the connects' queries,
    # and the threads the 50 connects ran on are kept for later requests, up to a limit).
    assert threads_all - threads_one <= 8 + KEPT_REQUEST_THREADS
    assert slowest < ERROR_DEADLINE + 1
    if ON_POSTGRES:
        # One LISTEN connection for the process and the hub's own, whatever the number of streams.
        assert listeners_all == 1
        # Streams hold none: what else is open belongs to the process's connection pool,
        # which answered the 50 connects' credential checks (at most its max size, kept
        # for reuse), never one per stream.
        pool_size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
        assert connections_all <= baseline_connections + pool_size
        # The hub winds down STOP_GRACE_SECONDS after the last stream, closing both of its own.
        assert _wait_for(lambda: _pg_connections(server, "statsite-events") == 0, timeout=8)
        assert _wait_for(lambda: _pg_connections(server) <= baseline_connections + pool_size, timeout=8), (
            f"{_pg_connections(server)} connections left; {baseline_connections} before"
        )
    # Still answering, and every stream's resources are gone.
    status, body_text, _ = server.request("GET", "/healthz")
    assert (status, body_text) == (200, b"ok")
    # The event loop's worker pool (bounded: min(32, CPUs + 4) threads) stays for reuse, as
    # do the kept request threads (as many at most).
    pool = min(32, (psutil.cpu_count() or 1) + 4)
    kept = threads_one + pool + KEPT_REQUEST_THREADS
    assert _wait_for(lambda: process.num_threads() <= min(threads_all, kept), timeout=8), (
        process.num_threads()
    )


def test_shutting_the_server_down_ends_open_streams_promptly(server_database, server_dir, server_env):
    with run_server(server_database, server_dir / "second", server_env) as server:
        key = server.manage("create_api_key", "shutdown").strip().splitlines()[-1]

        async def body():
            streams = [await Stream.open(server.port, f"/api/system/events?token={key}") for _ in range(3)]
            for stream in streams:
                assert (await stream.next()).event == "status"
            began = time.monotonic()
            server.process.terminate()
            for stream in streams:
                while await stream.next(timeout=5) is not None:
                    pass
                assert stream.finished  # the chunked body was properly ended, not cut
            return time.monotonic() - began

        took = run(body())
        # uvicorn re-raises the SIGTERM it handled once it has shut down.
        assert server.process.wait(timeout=5) in (0, -signal.SIGTERM)
        assert took < 3, took
