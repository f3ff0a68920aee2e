"""Lossless codecs on the shared CTs: compression ratio, encode and decode speed, against gzip and zstd
of the raw pixels (what a generic compressor makes of the same bytes).

Run: ``python benchmarks/bench_codecs.py [--repeats 3]``. One thread, in this process, frame by frame
(the export's encoders, the loader's decoders). Ratio = raw stored bytes / compressed bytes; MB/s of
raw pixels. Every codec's output is decoded and checked equal to the input before it is timed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import warnings

import numpy as np

from _common import data_root, machine, median_time


def stored_slices(folder) -> list[np.ndarray]:
    import pydicom

    return [pydicom.dcmread(f).pixel_array for f in sorted(folder.glob("*.dcm"))]


def codecs(bits_stored: int, signed: bool):
    import imagecodecs
    import zstandard

    from viewer.io.export import encode_frame

    def dec_jpeg(b, shape, dtype):
        return _signed(imagecodecs.jpeg8_decode(b), dtype, bits_stored)

    def dec_jls(b, shape, dtype):
        return _signed(imagecodecs.jpegls_decode(b), dtype, bits_stored)

    def dec_rle(b, shape, dtype):
        raw = imagecodecs.dicomrle_decode(b, ">u2")
        return np.frombuffer(raw, ">u2").reshape(shape).astype(np.uint16).view(dtype)

    zc3, zc19, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()

    def raw(fn):
        return lambda b, shape, dtype: np.frombuffer(fn(b), dtype).reshape(shape)

    return {
        "rle": (lambda a: encode_frame(a, "rle", bits_stored, signed), dec_rle),
        "jpeg-ls": (lambda a: encode_frame(a, "jpeg-ls", bits_stored, signed), dec_jls),
        "jpeg-lossless": (lambda a: encode_frame(a, "jpeg-lossless", bits_stored, signed), dec_jpeg),
        "j2k": (lambda a: encode_frame(a, "j2k", bits_stored, signed),
                lambda b, s, d: imagecodecs.jpeg2k_decode(b, numthreads=1)),
        "htj2k": (lambda a: encode_frame(a, "htj2k", bits_stored, signed), lambda b, s, d: imagecodecs.htj2k_decode(b)),
        "gzip -6": (lambda a: gzip.compress(a.tobytes(), 6), raw(gzip.decompress)),
        "zstd -3": (lambda a: zc3.compress(a.tobytes()), raw(zd.decompress)),
        "zstd -19": (lambda a: zc19.compress(a.tobytes()), raw(zd.decompress)),
    }


def _signed(arr: np.ndarray, dtype, bits: int) -> np.ndarray:
    if np.dtype(dtype).kind == "i" and arr.dtype.kind == "u":
        arr = arr.view(dtype)
        shift = 8 * arr.dtype.itemsize - bits
        if shift:
            arr = (arr << shift) >> shift
    return arr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import pydicom

    print(f"# bench_codecs  {machine()}  load average {os.getloadavg()[0]:.2f}")
    for name in ("pancreas-ct-philips-134", "crc-chest-ct-ge-100"):
        folder = data_root() / "ct" / name
        slices = stored_slices(folder)
        ds = pydicom.dcmread(next(iter(sorted(folder.glob("*.dcm")))), stop_before_pixels=True)
        bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
        raw_bytes = sum(a.nbytes for a in slices)
        print(f"\n## {name}: {len(slices)} slices {slices[0].shape}, {slices[0].dtype}, BitsStored {bits}, "
              f"raw {raw_bytes / 1e6:.1f} MB")
        print(f"{'codec':14s} {'ratio':>6s} {'enc MB/s':>9s} {'dec MB/s':>9s}  {'enc ms/sl':>9s} {'dec ms/sl':>9s}")
        for codec, (enc, dec) in codecs(bits, signed).items():
            coded = [enc(a) for a in slices]
            for a, b in zip(slices, coded):
                back = np.asarray(dec(b, a.shape, a.dtype)).reshape(a.shape)
                if not np.array_equal(back.astype(np.int32), a.astype(np.int32)):
                    raise SystemExit(f"{codec}: not lossless on {name}")
            t_e = median_time(lambda: [enc(a) for a in slices], args.repeats)
            t_d = median_time(lambda: [dec(b, a.shape, a.dtype) for a, b in zip(slices, coded)], args.repeats)
            ratio = raw_bytes / sum(len(b) for b in coded)
            n = len(slices)
            print(f"{codec:14s} {ratio:6.2f} {raw_bytes / 1e6 / t_e:9.0f} {raw_bytes / 1e6 / t_d:9.0f}  "
                  f"{t_e * 1e3 / n:9.2f} {t_d * 1e3 / n:9.2f}", flush=True)


if __name__ == "__main__":
    main()
