"""ONNX Runtime is not imported when the window opens: the AI dock lists the models from their manifests,
and the runtime comes with the first inference (its memory at rest was most of the viewer's excess over a
bare PySide6 + pyqtgraph window, benchmarks/RESULTS.md).

Runs the real ``run_app`` with a series in a fresh process (its own settings and index in a temp folder)
until the first image is painted, waits for the dock's model listing, and reads ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

CT = "ct/pancreas-ct-philips-134"

RUN = r'''
import json, sys
from PySide6.QtWidgets import QApplication
import viewer.app as a
from viewer.ui.ai_panel import AiPanel
from viewer.ui.main_window import MainWindow
rc = a.run_app(sys.argv[1:])  # quits once the first image is painted (VIEWER_STARTUP_REPORT)
window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))
panel = window.ai_panel
assert isinstance(panel, AiPanel)
panel.background.wait_idle(-1)  # the model listing started with the window has finished
QApplication.processEvents()  # and its result is delivered to the dock
vol = window.grid.slots[0].view.volume
state = {"rc": rc, "models": [e.id for e in panel.entries if e.manifest is not None],
         "series": vol.series_uid if vol is not None else None,
         "ort_at_rest": "onnxruntime" in sys.modules}
m = next(e.manifest for e in panel.entries if e.manifest is not None and e.id == "organ-ct")
run = panel.inference.classify_slices(m, vol, [vol.shape[0] // 2])
state["provider"] = run.provider
state["ort_after_run"] = "onnxruntime" in sys.modules
print("state " + json.dumps(state), flush=True)
'''


def test_opening_the_window_with_a_series_does_not_import_onnxruntime(tmp_path: Path, data_dir: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VIEWER_STARTUP_REPORT="0.5",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), VIEWER_CACHE_DIR=str(tmp_path / "cache"),
               VIEWER_CONFIG_DIR=str(tmp_path / "config"), VIEWER_DATA_DIR=str(tmp_path / "data"))
    env.pop("VIEWER_MODELS_DIR", None)
    out = subprocess.run([sys.executable, "-c", RUN, str(data_dir / CT)], cwd=REPO, env=env, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("startup ") and "first_image=" in line for line in lines), out.stdout[-2000:]
    state = json.loads(next(line for line in lines if line.startswith("state "))[len("state "):])
    assert state["rc"] == 0 and state["series"]  # the series is shown
    assert {"organ-ct", "pneumonia-cxr", "ct-denoise"} <= set(state["models"])  # the dock listed the models
    assert state["ort_at_rest"] is False
    # The first inference brings the runtime in (the listing did not fail for want of it).
    assert state["ort_after_run"] is True and state["provider"].endswith("ExecutionProvider")
