"""The ASGI application: the middleware runs as one synchronous chain, entered once per
request, rather than crossing between the request's thread and the event loop at
every middleware (the event stream, its one async view, is tested end to end in
tests/e2e)."""

from __future__ import annotations

import asyncio

from asgiref.sync import SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler

from statsite.asgi import SyncChainASGIHandler


def crossings(handler_class: type[ASGIHandler], monkeypatch, path: str = "/no-such-page/") -> tuple[int, int]:
    """(the response status, how many times the request went from the event loop to a thread)."""
    calls: list[object] = []
    original = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(self.func)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    app = handler_class()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }

    async def request() -> int:
        communicator = ApplicationCommunicator(app, scope)
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
