"""Header scan speed: files per second, first pass and warm, index re-open, against a naive pydicom read.

Run: ``python benchmarks/bench_scan.py [--copies 40] [--repeats 5]``. Uses the real CT series in
``../shared/data/ct`` (or ``$VIEWER_TEST_DATA``), linked ``--copies`` times into a temporary folder so the
scan sees many files (10,000 by default) while the OS page cache holds only the originals.

Figures (medians over ``--repeats``; ratios are against baselines measured in this same run):

- naive: ``pydicom.dcmread(f)`` of every file (full read), files/s: the baseline;
- ``read_header`` per file (one process), files/s, warm page cache;
- ``find_stacks`` without index, 1 and 2 worker processes, files/s (scan + grouping + splitting);
- ``find_stacks`` first pass into a new index (the cold-ish case: a new process's caches, the folder
  never indexed), files/s;
- re-open of the indexed folder (stat every file, nothing re-read), seconds and files/s.

Target (product.md): >= 2,000 files/s warm; Slicer/CTK ~70 files/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import data_root, linked_folder, median_time as timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=40, help="links of each real file (default 40)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import pydicom

    from viewer.io.headers import read_header
    from viewer.io.index import Index
    from viewer.io.series import find_stacks

    warnings.simplefilter("ignore")
    ct = data_root() / "ct"
    originals = sorted(p for p in ct.rglob("*") if p.is_file() and (p.suffix == ".dcm" or p.name.startswith("CT.")))
    cpu = platform.processor() or platform.machine()
    print(f"# bench_scan {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {cpu}"
          f" cpus={os.cpu_count()} python={platform.python_version()} pydicom={pydicom.__version__}")
    print(f"real files: {len(originals)} (ct/*: uncompressed 512x512 and JPEG 2000)")
    for p in originals:
        p.read_bytes()  # warm the page cache

    def naive() -> None:
        for p in originals:
            pydicom.dcmread(p)

    def ours() -> None:
        for p in originals:
            read_header(str(p))

    t_naive = timed(naive, args.repeats)
    t_ours = timed(ours, args.repeats)
    n = len(originals)
    naive_fps, ours_fps = n / t_naive, n / t_ours
    print(f"naive pydicom.dcmread (full)     {naive_fps:8.0f} files/s   (baseline)")
    print(f"read_header (1 process, warm)    {ours_fps:8.0f} files/s   {ours_fps / naive_fps:5.2f}x naive")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "many"
        total = linked_folder(folder, originals, args.copies)
        print(f"linked folder: {total} files")

        db = Path(tmp) / "index.sqlite"
        t0 = time.perf_counter()
        res = find_stacks(folder, index=db)
        t_first = time.perf_counter() - t0
        assert res.headers_read == total, res.headers_read
        fps = total / t_first
        print(f"find_stacks first pass + index   {fps:8.0f} files/s   {fps / naive_fps:5.2f}x naive"
              f"   ({t_first:.2f} s, 1 process)")

        def reopen() -> None:
            r = find_stacks(folder, index=db)
            assert r.headers_read == 0

        t_reopen = timed(reopen, args.repeats)
        print(f"re-open indexed folder           {total / t_reopen:8.0f} files/s   {t_reopen * 1000:.0f} ms for "
              f"{total} files; {t_first / t_reopen:5.1f}x faster than the first pass")
        with Index(db) as idx:
            assert len(idx) == total

        sub_n = min(total, 2540)
        subset = [folder / f"c{k:03d}" for k in range(max(1, sub_n // n))]
        m = sum(1 for d in subset for _ in d.iterdir())
        for workers in (1, 2):
            t = timed(lambda w=workers: find_stacks(subset, workers=w), max(1, args.repeats // 2))
            print(f"find_stacks no index, {workers} proc     {m / t:8.0f} files/s   {m / t / naive_fps:5.2f}x naive"
                  f"   ({m} files)")


if __name__ == "__main__":
    main()
