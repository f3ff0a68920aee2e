"""Shared fixtures: where the real data lives, and headless Qt."""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import tempfile
from pathlib import Path

import pytest

# GUI tests run without a display; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The scan index, label store and user config of a test run live in a throw-away folder, never in the
# user's home.
_SANDBOX = tempfile.mkdtemp(prefix="viewer-tests-")
for _var, _sub in (("VIEWER_CACHE_DIR", "cache"), ("VIEWER_DATA_DIR", "data"), ("VIEWER_CONFIG_DIR", "config")):
    os.environ.setdefault(_var, os.path.join(_SANDBOX, _sub))

REPO = Path(__file__).resolve().parents[1]

# pytest-timeout (600 s, pyproject.toml) raises in the main thread from a Python signal handler, which
# never runs while the main thread is stuck inside Qt or waiting for the GIL. This watchdog is a C thread:
# it prints every thread's stack and ends the process, so a hang fails CI with a trace instead of
# holding it for 90 minutes.
HANG_WATCHDOG_S = float(os.environ.get("VIEWER_HANG_WATCHDOG_S", "900"))
_watchdog_out = None


#: Why this test process is not in a private network namespace (None: it is). The PACS tests need one.
NETNS_ERROR: str | None = "not tried"


def pytest_configure(config: pytest.Config) -> None:
    global _watchdog_out, NETNS_ERROR
    # The PACS tests run real servers (Orthanc listens on every interface): first of all, before any
    # thread starts (a namespace is per thread, inherited by later threads and child processes), move the
    # test process into a private network namespace where only loopback exists. Nothing else in the suite
    # uses the network beyond loopback.
    from tests.netns import enter_private_netns

    NETNS_ERROR = enter_private_netns()
    # A duplicate of the terminal's stderr, taken before tests run: pytest captures fd 2 during each test,
    # and a process that is ended by the watchdog never prints what was captured.
    _watchdog_out = os.fdopen(os.dup(sys.stderr.fileno()), "w")


@pytest.fixture(autouse=True)
def _cycles_collected_on_the_main_thread(request: pytest.FixtureRequest):
    """As in the app (viewer.app.collect_garbage_on_the_main_thread): once a test uses Qt, Python's cycle
    collector never runs on a worker thread; it runs from a timer on the main thread and after each test."""
    if {"qapp", "qtbot"} & set(request.fixturenames):
        request.getfixturevalue("qapp")
        from viewer.app import collect_garbage_on_the_main_thread

        collect_garbage_on_the_main_thread()
    yield
    if not gc.isenabled():
        from viewer.app import collect_garbage_on_the_main_thread

        collect_garbage_on_the_main_thread().check()


@pytest.fixture(autouse=True)
def _hang_watchdog():
    faulthandler.dump_traceback_later(HANG_WATCHDOG_S, exit=True, file=_watchdog_out or sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


def data_root() -> Path | None:
    """``$VIEWER_TEST_DATA`` or ``../shared/data`` next to the repository; None when neither exists."""
    env = os.environ.get("VIEWER_TEST_DATA")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data folder. Missing data fails in CI (CI is set) and skips elsewhere."""
    root = data_root()
    if root is None:
        msg = "real test data not found: set VIEWER_TEST_DATA or place it at ../shared/data"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def find_tool(name: str) -> str | None:
    """A command-line tool on PATH or beside this Python (a venv's bin/, not on PATH when not activated)."""
    import shutil

    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; a missing tool fails in CI (the setup must install it) and skips elsewhere."""
    exe = find_tool(name)
    if exe is None:
        msg = f"{name} not installed ({install_hint})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe
