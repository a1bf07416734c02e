"""The threads the ASGI application (statsite.asgi) runs requests' synchronous work
on, kept from one request to the next instead of one started and joined per request."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar

# Idle request threads a server process keeps: as many as a thread pool of the
# standard library starts by default (cores + 4, at most 32). More requests at once
# still each get a thread; those beyond this number are ended once their request is.
KEPT_REQUEST_THREADS = min(32, (os.cpu_count() or 1) + 4)


class RequestThreads:
    """The threads requests run their synchronous work on, kept from one request to
    the next: each a single-thread executor, lent to one request at a time."""

    def __init__(self, keep: int = KEPT_REQUEST_THREADS) -> None:
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="statsite-request")

    def put(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        return len(self._idle)


class RequestThread(Executor):
    """One request's thread-sensitive executor: a kept thread, borrowed at the
    request's first synchronous call and handed back when the request ends, or
    earlier through `release()` (an event stream, idle for hours once begun); a call
    after that borrows one again. The request's calls run one at a time, in order,
    on the thread it holds."""

    def __init__(self, threads: RequestThreads) -> None:
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._executor is None:
            self._executor = self._threads.take()
        return self._executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            self._threads.put(executor)


# The request being served in this context (None outside the ASGI application).
current_request_thread: ContextVar[RequestThread | None] = ContextVar("current_request_thread", default=None)
