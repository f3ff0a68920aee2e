"""Slow work and how it is run: one ``Cancelled``, the job context a job sees, and the executor Protocol.

Slow work is a plain synchronous function taking ``progress(done, total)`` and ``cancel() -> bool``
callbacks (architecture.md). The application runs such functions as *jobs*, ``fn(ctx) -> result``, on an
:class:`Executor`: the desktop app's is the Qt thread pool (``viewer.ui.workers.Background``: results
come back on the main thread by queued signals); commands and tests use :class:`SyncExecutor`, which runs
the job at once in the calling thread and calls the same callbacks.

Requests belong to a *channel* ("scan", "load:0"); a new request on a channel supersedes the previous
one, whose late results are dropped (architecture.md: each request carries an increasing id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """The work was cancelled (by the user, or superseded by a newer request): nothing is returned.

    The one cancellation every layer raises: ``viewer.io.errors.LoadCancelled`` and the AI runner's
    cancellation are this exception (subclass and alias), so an executor catches one type.
    """


class JobContext(Protocol):
    """What a job may call from whatever thread runs it."""

    @property
    def request_id(self) -> int: ...

    def progress(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units."""

    def cancelled(self) -> bool:
        """True once the request was cancelled or superseded (cooperative: the job polls it)."""

    def check(self) -> None:
        """Raise :class:`Cancelled` when :meth:`cancelled`."""

    def partial(self, payload: object) -> None:
        """Deliver an intermediate result (a first slice, a series found)."""


Job = Callable[[JobContext], object]


class Executor(Protocol):
    """Runs jobs; one current request per channel; callbacks on the caller's (main) thread."""

    def submit(self, channel: str, fn: Job, *, on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_done: Callable[[], None] | None = None, replace: bool = True) -> int:
        """Run ``fn(ctx)``; return the request id."""
        ...

    def cancel(self, channel: str) -> None: ...

    def cancel_all(self) -> None: ...

    def wait_idle(self, timeout_ms: int = -1) -> bool: ...


class CancelFlag:
    """The cancellation part of a job context, safe from any thread: set once, polled by the job."""

    def __init__(self) -> None:
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        """True once the request was cancelled or superseded (cooperative: the job checks it)."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the request was cancelled."""
        if self._cancel.is_set():
            raise Cancelled()


class SyncJobContext(CancelFlag):
    """A :class:`JobContext` whose calls go straight to the callbacks (same thread)."""

    def __init__(self, request_id: int, on_progress: Callable[[int, int], None] | None = None,
                 on_partial: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self._id = request_id
        self._on_progress = on_progress
        self._on_partial = on_partial

    @property
    def request_id(self) -> int:
        return self._id

    def progress(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(int(done), int(total))

    def partial(self, payload: object) -> None:
        if self._on_partial is not None and not self._cancel.is_set():
            self._on_partial(payload)


class SyncExecutor:
    """Runs each job at once in the calling thread (commands, tests, headless scripts).

    Errors are delivered as text to ``on_error`` like the pool does (``raise_errors=True`` re-raises them
    instead, for tests that want the traceback).
    """

    def __init__(self, *, raise_errors: bool = False) -> None:
        self._next_id = 0
        self.raise_errors = raise_errors

    def submit(self, channel: str, fn: Job, *, on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_done: Callable[[], None] | None = None, replace: bool = True) -> int:
        self._next_id += 1
        ctx = SyncJobContext(self._next_id, on_progress, on_partial)
        try:
            result = fn(ctx)
        except Cancelled:
            return self._next_id
        except Exception as exc:  # noqa: BLE001 - delivered as text, as the thread pool does
            if self.raise_errors or on_error is None:
                raise
            on_error(str(exc) or type(exc).__name__)
        else:
            if on_result is not None:
                on_result(result)
        if on_done is not None:
            on_done()
        return self._next_id

    def cancel(self, channel: str) -> None:
        """Nothing runs in the background: nothing to cancel."""

    def cancel_all(self) -> None:
        """Nothing runs in the background: nothing to cancel."""

    def wait_idle(self, timeout_ms: int = -1) -> bool:
        return True
