"""``python -m viewer screenshot PATH --model ID``: the model's overlay is in the PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from viewer.cli import main

import onnxruntime  # noqa: E402,F401 - a hard dependency: missing, these tests fail


def _rgb(path: Path) -> np.ndarray:
    img = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    # Copy: the bytes belong to ``img``, which is freed when this function returns.
    rows = arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    return rows.reshape(img.height(), img.width(), 3).copy()


def _colourful(rgb: np.ndarray) -> float:
    """Fraction of strongly coloured pixels (a windowed CT is grey: R = G = B)."""
    c = rgb.astype(np.int16)
    return float(((c.max(axis=2) - c.min(axis=2)) > 60).mean())


def test_screenshot_draws_the_class_map(qtbot, io_services, monkeypatch, tmp_path: Path, pancreas_dir: Path,
                                        capsys) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    plain, ai = tmp_path / "plain.png", tmp_path / "ai.png"
    args = ["screenshot", str(pancreas_dir), "--slice", "61", "--size", "1200x800"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(ai), "--model", "organ-ct"]) == 0
    a, b = _rgb(plain), _rgb(ai)
    # the viewport's middle: grey CT alone, coloured classes over the body with the model
    mid_a, mid_b = a[300:500, 450:750], b[300:500, 450:750]
    assert _colourful(mid_a) < 0.01
    assert _colourful(mid_b) > 0.3


def test_screenshot_model_not_for_this_series(qtbot, io_services, monkeypatch, tmp_path: Path,
                                              pancreas_dir: Path, capsys) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["screenshot", str(pancreas_dir), "--out", str(tmp_path / "x.png"), "--size", "800x600",
                 "--model", "pneumonia-cxr"])
    assert code == 2
    assert "is for CR, DX images; this series is CT" in capsys.readouterr().err
