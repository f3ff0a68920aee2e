"""4D series: reading every volume of an fMRI mosaic run through one loader, against each time point loaded
as its own series (what the browser offered when every mosaic was a row of its own).

Run: ``python benchmarks/bench_4d.py [--volumes 60] [--repeats 5]``. The real 6-mosaic Siemens run in
``dcm_qa/sag/In/2_fmri_SagAP`` is copied ``--volumes`` times round into a temporary folder (new
SOPInstanceUIDs, AcquisitionNumber 1..N), so the scan finds one 4D stack of N time points x 36 slices.

Figures (medians over ``--repeats``; ratios against baselines measured in this same run):

- baseline: ``load_stack`` of one time point alone (its own header pass and CSA parse), ms per volume;
- ``stack_loader`` header pass of the whole 4D stack with the scan's records, ms (once per series);
- ``SeriesLoader.load(volume=k)`` per volume after that, ms, and its ratio to the baseline;
- the volume axis (one small header read per volume: b-values, echo times ...), ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import data_root, machine, median_time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=60, help="time points in the synthetic run (default 60)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import pydicom
    from pydicom.uid import generate_uid

    from viewer.io.load import load_stack, stack_loader
    from viewer.io.series import find_stacks

    src = sorted((data_root() / "dcm_qa" / "sag" / "In" / "2_fmri_SagAP").glob("*.dcm"))
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(args.volumes):
            ds = pydicom.dcmread(src[t % len(src)])
            ds.SOPInstanceUID = generate_uid()
            ds.AcquisitionNumber = t + 1
            ds.InstanceNumber = t + 1
            ds.save_as(Path(tmp) / f"{t:04d}.dcm")
        (stack,) = find_stacks(tmp).stacks
        one = find_stacks(str(Path(tmp) / "0003.dcm")).stacks[0]
        assert stack.volumes == args.volumes, stack.volumes
        base = median_time(lambda: load_stack(one), args.repeats)
        header = median_time(lambda: stack_loader(stack), args.repeats)
        loader = stack_loader(stack)
        t = time.perf_counter()
        axis = loader.volume_axis
        axis_s = time.perf_counter() - t
        assert axis is not None and axis.count == args.volumes
        per = []
        for v in range(args.volumes):
            t = time.perf_counter()
            loader.load(volume=v)
            per.append(time.perf_counter() - t)
        per.sort()
        per_volume = per[len(per) // 2]
    print(machine())
    print(f"4D mosaic run: {args.volumes} time points x 36 slices 64x64 (real Siemens mosaics, copied)")
    print(f"baseline: one time point loaded as its own series     {base * 1e3:8.1f} ms")
    print(f"header pass of the 4D stack (scan records, once)     {header * 1e3:8.1f} ms "
          f"({header / base:.2f}x one time point alone)")
    print(f"one more volume through the same loader (median)     {per_volume * 1e3:8.1f} ms "
          f"({per_volume / base:.2f}x the baseline)")
    print(f"volume axis ({args.volumes} small header reads)                 {axis_s * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
