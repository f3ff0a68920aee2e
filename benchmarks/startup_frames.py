"""What a user sees during start-up: screenshots of the screen every INTERVAL seconds from launch.

    python benchmarks/startup_frames.py OUT_DIR [--frozen EXE] [--interval 0.25] [--seconds 6] [PATH]

Starts its own Xvfb with a *white* root window (``-wr``), so a window that is mapped but not yet painted
shows as a black rectangle instead of vanishing into a black screen; launches ``python -m viewer PATH``
(or the frozen build) on it and grabs the whole screen from a second process (Qt's QScreen.grabWindow on
the same display) into OUT_DIR/frame-NN-<seconds>.png. Look at the frames: the window should appear
with its toolbar, study browser and an empty viewport, never as a black or half-drawn rectangle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, data_root  # noqa: E402

GRABBER = r'''
import sys, time
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
out, interval, seconds, t0 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
n = 0
while time.time() - t0 < seconds:
    app.primaryScreen().grabWindow(0).save(f"{out}/frame-{n:02d}-{time.time() - t0:05.2f}s.png")
    n += 1
    time.sleep(max(0.0, t0 + (n * interval) - time.time()))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("path", nargs="?", default=None)
    parser.add_argument("--frozen", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    series = args.path or str(data_root() / "ct" / "pancreas-ct-philips-134")
    args.out.mkdir(parents=True, exist_ok=True)
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("Xvfb is needed (apt-get install xvfb)")
    n = next(i for i in range(200, 260) if not os.path.exists(f"/tmp/.X11-unix/X{i}"))
    server = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1600x1000x24", "-wr", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONDONTWRITEBYTECODE")}
        env.update(DISPLAY=f":{n}", QT_QPA_PLATFORM="xcb")
        with tempfile.TemporaryDirectory() as tmp:
            app_env = dict(env, VIEWER_CACHE_DIR=f"{tmp}/c", VIEWER_CONFIG_DIR=f"{tmp}/cf", VIEWER_DATA_DIR=f"{tmp}/d",
                           PYTHONPATH=str(ROOT))
            cmd = [str(args.frozen), series] if args.frozen else [sys.executable, "-m", "viewer", series]
            grabber = subprocess.Popen([sys.executable, "-c", GRABBER, str(args.out), str(args.interval),
                                        str(args.seconds), str(time.time() + 0.5)], env=env)
            time.sleep(0.5)  # the grabber's own start-up, so that frame 0 is the launch
            app = subprocess.Popen(cmd, env=app_env)
            grabber.wait()
            app.terminate()
            app.wait(30)
    finally:
        server.terminate()
        server.wait()
    print(f"frames in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
