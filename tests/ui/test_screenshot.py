"""``python -m viewer screenshot``: the main window rendered offscreen to a PNG that shows the CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from viewer.cli import main


def _grey(path: Path) -> np.ndarray:
    img = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    # Copy: the bytes belong to ``img``, which is freed when this function returns.
    return arr.reshape(img.height(), img.bytesPerLine())[:, : img.width()].copy()


@pytest.fixture
def screenshot_env(qtbot, io_services, monkeypatch, tmp_path: Path):
    # Headless commands must not touch the user's settings (they use a temp INI); keep HOME clean too.
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_screenshot_writes_the_main_window_with_the_slice(screenshot_env: Path, crc_dir: Path, capsys) -> None:
    out = screenshot_env / "shot.png"
    assert main(["screenshot", str(crc_dir), "--out", str(out), "--slice", "51", "--preset", "lung",
                 "--size", "1200x800"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    grey = _grey(out)
    assert grey.shape == (800, 1200)
    # The centre of the window is the viewport: a lung-windowed chest CT has grey lungs (about -850 HU,
    # grey level ~85 in the 1500/-600 window) next to white soft tissue and bone.
    centre = grey[250:550, 450:750]
    assert centre.std() > 40
    assert (centre < 110).mean() > 0.05 and (centre > 200).mean() > 0.05


def test_window_changes_the_pixels(screenshot_env: Path, crc_dir: Path) -> None:
    a, b = screenshot_env / "a.png", screenshot_env / "b.png"
    assert main(["screenshot", str(crc_dir), "--out", str(a), "--window", "400", "40", "--size", "800x600"]) == 0
    assert main(["screenshot", str(crc_dir), "--out", str(b), "--window", "1500", "-600", "--size", "800x600"]) == 0
    assert np.abs(_grey(a).astype(int) - _grey(b).astype(int)).mean() > 2


@pytest.mark.parametrize("extra, message", [
    (["--preset", "nonsense"], "no CT window preset named"),
    (["--slice", "5000"], "outside 1..100"),
    (["--slice", "0"], "outside 1..100: this series has 100 images, numbered from 1"),
    (["--model", "pneumonia-cxr"], "is for CR, DX images; this series is CT"),
])
def test_bad_arguments_say_what_is_wrong(screenshot_env: Path, crc_dir: Path, capsys, extra: list[str],
                                         message: str) -> None:
    out = screenshot_env / "x.png"
    code = main(["screenshot", str(crc_dir), "--out", str(out), "--size", "640x480", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err


def test_missing_path_is_reported(screenshot_env: Path, capsys) -> None:
    assert main(["screenshot", "/no/such/dir", "--out", str(screenshot_env / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err


def test_format_comes_from_the_file_name_or_is_refused(screenshot_env: Path, crc_dir: Path, capsys) -> None:
    jpg = screenshot_env / "shot.jpg"
    assert main(["screenshot", str(crc_dir), "--out", str(jpg), "--size", "640x480"]) == 0
    data = jpg.read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG, as the name says
    from PySide6.QtGui import QImage

    assert QImage(str(jpg)).size().toTuple() == (640, 480)  # --size honoured
    gif = screenshot_env / "shot.gif"
    assert main(["screenshot", str(crc_dir), "--out", str(gif)]) == 2
    assert "format comes from the file name" in capsys.readouterr().err and not gif.exists()


def _workers() -> list[object]:
    import multiprocessing

    return list(multiprocessing.active_children())


def test_series_are_numbered_from_1_and_the_command_ends_its_worker_processes(screenshot_env: Path, ct_root: Path,
                                                                             capsys, monkeypatch) -> None:
    """``--series 1`` is the first series the scan lists (one numbering: the browser, the overlay's images
    and the command line count from 1); 0 is refused with the valid range. A J2K series is decoded by the
    process pool; when the command returns (here in-process, as a script would call it) no worker is left."""
    from viewer.io.series import find_stacks

    stacks = find_stacks(str(ct_root)).stacks
    j2k = next(i for i, s in enumerate(stacks, start=1) if len(s.files) == 20)
    out = screenshot_env / "j2k.png"
    from viewer.io import decode_pool

    # The decoder processes the command ran, seen as the pool is shut down at its end.
    ended: list[object] = []
    real = decode_pool.shutdown_pool

    def spy() -> None:
        if decode_pool._POOL is not None:
            ended.extend(getattr(decode_pool._POOL, "_processes", {}).values())
        real()

    monkeypatch.setattr(decode_pool, "shutdown_pool", spy)
    assert main(["screenshot", str(ct_root), "--out", str(out), "--series", str(j2k), "--size", "640x480"]) == 0
    assert ended, "the J2K series was decoded by the process pool"
    assert decode_pool._POOL is None and not any(p.is_alive() for p in ended)  # type: ignore[attr-defined]
    assert main(["screenshot", str(ct_root), "--out", str(out), "--series", "0", "--size", "640x480"]) == 2
    assert f"series 0 is outside 1..{len(stacks)}" in capsys.readouterr().err


def test_slice_n_is_the_image_the_viewport_calls_im_n(qtbot, main_window, crc_dir: Path) -> None:
    """``--slice N`` shows what the overlay labels "Im N/n": the display position counted from 1."""
    import argparse

    from tests.ui.conftest import open_and_wait
    from viewer.commands.screenshot import _apply_view

    open_and_wait(qtbot, main_window, [crc_dir])
    slot = main_window.grid.slots[0]
    n = slot.volume.shape[0]
    for number in (1, 51, n):
        assert _apply_view(slot, argparse.Namespace(slice=number, preset=None, window=None)) == 0
        assert slot.view.slice_index == number - 1
        assert slot.view.overlay().bottom_left[0].startswith(f"Im {number}/{n}")
