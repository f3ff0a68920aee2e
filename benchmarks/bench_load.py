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
  ours-idx  ``SeriesLoader(stack.files, records=stack.records).load()`` with the stack and its header
          records taken from a header index built beforehand (``find_stacks(folder, index=...)``), as
          ``load_stack`` does and as the viewer does after indexing a folder; the scan itself is not
          timed here (``bench_scan.py``: re-opening an indexed folder)
  ours-cold ``SeriesLoader(files).load()`` from a bare file list: every header is read first
Compressed: RLE, JPEG-LS lossless and JPEG 2000 lossless copies of pancreas made with pydicom's own
encoders, a JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) copy made with SimpleITK/GDCM (pydicom cannot
encode it), all cached in the temp folder and checked against the original values, plus
``ct/totalseg-ct-j2k-20``. Ours single-process, ours with both cores (warm pool; workers write into a
shared-memory volume), the same with slices pickled back (the path without /dev/shm), and the app's mode
(``decode_in_pool``: the pool has both cores, the calling process only waits) vs SimpleITK.
Memory: peak RSS growth of a load in a fresh subprocess vs the int16 voxel bytes.
Which floor the uncompressed target means is discussed in RESULTS.md: product.md's figures for it match
floor-k (fresh memory per file), not the loop that discards each file's bytes before the next read.
Targets: ours <= 1.3x floor (uncompressed); <= 0.6x SimpleITK (compressed); peak <= 1.2x int16 bytes +
fixed overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

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


def first_slice_ms(files: list[Path] | list[str], records: Any = None, pool_only: bool = False) -> float:
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
        SeriesLoader([str(f) for f in files], records=records, decode_in_pool=pool_only).load(first_slice=cb)
    except Stop:  # a callback's exception reaches the caller unchanged
        pass
    return got[0] * 1e3


def first_slice_settled(files: list[Path] | list[str], **kw: Any) -> float:
    """:func:`first_slice_ms`, then wait until the pool has finished the chunks it had started (the
    stopped load leaves them running), so that the next measurement starts with idle workers."""
    import time

    from viewer.io.load import warm_pool

    ms = first_slice_ms(files, **kw)
    time.sleep(0.3)
    warm_pool()
    return ms


def naive(files: list[Path]) -> np.ndarray:
    import pydicom

    dss = [pydicom.dcmread(f) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, dtype=float))))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


def assert_same_slices(got: np.ndarray, ref: np.ndarray) -> None:
    """``got`` (the loader's display order: Im 1 is the lowest InstanceNumber / the cranial end) holds the
    same slices as ``ref`` (the naive loop's ascending position along the normal), in either direction."""
    if got.shape == ref.shape and not np.array_equal(got, ref):
        ref = ref[::-1]
    np.testing.assert_array_equal(got, ref)


def sitk_load(folder: Path, files: list[Path]) -> np.ndarray:
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames([str(f) for f in files])
    return sitk.GetArrayFromImage(r.Execute())


def ours(files: list[Path], workers: int | None = None, *, shared: bool = True,
         pool_only: bool = False) -> np.ndarray:
    from viewer.io import decode_pool, load

    keep = decode_pool.SHM_DIR
    if not shared:
        decode_pool.SHM_DIR = None
    try:
        return load.SeriesLoader([str(f) for f in files], decode_in_pool=pool_only).load(workers=workers).array
    finally:
        decode_pool.SHM_DIR = keep


def indexed_stack(folder: Path, index_dir: Path) -> Any:
    """The folder's largest stack, from a header index built in ``index_dir`` (the viewer's state after
    it has indexed the folder)."""
    from viewer.io.index import Index
    from viewer.io.series import find_stacks

    with Index(index_dir / f"{folder.name}.sqlite") as idx:
        find_stacks(folder, index=idx)
        result = find_stacks(folder, index=idx)
    assert result.headers_read == 0
    return max(result.stacks, key=lambda s: len(s.files))


def ours_indexed(stack: Any) -> np.ndarray:
    from viewer.io.load import SeriesLoader

    return SeriesLoader(stack.files, records=stack.records).load().array


def compressed_copies(src: list[Path]) -> dict[str, list[Path]]:
    import pydicom
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    out = {}
    for name, uid in (("rle", RLELossless), ("jpegls", JPEGLSLossless), ("jpeg-ll", None),
                      ("j2k", JPEG2000Lossless)):
        d = CACHE / f"pancreas-{name}"
        if not d.is_dir() or len(list(d.glob("*.dcm"))) != len(src):
            d.mkdir(parents=True, exist_ok=True)
            for f in src:
                if uid is None:
                    jpeg_lossless_copy(f, d / f.name)
                    continue
                ds = pydicom.dcmread(f)
                ds.compress(uid)
                ds.save_as(d / f.name)
        out[name] = sorted(d.glob("*.dcm"))
    return out


def jpeg_lossless_copy(src: Path, dst: Path) -> None:
    """``src`` with its pixel data re-encoded as JPEG Lossless SV1 by SimpleITK (GDCM), checked exact."""
    import copy

    import pydicom
    import SimpleITK as sitk
    from pydicom.uid import JPEGLosslessSV1

    ds = pydicom.dcmread(src)
    stored = ds.pixel_array
    tmp = dst.with_suffix(".sitk.dcm")
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")  # GDCM: lossless process 14 SV1 for integer images
    writer.Execute(sitk.GetImageFromArray(stored.astype(np.uint16 if stored.dtype.kind == "u" else np.int16)))
    enc = pydicom.dcmread(tmp)
    tmp.unlink()
    if enc.file_meta.TransferSyntaxUID != JPEGLosslessSV1:
        sys.exit(f"SimpleITK wrote {enc.file_meta.TransferSyntaxUID}, not JPEG Lossless SV1")
    out = copy.deepcopy(ds)
    out.PixelData = enc.PixelData
    out["PixelData"].VR = "OB"
    out.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    out.save_as(dst, implicit_vr=False, little_endian=True, enforce_file_format=True)
    if not np.array_equal(pydicom.dcmread(dst).pixel_array, stored):
        sys.exit(f"{dst}: JPEG Lossless copy does not decode to the original values")


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
pool = sys.argv[3] == 'pool'
if pool:
    from viewer.io.load import warm_pool
    warm_pool()
loader = SeriesLoader(files, decode_in_pool=pool)
base = hwm()
tracemalloc.start()
vol = loader.load(workers=None if pool else 1)
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
    print(f"# bench_load  {machine()}  load average {os.getloadavg()[0]:.2f}")
    if args.memory_only:
        return memory(data)
    print("\n## uncompressed, ms/slice (median of %d)" % args.repeats)
    print(f"{'series':24s} {'floor':>6s} {'floor-k':>7s} {'floor+v':>7s} {'naive':>6s} {'sitk':>6s} "
          f"{'idx':>6s} {'cold':>6s}  idx/floor cold/floor idx/floor-k idx/floor+v cold/floor+v naive/floor "
          f"sitk/floor")
    index_dir = Path(tempfile.mkdtemp(prefix="bench-load-index-"))
    stacks = {}
    for name in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100"):
        folder = data / "ct" / name
        files = sorted(folder.glob("*.dcm"))
        n = len(files)
        stack = stacks[name] = indexed_stack(folder, index_dir)
        assert sorted(stack.files) == [str(f) for f in files]
        ref = naive(files)  # also warms the page cache
        assert_same_slices(ours(files), ref)
        assert_same_slices(ours_indexed(stack), ref)
        t = {k: median_time(fn, args.repeats) * 1e3 / n for k, fn in (
            ("floor", lambda: floor(files)), ("floork", lambda: floor_kept(files)),
            ("floorv", lambda: floor_volume(files)),
            ("naive", lambda: naive(files)),
            ("sitk", lambda: sitk_load(folder, files)), ("idx", lambda: ours_indexed(stack)),
            ("cold", lambda: ours(files)))}
        print(f"{name:24s} {t['floor']:6.3f} {t['floork']:7.3f} {t['floorv']:7.3f} {t['naive']:6.3f} "
              f"{t['sitk']:6.3f} {t['idx']:6.3f} {t['cold']:6.3f}  {t['idx'] / t['floor']:9.2f} "
              f"{t['cold'] / t['floor']:10.2f} {t['idx'] / t['floork']:11.2f} {t['idx'] / t['floorv']:11.2f} "
              f"{t['cold'] / t['floorv']:12.2f} "
              f"{t['naive'] / t['floor']:11.2f} {t['sitk'] / t['floor']:10.2f}")
    shutil.rmtree(index_dir, ignore_errors=True)

    print("\n## compressed, ms/slice (median of %d; pool warm after the first call)" % args.repeats)
    print("  1p: one process; 2p: both cores, slices written into shared memory; 2p-pkl: both cores, slices")
    print("  pickled back; app: decode_in_pool (pool has both cores, caller waits)")
    src = sorted((data / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))
    sets = compressed_copies(src)
    sets["totalseg-j2k"] = sorted((data / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    print(f"{'series':14s} {'sitk':>7s} {'1p':>7s} {'2p':>7s} {'2p-pkl':>7s} {'app':>7s}  2p/sitk 2p-pkl/sitk "
          "app/sitk 1p/sitk")
    for name, files in sets.items():
        n = len(files)
        ref = ours(files, workers=1)  # starts the decoder pool
        for kw in ({}, {"shared": False}, {"pool_only": True}):
            np.testing.assert_array_equal(ours(files, **kw), ref)  # type: ignore[arg-type]
        t_s = median_time(lambda: sitk_load(files[0].parent, files), args.repeats) * 1e3 / n
        t_1 = median_time(lambda: ours(files, workers=1), args.repeats) * 1e3 / n
        t_o = median_time(lambda: ours(files), args.repeats) * 1e3 / n
        t_p = median_time(lambda: ours(files, shared=False), args.repeats) * 1e3 / n
        t_a = median_time(lambda: ours(files, pool_only=True), args.repeats) * 1e3 / n
        print(f"{name:14s} {t_s:7.2f} {t_1:7.2f} {t_o:7.2f} {t_p:7.2f} {t_a:7.2f}  {t_o / t_s:7.2f} "
              f"{t_p / t_s:11.2f} {t_a / t_s:8.2f} {t_1 / t_s:7.2f}")

    print("\n## first slice delivered (ms from SeriesLoader() to the first_slice callback, median)")
    import statistics

    pan = stacks["pancreas-ct-philips-134"]
    for name, files, kw in (("pancreas", src, {}), ("pancreas, index", pan.files, {"records": pan.records}),
                            ("pancreas-j2k", sets["j2k"], {}),
                            ("pancreas-j2k, app", sets["j2k"], {"pool_only": True}),
                            ("totalseg-j2k", sets["totalseg-j2k"], {}),
                            ("totalseg-j2k, app", sets["totalseg-j2k"], {"pool_only": True})):
        ms = statistics.median(first_slice_settled(files, **kw) for _ in range(args.repeats))
        print(f"{name:20s} {ms:7.1f} ms")

    memory(data)


def memory(data: Path) -> None:
    print("\n## peak memory of a load (fresh process: peak RSS growth during load(), tracemalloc peak)")
    folders = {n: data / "ct" / n for n in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100")}
    runs = [(name, folder, "1") for name, folder in folders.items()]
    if (CACHE / "pancreas-j2k").is_dir():
        runs.append(("pancreas-j2k (1 process)", CACHE / "pancreas-j2k", "1"))
        runs.append(("pancreas-j2k (pool, shm)", CACHE / "pancreas-j2k", "pool"))
    for name, folder, mode in runs:
        res = subprocess.run([sys.executable, "-c", MEM_SCRIPT, str(folder), str(ROOT), mode],
                             capture_output=True, text=True, check=True)
        grow, traced, voxels = (int(v) for v in res.stdout.split())
        print(f"{name:28s} RSS growth {grow / 2**20:6.1f} MiB, tracemalloc peak {traced / 2**20:6.1f} MiB, "
              f"int16 voxels {voxels / 2**20:6.1f} MiB: ratios {grow / voxels:.2f} / {traced / voxels:.2f}")


if __name__ == "__main__":
    main()
