"""Cold start of the application: launch -> main window painted -> first image of a series given on the
command line, and the memory at rest afterwards, against the floor a Qt app can reach here.

Each run is a new process (Python's and Qt's start-up, imports, window, scan, load), with an empty index,
configuration and data folder, so it is a user's first look at the series (the page cache is warm after
the first round: the files are read from memory, as they are right after copying a study in). Targets:

- ``python -m viewer PATH``        (``--no-python`` skips it)
- the frozen build ``dist/dicom-viewer/dicom-viewer PATH`` (``--frozen EXE``; skipped when not built)
- the floor: a bare PySide6 + pyqtgraph script that reads the same series' middle file with pydicom and
  shows it as one pyqtgraph image in a window of the same size, reporting the same two moments.

The app reports its moments with ``VIEWER_STARTUP_REPORT`` (viewer/ui/startup_probe.py): "painted" is the
first paint event of the main window, "first image" the first paint of a viewport after the image was
set. RSS at rest is read 1 s after the first image: the main process, and the process tree (the app's
decoder processes included). Rounds interleave the targets so the machine's load hits them alike;
figures are medians. All windows go to one Xvfb server started here (``--offscreen``: Qt's offscreen
platform instead), like a desktop that is already running.

Usage: ``python benchmarks/bench_startup.py [--runs 5] [--series DIR] [--frozen EXE]``. Targets: window
<= 1.5x the floor, first image <= 2x the floor.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, data_root, machine  # noqa: E402

SERIES = "ct/pancreas-ct-philips-134"
LINGER_S = 1.6  # how long a process stays after its first image; RSS is read after REST_S
REST_S = 1.0
REPORT_WITHIN_S = 120.0  # a start that reports nothing by then is a failure (an old build without the probe)
TARGET_WINDOW, TARGET_IMAGE = 1.5, 2.0

# The floor: the least a PySide6 + pyqtgraph program does to show this slice (the same window size as the
# app's, the file's rescale and window applied), reporting the same moments in the same format.
FLOOR = r'''
import sys, time
from pathlib import Path
import numpy as np
import pydicom
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsView

files = sorted(p for p in Path(sys.argv[1]).iterdir() if p.suffix.lower() == ".dcm")
ds = pydicom.dcmread(files[len(files) // 2])
img = ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
app = QApplication(sys.argv[:1])
pg.setConfigOptions(imageAxisOrder="row-major")
win = pg.GraphicsLayoutWidget()
view = win.addViewBox(lockAspect=True, invertY=True)
c, w = float(np.ravel([ds.get("WindowCenter", 40)])[0]), float(np.ravel([ds.get("WindowWidth", 400)])[0])
view.addItem(pg.ImageItem(img, levels=(c - w / 2, c + w / 2)))
linger = float(sys.argv[2])

class Probe(QObject):
    painted = None
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint:
            now = time.time()
            if self.painted is None:
                self.painted = now
            if isinstance(obj.parent(), QGraphicsView):
                print(f"startup painted={self.painted:.6f} first_image={now:.6f}", flush=True)
                app.removeEventFilter(self)
                QTimer.singleShot(int(linger * 1000), app.quit)
        return False

probe = Probe()
app.installEventFilter(probe)
win.resize(1400, 900)
win.show()
app.exec()
'''


def tree_rss_mib(pid: int) -> tuple[float, float]:
    """(RSS of ``pid``, RSS of ``pid`` and all its descendants) in MiB, from /proc (Linux)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    mib = 1024.0 * 1024.0
    return rss.get(pid, 0) / mib, sum(rss.get(p, 0) for p in tree) / mib


def run_once(cmd: list[str], env: dict[str, str], rest_s: float = REST_S) -> dict[str, float]:
    """One cold start: seconds to painted and to first image, RSS (MiB) ``rest_s`` after the first image."""
    linger = LINGER_S - REST_S + rest_s
    if cmd[1:2] == ["-c"]:  # the floor takes its linger as an argument
        cmd = [*cmd[:-1], str(linger)]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = dict(env, VIEWER_STARTUP_REPORT=str(linger), VIEWER_CACHE_DIR=f"{tmp}/cache",
                   VIEWER_CONFIG_DIR=f"{tmp}/config", VIEWER_DATA_DIR=f"{tmp}/data", XDG_CONFIG_HOME=f"{tmp}/xdg")
        t0 = time.time()
        # A `python -m viewer` target runs in the checkout it imports (-m puts the working folder first on
        # sys.path, before PYTHONPATH): --also CHECKOUT would otherwise start this checkout's code.
        proc = subprocess.Popen(cmd, env=env, cwd=env.get("PYTHONPATH"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], REPORT_WITHIN_S)
            line = proc.stdout.readline() if ready and proc.stdout else ""
            if not line.startswith("startup "):
                proc.kill()
                _, err = proc.communicate(timeout=30)
                raise RuntimeError(f"{cmd[0]} reported no start-up moments: {line!r} {err[-2000:]}")
            moments = dict(kv.split("=") for kv in line.split()[1:])
            time.sleep(rest_s)
            rss, rss_tree = tree_rss_mib(proc.pid)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"window": float(moments["painted"]) - t0, "image": float(moments["first_image"]) - t0,
            "rss": rss, "rss_tree": rss_tree}


def clean_env() -> dict[str, str]:
    """This environment without what would skew a start: PYTHONPATH, a Qt platform, and
    PYTHONDONTWRITEBYTECODE (a user's install has compiled .pyc files; the untimed first round writes
    the checkout's)."""
    drop = ("QT_QPA_PLATFORM", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in drop}


def start_display() -> tuple[subprocess.Popen[bytes] | None, dict[str, str]]:
    env = clean_env()
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        print("Xvfb not found: using Qt's offscreen platform")
        return None, dict(env, QT_QPA_PLATFORM="offscreen")
    for n in range(140, 200):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            server = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                    return server, dict(env, DISPLAY=f":{n}", QT_QPA_PLATFORM="xcb")
                time.sleep(0.05)
            server.kill()
    sys.exit("could not start Xvfb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--series", type=Path, default=None, help=f"series folder (default <data>/{SERIES})")
    parser.add_argument("--frozen", type=Path, default=ROOT / "dist" / "dicom-viewer" / "dicom-viewer")
    parser.add_argument("--no-python", action="store_true", help="skip python -m viewer")
    parser.add_argument("--offscreen", action="store_true", help="Qt's offscreen platform instead of Xvfb")
    parser.add_argument("--rest", type=float, default=REST_S, metavar="SECONDS",
                        help=f"read the memory this long after the first image (default {REST_S}; the app's "
                        "background start-up work, model listing included, is over after a few seconds)")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="CHECKOUT",
                        help="also start python -m viewer from this checkout (e.g. the previous main), same rounds")
    args = parser.parse_args()
    series = str(args.series or data_root() / SERIES)

    if args.offscreen:
        server, env = None, dict(clean_env(), QT_QPA_PLATFORM="offscreen")
    else:
        server, env = start_display()
    targets: dict[str, tuple[list[str], dict[str, str]]] = {
        "floor": ([sys.executable, "-c", FLOOR, series, str(LINGER_S)], env)}
    if not args.no_python:
        targets["python -m viewer"] = ([sys.executable, "-m", "viewer", series], dict(env, PYTHONPATH=str(ROOT)))
    for tree in args.also:
        targets[f"viewer {tree.name}"] = ([sys.executable, "-m", "viewer", series],
                                          dict(env, PYTHONPATH=str(tree.resolve())))
    if args.frozen.is_file():
        targets["frozen build"] = ([str(args.frozen), series], env)
    else:
        print(f"no frozen build at {args.frozen}: build it with pyinstaller packaging/dicom-viewer.spec")
    print(machine())
    print(f"series {series}; {args.runs} rounds, targets interleaved; memory read {args.rest:g} s after the "
          f"first image; display {env.get('DISPLAY', 'offscreen')}")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        for cmd, target_env in targets.values():  # untimed: page cache, .pyc files, fontconfig cache
            run_once(cmd, target_env, args.rest)
        for r in range(args.runs):
            for name, (cmd, target_env) in targets.items():
                results[name].append(run_once(cmd, target_env, args.rest))
            print(f"  round {r + 1}/{args.runs} done")
    finally:
        if server is not None:
            server.terminate()
            server.wait()

    med = {name: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for name, runs in results.items()}
    floor = med["floor"]
    print(f"\n{'':18} {'window s':>9} {'x floor':>8} {'image s':>8} {'x floor':>8} {'RSS MiB':>8} "
          f"{'x floor':>8} {'tree MiB':>9}")
    for name, m in med.items():
        print(f"{name:18} {m['window']:9.2f} {m['window'] / floor['window']:8.2f} {m['image']:8.2f} "
              f"{m['image'] / floor['image']:8.2f} {m['rss']:8.0f} {m['rss'] / floor['rss']:8.2f} "
              f"{m['rss_tree']:9.0f}")
    print(f"targets: window <= {TARGET_WINDOW}x floor, first image <= {TARGET_IMAGE}x floor")
    ok = all(m["window"] <= TARGET_WINDOW * floor["window"] and m["image"] <= TARGET_IMAGE * floor["image"]
             for name, m in med.items() if name != "floor")
    print("all targets met" if ok else "some targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
