"""Every layer, ui and the composition root included, is fully typed: mypy --strict (pyproject.toml) finds nothing."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_every_layer_passes_mypy_strict(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Success" in res.stdout
