"""Lossless re-encoding of a series into a new folder, verified bit-exact after writing.

Each file's stored values are decoded (:mod:`viewer.io.decode`), encoded frame by frame with the chosen
lossless codec, written atomically (a temporary file in the target folder, fsync, rename), read back and
decoded with pydicom's own decoders (an implementation other than the one that encoded it) and compared
with the original values; a file that does not compare equal is removed and the export fails.

UIDs: a lossless change of transfer syntax keeps the SOP Instance (PS3.5 10 and PS3.4 C.4.1.2.2: the
same values in another encoding are the same instance), so the copy keeps every UID, as dcmcjpeg and
gdcmconv do; a PACS receiving both keeps one. With a de-identifying ``transform`` (the caller's), that
transform decides the UIDs (the Basic Profile remaps them). The source files are never overwritten.

Codecs (imagecodecs for all but RLE, whose segments are PackBits rows; PS3.5 Annex G):

============== ================================= ==============================
name           transfer syntax                   encoder
============== ================================= ==============================
rle            1.2.840.10008.1.2.5 RLE Lossless  imagecodecs PackBits per byte plane
jpeg-ls        1.2.840.10008.1.2.4.80            CharLS (NEAR 0)
j2k            1.2.840.10008.1.2.4.90            OpenJPEG, reversible 5/3 wavelet
htj2k          1.2.840.10008.1.2.4.201           OpenJPH, reversible
jpeg-lossless  1.2.840.10008.1.2.4.70 (SV1)      libjpeg-turbo, predictor 1
============== ================================= ==============================
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.atomic import write_atomically
from viewer.io.errors import LoadCancelled, LoadError

CODECS: dict[str, str] = {
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "htj2k": "1.2.840.10008.1.2.4.201",
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
}


class ExportError(LoadError):
    """The export cannot start or a file failed; the message names the file and the reason."""


@dataclass
class ExportReport:
    """What :func:`export_series` wrote and measured."""

    codec: str
    transfer_syntax: str
    written: list[str] = field(default_factory=list)
    raw_bytes: int = 0        # the stored pixel values, uncompressed (frames x rows x cols x samples x bytes)
    encoded_bytes: int = 0    # the compressed frames as written
    source_bytes: int = 0     # the source files' pixel data as they were (compressed or not)
    encode_s: float = 0.0     # time in the encoder
    verify_s: float = 0.0     # reading back, decoding with pydicom and comparing
    total_s: float = 0.0

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.encoded_bytes if self.encoded_bytes else 0.0

    def summary(self) -> str:
        mb = self.raw_bytes / 1e6
        return (f"{len(self.written)} file(s) written as {self.codec} ({self.transfer_syntax}); "
                f"pixels {mb:.1f} MB -> {self.encoded_bytes / 1e6:.1f} MB, ratio {self.ratio:.2f}:1; "
                f"encode {mb / self.encode_s if self.encode_s else 0:.0f} MB/s, "
                f"verify (read back + decode + compare) {mb / self.verify_s if self.verify_s else 0:.0f} MB/s; "
                f"every file verified bit-exact; {self.total_s:.1f} s in all")


Progress = Callable[[int, int], None]
Transform = Callable[[Any], Any]


def export_series(files: Sequence[str], out_dir: str, codec: str, *, transform: Transform | None = None,
                  rename: bool = False, overwrite: bool = False, progress: Progress | None = None,
                  cancel: Callable[[], bool] | None = None) -> ExportReport:
    """Write a losslessly re-encoded copy of each of ``files`` into ``out_dir``.

    Parameters
    ----------
    codec
        One of :data:`CODECS`.
    transform
        Applied to each pydicom Dataset before it is written and returns the dataset to write (the
        caller's de-identification); its pixel values must stay as they are (checked).
    rename
        Name the copies IMG00001.dcm, ... instead of the source names (which may carry a patient's name).
    overwrite
        Replace existing files in ``out_dir`` (never a source file); without it an existing one stops
        the export before anything is written.

    Raises
    ------
    ExportError
        Unknown codec, a target that is a source, an existing target, a file that cannot be decoded or
        encoded, or a copy that does not decode to the original values (that copy is removed).
    LoadCancelled
        ``cancel()`` returned True (files written so far stay; each is complete and verified).
    """
    if codec not in CODECS:
        raise ExportError(f"unknown codec {codec!r}: choose one of {', '.join(CODECS)}")
    if not files:
        raise ExportError("nothing to export: no files")
    t_start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    sources = {os.path.realpath(f) for f in files}
    targets = _target_names(files, out_dir, rename)
    for dst in targets:
        if os.path.realpath(dst) in sources:
            raise ExportError(f"{dst}: is one of the source files; choose another --out folder")
        if os.path.exists(dst) and not overwrite:
            raise ExportError(f"{dst}: exists already (use overwrite to replace it)")
    report = ExportReport(codec, CODECS[codec])
    for n, (src, dst) in enumerate(zip(files, targets)):
        if cancel is not None and cancel():
            raise LoadCancelled("export cancelled")
        _export_one(src, dst, codec, transform, report)
        if progress is not None:
            progress(n + 1, len(files))
    report.total_s = time.perf_counter() - t_start
    return report


def _target_names(files: Sequence[str], out_dir: str, rename: bool) -> list[str]:
    names: list[str] = []
    used: set[str] = set()
    for n, f in enumerate(files):
        name = f"IMG{n + 1:05d}.dcm" if rename else os.path.basename(f)
        if name in used:  # two sources of one name (from different folders)
            stem, ext = os.path.splitext(name)
            name = f"{stem}_{n + 1}{ext}"
        used.add(name)
        names.append(os.path.join(out_dir, name))
    return names


def _export_one(src: str, dst: str, codec: str, transform: Transform | None, report: ExportReport) -> None:
    from pydicom.encaps import encapsulate

    from viewer.io.decode import decode_frames
    from viewer.io.rawread import read_full_dataset

    ds = read_full_dataset(src)
    stored = decode_frames(ds, src)  # (frames, rows, cols[, 3]) stored values
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits_allocated = int(ds.get("BitsAllocated", 16))
    if spp == 1 and not photometric.startswith("MONOCHROME") or spp == 3 and photometric != "RGB" or (
            spp not in (1, 3)) or bits_allocated not in (8, 16) or (spp == 3 and stored.dtype != np.uint8):
        raise ExportError(f"{src}: {photometric or 'no'} photometric interpretation with {spp} sample(s) of "
                          f"{bits_allocated} bits: lossless export handles grey (8/16-bit) and 8-bit RGB")
    bits_stored = min(int(ds.get("BitsStored", bits_allocated) or bits_allocated), bits_allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    report.source_bytes += len(ds.PixelData) if "PixelData" in ds else 0
    t0 = time.perf_counter()
    frames = [encode_frame(f, codec, bits_stored, signed) for f in stored]
    report.encode_s += time.perf_counter() - t0
    out = transform(ds) if transform is not None else ds
    out.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in out:
            delattr(out, kw)
    out.file_meta.TransferSyntaxUID = CODECS[codec]
    if spp == 3:
        out.PlanarConfiguration = 0  # decoders return interleaved RGB; each codec writes it so
    write_atomically(dst, lambda tmp: out.save_as(tmp, enforce_file_format=True))
    t1 = time.perf_counter()
    try:
        _verify(dst, stored)
    except Exception:
        os.unlink(dst)
        raise
    report.verify_s += time.perf_counter() - t1
    report.raw_bytes += stored.size * (bits_allocated // 8)
    report.encoded_bytes += sum(len(f) for f in frames)
    report.written.append(dst)


def encode_frame(frame: np.ndarray, codec: str, bits_stored: int, signed: bool) -> bytes:
    """One frame of stored values (rows, cols) or (rows, cols, 3) as a ``codec`` bit stream.

    Signed values go to the JPEG family as their BitsStored-bit two's complement patterns (unsigned
    samples of that precision: PS3.5 8.2.1), which decoders sign-extend with PixelRepresentation."""
    import imagecodecs

    unsigned = _as_unsigned_bits(frame, bits_stored) if signed else frame
    if codec == "rle":
        return rle_encode(frame)
    if codec == "jpeg-ls":
        if signed and bits_stored < 8 * frame.dtype.itemsize:
            # JPEG-LS cannot say "signed": readers sign-extend from the stream's precision, which
            # imagecodecs sets from the container; pydicom's encoder (pyjpegls) writes BitsStored.
            from pydicom.pixels.encoders.base import JPEGLSLosslessEncoder

            return bytes(JPEGLSLosslessEncoder.encode(
                frame, encoding_plugin="pyjpegls", rows=frame.shape[0], columns=frame.shape[1],
                samples_per_pixel=1, bits_allocated=8 * frame.dtype.itemsize, bits_stored=bits_stored,
                pixel_representation=1, photometric_interpretation="MONOCHROME2", number_of_frames=1))
        return bytes(imagecodecs.jpegls_encode(unsigned, level=0))
    if codec == "jpeg-lossless":
        space = "RGB" if frame.ndim == 3 else None  # no colour transform: it would not be lossless
        return bytes(imagecodecs.jpeg8_encode(unsigned, lossless=True, predictor=1, colorspace=space,
                                              outcolorspace=space, bitspersample=max(2, bits_stored)))
    if codec == "j2k":
        return bytes(imagecodecs.jpeg2k_encode(frame, level=0, codecformat="J2K", reversible=True,
                                               bitspersample=bits_stored, mct=False))
    if codec == "htj2k":
        return bytes(imagecodecs.htj2k_encode(frame, reversible=True))
    raise ExportError(f"unknown codec {codec!r}")


def _as_unsigned_bits(frame: np.ndarray, bits_stored: int) -> np.ndarray:
    u = frame.view(np.dtype(f"u{frame.dtype.itemsize}"))
    return u & np.array((1 << bits_stored) - 1, dtype=u.dtype) if bits_stored < 8 * frame.dtype.itemsize else u


def rle_encode(frame: np.ndarray) -> bytes:
    """DICOM RLE (PS3.5 G.3): one PackBits segment per byte plane, most significant byte first, colour
    planes in sample order, each row encoded on its own, segments padded to even length, behind the
    64-byte header of segment offsets."""
    import imagecodecs

    samples = frame[..., None] if frame.ndim == 2 else frame
    size = samples.dtype.itemsize
    big = samples.astype(samples.dtype.newbyteorder(">"), copy=False)
    as_bytes = np.ascontiguousarray(big).view(np.uint8).reshape(*samples.shape[:2], samples.shape[2], size)
    segments = []
    for s in range(samples.shape[2]):
        for b in range(size):
            seg = bytes(imagecodecs.packbits_encode(np.ascontiguousarray(as_bytes[:, :, s, b])))
            segments.append(seg + b"\0" if len(seg) % 2 else seg)
    if len(segments) > 15:
        raise ExportError("RLE holds at most 15 segments")
    offsets, pos = [], 64
    for seg in segments:
        offsets.append(pos)
        pos += len(seg)
    header = struct.pack("<16I", len(segments), *offsets, *([0] * (15 - len(offsets))))
    return header + b"".join(segments)


def _verify(dst: str, stored: np.ndarray) -> None:
    """Decode ``dst`` with pydicom's plugins only (not the imagecodecs path that the loader prefers and
    that encoded it) and compare with the values that were encoded."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = np.asarray(pydicom.dcmread(dst).pixel_array)
    back = back.reshape(stored.shape) if back.size == stored.size else back
    if back.shape != stored.shape or not np.array_equal(back.astype(np.int64), stored.astype(np.int64)):
        raise ExportError(f"{dst}: the copy does not decode to the original values (removed)")
