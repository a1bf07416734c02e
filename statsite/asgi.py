"""ASGI entry point: the production server (uvicorn) serves this, SSE included."""

import os

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

from statsite.request_threads import RequestThread, RequestThreads, current_request_thread

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statsite.settings")


class SyncChainASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware run as one synchronous chain, entered
    once per request on the request's own thread.

    Django's own handler runs the chain in async mode wherever it can, and the chain
    holds a sync-only middleware (WhiteNoise) in front of async-capable ones: every
    request then crossed between its thread and the event loop at each middleware's
    request and response step, a dozen crossings, about 3 ms of a 6 ms request on a
    2-core machine. Every view but the event stream is synchronous, and that one is
    run from the chain through async_to_sync, as Django runs an async view under WSGI;
    its stream is still sent by the event loop.

    It also lets go of each response once it is sent. The server reports the client
    gone (`http.disconnect`) once a response is complete, and Django's disconnect
    listener answers that by raising: the exception, kept by its task, holds through
    its traceback the frame of `handle`, which holds that task and the response.
    Every answer then lived until the garbage collector's next full pass (a worker
    reached 930 MB on 120 month-long answers, and the pass took 310 ms). The
    listener here returns instead; `handle` (Django 5.2) treats both alike,
    cancelling the response's task when the listener finishes first.

    And it keeps the threads requests run on. Django gives each request a
    thread-sensitive context of its own, for which asgiref starts a thread, and
    a second one to join it once the request is done: two threads started and ended
    for every request, 0.4-0.9 ms of it on 2 cores. Here each request borrows a kept
    thread for its context instead (asgiref's `ThreadSensitiveContext(executor=…)`,
    which leaves the executor to its owner), so its synchronous work still runs on
    one thread of its own, and the thread serves the next request once it is done.
    Django's close of the database connection at the end of each request still runs
    on that thread: on PostgreSQL it goes back to the pool, so a kept thread holds
    none between requests; on SQLite the thread keeps its own (settings)."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads()

    async def __call__(self, scope, receive, send) -> None:
        request_thread = RequestThread(self.request_threads)
        token = current_request_thread.set(request_thread)
        try:
            # Django's own context inside this one then takes this one's executor.
            async with ThreadSensitiveContext(executor=request_thread):
                await super().__call__(scope, receive, send)
        finally:
            current_request_thread.reset(token)
            request_thread.release()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def listen_for_disconnect(self, receive) -> None:
        try:
            await super().listen_for_disconnect(receive)
        except RequestAborted:
            return


def get_application() -> SyncChainASGIHandler:
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()


application = get_application()
