"""Background jobs: results come back on the main thread; superseded requests are dropped."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread

from viewer.ui.workers import Background, JobContext


@pytest.fixture
def background(qtbot):
    bg = Background(max_threads=2)
    yield bg
    bg.cancel_all()
    bg.wait_idle(5000)


def test_result_arrives_on_the_main_thread(qtbot, background) -> None:
    main = QThread.currentThread()
    seen: dict[str, object] = {}

    def job(ctx: JobContext) -> int:
        seen["worker_thread"] = QThread.currentThread()
        for i in range(5):
            ctx.progress(i + 1, 5)
        return 42

    def on_result(value: int) -> None:
        seen["value"] = value
        seen["result_thread"] = QThread.currentThread()

    progress: list[tuple[int, int]] = []
    background.submit("t", job, on_result=on_result, on_progress=lambda d, t: progress.append((d, t)))
    qtbot.waitUntil(lambda: "value" in seen and background.pending() == 0, timeout=5000)
    assert seen["value"] == 42
    assert seen["result_thread"] is main and seen["worker_thread"] is not main
    assert progress[-1] == (5, 5)  # throttled, but the final report always arrives


def test_a_superseded_request_is_cancelled_and_its_result_dropped(qtbot, background) -> None:
    release = threading.Event()
    started = threading.Event()
    first_saw_cancel = threading.Event()

    def slow(ctx: JobContext) -> str:
        started.set()
        release.wait(5)
        if ctx.cancelled():
            first_saw_cancel.set()
        return "stale"

    results: list[str] = []
    background.submit("load:0", slow, on_result=results.append)
    assert started.wait(5)
    background.submit("load:0", lambda ctx: "fresh", on_result=results.append)
    release.set()
    qtbot.waitUntil(lambda: background.pending() == 0, timeout=5000)
    assert results == ["fresh"]
    assert first_saw_cancel.is_set()


def test_errors_come_back_as_text(qtbot, background) -> None:
    errors: list[str] = []

    def broken(ctx: JobContext) -> None:
        raise ValueError("no pixel data in slice 7")

    background.submit("x", broken, on_error=errors.append)
    qtbot.waitUntil(lambda: background.pending() == 0, timeout=5000)
    assert errors == ["no pixel data in slice 7"]


def test_channels_are_independent(qtbot, background) -> None:
    results: list[str] = []
    background.submit("a", lambda ctx: "a", on_result=results.append)
    background.submit("b", lambda ctx: "b", on_result=results.append)
    qtbot.waitUntil(lambda: background.pending() == 0, timeout=5000)
    assert sorted(results) == ["a", "b"]
