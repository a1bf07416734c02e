"""The event stream's machinery, in process: SSE framing, the hub's reads (scan,
replay), the ordering of error commits on PostgreSQL, the hub's fan-out, and one
stream driven through the ASGI application. The stream as clients meet it on the
real server is in tests/e2e/test_events.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.db import connection, connections, transaction

from logs.models import Log
from logs.services import record_logs
from statsite.ingest import store_batch
from statsite.system import events, notify
from statsite.system.views import parse_event_id
from tests.conftest import create_service_key

ON_POSTGRES = connection.vendor == "postgresql"
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="LISTEN/NOTIFY and advisory locks are PostgreSQL's")


def store(*records: dict) -> list[int]:
    """Store log records as ingest does, returning the new rows' ids."""
    before = Log.objects.order_by("-id").values_list("id", flat=True).first() or 0
    store_batch(record_logs, [{"created_at": _now(), **r} for r in records])
    return list(Log.objects.filter(id__gt=before).order_by("id").values_list("id", flat=True))


def _now():
    from django.utils import timezone

    return timezone.now()


def error(text: str) -> dict:
    return {"type": 4, "content": text, "other": {"stack": "s", "context": {"k": 1}}}


# --- framing and parameters ---------------------------------------------------------------------


def test_an_event_is_one_line_of_compact_json_whatever_its_text():
    chunk = events.frame("error", {"error": "line one\nline two", "n": 1}, event_id=5)
    assert chunk == b'id: 5\nevent: error\ndata: {"error":"line one\\nline two","n":1}\n\n'
    assert events.frame("status", {"ü": True}) == 'event: status\ndata: {"ü":true}\n\n'.encode()


@pytest.mark.parametrize(
    "raw, expected",
    [(None, None), ("", None), ("12", 12), (" 7 ", 7), ("0", 0), ("-1", None), ("1e3", None), ("abc", None),
     ("٣", None), ("9" * 19, None)],
)
def test_a_last_event_id_is_a_whole_number_or_ignored(raw, expected):
    assert parse_event_id(raw) == expected


# --- what the hub reads -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_scan_finds_the_errors_stored_since_a_position_and_moves_it_on():
    start = events.safe_position()
    store(error("a"), {"type": 5, "content": "ok"}, error("b"))
    # Error rows go in last, in their batch order, so their ids are the two highest.
    first, second = Log.objects.filter(type=4).order_by("id").values_list("id", flat=True)
    assert Log.objects.get(id=first).content == "a" and Log.objects.get(id=second).content == "b"
    top, chunks = events.scan(start)
    assert top == second
    assert [error_id for error_id, _ in chunks] == [first, second]
    assert chunks[0][1].startswith(f"id: {first}\nevent: error\ndata: ".encode())
    assert b'"error":"a"' in chunks[0][1] and b'"stack":"s"' in chunks[0][1]
    assert events.scan(top) == (top, [])


@pytest.mark.django_db
def test_a_scan_reads_a_burst_larger_than_a_page(monkeypatch):
    monkeypatch.setattr(events, "PAGE", 3)
    start = events.safe_position()
    ids = store(*(error(f"e{n}") for n in range(8)))
    top, chunks = events.scan(start)
    assert [error_id for error_id, _ in chunks] == ids and top == ids[-1]


@pytest.mark.django_db
def test_a_replay_sends_the_newest_missed_errors_oldest_first():
    ids = store(*(error(f"e{n}") for n in range(5)))
    after, chunks = events.replay(ids[1])
    assert after == ids[1]
    assert [error_id for error_id, _ in chunks] == ids[2:]
    # A reconnecting client far behind gets the newest ones.
    assert [error_id for error_id, _ in events.replay(0, limit=2)[1]] == ids[3:]


@pytest.mark.django_db
def test_a_replay_from_an_id_this_database_never_gave_starts_from_now():
    ids = store(error("old"))
    after, chunks = events.replay(10**15)
    assert (after, chunks) == (ids[-1], [])


# --- the order of error commits (PostgreSQL) ----------------------------------------------------------


def _in_thread(target, *args) -> threading.Thread:
    def run():
        try:
            target(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_error_batches_commit_one_after_another_and_positions_wait_for_them():
    """Without this, a batch holding a smaller id could commit after a larger one
    had been streamed, and clients resuming after the larger would never see it."""
    holding, release = threading.Event(), threading.Event()
    done: dict[str, float] = {}

    def first_batch():
        with transaction.atomic():
            record_logs([{"type": 4, "content": "first", "created_at": _now()}])
            holding.set()
            release.wait(10)
        done["first"] = time.monotonic()

    def second_batch():
        store_batch(record_logs, [{"type": 4, "content": "second", "created_at": _now()}])
        done["second"] = time.monotonic()

    def quiet_batch():
        store_batch(record_logs, [{"type": 5, "content": "no errors here", "created_at": _now()}])
        done["quiet"] = time.monotonic()

    def position():
        done["position"] = events.safe_position()

    threads = [_in_thread(first_batch)]
    assert holding.wait(10)
    threads += [_in_thread(second_batch), _in_thread(position), _in_thread(quiet_batch)]
    time.sleep(0.5)
    # A batch without errors does not wait; a batch with errors, and a position read, do.
    assert "quiet" in done
    assert "second" not in done and "position" not in done
    release.set()
    for thread in threads:
        thread.join(10)
    assert done["second"] >= done["first"]
    first = Log.objects.get(content="first").pk
    assert done["position"] >= first
    # Committed in id order: the second batch's error comes after the first's.
    assert Log.objects.get(content="second").pk > first


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_batch_counts_its_rows_before_it_waits_to_insert_its_errors():
    """The rollups are counted (the batch's error rows from their values) before the
    commit-order lock is asked for, so that the lock is held for the error rows' insert
    and the commit only, and batches aggregate side by side."""
    import psycopg
    from psycopg.errors import LockNotAvailable

    from logs.services import record_llm_calls
    from usage import rollups

    call = {"model_name": "gpt-4o", "prompt_tokens": 5, "created_at": _now()}
    store_batch(record_llm_calls, [{**call, "request_id": "before"}])
    table = rollups.spec("llm").table._meta.db_table
    with psycopg.connect(autocommit=True, **events.listener_params()) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [notify.ERRORS_LOCK])
        batch = [{**call, "request_id": "ok"}, {**call, "request_id": "failed", "success": False}]
        thread = _in_thread(store_batch, record_llm_calls, batch)
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        deadline = time.monotonic() + 10
        while holder.execute(waiting).fetchone()[0] == 0:
            assert time.monotonic() < deadline, "the batch never asked for the lock"
            time.sleep(0.02)
        with pytest.raises(LockNotAvailable):
            # The waiting batch has counted itself already: it holds the all-time total.
            holder.execute(f"SELECT 1 FROM {table} WHERE grain = 'total:all' FOR UPDATE NOWAIT")
        assert not Log.objects.filter(request_id="failed").exists()
        holder.execute("SELECT pg_advisory_unlock(%s)", [notify.ERRORS_LOCK])
        thread.join(10)
    assert not thread.is_alive()
    whole = rollups.spec("llm").table.objects.get(grain="total:all")
    assert (whole.requests, whole.errors) == (3, 1)
    assert Log.objects.get(request_id="failed").pk > Log.objects.get(request_id="ok").pk


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_committed_error_batch_notifies_its_highest_error_id_and_a_rolled_back_one_does_not():
    import psycopg

    with psycopg.connect(autocommit=True, **events.listener_params()) as listener:
        listener.execute(f"LISTEN {notify.CHANNEL}")
        ids = store(error("x"), {"type": 5}, error("y"))
        try:
            with transaction.atomic():
                record_logs([{"type": 4, "content": "undone", "created_at": _now()}])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        store({"type": 5, "content": "no error, no notice"})
        received = [n.payload for n in listener.notifies(timeout=1.5)]
    assert received == [str(ids[-1])]


# --- the hub ----------------------------------------------------------------------------------------------


def test_a_stream_that_falls_too_far_behind_is_dropped(monkeypatch):
    monkeypatch.setattr(events, "QUEUE_MAX", 3)

    async def body():
        hub = events.EventHub(asyncio.get_running_loop())
        slow, quick = hub.subscribe(), hub.subscribe()
        for n in range(3):
            hub._broadcast(("metric", None, b"m"))
            await quick.queue.get()
        assert not slow.dropped
        hub._broadcast(("metric", None, b"m"))
        assert slow.dropped and slow not in hub.subscribers
        assert not quick.dropped and quick in hub.subscribers

    asyncio.run(body())


def test_closing_the_hub_ends_its_streams_and_refuses_new_ones():
    async def body():
        hub = events.EventHub(asyncio.get_running_loop())
        subscriber = hub.subscribe()
        hub.close_all()
        assert (await subscriber.queue.get())[0] == "close"
        with pytest.raises(events.HubUnavailable):
            await hub.ready()

    asyncio.run(body())


# --- one stream through the ASGI application ------------------------------------------------------------


class AsgiClient:
    """Drives the ASGI application as a server would, for one request."""

    def __init__(self, path: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
            "headers": [(b"host", b"testserver")]
            + [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
        }
        self.sent: asyncio.Queue = asyncio.Queue()
        self.gone = asyncio.Event()
        self.requested = False
        self.body = b""

    async def receive(self) -> dict:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        await self.sent.put(message)

    def start(self, application) -> asyncio.Task:
        return asyncio.ensure_future(application(self.scope, self.receive, self.send))

    async def response_start(self) -> dict:
        return await asyncio.wait_for(self.sent.get(), 10)

    async def read_until(self, marker: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.body:
            message = await asyncio.wait_for(self.sent.get(), max(0.01, deadline - time.monotonic()))
            self.body += message.get("body", b"")
        return self.body


@pytest.mark.django_db(transaction=True)
def test_a_stream_in_process_gets_status_then_a_new_error_and_cleans_up_on_disconnect(monkeypatch):
    from statsite.asgi import application

    monkeypatch.setattr(events, "STOP_GRACE_SECONDS", 0.2)
    key = create_service_key("in-process")

    async def body():
        client = AsgiClient("/api/system/events", f"token={key}")
        task = client.start(application)
        start = await client.response_start()
        assert start["status"] == 200
        assert dict(start["headers"])[b"Content-Type"] == b"text/event-stream"
        await client.read_until(b"event: status", timeout=5)
        hub = events.get_hub()
        assert len(hub.subscribers) == 1

        [error_id] = await asyncio.to_thread(lambda: _closing(store, error("in process")))
        text = await client.read_until(f"id: {error_id}\nevent: error".encode(), timeout=3)
        assert b'"error":"in process"' in text

        client.gone.set()
        await asyncio.wait_for(task, 5)
        assert hub.subscribers == set()
        # With no stream left, the hub stops and lets go of its connections.
        deadline = time.monotonic() + 5
        while hub._task is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert hub._task is None and not hub.listening

    asyncio.run(asyncio.wait_for(body(), 30))


def _closing(fn, *args):
    try:
        return fn(*args)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_stream_in_process_refuses_a_user_and_answers_json(user_a_headers):
    from statsite.asgi import application

    async def body():
        client = AsgiClient("/api/system/events", headers={"Authorization": user_a_headers["HTTP_AUTHORIZATION"]})
        task = client.start(application)
        start = await client.response_start()
        text = await client.read_until(b"}", timeout=5)
        await asyncio.wait_for(task, 5)
        return start["status"], text

    status, text = asyncio.run(body())
    assert status == 403
    assert text.startswith(b'{"success": false, "error": ')


async def _first_answer(client: AsgiClient, marker: bytes) -> tuple[int, bytes]:
    from statsite.asgi import application

    task = client.start(application)
    start = await client.response_start()
    text = await client.read_until(marker, timeout=5)
    client.gone.set()
    await asyncio.wait_for(task, 5)
    return start["status"], text


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_administrator_may_open_the_stream_from_the_browser(client, admin, user_a):
    client.force_login(admin)
    staff = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    status, text = asyncio.run(_first_answer(AsgiClient("/api/system/events", headers=staff), b"event: status"))
    assert status == 200

    client.force_login(user_a)
    other = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    status, text = asyncio.run(_first_answer(AsgiClient("/api/system/events", headers=other), b"}"))
    assert status == 403


@pytest.mark.django_db(transaction=True)
def test_a_database_down_while_checking_credentials_is_a_json_503(monkeypatch):
    from django.db import OperationalError

    from statsite.models import ServiceKey

    def unreachable(cls, raw):
        raise OperationalError("connection refused")

    monkeypatch.setattr(ServiceKey, "find", classmethod(unreachable))
    status, text = asyncio.run(_first_answer(AsgiClient("/api/system/events", "token=ssk_x"), b"}"))
    assert status == 503
    assert text.startswith(b'{"success": false, "error": ')


def test_a_replay_that_meets_a_passing_database_error_is_tried_again(monkeypatch):
    # On SQLite a reader can meet a writer's table lock; the stream should not end for it.
    from django.db import OperationalError

    calls = []

    def flaky(after):
        calls.append(after)
        if len(calls) < events.REPLAY_ATTEMPTS:
            raise OperationalError("database table is locked: logs_log")
        return after, [(after + 1, b"chunk")]

    monkeypatch.setattr(events, "replay", flaky)
    monkeypatch.setattr(events, "REPLAY_RETRY_SECONDS", 0.01)
    assert asyncio.run(events.replay_in_worker(7)) == (7, [(8, b"chunk")])
    assert calls == [7] * events.REPLAY_ATTEMPTS


def test_a_replay_that_keeps_failing_ends_the_stream_with_the_error(monkeypatch):
    from django.db import OperationalError

    def broken(after):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(events, "replay", broken)
    monkeypatch.setattr(events, "REPLAY_RETRY_SECONDS", 0.01)
    with pytest.raises(OperationalError):
        asyncio.run(events.replay_in_worker(7))


def test_a_stream_cancelled_as_an_event_reaches_it_still_ends_and_unsubscribes(monkeypatch):
    # The server cancels a stream when its client goes. Should an event land in the
    # stream's queue in the same turn of the loop, the cancellation must still win:
    # a stream that swallowed it would live on unseen (the server drops what it sends
    # to a closed connection), and keep the hub and its connections open for ever.
    async def no_replay(after):
        return after, []

    monkeypatch.setattr(events, "replay_in_worker", no_replay)

    async def body():
        hub = events.EventHub(asyncio.get_running_loop())

        async def ready(timeout=events.READY_TIMEOUT):
            return None

        async def status_chunk():
            return b"status"

        monkeypatch.setattr(hub, "ready", ready)
        monkeypatch.setattr(hub, "status_chunk", status_chunk)
        received = []

        async def client():
            async for chunk in events.stream(hub, 0):
                received.append(chunk)

        task = asyncio.ensure_future(client())
        for _ in range(200):
            await asyncio.sleep(0.005)
            if received and all(s.queue._getters for s in hub.subscribers):
                break
        assert len(hub.subscribers) == 1 and received  # waiting on its queue, status sent

        hub._broadcast(("metric", None, b"event: metric\n\n"))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert task in done and task.cancelled()
        assert not hub.subscribers

    asyncio.run(body())
