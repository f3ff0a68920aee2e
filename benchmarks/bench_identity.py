"""What the index's identity check costs: re-opening an indexed folder with and without it.

Run: ``python benchmarks/bench_identity.py [--copies 10] [--repeats 5]``. The real CT files of
``../shared/data/ct``, linked ``--copies`` times, are indexed once; then ``find_stacks(folder, index)`` is
timed (median of ``--repeats``) as it runs (a record trusted only while size, mtime, ctime and a digest of
the file's first 8 KiB match: one open and read per image) and with the check reduced to size + mtime
(the walk's stat only, what the index trusted before), the baseline of the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import data_root, linked_folder, machine, median_time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="links of each real file (default 10)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import viewer.io.series as series
    from viewer.io.series import find_stacks

    warnings.simplefilter("ignore")
    originals = sorted(p for p in (data_root() / "ct").rglob("*") if p.is_file() and p.suffix == ".dcm")
    print(f"# bench_identity {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "many"
        linked_folder(folder, originals, args.copies)
        db = Path(tmp) / "index.sqlite"
        first = find_stacks(folder, index=db)
        n = first.files_total

        def indexed() -> None:
            assert find_stacks(folder, index=db).headers_read == 0

        checked = median_time(indexed, args.repeats)
        real = series.same_file
        series.same_file = lambda rec: True  # type: ignore[assignment]
        try:
            stat_only = median_time(indexed, args.repeats)
        finally:
            series.same_file = real
    print(f"files: {n}")
    print(f"indexed re-open, size + mtime only (baseline)     {stat_only * 1000:8.1f} ms  {n / stat_only:8.0f} files/s")
    print(f"indexed re-open, + ctime + 8 KiB header digest    {checked * 1000:8.1f} ms  {n / checked:8.0f} files/s"
          f"  {checked / stat_only:5.2f}x")


if __name__ == "__main__":
    main()
