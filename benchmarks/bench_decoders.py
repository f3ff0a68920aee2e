"""Decoder figures of issue 12, each against baselines measured in the same run.

Run: ``python benchmarks/bench_decoders.py [--repeats 3]`` (uses bench_load's cached compressed copies of
pancreas, made on first use; an HTJ2K copy is made with ``viewer.io.export``).

1. Series load per transfer syntax, ms/slice: SimpleITK (ImageSeriesReader), ours with both cores
   (``2p``), the app's mode (``app``: decoder processes only), ours in one process with imagecodecs
   (``1p``) and with pydicom's plugins only (``1p-pyd``: the decoders before this change).
2. JPEG 2000 where the time goes, ms per 512x512 slice: one frame decoded by OpenJPEG on one thread
   (imagecodecs' and pylibjpeg-openjpeg's builds), imagecodecs' OpenJPEG on two threads, GDCM through
   SimpleITK reading the single file, and the same slice as HTJ2K.
3. Ultrasound cine: pydicom-data's color3d_jpeg_baseline.dcm (120 frames 480x640 YBR_FULL_422 JPEG):
   SimpleITK vs ours vs pydicom.
4. Non-integer rescale: 100 CT slices rewritten with RescaleSlope 0.5 / intercept -1000.25 (float32
   volume): ours vs the same series with its integer rescale (int16), SimpleITK and pydicom.
5. A list of files vs their folder (``find_stacks``).
6. The first compressed series in a fresh process (imports, pool start, load): ours vs SimpleITK.
7. Scroll while decoding (app mode, warm pool): ms from ``load()`` to the first slices handed out, to a
   quarter and to half of the slices ready, and to the whole volume; SimpleITK's whole load for scale.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import bench_load as bl
from _common import ROOT, data_root, machine, median_time


def ours_one(files: list[Path], plugins_only: bool = False) -> np.ndarray:
    from viewer.io import fastcodecs

    keep = fastcodecs.decode_encapsulated
    if plugins_only:
        fastcodecs.decode_encapsulated = lambda ds, uid: None  # type: ignore[assignment]
    try:
        return bl.ours(files, workers=1)
    finally:
        fastcodecs.decode_encapsulated = keep  # type: ignore[assignment]


def htj2k_copy(src: list[Path]) -> list[Path]:
    from viewer.io.export import export_series

    d = bl.CACHE / "pancreas-htj2k"
    if not d.is_dir() or len(list(d.glob("*.dcm"))) != len(src):
        export_series([str(f) for f in src], str(d), "htj2k", overwrite=True)
    return sorted(d.glob("*.dcm"))


def series_table(sets: dict[str, list[Path]], repeats: int) -> None:
    print("\n## 1. series load, ms/slice (median of %d)" % repeats)
    print(f"{'series':14s} {'sitk':>7s} {'2p':>7s} {'app':>7s} {'1p':>7s} {'1p-pyd':>7s}  2p/sitk app/sitk "
          "1p/1p-pyd")
    for name, files in sets.items():
        n = len(files)
        ref = ours_one(files, plugins_only=True)
        for got in (bl.ours(files), bl.ours(files, pool_only=True), ours_one(files)):
            np.testing.assert_array_equal(got, ref)
        t = {k: median_time(fn, repeats) * 1e3 / n for k, fn in (
            ("sitk", lambda: bl.sitk_load(files[0].parent, files)), ("2p", lambda: bl.ours(files)),
            ("app", lambda: bl.ours(files, pool_only=True)), ("1p", lambda: ours_one(files)),
            ("pyd", lambda: ours_one(files, plugins_only=True)))}
        print(f"{name:14s} {t['sitk']:7.2f} {t['2p']:7.2f} {t['app']:7.2f} {t['1p']:7.2f} {t['pyd']:7.2f}  "
              f"{t['2p'] / t['sitk']:7.2f} {t['app'] / t['sitk']:8.2f} {t['1p'] / t['pyd']:9.2f}", flush=True)


def j2k_time(files: list[Path], htj2k: list[Path], repeats: int) -> None:
    import imagecodecs
    import pydicom
    import SimpleITK as sitk
    from openjpeg import decode as pylibjpeg_openjpeg_decode
    from pydicom.encaps import generate_frames

    pick = files[len(files) // 2 - 5:len(files) // 2 + 5]
    frames = [next(generate_frames(pydicom.dcmread(f).PixelData, number_of_frames=1)) for f in pick]
    hframes = [next(generate_frames(pydicom.dcmread(f).PixelData, number_of_frames=1))
               for f in htj2k[len(htj2k) // 2 - 5:len(htj2k) // 2 + 5]]
    n = len(frames)
    rows = {
        "imagecodecs OpenJPEG, 1 thread": lambda: [imagecodecs.jpeg2k_decode(b, numthreads=1) for b in frames],
        "pylibjpeg-openjpeg, 1 thread": lambda: [pylibjpeg_openjpeg_decode(b) for b in frames],
        "imagecodecs OpenJPEG, 2 threads": lambda: [imagecodecs.jpeg2k_decode(b, numthreads=2) for b in frames],
        "SimpleITK/GDCM, whole file": lambda: [sitk.GetArrayFromImage(sitk.ReadImage(str(f))) for f in pick],
        "HTJ2K (OpenJPH), 1 thread": lambda: [imagecodecs.htj2k_decode(b) for b in hframes],
    }
    print("\n## 2. JPEG 2000 lossless, where the time goes: ms per 512x512 slice (median of %d)" % repeats)
    for label, fn in rows.items():
        print(f"{label:34s} {median_time(fn, repeats) * 1e3 / n:7.2f}", flush=True)


def cine(repeats: int) -> None:
    import pydicom
    import SimpleITK as sitk
    from pydicom.data import get_testdata_file

    from viewer.io.load import SeriesLoader

    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    ours = SeriesLoader([path]).load(workers=1).array
    sk = sitk.GetArrayFromImage(sitk.ReadImage(path))
    pd = pydicom.dcmread(path).pixel_array
    same = np.array_equal(ours, pd)
    t_s = median_time(lambda: sitk.GetArrayFromImage(sitk.ReadImage(path)), repeats) * 1e3
    t_o = median_time(lambda: SeriesLoader([path]).load(workers=1), repeats) * 1e3
    t_p = median_time(lambda: pydicom.dcmread(path).pixel_array, max(1, repeats // 2)) * 1e3
    print("\n## 3. ultrasound cine color3d_jpeg_baseline.dcm (120 x 480x640 YBR_FULL_422 JPEG), ms per file")
    print(f"sitk {t_s:7.1f}  ours {t_o:7.1f}  pydicom {t_p:7.1f}   ours/sitk {t_o / t_s:.2f}  "
          f"ours == pydicom: {same}, max |ours - sitk| {int(np.abs(ours.astype(int) - sk).max())}")


def float_rescale(data: Path, repeats: int) -> None:
    import pydicom

    src = sorted((data / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
    d = bl.CACHE / "crc-float-rescale"
    if not d.is_dir() or len(list(d.glob("*.dcm"))) != len(src):
        d.mkdir(parents=True, exist_ok=True)
        for f in src:
            ds = pydicom.dcmread(f)
            ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-1000.25"
            ds.save_as(d / f.name)
    files = sorted(d.glob("*.dcm"))
    n = len(files)
    vol = bl.ours(files)
    assert vol.dtype == np.float32
    t = {k: median_time(fn, repeats) * 1e3 / n for k, fn in (
        ("ours", lambda: bl.ours(files)), ("int", lambda: bl.ours(src)),
        ("sitk", lambda: bl.sitk_load(d, files)), ("naive", lambda: bl.naive(files)))}
    print("\n## 4. non-integer rescale (crc, slope 0.5), ms/slice")
    print(f"ours float32 {t['ours']:.3f}  ours int16 (original) {t['int']:.3f}  sitk {t['sitk']:.3f}  "
          f"pydicom loop {t['naive']:.3f}   ours/sitk {t['ours'] / t['sitk']:.2f}  float/int {t['ours'] / t['int']:.2f}")


def file_list(data: Path, repeats: int) -> None:
    from viewer.io.series import find_stacks

    print("\n## 5. find_stacks: a list of files vs their folder, ms (median of %d)" % repeats)
    for name in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100"):
        folder = data / "ct" / name
        files = sorted(str(f) for f in folder.glob("*.dcm"))
        t_f = median_time(lambda: find_stacks(folder), repeats) * 1e3
        t_l = median_time(lambda: find_stacks(files), repeats) * 1e3
        print(f"{name:26s} folder {t_f:7.1f}  list {t_l:7.1f}  list/folder {t_l / t_f:.2f}")


COLD = r"""
import sys, time, glob, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[2])
t0 = time.perf_counter()
files = sorted(glob.glob(sys.argv[1] + "/*.dcm"))
if sys.argv[3] == "sitk":
    import SimpleITK as sitk
    r = sitk.ImageSeriesReader(); r.SetFileNames(files); sitk.GetArrayFromImage(r.Execute())
else:
    from viewer.io.load import SeriesLoader
    SeriesLoader(files).load()
print(time.perf_counter() - t0)
"""


def cold(folder: Path, repeats: int) -> None:
    def run(mode: str) -> float:
        res = subprocess.run([sys.executable, "-c", COLD, str(folder), str(ROOT), mode], capture_output=True,
                             text=True, check=True)
        return float(res.stdout.split()[-1]) * 1e3

    import statistics

    t_s = statistics.median(run("sitk") for _ in range(repeats))
    t_o = statistics.median(run("ours") for _ in range(repeats))
    print(f"\n## 6. first compressed series in a fresh process ({folder.name}, imports + pool start + load), ms")
    print(f"sitk {t_s:7.0f}  ours {t_o:7.0f}  ours/sitk {t_o / t_s:.2f}")


def progressive(files: list[Path], repeats: int) -> None:
    import statistics

    from viewer.io.load import SeriesLoader

    def once() -> list[float]:
        loader = SeriesLoader([str(f) for f in files], decode_in_pool=True)
        n, seen, marks = len(files), [0], []
        t0 = time.perf_counter()

        def on_slices(vol: np.ndarray, ks: list[int]) -> None:
            seen[0] += len(ks)
            now = (time.perf_counter() - t0) * 1e3
            while len(marks) < 3 and seen[0] >= (1, n // 4, n // 2)[len(marks)]:
                marks.append(now)

        loader.load(on_slices=on_slices)
        return marks + [(time.perf_counter() - t0) * 1e3]

    runs = [once() for _ in range(repeats)]
    med = [statistics.median(r[i] for r in runs) for i in range(4)]
    t_s = median_time(lambda: bl.sitk_load(files[0].parent, files), repeats) * 1e3
    print(f"\n## 7. scroll while decoding ({files[0].parent.name}, {len(files)} slices, app mode), ms after load()")
    print(f"first slices {med[0]:7.0f}  1/4 ready {med[1]:7.0f}  1/2 ready {med[2]:7.0f}  all {med[3]:7.0f}   "
          f"sitk whole load {t_s:7.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = data_root()
    print(f"# bench_decoders  {machine()}  load average {os.getloadavg()[0]:.2f}")
    src = sorted((data / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))
    sets = bl.compressed_copies(src)
    sets["htj2k"] = htj2k_copy(src)
    sets["totalseg-j2k"] = sorted((data / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    cold(bl.CACHE / "pancreas-j2k", args.repeats)
    series_table(sets, args.repeats)
    j2k_time(sets["j2k"], sets["htj2k"], args.repeats)
    cine(args.repeats)
    float_rescale(data, args.repeats)
    file_list(data, args.repeats)
    progressive(sets["jpeg-ll"], args.repeats)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
