"""The never-lose-work guarantee: SIGKILL writers at random moments, the store always opens and holds
every label a writer reported saved."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from viewer.annotations.store import LabelStore

REPO = Path(__file__).resolve().parents[2]

# A writer: commits labels as fast as it can and prints "saved N" only after set_label returned.
WRITER = r"""
import sys
from viewer.annotations.model import ImageKey, Label, Roi
from viewer.annotations.store import LabelStore
path, wid = sys.argv[1], int(sys.argv[2])
store = LabelStore(path)
for n in range(100000):
    key = ImageKey("1.2.3", "1.2.3.4", f"1.2.3.4.{wid}.{n}", 1)
    if n % 3 == 2:  # ROIs go through the same store; they must survive too
        store.put_roi(Roi(key, "box", ((0, 0), (n, n)), annotator="w", roi_id=f"{wid}-{n}"))
    else:
        store.set_label(Label(key, "Image quality", ("diagnostic", "limited")[n % 2], "writer-%d" % wid))
    print("saved", n, flush=True)
"""

N_WRITERS = 200


def _reported(line: str) -> int | None:
    """N of a complete "saved N" line; None for a line the kill cut short (no newline: not a report)."""
    if not line.endswith("\n"):
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == "saved" and parts[1].isdigit() else None


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_killed_writers_lose_nothing_reported_saved(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    rng = random.Random(20261127)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reported: dict[int, int] = {}  # writer id -> highest n it reported saved
    kills = 0
    for wid in range(N_WRITERS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(wid)], stdout=subprocess.PIPE,
                                text=True, env=env, cwd=REPO)
        assert proc.stdout is not None
        # Kill after a random number of reported saves (0 = before or while the first one commits), plus a
        # random sub-millisecond-to-few-ms delay so the kill lands at any point of the next commit.
        target = rng.choice([0, 0, 1, 2, 5, 20])
        last = -1
        while last + 1 < target:
            line = proc.stdout.readline()
            n = _reported(line)
            if n is None:
                break
            last = n
        time.sleep(rng.random() * 0.004)
        proc.send_signal(signal.SIGKILL)
        kills += 1
        rest, _ = proc.communicate()
        for line in rest.splitlines(keepends=True):  # lines printed before the kill were saved too
            n = _reported(line)
            if n is not None:
                last = max(last, n)
        assert proc.returncode == -signal.SIGKILL
        reported[wid] = last
        if wid % 25 == 24:  # opening between kills is part of the test: it must always open
            with LabelStore(path) as store:
                assert store.integrity_check() == "ok"
    assert kills == N_WRITERS
    with LabelStore(path) as store:
        assert store.integrity_check() == "ok"
        saved = {lab.key.sop_uid for lab in store.labels("Image quality")}
        saved |= {roi.key.sop_uid for roi in store.rois()}
    missing = [f"1.2.3.4.{w}.{n}" for w, last in reported.items() for n in range(last + 1)
               if f"1.2.3.4.{w}.{n}" not in saved]
    assert not missing, f"{len(missing)} labels reported saved are gone, e.g. {missing[:3]}"
    assert sum(last + 1 for last in reported.values()) > N_WRITERS  # the writers did get to commit
