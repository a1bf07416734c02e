"""The ASGI application: the middleware runs as one synchronous chain, entered once per
request, rather than crossing between the request's thread and the event loop at
every middleware (the event stream, its one async view, is tested end to end in
tests/e2e)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from asgiref.sync import SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler

from statsite.asgi import SyncChainASGIHandler


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
    app = handler_class()

    async def request() -> int:
        communicator = ApplicationCommunicator(app, http_scope(path))
        await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await communicator.receive_output(10)
        while (await communicator.receive_output(10)).get("more_body"):
            pass
        await communicator.wait(10)
        return start["status"]

    status = asyncio.run(request())
    return status, len(calls)


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
    [response] = sent
    return statuses[0], response


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
