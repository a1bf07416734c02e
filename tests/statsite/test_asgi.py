"""The ASGI application: the middleware runs as one synchronous chain, entered once per
request, rather than crossing between the request's thread and the event loop at
every middleware (the event stream, its one async view, is tested end to end in
tests/e2e); each response is freed once sent; and requests run on threads kept from one
request to the next."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import connections

from statsite.asgi import SyncChainASGIHandler
from statsite.request_threads import RequestThread, RequestThreads, current_request_thread
from statsite.system.events import release_request_thread

ROOT = Path(__file__).resolve().parents[2]


def http_scope(path: str) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }


def crossings(handler_class: type[ASGIHandler], monkeypatch, path: str = "/no-such-page/") -> tuple[int, int]:
    """(the response status, how many times the request went from the event loop to a thread)."""
    calls: list[object] = []
    original = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(self.func)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    status = asyncio.run(serve(handler_class(), path))
    return status, len(calls)


async def serve(application, path: str) -> int:
    """Serve one GET of PATH through APPLICATION: the response status."""
    communicator = ApplicationCommunicator(application, http_scope(path))
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(10)
    while (await communicator.receive_output(10)).get("more_body"):
        pass
    await communicator.wait(10)
    return start["status"]


def test_a_request_enters_the_middleware_chain_once(monkeypatch):
    status, ours = crossings(SyncChainASGIHandler, monkeypatch)
    assert status == 404
    # The chain, and the request_started / request_finished signal receivers.
    assert ours <= 6, ours


def test_the_stock_handler_would_cross_at_every_middleware(monkeypatch):
    # What the application replaces: the same request crosses three times as often.
    status, stock = crossings(ASGIHandler, monkeypatch)
    ours = crossings(SyncChainASGIHandler, monkeypatch)[1]
    assert status == 404
    assert stock >= 3 * ours, (stock, ours)


def test_the_application_is_the_sync_chain_handler():
    from statsite.asgi import application

    assert isinstance(application, SyncChainASGIHandler)


# --- letting go of the response ----------------------------------------------------------------


def served_response(application, monkeypatch, path: str = "/healthz") -> tuple[int, weakref.ref]:
    """Serve one request as uvicorn does, which reports the client gone once the
    response is complete: its status, and a weak reference to the response sent."""
    sent: list[weakref.ref] = []
    send_response = ASGIHandler.send_response

    async def recorded(self, response, send):
        sent.append(weakref.ref(response))
        await send_response(self, response, send)

    monkeypatch.setattr(ASGIHandler, "send_response", recorded)
    statuses: list[int] = []

    async def serve() -> None:
        complete = asyncio.Event()
        requested = False

        async def receive() -> dict:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif not message.get("more_body"):
                complete.set()

        await asyncio.wait_for(application(http_scope(path), receive, send), 10)

    asyncio.run(serve())
    settle(application)
    [response] = sent
    return statuses[0], response


def settle(application) -> None:
    """Wait until the application's kept threads have finished their last calls. A
    thread hands over what a call returned before it lets go of the call (the
    response's close() holds the response), so for a moment after the request it
    still refers to the response; a call queued after it runs once that is over."""
    if hasattr(application, "request_threads"):
        on_kept_threads(application, lambda: None)


def on_kept_threads(application, fn) -> list:
    """What FN returns on each of the application's idle kept threads (queued after
    whatever each was last given)."""
    threads = application.request_threads
    executors = [threads.take() for _ in range(threads.idle)]
    try:
        return [executor.submit(fn).result(10) for executor in executors]
    finally:
        for executor in executors:
            threads.put(executor)


@pytest.fixture
def application(db, monkeypatch):
    """The handler, past its first request (which builds what lives as long as it)."""
    handler = SyncChainASGIHandler()
    with monkeypatch.context() as first:
        assert served_response(handler, first)[0] == 200
    return handler


def test_a_sent_response_is_freed_without_the_collector(application, without_the_collector, monkeypatch):
    status, response = served_response(application, monkeypatch)
    assert status == 200
    assert response() is None


def test_djangos_listener_would_leave_it_to_the_collector(application, without_the_collector, monkeypatch):
    # What the handler's listener prevents: the disconnect raised after the response
    # keeps the response in a cycle until a full collection.
    monkeypatch.setattr(SyncChainASGIHandler, "listen_for_disconnect", ASGIHandler.listen_for_disconnect)
    status, response = served_response(application, monkeypatch)
    assert status == 200
    assert response() is not None
    gc.collect()
    assert response() is None


# --- the threads requests run on ---------------------------------------------------------------


def threads_serving(application, monkeypatch, requests: int = 2, *, at_once: bool = False) -> list[threading.Thread]:
    """The thread each of REQUESTS requests to /healthz began its synchronous work on
    (where Django's request_started receivers run), served one after another, or all
    at once (each then waits in its receiver until all have arrived)."""
    seen: list[threading.Thread] = []
    arrived = threading.Barrier(requests if at_once else 1, timeout=10)

    def receiver(**kwargs) -> None:
        seen.append(threading.current_thread())
        arrived.wait()

    request_started.connect(receiver, dispatch_uid="threads_serving")
    try:
        async def serve_all() -> list[int]:
            calls = [serve(application, "/healthz") for _ in range(requests)]
            if at_once:
                return await asyncio.gather(*calls)
            return [await call for call in calls]

        statuses = asyncio.run(serve_all())
    finally:
        request_started.disconnect(dispatch_uid="threads_serving")
    assert statuses == [200] * requests
    return seen


def test_requests_one_after_another_run_on_one_kept_thread(application, monkeypatch):
    first, second = threads_serving(application, monkeypatch)
    assert first is second
    assert first.name.startswith("statsite-request")
    assert first.is_alive()


def test_djangos_handler_would_start_a_thread_for_each_request(db, monkeypatch):
    # What the kept threads replace: a thread started, and joined, for every request.
    first, second = threads_serving(ASGIHandler(), monkeypatch)
    assert first is not second


def test_requests_at_once_run_on_threads_of_their_own(application, monkeypatch):
    # Each waits in its receiver until the other has arrived: on one shared thread
    # the second could never arrive, and the barrier would break.
    first, second = threads_serving(application, monkeypatch, at_once=True)
    assert first is not second
    assert application.request_threads.idle == 2


@pytest.mark.skipif(
    connections["default"].vendor == "sqlite",
    reason="on SQLite a kept thread keeps its connection (the test below)",
)
def test_a_kept_thread_holds_no_postgresql_connection_between_requests(application, monkeypatch):
    [thread] = threads_serving(application, monkeypatch, requests=1)
    [(ran_on, open_connection)] = on_kept_threads(
        application, lambda: (threading.current_thread(), connections["default"].connection)
    )
    assert ran_on is thread
    assert open_connection is None


def test_threads_beyond_those_kept_are_ended():
    threads = RequestThreads(keep=1)
    first, second = threads.take(), threads.take()
    ran_on = second.submit(threading.current_thread).result(10)
    threads.put(first)
    threads.put(second)
    assert threads.idle == 1
    ran_on.join(10)
    assert not ran_on.is_alive()
    assert threads.take() is first
    first.shutdown()


def test_a_request_thread_borrows_a_kept_thread_until_released():
    threads = RequestThreads()
    request_thread = RequestThread(threads)
    assert threads.idle == 0
    first = request_thread.submit(threading.current_thread).result(10)
    assert request_thread.submit(threading.current_thread).result(10) is first
    request_thread.release()
    assert threads.idle == 1
    # A call after the release borrows again: the same thread, kept meanwhile.
    assert request_thread.submit(threading.current_thread).result(10) is first
    assert threads.idle == 0
    request_thread.release()
    threads.take().shutdown()


def test_an_event_stream_gives_its_thread_back_once_begun():
    # The stream's first step: its request's thread is idle from then on, for hours.
    threads = RequestThreads()
    request_thread = RequestThread(threads)
    request_thread.submit(threading.current_thread).result(10)
    token = current_request_thread.set(request_thread)
    try:
        release_request_thread()
    finally:
        current_request_thread.reset(token)
    assert threads.idle == 1
    threads.take().shutdown()


KEPT_CONNECTION_SCRIPT = """
import asyncio
from django.db import connections
from statsite.asgi import application
from tests.statsite.test_asgi import on_kept_threads, serve

seen = []
for _ in range(2):
    print(asyncio.run(serve(application, "/healthz")))
    seen += on_kept_threads(application, lambda: connections["default"].connection)
print("kept" if seen[0] is not None and seen[0] is seen[1] else f"not kept: {seen}")
"""


def test_on_sqlite_a_kept_thread_keeps_its_connection_for_its_next_request(tmp_path):
    # A file database, as the server uses (the tests' in-memory one is never closed): a
    # new connection would compile the rollups' upserts again.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'statsite.sqlite3'}",
        "ALLOWED_HOSTS": "testserver", "SECRET_KEY": "x" * 50,
    }
    result = subprocess.run(
        [sys.executable, "-c", KEPT_CONNECTION_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200", "kept"], result.stdout
