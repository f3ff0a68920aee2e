"""A tiny observer mechanism so that state stays free of Qt.

Widgets subscribe a callback; state calls it with the names of what changed after each change.
"""

from __future__ import annotations

from collections.abc import Callable

Callback = Callable[[frozenset[str]], None]


class Observable:
    """Holds subscribers and tells them which aspects changed (e.g. ``{"slice"}``, ``{"window"}``)."""

    def __init__(self) -> None:
        self._subscribers: list[Callback] = []
        self._batch: set[str] | None = None

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(changes)`` after every change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def notify(self, *changes: str) -> None:
        """Tell subscribers that ``changes`` happened (collected while inside ``batch()``)."""
        if self._batch is not None:
            self._batch.update(changes)
            return
        what = frozenset(changes)
        for callback in list(self._subscribers):
            callback(what)

    def batch(self) -> _Batch:
        """Context manager: several changes inside it reach subscribers as one notification."""
        return _Batch(self)


class _Batch:
    def __init__(self, owner: Observable) -> None:
        self._owner = owner
        self._outer = False

    def __enter__(self) -> None:
        if self._owner._batch is None:
            self._owner._batch = set()
            self._outer = True

    def __exit__(self, *exc: object) -> None:
        if self._outer:
            changes, self._owner._batch = self._owner._batch or set(), None
            if changes:
                self._owner.notify(*changes)
