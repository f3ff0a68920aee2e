"""Bounds on what one file may cost, checked before the cost is paid.

A file states its own size (Rows, Columns, NumberOfFrames, the codestream's header, a deflated stream's
inflated length); a hostile or broken file states a size it does not have. Everything here compares the
statement with what is really there, or with a budget, *before* a buffer is allocated, and returns a
sentence that says which number was refused and what the limit is:

- :func:`decoded_size_problem`: the decoded pixels of one file against the per-file budget
  (:func:`decode_budget`, ``$VIEWER_DECODE_BUDGET_MB``);
- :func:`encapsulated_problem`: NumberOfFrames against the fragments present, and each frame's JPEG /
  JPEG-LS / JPEG 2000 header against Rows x Columns;
- :func:`inflated_size_problem`: a deflated data set inflated under a limit, never in full;
- :func:`plausible_position`, :func:`checked_orientation`, :func:`plausible_spacing`,
  :func:`plausible_rescale`: geometry and rescale values that would make a NaN or infinite affine or volume;
- :func:`limit_process_memory`: an address-space cap for decoder processes.

Callers: the header scan (:mod:`viewer.io.headers`) turns a problem into a bad-file reason; the loader
and the decoders raise it as a :class:`~viewer.io.errors.LoadError`.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

#: Positions farther than this from the origin (1 km) are no patient's; 1e308 overflows the split.
MAX_COORD_MM = 1e6
#: Pixel spacing beyond this (1 m per pixel) is a lie, not a scanner.
MAX_SPACING_MM = 1e3
_GIB = 1 << 30


def decode_budget() -> int:
    """Bytes the decoded pixels of ONE file may take: ``$VIEWER_DECODE_BUDGET_MB`` MiB, else the smaller
    of 8 GiB and half the machine's memory (a 1,000-frame ultrasound cine is 1.4 GB; no real single
    file needs more than that budget)."""
    env = os.environ.get("VIEWER_DECODE_BUDGET_MB")
    if env:
        try:
            return max(1, int(float(env) * (1 << 20)))
        except ValueError:
            pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * _GIB
    return int(min(8 * _GIB, ram // 2))


def _size(n: int) -> str:
    return f"{n / _GIB:.1f} GiB" if n >= _GIB else f"{n / (1 << 20):.0f} MiB"


def decoded_size_problem(rows: int, cols: int, frames: int, samples: int, bits_allocated: int) -> str | None:
    """None when one file's decoded pixels fit :func:`decode_budget`, else the sentence saying not.

    Counts what a decoder allocates: frames x rows x columns x samples at the decoded item size (8-bit
    and 16-bit stay, 1-bit unpacks to a byte, 32/64-bit stay).
    """
    item = max(1, (bits_allocated + 7) // 8)
    need = max(0, rows) * max(0, cols) * max(1, frames) * max(1, samples) * item
    budget = decode_budget()
    if need > budget:
        return (f"decoding needs {_size(need)} ({frames} frame(s) of {rows} x {cols} x {samples} sample(s), "
                f"{bits_allocated} bits), over the per-file budget of {_size(budget)} "
                "(VIEWER_DECODE_BUDGET_MB raises it)")
    return None


# -- encapsulated pixel data (PS3.5 A.4) -------------------------------------------------------------
_ITEM = (0xFFFE, 0xE000)
_SEQ_END = (0xFFFE, 0xE0DD)


def fragment_spans(read: Callable[[int, int], bytes], offset: int, stop: int) -> tuple[list[tuple[int, int]],
                                                                                        str | None]:
    """(offset, length) of each fragment (the Basic Offset Table item excluded) of the encapsulated
    pixel data whose value starts at ``offset``, read through ``read(offset, n)``; stops after ``stop``
    fragments. The second value is a defect found (an item header that is not one, a length past the
    end), else None."""
    spans: list[tuple[int, int]] = []
    pos, first = offset, True
    while len(spans) < stop:
        head = read(pos, 8)
        if len(head) < 8:
            return spans, "the encapsulated pixel data ends without a sequence delimiter"
        group, elem, length = struct.unpack("<HHI", head)
        if (group, elem) == _SEQ_END:
            return spans, None
        if (group, elem) != _ITEM or length == 0xFFFFFFFF:
            return spans, f"not an item at byte {pos} of the encapsulated pixel data"
        if not first:
            spans.append((pos + 8, length))
        first = False
        pos += 8 + length
    return spans, None


def codestream_size(head: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 codestream declares in its own header, or None when
    ``head`` (the start of a frame's first fragment) has no recognisable header."""
    if head[:4] == b"\xff\x4f\xff\x51" and len(head) >= 24:
        # J2K SIZ (ISO 15444-1 A.5.1): Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz
        xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", head, 8)
        return ysiz - yo, xsiz - xo
    if head[:2] == b"\xff\xd8":
        # JPEG (ISO 10918-1 B.2.2) and JPEG-LS (ISO 14495-1 C.2.2): SOFn / SOF55 = Lf, P, Y, X.
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            length = struct.unpack_from(">H", head, pos + 2)[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
                          0xF7):
                if pos + 9 > len(head):
                    return None
                y, x = struct.unpack_from(">HH", head, pos + 5)
                return y, x
            pos += 2 + length
    return None


def encapsulated_problem(read: Callable[[int, int], bytes], offset: int, frames: int, rows: int,
                         cols: int) -> str | None:
    """None when encapsulated pixel data at ``offset`` can hold ``frames`` frames and every codestream
    header it has says ``rows`` x ``cols``; else the sentence saying what does not match.

    PS3.5 A.4: every frame is at least one fragment, so fewer fragments than frames means the declared
    count is false. A codestream whose own header declares another size would make its decoder
    allocate that size (a JPEG declaring 65535 x 65535 took 12 GB), so it is refused undecoded.
    """
    spans, defect = fragment_spans(read, offset, max(1, frames))
    if defect is not None and len(spans) < frames:
        return f"{defect} ({len(spans)} fragment(s) read)"
    if len(spans) < frames:
        return (f"NumberOfFrames is {frames} but the pixel data holds only {len(spans)} fragment(s); "
                "the declared frame count is false")
    # One fragment per frame is the rule (and the only layout where a fragment's start is a frame's);
    # with more fragments the first one still starts frame 1.
    starts = spans if len(spans) == frames else spans[:1]
    for k, (pos, _) in enumerate(starts[:64] if len(starts) > 64 else starts):
        size = codestream_size(read(pos, 2048))
        if size is not None and size != (rows, cols):
            return (f"frame {k + 1}'s codestream declares {size[0]} x {size[1]} pixels but Rows x Columns "
                    f"is {rows} x {cols}; refused before decoding")
    return None


def encapsulated_problem_in(pixel_data: bytes, frames: int, rows: int, cols: int) -> str | None:
    """:func:`encapsulated_problem` of an in-memory PixelData value (a pydicom data set's)."""
    end = len(pixel_data)

    def read(pos: int, n: int) -> bytes:
        # pydicom keeps the value without its sequence delimiter: the end of the bytes is the end.
        return pixel_data[pos:pos + n] if pos < end else b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"[:n]

    return encapsulated_problem(read, 0, frames, rows, cols)


# -- deflate ------------------------------------------------------------------------------------------
def inflated_size_problem(read_chunk: Callable[[], bytes], limit: int, z: Any = None,
                          already: int = 0) -> str | None:
    """Inflate a raw deflate stream (chunks from ``read_chunk()``, b"" at the end; ``z`` a decompressor
    that has already inflated ``already`` bytes of it) counting bytes, never holding more than a chunk;
    None when the whole stream inflates to at most ``limit`` bytes."""
    z = z or zlib.decompressobj(-15)
    total = already
    while True:
        chunk = read_chunk()
        if not chunk:
            return None
        data = z.decompress(chunk, 1 << 20)
        while True:
            total += len(data)
            if total > limit:
                return f"the deflated data set inflates to more than {_size(limit)}; refused (a deflate bomb?)"
            if not z.unconsumed_tail:
                break
            data = z.decompress(z.unconsumed_tail, 1 << 20)
        if z.eof:
            return None


# -- geometry and rescale ---------------------------------------------------------------------------
def plausible_position(p: Sequence[float] | Any) -> bool:
    """Three finite coordinates within :data:`MAX_COORD_MM` of the origin."""
    try:
        vals = [float(v) for v in p]
    except (TypeError, ValueError):
        return False
    return len(vals) == 3 and all(math.isfinite(v) and abs(v) <= MAX_COORD_MM for v in vals)


#: RescaleSlope/RescaleIntercept beyond this in magnitude overflow float32 values (1e308 did, silently).
MAX_RESCALE = 1e10


def plausible_rescale(slope: float, intercept: float) -> bool:
    """Finite slope and intercept whose magnitudes keep every rescaled value a finite float32."""
    return all(math.isfinite(v) and abs(v) <= MAX_RESCALE for v in (slope, intercept))


def plausible_spacing(vals: Sequence[float] | None) -> bool:
    return bool(vals) and all(math.isfinite(v) and 0 < v <= MAX_SPACING_MM for v in vals or ())


def checked_orientation(iop: Sequence[float] | None) -> tuple[list[float] | None, str | None]:
    """(ImageOrientationPatient, None) when usable; (None, why) when its values are not finite, a
    vector is not of unit length (1 % tolerance) or the two are not perpendicular (cos > 0.01)."""
    if not iop:
        return None, None
    vals = [float(v) for v in iop]
    if len(vals) != 6:
        return None, f"ImageOrientationPatient has {len(vals)} values, not 6: orientation ignored"
    if not all(math.isfinite(v) for v in vals):
        return None, "ImageOrientationPatient is not finite: orientation ignored"
    row, col = vals[:3], vals[3:]
    nr = math.sqrt(sum(v * v for v in row))
    nc = math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col))
    if abs(nr - 1) > 0.01 or abs(nc - 1) > 0.01 or abs(dot) > 0.01:
        return None, (f"ImageOrientationPatient {[round(v, 4) for v in vals]} is not two perpendicular unit "
                      "vectors: orientation ignored, slices kept in file order")
    return vals, None


# -- decoder processes -----------------------------------------------------------------------------
def process_memory_cap() -> int:
    """Address-space cap for a decoder process: the decode budget plus 2 GiB for the interpreter, its
    libraries and one file's compressed bytes."""
    return decode_budget() + 2 * _GIB


def limit_process_memory(cap: int | None = None) -> None:
    """Cap this process's address space (RLIMIT_AS) at ``cap`` bytes (default :func:`process_memory_cap`):
    a decoder asked for more gets an allocation failure instead of taking the machine down. For process
    pool initializers; does nothing where resource limits do not exist, never raises the current cap."""
    try:
        import resource
    except ImportError:
        return
    cap = cap or process_memory_cap()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        return
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        pass


def check_before_decode(ds: Any, path: str) -> None:
    """Raise :class:`~viewer.io.errors.LoadError` when decoding the pydicom data set ``ds`` of ``path``
    would exceed the budget or its encapsulated frames lie about their number or size.

    For decoders to call just before they decode (``viewer.io.decode.decode_frames``): pydicom and the
    codec libraries allocate what NumberOfFrames and the codestream header say.
    """
    from viewer.io.errors import LoadError

    def num(kw: str, default: int) -> int:
        try:
            return int(ds.get(kw, default) or default)
        except (TypeError, ValueError):
            return default

    rows, cols, frames = num("Rows", 0), num("Columns", 0), max(1, num("NumberOfFrames", 1))
    problem = decoded_size_problem(rows, cols, frames, num("SamplesPerPixel", 1), num("BitsAllocated", 16))
    if problem is None and "PixelData" in ds:
        meta = getattr(ds, "file_meta", None)
        uid = meta.get("TransferSyntaxUID") if meta is not None else None
        if uid is not None and getattr(uid, "is_encapsulated", False):
            problem = encapsulated_problem_in(ds.PixelData, frames, rows, cols)
    if problem is not None:
        raise LoadError(f"{path}: {problem}")
