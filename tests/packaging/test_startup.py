"""Start-up order of ``dicom-viewer PATH``: the window is painted, then the first image of the series
comes before the browser's thumbnail decoder and the decoder-pool warm-up start (on two cores they used
to hold both pool threads and the CPU for seconds before the first image), and both still follow.

Runs the real ``run_app`` in a fresh process (its own QApplication, settings and index in a temp folder)
with the start-up probe (``VIEWER_STARTUP_REPORT``) and records when the two deferred jobs begin.
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
import json, sys, time
from PySide6.QtCore import QMetaObject, Qt
from PySide6.QtWidgets import QApplication
import viewer.app as a
began = {}
pool, warm = a._decoder_pool, a.warm_decoder_pool
def record(what):  # called on pool threads; once both jobs began, the app may quit
    began.setdefault(what, time.time())
    if "thumbnail" in began and "warm" in began:
        QMetaObject.invokeMethod(QApplication.instance(), "quit", Qt.ConnectionType.QueuedConnection)
def first_thumbnail_decoder():
    record("thumbnail")
    return pool()
def warm_up():
    record("warm")
    return warm()
a._decoder_pool, a.warm_decoder_pool = first_thumbnail_decoder, warm_up
open_when_painted = a.open_when_painted
def opening(window, paths):  # the moment the window says the first image is shown (before its paint)
    window.first_image_shown.connect(lambda _i: began.setdefault("image_shown", time.time()))
    return open_when_painted(window, paths)
a.open_when_painted = opening
rc = a.run_app(sys.argv[1:])
print("began " + json.dumps(began), flush=True)
sys.exit(rc)
'''


def test_window_then_first_image_then_thumbnails_and_decoder_warm_up(tmp_path: Path, data_dir: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VIEWER_STARTUP_REPORT="120",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), VIEWER_CACHE_DIR=str(tmp_path / "cache"),
               VIEWER_CONFIG_DIR=str(tmp_path / "config"), VIEWER_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", RUN, str(data_dir / CT)], cwd=REPO, env=env, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    startup = next(line for line in lines if line.startswith("startup "))
    moments = {k: float(v) for k, v in (kv.split("=") for kv in startup.split()[1:])}
    began = json.loads(next(line for line in lines if line.startswith("began "))[len("began "):])
    assert moments["painted"] <= moments["first_image"]
    assert set(began) == {"image_shown", "thumbnail", "warm"}, began  # both deferred jobs started, then quit
    assert moments["painted"] <= began["image_shown"] <= moments["first_image"]
    assert began["thumbnail"] >= began["image_shown"] and began["warm"] >= began["image_shown"]


def test_a_bad_probe_value_is_reported_and_the_app_still_starts(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VIEWER_STARTUP_REPORT="soon",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), VIEWER_CONFIG_DIR=str(tmp_path / "config"))
    probe = ("import sys\nfrom PySide6.QtCore import QTimer\nimport viewer.app as a\n"
             "a.make_application()\nQTimer.singleShot(500, a.make_application().quit)\n"
             "sys.exit(a.run_app([]))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "VIEWER_STARTUP_REPORT must be seconds" in out.stderr and "'soon'" in out.stderr
