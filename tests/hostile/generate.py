"""Build hostile DICOM cases from the real shared series.

Each case is a folder holding the *good* series (12 real pancreas CT slices, as symlinks) and one or a
few hostile files made from OTHER real series (the GE chest CT, the Siemens JPEG 2000 CT, the dcm_qa
transfer-syntax set), each given its own SeriesInstanceUID where it is edited with pydicom, so that a
hostile file never joins the good series by design: whatever happens to it, the good series must still
be found, chosen as the folder's default and load identically.

``make_cases(data_dir, out, full=False) -> list[Case]``; ``full=False`` is the quick set CI runs.
Families: truncation, bitflip, huge (declared sizes), codec (stream headers that lie), deflate (bombs),
nesting, geometry, strings, special (FIFO, socket, device, loops, odd names), lut, dicomdir.
"""

from __future__ import annotations

import io
import os
import random
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

GOOD_SLICES = slice(40, 52)


@dataclass
class Case:
    name: str
    family: str
    folder: Path


def good_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[GOOD_SLICES]


class _Sources:
    def __init__(self, data_dir: Path) -> None:
        self.crc = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
        self.j2k = sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
        ts = data_dir / "dcm_qa" / "ts" / "In"
        self.ts = {n: ts / f"{n}.dcm" for n in range(1, 10)}
        self.rle, self.jpeg_lossless, self.jpeg_ls, self.j2k_mr = (self.ts[4], self.ts[5], self.ts[7],
                                                                  self.ts[9])


def _fresh(src: Path, label: str) -> Dataset:
    """A real file as a new series of its own (new Series/SOP UIDs, description naming the case)."""
    ds = pydicom.dcmread(src)
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    if "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = f"hostile {label}"[:64]
    return ds


def _save(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=False)


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _element_at(data: bytes, group: int, elem: int, explicit: bool = True) -> int:
    """Offset of the first top-level-looking occurrence of (group, elem) after the meta group."""
    tag = struct.pack("<HH", group, elem)
    i = data.find(tag, 132 + 12)
    while i >= 0 and explicit and not data[i + 4:i + 6].isalpha():
        i = data.find(tag, i + 1)
    return i


# -- families -----------------------------------------------------------------------------------------
def _truncation(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []
    src = s.crc[5].read_bytes()
    cuts = [60, 131, 133, 400, 2000, len(src) // 2, len(src) - 1]
    if full:
        cuts += sorted(rng.randrange(1, len(src)) for _ in range(40))
    for cut in cuts:
        out.append((f"crc_cut_{cut}", lambda d, c=cut: (d / "t.dcm").write_bytes(src[:c])))
    for name, path in (("j2k", s.j2k[3]), ("jpegls", s.jpeg_ls), ("rle", s.rle), ("jpegll", s.jpeg_lossless)):
        data = path.read_bytes()
        fracs = (0.5, 0.9, 0.999) if full else (0.9,)
        for f in fracs:
            cut = int(len(data) * f)
            out.append((f"{name}_cut_{cut}", lambda d, b=data, c=cut: (d / "t.dcm").write_bytes(b[:c])))
    return out


def _bitflip(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []
    srcs = [s.crc[7], s.ts[2], s.ts[3], s.j2k[5], s.jpeg_ls, s.rle]
    n = 40 if full else 4
    for k in range(n * (len(srcs) if full else 1)):
        src = srcs[k % len(srcs)]
        data = bytearray(src.read_bytes())
        head = min(len(data), 3000)
        for _ in range(rng.randrange(1, 12)):
            pos = rng.randrange(132, head)
            data[pos] ^= 1 << rng.randrange(8)
        out.append((f"flip_{k}_{src.stem}", lambda d, b=bytes(data): (d / "f.dcm").write_bytes(b)))

    # An unknown VR (pydicom raises NotImplementedError lazily, when the value is used).
    def unknown_vr(d: Path) -> None:
        ds = _fresh(s.crc[8], "unknown VR")
        data = bytearray(_bytes(ds))
        i = _element_at(bytes(data), 0x0008, 0x103E)  # SeriesDescription: read by every scan
        data[i + 4:i + 6] = b"QQ"
        (d / "vr.dcm").write_bytes(bytes(data))
    out.append(("unknown_vr_description", unknown_vr))

    def unknown_vr_position(d: Path) -> None:
        ds = _fresh(s.crc[8], "unknown VR position")
        data = bytearray(_bytes(ds))
        i = _element_at(bytes(data), 0x0020, 0x0032)
        data[i + 4:i + 6] = b"ZZ"
        (d / "vr.dcm").write_bytes(bytes(data))
    out.append(("unknown_vr_position", unknown_vr_position))
    return out


def _huge(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []

    def native_rows(d: Path) -> None:
        ds = _fresh(s.crc[9], "65535 rows native")
        ds.Rows = ds.Columns = 65535
        _save(ds, d / "h.dcm")
    out.append(("native_65535", native_rows))

    def native_frames(d: Path) -> None:
        ds = _fresh(s.crc[9], "frames native")
        ds.NumberOfFrames = 2**31 - 1
        _save(ds, d / "h.dcm")
    out.append(("native_frames_2g", native_frames))

    for name, src in (("j2k", s.j2k[6]), ("jpegls", s.jpeg_ls), ("jpegll", s.jpeg_lossless), ("rle", s.rle)):
        for frames in ((2**31 - 1, 100_000) if full or name in ("j2k", "jpegls") else (2**31 - 1,)):
            def many_frames(d: Path, src: Path = src, n: int = frames) -> None:
                ds = _fresh(src, f"{n} frames")
                ds.NumberOfFrames = n
                _save(ds, d / "h.dcm")
            out.append((f"{name}_frames_{frames}", many_frames))

    def element_length(d: Path) -> None:
        data = bytearray(_bytes(_fresh(s.crc[10], "element length")))
        i = _element_at(bytes(data), 0x0008, 0x103E)
        data[i + 6:i + 8] = b"\xff\xff"
        (d / "h.dcm").write_bytes(bytes(data))
    out.append(("description_length_ffff", element_length))

    def pixel_length(d: Path) -> None:
        data = bytearray(_bytes(_fresh(s.crc[10], "pixel length")))
        i = _element_at(bytes(data), 0x7FE0, 0x0010)
        data[i + 8:i + 12] = struct.pack("<I", 0xFFFFFFF0)
        (d / "h.dcm").write_bytes(bytes(data))
    out.append(("pixel_length_4g", pixel_length))

    def bits(d: Path) -> None:
        ds = _fresh(s.crc[11], "bits 64")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 64, 64, 63
        _save(ds, d / "h.dcm")
    out.append(("bits_allocated_64", bits))

    def samples(d: Path) -> None:
        ds = _fresh(s.crc[11], "samples 255")
        ds.SamplesPerPixel = 255
        _save(ds, d / "h.dcm")
    out.append(("samples_255", samples))
    return out


def _patch_codestream(data: bytes, kind: str, size: int = 65535) -> bytes:
    """Rewrite the image size in the first codestream header of an encapsulated file."""
    b = bytearray(data)
    pix = _element_at(data, 0x7FE0, 0x0010)
    if kind == "j2k":
        i = b.find(b"\xff\x4f\xff\x51", pix)
        # SIZ: marker(2) Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4) (ISO 15444-1 A.5.1)
        b[i + 8:i + 16] = struct.pack(">II", size, size)
    else:
        sof = (b"\xff\xc3", b"\xff\xc1", b"\xff\xc0", b"\xff\xf7")  # lossless, extended, baseline, JPEG-LS
        i = min(j for j in (b.find(m, pix) for m in sof) if j >= 0)
        # SOF: marker(2) Lf(2) P(1) Y(2) X(2) (ISO 10918-1 B.2.2; JPEG-LS SOF55 is the same)
        b[i + 5:i + 9] = struct.pack(">HH", size, size)
    return bytes(b)


def _codec(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []
    for name, src, kind in (("j2k", s.j2k[7], "j2k"), ("j2k_mr", s.j2k_mr, "j2k"),
                            ("jpegls", s.jpeg_ls, "jpeg"), ("jpegll", s.jpeg_lossless, "jpeg")):
        def lie(d: Path, src: Path = src, kind: str = kind, name: str = name) -> None:
            data = _bytes(_fresh(src, f"codestream 65535 {name}"))
            (d / "c.dcm").write_bytes(_patch_codestream(data, kind))
        out.append((f"{name}_stream_65535", lie))
        if full:
            def small(d: Path, src: Path = src, kind: str = kind, name: str = name) -> None:
                data = _bytes(_fresh(src, f"codestream 64 {name}"))
                (d / "c.dcm").write_bytes(_patch_codestream(data, kind, 64))
            out.append((f"{name}_stream_64", small))

    def garbage_fragment(d: Path) -> None:
        ds = _fresh(s.j2k[8], "garbage fragment")
        from pydicom.encaps import encapsulate
        ds.PixelData = encapsulate([bytes(random.Random(3).randbytes(5000))])
        _save(ds, d / "c.dcm")
    out.append(("j2k_garbage_fragment", garbage_fragment))

    def private_ts(d: Path) -> None:
        ds = _fresh(s.j2k[8], "private syntax")
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
        _save(ds, d / "c.dcm")
    out.append(("private_transfer_syntax", private_ts))
    return out


def _deflate_file(src: Path, label: str, bomb_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian file; with ``bomb_bytes`` a private OB element of that many
    zero bytes is appended inside the deflated stream (a few MB on disk, GBs inflated)."""
    ds = _fresh(src, label)
    pixels = ds.PixelData
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    deflated = io.BytesIO()
    ds.save_as(deflated, enforce_file_format=True)  # pydicom writes the meta group and deflates the rest
    meta = deflated.getvalue()[:144 + struct.unpack_from("<I", deflated.getvalue(), 140)[0]]
    plain = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.save_as(plain, enforce_file_format=True)
    raw = plain.getvalue()
    meta_end = 144 + struct.unpack_from("<I", raw, 140)[0]
    body = raw[meta_end:]
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [z.compress(body)]
    if bomb_bytes:
        parts.append(z.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, bomb_bytes)))
        chunk = bytes(16 << 20)
        left = bomb_bytes
        while left:
            n = min(left, len(chunk))
            parts.append(z.compress(chunk[:n]))
            left -= n
    else:
        parts.append(z.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(pixels)) + pixels))
    parts.append(z.flush())
    return meta + b"".join(parts)


def _deflate(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = [("deflate_ok", lambda d: (d / "z.dcm").write_bytes(_deflate_file(s.crc[12], "deflate", 0)))]
    sizes = (2_100_000_000,) + ((4_200_000_000,) if full else ())
    for n in sizes:
        out.append((f"deflate_bomb_{n // 1_000_000}MB",
                    lambda d, n=n: (d / "z.dcm").write_bytes(_deflate_file(s.crc[12], "bomb", n))))
    return out


def _nested(depth: int) -> bytes:
    """Explicit VR LE bytes of (0040,A730) ContentSequence nested ``depth`` deep (undefined lengths)."""
    open_ = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000,
                                                                                     0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return open_ * depth + close * depth


def _nesting(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []
    depths = (10_000,) + ((1_000, 100_000) if full else ())
    for depth in depths:
        def deep(d: Path, depth: int = depth) -> None:
            ds = _fresh(s.crc[13], f"nested {depth}")
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
            ds.ContentSequence = Sequence([Dataset()])
            data = _bytes(ds)
            mark = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
            i = data.find(mark)
            end = data.find(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), i) + 8
            (d / "n.dcm").write_bytes(data[:i] + _nested(depth) + data[end:])
        out.append((f"nested_{depth}", deep))

    def deep_implicit(d: Path) -> None:
        ds = _fresh(s.ts[2], "nested implicit")
        data = _bytes(ds)
        nest = _nested(10_000)  # explicit bytes: inside an implicit dataset they read as garbage lengths
        i = _element_at(data, 0x7FE0, 0x0010, explicit=False)
        (d / "n.dcm").write_bytes(data[:i] + nest + data[i:])
    out.append(("nested_in_implicit", deep_implicit))
    return out


def _series(d: Path, src: list[Path], label: str, edit: Callable[[Dataset, int], None]) -> None:
    """Four slices of a real series as a new series, each edited by ``edit(ds, k)``."""
    uid = generate_uid()
    for k, p in enumerate(src[30:34]):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = f"hostile {label}"[:64]
        edit(ds, k)
        _save(ds, d / f"g{k}.dcm")


def _geometry(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    nan, inf = float("nan"), float("inf")
    edits: dict[str, Callable[[Dataset, int], None]] = {
        "ipp_1e308": lambda ds, k: setattr(ds, "ImagePositionPatient", [1e308, 0, k * 1e308]),
        "ipp_nan": lambda ds, k: setattr(ds, "ImagePositionPatient", [nan, 0, k]),
        "ipp_inf_one": lambda ds, k: setattr(ds, "ImagePositionPatient", [0, 0, inf if k == 2 else k]),
        "iop_zero": lambda ds, k: setattr(ds, "ImageOrientationPatient", [0, 0, 0, 0, 0, 0]),
        "iop_parallel": lambda ds, k: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
        "iop_nan": lambda ds, k: setattr(ds, "ImageOrientationPatient", [nan, 0, 0, 0, 1, 0]),
        "iop_absurd": lambda ds, k: setattr(ds, "ImageOrientationPatient", [1e300, 0, 0, 0, 1e-300, 0]),
        "spacing_nan": lambda ds, k: setattr(ds, "PixelSpacing", [nan, nan]),
        "spacing_inf": lambda ds, k: setattr(ds, "PixelSpacing", [inf, 0.5]),
        "spacing_zero": lambda ds, k: setattr(ds, "PixelSpacing", [0, 0]),
        "spacing_1e308": lambda ds, k: setattr(ds, "PixelSpacing", [1e308, 1e308]),
        "slope_nan": lambda ds, k: setattr(ds, "RescaleSlope", nan),
        "slope_inf": lambda ds, k: setattr(ds, "RescaleSlope", inf),
        "slope_zero": lambda ds, k: setattr(ds, "RescaleSlope", 0),
        "intercept_1e308": lambda ds, k: setattr(ds, "RescaleIntercept", 1e308),
        "same_position": lambda ds, k: setattr(ds, "ImagePositionPatient", [0, 0, 0]),
        "thickness_nan": lambda ds, k: setattr(ds, "SliceThickness", nan),
    }
    if not full:
        edits = {k: edits[k] for k in ("ipp_1e308", "ipp_nan", "iop_zero", "iop_parallel", "iop_nan",
                                       "spacing_nan", "spacing_inf", "slope_nan", "slope_inf")}
    return [(f"geom_{name}", lambda d, e=e, name=name: _series(d, s.crc, name, e)) for name, e in edits.items()]


def _strings(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out = []

    def escape(d: Path) -> None:
        ds = _fresh(s.crc[14], "x")
        ds.SeriesDescription = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED"
        ds.PatientName = "\x1b[1mBOLD^\x9b31m"
        ds.StudyDescription = "line\nbreak\rcarriage\x00nul"
        _save(ds, d / "s.dcm")
    out.append(("escape_codes", escape))

    def bad_utf8(d: Path) -> None:
        ds = _fresh(s.crc[14], "bad utf8")
        ds.SpecificCharacterSet = "ISO_IR 192"
        data = bytearray(_bytes(ds))
        i = _element_at(bytes(data), 0x0008, 0x103E)
        n = struct.unpack_from("<H", data, i + 6)[0]
        data[i + 8:i + 8 + n] = (b"\xff\xfe\xc3\x28" * n)[:n]
        (d / "s.dcm").write_bytes(bytes(data))
    out.append(("invalid_utf8", bad_utf8))

    def unknown_charset(d: Path) -> None:
        ds = _fresh(s.crc[14], "charset")
        ds.SpecificCharacterSet = "ISO 2022 IR 999"
        ds.PatientName = "Caf\xe9"
        _save(ds, d / "s.dcm")
    out.append(("unknown_charset", unknown_charset))

    def long_strings(d: Path) -> None:
        ds = _fresh(s.crc[14], "long")
        ds.StudyDescription = "A" * 60000
        ds.add_new(0x00091001, "UT", "B" * 2_000_000)
        _save(ds, d / "s.dcm")
    out.append(("long_strings", long_strings))

    def odd_numbers(d: Path) -> None:
        ds = _fresh(s.crc[14], "numbers")
        data = bytearray(_bytes(ds))
        i = _element_at(bytes(data), 0x0020, 0x0013)  # InstanceNumber IS
        n = struct.unpack_from("<H", data, i + 6)[0]
        data[i + 8:i + 8 + n] = b"9" * n
        (d / "s.dcm").write_bytes(bytes(data))
    out.append(("odd_numbers", odd_numbers))

    def non_utf8_names(d: Path) -> None:
        ds = _fresh(s.crc[15], "non-utf8 names")
        sub = os.path.join(os.fsencode(d), b"dir\xff\xfe")
        os.mkdir(sub)
        buf = _bytes(ds)
        with open(os.path.join(sub, b"slice\xe9\x80.dcm"), "wb") as f:
            f.write(buf)
    out.append(("non_utf8_names", non_utf8_names))
    return out


def _special(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    out: list[tuple[str, Callable[[Path], None]]] = []
    if hasattr(os, "mkfifo"):
        out.append(("fifo", lambda d: os.mkfifo(d / "fifo.dcm")))

    def sock(d: Path) -> None:
        p = d / "sock.dcm"
        # A unix socket path must be short: bind from inside the folder.
        cwd = os.getcwd()
        os.chdir(d)
        try:
            sk = socket.socket(socket.AF_UNIX)
            sk.bind("sock.dcm")
            sk.close()
        finally:
            os.chdir(cwd)
        assert p.exists()
    out.append(("socket", sock))
    out.append(("device_link", lambda d: os.symlink("/dev/zero", d / "zero.dcm")))
    out.append(("urandom_link", lambda d: os.symlink("/dev/urandom", d / "urandom.dcm")))
    out.append(("symlink_loop", lambda d: (os.symlink(d / "b.dcm", d / "a.dcm"),
                                           os.symlink(d / "a.dcm", d / "b.dcm"))))
    out.append(("dir_loop", lambda d: os.symlink(d, d / "loop")))
    out.append(("dir_named_dcm", lambda d: (d / "folder.dcm").mkdir()))
    out.append(("dangling_link", lambda d: os.symlink(d / "nowhere.dcm", d / "dangling.dcm")))
    return out


def _lut(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    def mlut(ds: Dataset, k: int, empty: bool = False) -> None:
        item = Dataset()
        item.add_new(0x00283002, "US", [] if empty else [4096, 0, 16])  # LUTDescriptor
        item.ModalityLUTType = "HU"
        # LUTData: stored value v -> v - 1024 (a CT's usual rescale), as unsigned 16-bit
        item.add_new(0x00283006, "US", [] if empty else [max(0, v - 1024) for v in range(4096)])
        ds.ModalityLUTSequence = Sequence([item])
        for kw in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            if kw in ds:
                delattr(ds, kw)
    return [("modality_lut", lambda d: _series(d, s.crc, "modality LUT", mlut)),
            ("modality_lut_empty", lambda d: _series(d, s.crc, "empty LUT",
                                                     lambda ds, k: mlut(ds, k, empty=True)))]


def _dicomdir(s: _Sources, full: bool, rng: random.Random) -> list[tuple[str, Callable[[Path], None]]]:
    def escape(d: Path) -> None:
        from pydicom.dataset import FileMetaDataset
        media = d / "media"
        media.mkdir()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        recs = []
        for ref in (["..", "..", "..", "etc", "passwd"], ["..", "escape.dcm"]):
            r = Dataset()
            r.DirectoryRecordType = "IMAGE"
            r.ReferencedFileID = ref
            recs.append(r)
        ds.DirectoryRecordSequence = Sequence(recs)
        ds.save_as(media / "DICOMDIR", enforce_file_format=True)
        _save(_fresh(s.crc[16], "outside media"), d / "escape.dcm")
    return [("dicomdir_escape", escape)]


#: The quick set (CI, about a minute on 2 cores): one or two cases of every kind of defect.
QUICK = {
    "crc_cut_133", "crc_cut_2000", "j2k_cut_142803", "flip_0_1-008", "unknown_vr_description",
    "unknown_vr_position", "native_65535", "native_frames_2g", "j2k_frames_2147483647", "jpegls_frames_100000",
    "pixel_length_4g", "jpegls_stream_65535", "j2k_stream_65535", "jpegll_stream_65535",
    "private_transfer_syntax", "deflate_ok", "deflate_bomb_2100MB", "nested_10000", "geom_ipp_1e308",
    "geom_ipp_nan", "geom_iop_zero", "geom_iop_nan", "geom_spacing_inf", "geom_slope_nan", "escape_codes",
    "non_utf8_names", "invalid_utf8", "fifo", "socket", "device_link", "symlink_loop", "modality_lut",
    "modality_lut_empty", "dicomdir_escape",
}

FAMILIES = {"truncation": _truncation, "bitflip": _bitflip, "huge": _huge, "codec": _codec,
            "deflate": _deflate, "nesting": _nesting, "geometry": _geometry, "strings": _strings,
            "special": _special, "lut": _lut, "dicomdir": _dicomdir}


def make_cases(data_dir: Path, out: Path, *, full: bool = False, seed: int = 15,
               only: str | None = None) -> list[Case]:
    """Write every case folder under ``out`` (each with the good series linked in) and list them."""
    rng = random.Random(seed)
    src = _Sources(data_dir)
    good = good_files(data_dir)
    cases: list[Case] = []
    for family, make in FAMILIES.items():
        for name, build in make(src, full, rng):
            if only and only not in name and only != family or not full and name not in QUICK:
                continue
            folder = out / f"{family}-{name}"
            folder.mkdir(parents=True)
            for k, g in enumerate(good):
                os.symlink(g, folder / f"good_{k:02d}.dcm")
            build(folder)
            cases.append(Case(name, family, folder))
    return cases
