"""Stored pixel values -> values in modality units, without whole-volume float64 intermediates."""

from __future__ import annotations

import numpy as np

INT16_MIN, INT16_MAX = -32768, 32767


def fix_stored_bits(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Mask or sign-extend integer pixels to BitsStored, in place (PS3.5 8.1.1).

    Bits above BitsStored may hold junk (overlays, vendor bugs: ``dcm_qa/12bit``); for signed data the
    BitsStored-bit two's complement value is sign-extended to the container. Idempotent.
    """
    if arr.dtype.kind not in "iu":
        return arr
    container = arr.dtype.itemsize * 8
    if bits_stored <= 0 or bits_stored >= container:
        return arr
    if signed:
        shift = container - bits_stored
        view = arr.view(np.dtype(f"i{arr.dtype.itemsize}"))
        np.left_shift(view, shift, out=view)
        np.right_shift(view, shift, out=view)  # arithmetic shift on a signed view: sign extension
        return view
    np.bitwise_and(arr, (1 << bits_stored) - 1, out=arr)
    return arr


def stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value a BitsStored-bit stored pixel can hold."""
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def is_integer(x: float) -> bool:
    return float(x).is_integer()


def rescale_fits_int16(slope: float, intercept: float, lo: int, hi: int) -> bool:
    """True when slope*stored+intercept is an integer in int16 for every stored value in [lo, hi]."""
    if not (is_integer(slope) and is_integer(intercept)):
        return False
    a, b = slope * lo + intercept, slope * hi + intercept
    return INT16_MIN <= min(a, b) and max(a, b) <= INT16_MAX


def rescale_into(out: np.ndarray, stored: np.ndarray, slope: float, intercept: float) -> None:
    """``out[...] = stored * slope + intercept`` with out int16 or float32; no float64 temporaries.

    For int16 output the caller has checked (see :func:`rescale_fits_int16`) that the result fits.
    """
    if out.dtype == np.int16:
        if slope == 1:
            if intercept == 0:
                np.copyto(out, stored, casting="unsafe")
            else:
                # int32 add keeps uint16 stored values exact before the (checked) narrowing.
                if stored.dtype.itemsize >= 2 and stored.dtype.kind == "u":
                    np.add(stored, np.int32(intercept), out=out, casting="unsafe")
                else:
                    np.add(stored, np.int16(intercept), out=out, casting="unsafe")
        else:
            tmp = stored.astype(np.int32)
            tmp *= int(slope)
            tmp += int(intercept)
            np.copyto(out, tmp, casting="unsafe")
        return
    np.multiply(stored, np.float32(slope), out=out, casting="unsafe")
    if intercept:
        out += np.float32(intercept)


def palette_to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """Palette-expanded RGB (8- or 16-bit LUT entries) -> uint8."""
    if rgb.dtype == np.uint8:
        return rgb
    top = int(rgb.max()) if rgb.size else 0
    shift = 8 if top > 255 else 0
    return (rgb >> shift).astype(np.uint8) if shift else rgb.astype(np.uint8)


class ModalityLUT:
    """A Modality LUT (PS3.3 C.11.1) as plain numbers, checked when read (picklable for the decoders).

    ``first`` is the first stored value mapped, ``table`` the output values; stored values below
    ``first`` map to ``table[0]``, above the last entry to ``table[-1]``.
    """

    def __init__(self, first: int, table: np.ndarray) -> None:
        self.first = first
        self.table = table

    @classmethod
    def from_item(cls, item: object, signed: bool) -> ModalityLUT:
        """From a ModalityLUTSequence item; ValueError with the defect when it cannot be used."""
        get = getattr(item, "get", None)
        desc = list(get("LUTDescriptor") or []) if get is not None else []
        if len(desc) != 3:
            raise ValueError(f"Modality LUT Sequence: LUTDescriptor has {len(desc)} value(s), not 3")
        entries, first, bits = (int(v) for v in desc)
        entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2^16
        if signed and first >= 1 << 15:
            first -= 1 << 16  # US-encoded first value of a signed image
        raw = get("LUTData") if get is not None else None
        if isinstance(raw, (bytes, bytearray)):
            table = np.frombuffer(bytes(raw), dtype="<u2" if bits > 8 else np.uint8)
        elif raw is not None:
            table = np.asarray(list(raw) if not isinstance(raw, int) else [raw], dtype=np.float64)
        else:
            table = np.empty(0)
        if table.size < entries:
            raise ValueError(f"Modality LUT Sequence: LUTData holds {table.size} value(s), the descriptor "
                             f"says {entries}")
        return cls(first, np.asarray(table[:entries], dtype=np.float64))

    def apply(self, stored: np.ndarray) -> np.ndarray:
        idx = np.clip(stored.astype(np.int64) - self.first, 0, self.table.size - 1)
        return self.table[idx]
