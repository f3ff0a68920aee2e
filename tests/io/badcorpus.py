"""Generate a folder of broken DICOM files, made from real files, next to good series.

``make_corpus(data_dir, out, seed)`` writes into ``out`` (one flat folder, so good and bad files and two
series are mixed) and returns what it made: which files form each good series, and for each bad file
its category. Everything is deterministic for a seed.

Categories (every one must be reported with a reason and must not disturb the good series):

- ``truncated``: real CT slices cut at random offsets (header, preamble or pixel data);
- ``dicm_flipped``: the "DICM" magic at byte 128 corrupted;
- ``length_flipped``: the length field of the first element after the file meta set to a huge value;
- ``empty``: zero bytes;
- ``random``: random bytes named ``.dcm``, with and without a DICM preamble;
- ``no_pixels``: PixelData removed from an image;
- ``size_mismatch``: Rows/Columns that do not match the uncompressed pixel data;
- ``absurd``: Rows = Columns = 65535 on uncompressed data;
- ``fifo``: a named pipe called ``.dcm`` (opening it would block forever).

``maybe_bad``: header bytes flipped at random places; such a file may still parse (a flipped byte in a
description is harmless). It must then either be listed bad with a reason or be loadable.
``absurd_compressed``: Rows = 65535 on a JPEG 2000 file: a header scan cannot see that the codestream
disagrees, so it must form its own stack (image size differs) and the loader must refuse it clearly.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pydicom


@dataclass
class Corpus:
    folder: Path
    good: dict[str, list[str]] = field(default_factory=dict)  # series name -> files
    bad: dict[str, str] = field(default_factory=dict)  # file -> category
    maybe_bad: list[str] = field(default_factory=list)
    absurd_compressed: list[str] = field(default_factory=list)


def make_corpus(data_dir: Path, out: Path, seed: int = 7) -> Corpus:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    c = Corpus(out)
    pancreas = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))
    crc = sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))
    j2k = sorted((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())

    def copy(src: Path, name: str) -> Path:
        dst = out / name
        shutil.copyfile(src, dst)
        return dst

    # Good series, mixed in one folder: 12 consecutive pancreas slices, 10 chest slices, 8 J2K slices.
    c.good["pancreas"] = [str(copy(p, f"pan_{i:03d}.dcm")) for i, p in enumerate(pancreas[40:52])]
    c.good["crc"] = [str(copy(p, f"crc_{i:03d}.dcm")) for i, p in enumerate(crc[20:30])]
    c.good["j2k"] = [str(copy(p, f"j2k_{i:03d}.dcm")) for i, p in enumerate(j2k[:8])]

    # Bad files come from OTHER slices of the same series, so a bad file that slipped through would
    # join a good stack and be caught.
    spare = pancreas[60:100]
    for k in range(8):
        src = spare.pop()
        data = src.read_bytes()
        cut = rng.randrange(1, len(data))
        (out / f"trunc_{k}.dcm").write_bytes(data[:cut])
        c.bad[str(out / f"trunc_{k}.dcm")] = "truncated"
    # Truncations at fixed, telling places too: inside the preamble, right after DICM, inside pixels.
    for k, cut in enumerate((60, 132, 2000, 300_000)):
        src = spare.pop()
        (out / f"trunc_at_{cut}.dcm").write_bytes(src.read_bytes()[:cut])
        c.bad[str(out / f"trunc_at_{cut}.dcm")] = "truncated"

    src = spare.pop()
    data = bytearray(src.read_bytes())
    data[128:132] = b"DICN"
    (out / "dicm_flipped.dcm").write_bytes(bytes(data))
    c.bad[str(out / "dicm_flipped.dcm")] = "dicm_flipped"

    src = spare.pop()
    data = bytearray(src.read_bytes())
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    offset = _first_dataset_element_offset(bytes(data))
    # Implicit VR LE (this series): tag(4) + length(4); make the length run far past the end of file.
    if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2":
        data[offset + 4:offset + 8] = (0x7FFFFFF0).to_bytes(4, "little")
    (out / "length_flipped.dcm").write_bytes(bytes(data))
    c.bad[str(out / "length_flipped.dcm")] = "length_flipped"

    for k in range(4):
        src = spare.pop()
        data = bytearray(src.read_bytes())
        for _ in range(6):
            pos = rng.randrange(132, 1500)
            data[pos] ^= 1 << rng.randrange(8)
        (out / f"flipped_{k}.dcm").write_bytes(bytes(data))
        c.maybe_bad.append(str(out / f"flipped_{k}.dcm"))

    for k in range(2):
        (out / f"empty_{k}.dcm").write_bytes(b"")
        c.bad[str(out / f"empty_{k}.dcm")] = "empty"
    for k in range(3):
        n = rng.randrange(10, 200_000)
        (out / f"random_{k}.dcm").write_bytes(rng.randbytes(n))
        c.bad[str(out / f"random_{k}.dcm")] = "random"
    (out / "random_dicm.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.randbytes(5000))
    c.bad[str(out / "random_dicm.dcm")] = "random"

    ds = pydicom.dcmread(spare.pop())
    del ds.PixelData
    ds.save_as(out / "no_pixels.dcm")
    c.bad[str(out / "no_pixels.dcm")] = "no_pixels"

    ds = pydicom.dcmread(spare.pop())
    ds.Rows, ds.Columns = 600, 640
    ds.save_as(out / "size_mismatch.dcm")
    c.bad[str(out / "size_mismatch.dcm")] = "size_mismatch"

    ds = pydicom.dcmread(spare.pop())
    ds.Rows, ds.Columns = 65535, 65535
    ds.save_as(out / "absurd.dcm")
    c.bad[str(out / "absurd.dcm")] = "absurd"

    ds = pydicom.dcmread(j2k[10])
    ds.Rows = 65535
    ds.save_as(out / "absurd_j2k.dcm")
    c.absurd_compressed.append(str(out / "absurd_j2k.dcm"))

    if hasattr(os, "mkfifo"):
        os.mkfifo(out / "fifo.dcm")
        c.bad[str(out / "fifo.dcm")] = "fifo"
    return c


def _first_dataset_element_offset(data: bytes) -> int:
    """Byte offset of the first element after the file meta group (PS3.10 7.1: group length first)."""
    group_len = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, explicit VR LE
    return 144 + group_len
