"""Series load speed and memory, as ratios against baselines measured in the same run.

Run: ``python benchmarks/bench_load.py [--repeats 5]`` (warm page cache: every method reads the same files
once before timing).

Uncompressed (``ct/pancreas-ct-philips-134``, ``ct/crc-chest-ct-ge-100``), ms/slice:
  floor   read each file's bytes + ``np.frombuffer`` view of the pixel data (no sort, no rescale)
  floor-k the floor keeping every slice's bytes alive (views into all files' data, as any loader holds
          them): fresh memory per file, page faults included
  floor+v the floor, copying each slice into a new int16 volume (what any loader that returns a volume
          must at least do: the first touch of a fresh 67 MB array costs about as much as the reads)
  naive   ``pydicom.dcmread`` every file, sort by position along the normal, rescale (float64 stack)
  sitk    SimpleITK ImageSeriesReader (GDCM file-name order)
  ours    ``viewer.io.load_series``
Compressed: RLE, JPEG-LS lossless and JPEG 2000 lossless copies of pancreas made with pydicom's own
encoders (cached in the temp folder), plus ``ct/totalseg-ct-j2k-20``: ours (both cores, warm pool) and
ours single-process vs SimpleITK.
Memory: peak RSS growth of a load in a fresh subprocess vs the int16 voxel bytes.
Targets: ours <= 1.3x floor (uncompressed); <= 0.6x SimpleITK (compressed); peak <= 1.2x int16 bytes +
fixed overhead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from _common import ROOT, data_root, machine, median_time

CACHE = Path(tempfile.gettempdir()) / "viewer-bench-load"


def floor(files: list[Path]) -> None:
    for f in files:
        b = f.read_bytes()
        np.frombuffer(b, dtype=np.int16, count=512 * 512, offset=len(b) - 512 * 512 * 2)


def floor_kept(files: list[Path]) -> list[np.ndarray]:
    out = []
    for f in files:
        b = f.read_bytes()
        out.append(np.frombuffer(b, dtype=np.int16, count=512 * 512, offset=len(b) - 512 * 512 * 2))
    return out


def floor_volume(files: list[Path]) -> np.ndarray:
    vol = np.empty((len(files), 512, 512), dtype=np.int16)
    for k, f in enumerate(files):
        b = f.read_bytes()
        vol[k] = np.frombuffer(b, dtype=np.int16, count=512 * 512, offset=len(b) - 512 * 512 * 2).reshape(512, 512)
    return vol


def first_slice_ms(files: list[Path]) -> float:
    """Time from constructing the loader to the first_slice callback (headers + one slice)."""
    import time

    from viewer.io.load import SeriesLoader

    t0 = time.perf_counter()
    got: list[float] = []

    class Stop(Exception):
        pass

    def cb(k: int, arr: np.ndarray) -> None:
        got.append(time.perf_counter() - t0)
        raise Stop

    try:
        SeriesLoader([str(f) for f in files]).load(first_slice=cb)
    except Stop:
        pass
    return got[0] * 1e3


def naive(files: list[Path]) -> np.ndarray:
    import pydicom

    dss = [pydicom.dcmread(f) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, dtype=float))))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


def sitk_load(folder: Path, files: list[Path]) -> np.ndarray:
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames([str(f) for f in files])
    return sitk.GetArrayFromImage(r.Execute())


def ours(files: list[Path], workers: int | None = None) -> np.ndarray:
    from viewer.io.load import SeriesLoader

    return SeriesLoader([str(f) for f in files]).load(workers=workers).array


def compressed_copies(src: list[Path]) -> dict[str, list[Path]]:
    import pydicom
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    out = {}
    for name, uid in (("rle", RLELossless), ("jpegls", JPEGLSLossless), ("j2k", JPEG2000Lossless)):
        d = CACHE / f"pancreas-{name}"
        if not d.is_dir() or len(list(d.glob("*.dcm"))) != len(src):
            d.mkdir(parents=True, exist_ok=True)
            for f in src:
                ds = pydicom.dcmread(f)
                ds.compress(uid)
                ds.save_as(d / f.name)
        out[name] = sorted(d.glob("*.dcm"))
    return out


MEM_SCRIPT = r"""
import resource, sys, tracemalloc
sys.path.insert(0, sys.argv[2])
from viewer.io.load import SeriesLoader
import glob, numpy as np

def hwm():
    # VmHWM is per address space (reset by exec); ru_maxrss is inherited from a big parent across exec.
    try:
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

files = sorted(glob.glob(sys.argv[1] + '/*.dcm'))
loader = SeriesLoader(files)
base = hwm()
tracemalloc.start()
vol = loader.load(workers=1)
traced = tracemalloc.get_traced_memory()[1]
print(hwm() - base, traced, vol.array.size * 2)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-only", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = data_root()
    print(f"# bench_load  {machine()}")
    if args.memory_only:
        return memory(data)
    print("\n## uncompressed, ms/slice (median of %d)" % args.repeats)
    print(f"{'series':24s} {'floor':>6s} {'floor-k':>7s} {'floor+v':>7s} {'naive':>6s} {'sitk':>6s} {'ours':>6s}"
          "  ours/floor ours/floor-k ours/floor+v naive/floor sitk/floor")
    for name in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100"):
        folder = data / "ct" / name
        files = sorted(folder.glob("*.dcm"))
        n = len(files)
        np.testing.assert_array_equal(ours(files), naive(files))  # also warms the page cache
        t = {k: median_time(fn, args.repeats) * 1e3 / n for k, fn in (
            ("floor", lambda: floor(files)), ("floork", lambda: floor_kept(files)),
            ("floorv", lambda: floor_volume(files)),
            ("naive", lambda: naive(files)),
            ("sitk", lambda: sitk_load(folder, files)), ("ours", lambda: ours(files)))}
        print(f"{name:24s} {t['floor']:6.3f} {t['floork']:7.3f} {t['floorv']:7.3f} {t['naive']:6.3f} "
              f"{t['sitk']:6.3f} {t['ours']:6.3f}  {t['ours'] / t['floor']:10.2f} {t['ours'] / t['floork']:12.2f} "
              f"{t['ours'] / t['floorv']:12.2f} {t['naive'] / t['floor']:11.2f} {t['sitk'] / t['floor']:10.2f}")

    print("\n## compressed, ms/slice (median of %d; pool warm after the first call)" % args.repeats)
    src = sorted((data / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))
    sets = compressed_copies(src)
    sets["totalseg-j2k"] = sorted((data / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    print(f"{'series':14s} {'sitk':>7s} {'ours-1p':>8s} {'ours':>7s}  ours/sitk ours-1p/sitk")
    for name, files in sets.items():
        n = len(files)
        ours(files)  # starts the decoder pool
        t_s = median_time(lambda: sitk_load(files[0].parent, files), args.repeats) * 1e3 / n
        t_1 = median_time(lambda: ours(files, workers=1), args.repeats) * 1e3 / n
        t_o = median_time(lambda: ours(files), args.repeats) * 1e3 / n
        print(f"{name:14s} {t_s:7.2f} {t_1:8.2f} {t_o:7.2f}  {t_o / t_s:9.2f} {t_1 / t_s:12.2f}")

    print("\n## first slice delivered (ms from SeriesLoader() to the first_slice callback, median)")
    for name, files in (("pancreas", src), ("pancreas-j2k", sets["j2k"]), ("totalseg-j2k", sets["totalseg-j2k"])):
        import statistics

        print(f"{name:14s} {statistics.median(first_slice_ms(files) for _ in range(args.repeats)):7.1f} ms")

    memory(data)


def memory(data: Path) -> None:
    print("\n## peak memory of a load (fresh process: peak RSS growth during load(), tracemalloc peak)")
    folders = {n: data / "ct" / n for n in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100")}
    if (CACHE / "pancreas-j2k").is_dir():
        folders["pancreas-j2k (1 process)"] = CACHE / "pancreas-j2k"
    for name, folder in folders.items():
        res = subprocess.run([sys.executable, "-c", MEM_SCRIPT, str(folder), str(ROOT)],
                             capture_output=True, text=True, check=True)
        grow, traced, voxels = (int(v) for v in res.stdout.split())
        print(f"{name:28s} RSS growth {grow / 2**20:6.1f} MiB, tracemalloc peak {traced / 2**20:6.1f} MiB, "
              f"int16 voxels {voxels / 2**20:6.1f} MiB: ratios {grow / voxels:.2f} / {traced / voxels:.2f}")


if __name__ == "__main__":
    main()
