"""Shared fixtures of the GUI tests: the real main window, real data folders, helpers to wait on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytestqt  # noqa: F401 - a hard test dependency: missing, the GUI tests must fail, not skip


@pytest.fixture(scope="session")
def ct_root(data_dir: Path) -> Path:
    return data_dir / "ct"


@pytest.fixture(scope="session")
def pancreas_dir(ct_root: Path) -> Path:
    return ct_root / "pancreas-ct-philips-134"


@pytest.fixture(scope="session")
def crc_dir(ct_root: Path) -> Path:
    return ct_root / "crc-chest-ct-ge-100"


@pytest.fixture(scope="session")
def io_services():
    """The io functions the application injects into the UI."""
    from viewer.app import io_services as make

    return make()


@pytest.fixture
def main_window(qtbot, tmp_path: Path, io_services) -> Iterator[object]:
    """The application's main window with settings in a temp INI file, shown offscreen."""
    from viewer.app import build_main_window

    window = build_main_window(settings_file=str(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    yield window
    window.background.cancel_all()
    window.background.wait_idle(10000)


def open_and_wait(qtbot, window, paths: list[Path], *, load: bool = True, timeout: int = 60000) -> None:
    """Open ``paths`` and wait for the scan (and, with ``load``, the auto-opened series) to finish."""
    if load:
        with qtbot.waitSignal(window.series_loaded, timeout=timeout):
            window.open_paths([str(p) for p in paths])
    else:
        window.auto_open = False
        with qtbot.waitSignal(window.browser.scan_finished, timeout=timeout):
            window.open_paths([str(p) for p in paths])


def series_items(window) -> dict[str, object]:
    """Browser series items by description text."""
    return {item.text(0): item for item in window.browser.items.values()}


def paint_and_measure(qtbot, panel) -> None:
    """On slice 40 of the label panel's series: paint an "abnormal" disc (radius 10 px) with the brush and
    draw a 60 px distance measurement (the label store keeps both)."""
    from viewer.state.measurements import Measurement

    view = panel.view
    brush = panel.brush
    brush.label_box.setCurrentText("abnormal")
    brush.set_mode("brush")
    brush.size_box.setValue(10)
    view.set_slice(40)
    brush.begin_stroke(200.0, 300.0)
    brush.end_stroke()
    brush.set_mode("off")
    p0, p1 = view.state.point_to_lps(100, 100), view.state.point_to_lps(100, 160)
    view.state.image.add_measurement(Measurement("distance", [tuple(p0), tuple(p1)], plane="acquired", slice_index=40))
    qtbot.wait(50)
