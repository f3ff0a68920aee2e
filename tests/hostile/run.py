"""Run hostile cases, each in a child process with a memory cap and a time limit, and count outcomes.

    PYTHONPATH=$PWD python -m tests.hostile.run            # the quick set (what CI runs), ~1 minute
    PYTHONPATH=$PWD python -m tests.hostile.run --full     # every case (~250), several minutes
    ... --only nesting --keep DIR --jobs 2 --mem-mb 1536 --time-s 120

Outcomes per case: ``handled`` (every check of :mod:`tests.hostile.child` held), ``failed`` (it ran,
but the good series was not found / not the default / not identical, a non-finite affine passed in
silence, JSON was missing ...), ``crashed`` (an exception escaped or a signal), ``hung`` (time limit),
``over_memory`` (MemoryError under the cap, or a peak resident size above the cap).
The cap is RLIMIT_AS (address space) on the child and everything it starts (the decoder pool).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Address-space cap per case. Python with numpy, pydicom and the codec libraries maps ~0.6 GiB before
#: it reads a file; the issue's "over memory" line is 1.5 GB.
MEM_MB = 1536
TIME_S = 120.0


@dataclass
class Outcome:
    case: str
    family: str
    result: str
    detail: str
    seconds: float
    peak_mb: float


def good_digest(data_dir: Path, work: Path) -> Path:
    """Load the good series alone (in this process) and write its files and digest for the children."""
    from tests.hostile.child import volume_digest
    from tests.hostile.generate import good_files
    from viewer.io.load import load_series

    files = good_files(data_dir)
    vol = load_series([str(f) for f in files])
    out = work / "good.json"
    out.write_text(json.dumps({"files": [f"good_{k:02d}.dcm" for k in range(len(files))],
                               "digest": volume_digest(vol)}))
    return out


def _limit(mem_mb: int) -> None:
    cap = mem_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.setsid()  # the case and its decoder processes form one group: a hang is killed whole


def run_case(folder: Path, family: str, good_json: Path, mem_mb: int, time_s: float) -> Outcome:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", VIEWER_DECODE_WORKERS="1",
               VIEWER_CACHE_DIR=str(folder.parent / ".cache"))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.child", str(folder), str(good_json)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: _limit(mem_mb))
    try:
        out, err = proc.communicate(timeout=time_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome(folder.name, family, "hung", f"no answer after {time_s:g} s",
                       time.monotonic() - t0, 0.0)
    secs = time.monotonic() - t0
    text = out.decode(errors="replace").strip().splitlines()
    last = text[-1] if text else ""
    try:  # the child's own peak resident size (its decoder processes included)
        peak = float(json.loads(last).get("peak_mb", 0.0)) if last.startswith("{") else 0.0
    except ValueError:
        peak = 0.0
    if peak > mem_mb:
        return Outcome(folder.name, family, "over_memory", f"peak {peak:.0f} MB", secs, peak)
    tail = err.decode(errors="replace")[-600:]
    if proc.returncode == 3 or "MemoryError" in tail:
        return Outcome(folder.name, family, "over_memory", tail or last, secs, peak)
    if proc.returncode == 0:
        return Outcome(folder.name, family, "handled", last, secs, peak)
    if proc.returncode == 1 and last.startswith("{"):
        return Outcome(folder.name, family, "failed", "; ".join(json.loads(last)["problems"]), secs, peak)
    return Outcome(folder.name, family, "crashed", f"rc {proc.returncode}: {tail}", secs, peak)


def run(data_dir: Path, work: Path, *, full: bool, only: str | None, jobs: int, mem_mb: int,
        time_s: float, progress: bool = True) -> list[Outcome]:
    from tests.hostile.generate import make_cases

    cases = make_cases(data_dir, work / "cases", full=full, only=only)
    good_json = good_digest(data_dir, work)
    outcomes: list[Outcome] = []
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_case, c.folder, c.family, good_json, mem_mb, time_s) for c in cases]
        for f in cf.as_completed(futures):
            o = f.result()
            outcomes.append(o)
            if progress and o.result != "handled":
                print(f"{o.result:11s} {o.case}: {o.detail[:400]}", file=sys.stderr)
    return sorted(outcomes, key=lambda o: o.case)


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts = {"tried": len(outcomes)}
    for k in ("handled", "failed", "crashed", "hung", "over_memory"):
        counts[k] = sum(o.result == k for o in outcomes)
    return counts


def main(argv: list[str] | None = None) -> int:
    from tests.conftest import data_root

    ap = argparse.ArgumentParser(prog="python -m tests.hostile.run", description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every case, not only the quick set")
    ap.add_argument("--only", help="cases whose family or name contains this")
    ap.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)), help="cases at once")
    ap.add_argument("--mem-mb", type=int, default=MEM_MB, help="address-space cap per case (MiB)")
    ap.add_argument("--time-s", type=float, default=TIME_S, help="time limit per case (s)")
    ap.add_argument("--keep", type=Path, help="build the cases here and keep them (default: a temp folder)")
    ap.add_argument("--json", action="store_true", help="print every outcome as JSON")
    args = ap.parse_args(argv)
    data = data_root()
    if data is None:
        print("real test data not found: set VIEWER_TEST_DATA or place it at ../shared/data", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="hostile-"))
    if args.keep and (work / "cases").exists():
        shutil.rmtree(work / "cases")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        outcomes = run(data, work, full=args.full, only=args.only, jobs=args.jobs, mem_mb=args.mem_mb,
                       time_s=args.time_s)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    counts = summary(outcomes)
    if args.json:
        print(json.dumps([o.__dict__ for o in outcomes], indent=1))
    by_family: dict[str, list[int]] = {}
    for o in outcomes:
        by_family.setdefault(o.family, [0, 0])[o.result == "handled"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items())
          + f"  ({time.monotonic() - t0:.0f} s, cap {args.mem_mb} MiB, limit {args.time_s:g} s)")
    print("  " + ", ".join(f"{fam} {ok}/{ok + bad}" for fam, (bad, ok) in sorted(by_family.items())))
    peaks = sorted(o.peak_mb for o in outcomes if o.peak_mb)
    if peaks:
        print(f"  peak resident size per case: median {peaks[len(peaks) // 2]:.0f} MB, max {peaks[-1]:.0f} MB; "
              f"slowest case {max(o.seconds for o in outcomes):.1f} s")
    return 0 if counts["handled"] == counts["tried"] else 1


if __name__ == "__main__":
    sys.exit(main())
