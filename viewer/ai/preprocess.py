"""Preprocessing operations: what a model's ``[[preprocess]]`` list in ``manifest.toml`` means, exactly.

Images enter in modality units (HU for CT, stored values otherwise), as a batch (N, H, W) of grey or
(N, H, W, 3) of RGB images. They become float32 (N, C, H, W) with C = 1 (grey) or 3 (RGB) and every
operation maps a float32 (N, C, H, W) batch to another, vectorised over the batch. The operations, with
their manifest keys (all required unless a default is given):

``window``  ``center``, ``width`` (modality units) or ``source = "dicom"``
    DICOM linear VOI window (PS3.3 C.11.2.1.2.1, :func:`viewer.core.windowing.apply_window`) to [0, 1].
    ``source = "dicom"`` uses the series' own first Window Center/Width; a series without one gets
    :func:`viewer.core.windowing.default_window` of the batch (CT: 40/400).
``scale``  ``mode = "minmax"`` or ``mode = "fixed"`` with ``low``, ``high``; ``clip`` (default true)
    ``minmax``: each image (all its channels) to [0, 1] by its own min and max (a constant image gives
    0). ``fixed``: ``(x - low) / (high - low)``, clipped to [0, 1] unless ``clip = false``.
``invert_monochrome1``  (no keys)
    ``x -> 1 - x`` when the series is MONOCHROME1 (low values white, e.g. many radiographs), else
    nothing. Must come after ``window`` or ``scale``, so the values are in [0, 1].
``crop``  ``fraction`` (number or [rows, columns] in (0, 1]), ``square = true`` or ``box = [r0, c0, r1, c1]``
    Centred crop keeping that fraction of each side (:func:`viewer.core.crop.center_crop_bounds`), the
    centred square of the shorter side (:func:`viewer.core.crop.center_square_bounds`), or a fixed box in
    pixels, half-open.
``resize``  ``size = [rows, columns]``, ``interpolation = "nearest" | "bilinear" | "area"``
    Exactly PyTorch's ``F.interpolate`` with ``align_corners=False`` (:mod:`viewer.core.resize`).
    No default interpolation: it must be the one used in training.
``normalize``  ``mean``, ``std``: lists of 1 or C numbers
    ``(x - mean[c]) / std[c]`` per channel; one number applies to every channel.
``histogram_match``  ``reference`` (list of >= 2 non-decreasing numbers)
    Each image's grey levels mapped piecewise-linearly so its quantiles at 0, 1/(n-1), ..., 1 become
    ``reference`` (:func:`viewer.core.intensity.match_quantiles`): brings a radiograph with another
    display processing to the training set's appearance. Used in training too.
``repeat_channels``  ``count`` (integer >= 1)
    A grey batch (C = 1) becomes ``count`` identical channels (for networks pretrained on RGB).

Public: :func:`parse_ops` (validation at manifest load), :func:`run_ops` (apply), :func:`to_nchw`,
:func:`output_channels`, :data:`OPS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.ai.errors import ManifestError
from viewer.core.crop import center_crop, center_square_bounds, crop_box
from viewer.core.intensity import match_quantiles
from viewer.core.resize import INTERPOLATIONS, resize
from viewer.core.series_info import SeriesInfo
from viewer.core.windowing import default_window, window_bounds


@dataclass(frozen=True)
class Op:
    """One validated preprocessing step: ``name`` and its parameters (already type-checked)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What some operations need to know about the series the images come from.

    Attributes
    ----------
    window
        The series' own (center, width) in modality units, or None if it has none.
    monochrome1
        True when the photometric interpretation is MONOCHROME1.
    modality
        DICOM Modality, for the default window.
    """

    window: tuple[float, float] | None = None
    monochrome1: bool = False
    modality: str = ""

    @classmethod
    def of(cls, info: SeriesInfo | None, modality: str = "") -> Context:
        """The context of a series from its typed description (``Volume.info``): the window it opens
        with (:meth:`~viewer.core.series_info.SeriesInfo.series_window`) and MONOCHROME1."""
        if info is None:
            return cls(modality=modality)
        win = info.series_window()
        return cls(window=win.pair if win is not None else None, monochrome1=info.monochrome1,
                   modality=modality or info.modality)


# --- validation ------------------------------------------------------------------------------------


class _Fields:
    """Type-checked access to one table of the manifest, naming the field in every error."""

    def __init__(self, table: Mapping[str, Any], where: str, path: Any) -> None:
        self.table, self.where, self.path = table, where, path
        self.used: set[str] = set()

    def err(self, key: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.where}.{key}" if self.where else key, problem, self.path)

    def has(self, key: str) -> bool:
        return key in self.table

    def number(self, key: str, default: float | None = None, *, positive: bool = False) -> float:
        self.used.add(key)
        if key not in self.table:
            if default is None:
                raise self.err(key, "missing (a number)")
            return default
        v = self.table[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(key, f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.err(key, f"must be > 0, got {v!r}")
        return float(v)

    def numbers(self, key: str, *, length: int | None = None, positive: bool = False) -> list[float]:
        self.used.add(key)
        if key not in self.table:
            raise self.err(key, "missing (a list of numbers)")
        v = self.table[key]
        if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                   or not math.isfinite(x) for x in v):
            raise self.err(key, f"must be a non-empty list of finite numbers, got {v!r}")
        if length is not None and len(v) != length:
            raise self.err(key, f"must have {length} values, got {len(v)}")
        if positive and any(x <= 0 for x in v):
            raise self.err(key, f"values must be > 0, got {v!r}")
        return [float(x) for x in v]

    def integers(self, key: str, *, length: int | None = None, minimum: int | None = None) -> list[int]:
        self.used.add(key)
        if key not in self.table:
            raise self.err(key, "missing (a list of integers)")
        v = self.table[key]
        if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
            raise self.err(key, f"must be a list of integers, got {v!r}")
        if length is not None and len(v) != length:
            raise self.err(key, f"must have {length} values, got {len(v)}")
        if minimum is not None and any(x < minimum for x in v):
            raise self.err(key, f"values must be >= {minimum}, got {v!r}")
        return list(v)

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        self.used.add(key)
        if key not in self.table:
            raise self.err(key, "missing (an integer)")
        v = self.table[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(key, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.err(key, f"must be >= {minimum}, got {v}")
        return v

    def string(self, key: str, choices: Sequence[str] | None = None, default: str | None = None) -> str:
        self.used.add(key)
        if key not in self.table:
            if default is None:
                raise self.err(key, "missing" + (f" (one of {', '.join(choices)})" if choices else " (a string)"))
            return default
        v = self.table[key]
        if not isinstance(v, str):
            raise self.err(key, f"must be a string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(key, f"must be one of {', '.join(repr(c) for c in choices)}, got {v!r}")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        self.used.add(key)
        if key not in self.table:
            return default
        v = self.table[key]
        if not isinstance(v, bool):
            raise self.err(key, f"must be true or false, got {v!r}")
        return v

    def no_unknown(self, allowed: Sequence[str] = ()) -> None:
        unknown = sorted(set(self.table) - self.used - set(allowed))
        if unknown:
            known = ", ".join(sorted(self.used | set(allowed)))
            raise self.err(unknown[0], "unknown key" + (f" (allowed here: {known})" if known else ""))


def _parse_window(f: _Fields) -> dict[str, Any]:
    if f.has("source"):
        f.string("source", ("dicom",))
        if f.has("center") or f.has("width"):
            raise f.err("source", 'give either source = "dicom" or center/width, not both')
        return {"source": "dicom"}
    return {"center": f.number("center"), "width": f.number("width", positive=True)}


def _parse_scale(f: _Fields) -> dict[str, Any]:
    mode = f.string("mode", ("minmax", "fixed"))
    if mode == "minmax":
        return {"mode": mode}
    low, high = f.number("low"), f.number("high")
    if high <= low:
        raise f.err("high", f"must be greater than low ({low}), got {high}")
    return {"mode": mode, "low": low, "high": high, "clip": f.boolean("clip", True)}


def _parse_crop(f: _Fields) -> dict[str, Any]:
    if sum(f.has(k) for k in ("fraction", "box", "square")) != 1:
        raise f.err("fraction", "give exactly one of fraction (centred crop), square = true (centred square) or "
                    "box = [row0, col0, row1, col1]")
    if f.has("square"):
        if not f.boolean("square", False):
            raise f.err("square", "must be true when given")
        return {"square": True}
    if f.has("box"):
        box = f.integers("box", length=4, minimum=0)
        if not (box[0] < box[2] and box[1] < box[3]):
            raise f.err("box", f"must be [row0, col0, row1, col1] with row0 < row1 and col0 < col1, got {box}")
        return {"box": box}
    v = f.table["fraction"]
    fr = [f.number("fraction")] if not isinstance(v, list) else f.numbers("fraction", length=2)
    if any(not 0.0 < x <= 1.0 for x in fr):
        raise f.err("fraction", f"must be in (0, 1], got {v!r}")
    return {"fraction": fr[0] if len(fr) == 1 else fr}


def _parse_resize(f: _Fields) -> dict[str, Any]:
    return {"size": f.integers("size", length=2, minimum=1), "interpolation": f.string("interpolation", INTERPOLATIONS)}


def _parse_normalize(f: _Fields) -> dict[str, Any]:
    mean, std = f.numbers("mean"), f.numbers("std", positive=True)
    if len(mean) != len(std):
        raise f.err("std", f"must have as many values as mean ({len(mean)}), got {len(std)}")
    return {"mean": mean, "std": std}


def _parse_histogram(f: _Fields) -> dict[str, Any]:
    ref = f.numbers("reference")
    if len(ref) < 2 or any(b < a for a, b in zip(ref, ref[1:])):
        raise f.err("reference", f"must be at least 2 non-decreasing numbers (quantiles), got {len(ref)} values")
    return {"reference": ref}


def _parse_repeat(f: _Fields) -> dict[str, Any]:
    return {"count": f.integer("count", minimum=1)}


def _parse_none(f: _Fields) -> dict[str, Any]:
    return {}


# --- application -----------------------------------------------------------------------------------


def _apply_window(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    if p.get("source") == "dicom":
        c, w = ctx.window if ctx.window is not None else default_window(x, ctx.modality)
    else:
        c, w = p["center"], p["width"]
    # viewer.core.windowing.apply_window's arithmetic (same bounds, same float32 operations, so the same
    # grey levels), done in place on one float32 copy: this op touches every pixel of every slice and
    # fresh temporaries per step cost more than the arithmetic.
    low, high = window_bounds(c, w)
    out = x.astype(np.float32, copy=True)
    out -= np.float32(low)
    out *= np.float32(1.0 / max(high - low, 1e-6))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _apply_scale(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    if p["mode"] == "minmax":
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        span = x.max(axis=(1, 2, 3), keepdims=True) - lo
        safe = np.where(span > 0, span, np.float32(1.0))
        scaled: np.ndarray = ((x - lo) / safe).astype(np.float32, copy=False)
        return scaled
    out = (x - np.float32(p["low"])) * np.float32(1.0 / (p["high"] - p["low"]))
    if p["clip"]:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def _apply_invert(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    return np.float32(1.0) - x if ctx.monochrome1 else x


def _apply_crop(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    if "box" in p:
        return crop_box(x, p["box"])
    if "square" in p:
        return crop_box(x, center_square_bounds(x.shape[-2], x.shape[-1]))
    return center_crop(x, p["fraction"])


def _apply_resize(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    return resize(x, p["size"], p["interpolation"])


def _apply_normalize(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    c = x.shape[1]
    mean, std = p["mean"], p["std"]
    if len(mean) not in (1, c):
        raise ValueError(f"normalize has {len(mean)} mean/std values for {c} channels")
    m = np.asarray(mean if len(mean) == c else mean * c, dtype=np.float32).reshape(1, c, 1, 1)
    s = np.asarray(std if len(std) == c else std * c, dtype=np.float32).reshape(1, c, 1, 1)
    return (x - m) / s


def _apply_histogram(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    return match_quantiles(x, p["reference"])


def _apply_repeat(x: np.ndarray, p: Mapping[str, Any], ctx: Context) -> np.ndarray:
    if x.shape[1] != 1:
        raise ValueError(f"repeat_channels needs one channel, the batch has {x.shape[1]}")
    return np.repeat(x, p["count"], axis=1)


Parser = Callable[[_Fields], dict[str, Any]]
Applier = Callable[[np.ndarray, Mapping[str, Any], Context], np.ndarray]

#: name -> (validate manifest keys, apply to a float32 NCHW batch)
OPS: dict[str, tuple[Parser, Applier]] = {
    "window": (_parse_window, _apply_window),
    "scale": (_parse_scale, _apply_scale),
    "invert_monochrome1": (_parse_none, _apply_invert),
    "crop": (_parse_crop, _apply_crop),
    "resize": (_parse_resize, _apply_resize),
    "normalize": (_parse_normalize, _apply_normalize),
    "repeat_channels": (_parse_repeat, _apply_repeat),
    "histogram_match": (_parse_histogram, _apply_histogram),
}


def parse_ops(tables: Any, path: Any = None) -> tuple[Op, ...]:
    """Validate the manifest's ``[[preprocess]]`` array of tables; errors name ``preprocess[i].key``."""
    if tables is None:
        return ()
    if not isinstance(tables, list) or any(not isinstance(t, dict) for t in tables):
        raise ManifestError("preprocess", "must be an array of tables ([[preprocess]] entries)", path)
    ops: list[Op] = []
    in_unit_range = False
    for i, table in enumerate(tables):
        f = _Fields(table, f"preprocess[{i}]", path)
        name = f.string("op", tuple(OPS))
        params = OPS[name][0](f)
        f.no_unknown()
        if name == "invert_monochrome1" and not in_unit_range:
            raise ManifestError(f"preprocess[{i}].op", "invert_monochrome1 must come after window or scale "
                                "(it computes 1 - x on values in [0, 1])", path)
        if name in ("window", "scale"):
            in_unit_range = True
        elif name == "normalize":
            in_unit_range = False
        ops.append(Op(name, params))
    return tuple(ops)


def output_channels(ops: Sequence[Op], channels_in: int) -> int:
    """Channels of the batch after ``ops`` for ``channels_in`` (1 grey, 3 RGB) input channels."""
    c = channels_in
    for op in ops:
        if op.name == "repeat_channels":
            c = c * int(op.params["count"]) if c == 1 else -1
    return c


def _nchw_view(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 3:
        return a[:, None, :, :]
    if a.ndim == 4 and a.shape[-1] in (3, 4):
        return np.moveaxis(a[..., :3], -1, 1)
    raise ValueError(f"images must be (N, H, W) grey or (N, H, W, 3) RGB, got shape {a.shape}")


def to_nchw(images: np.ndarray) -> np.ndarray:
    """(N, H, W) grey or (N, H, W, 3) RGB, any dtype -> float32 (N, C, H, W)."""
    return np.ascontiguousarray(_nchw_view(images), dtype=np.float32)


# ops that accept any input dtype and return float32 (or a view, for crop), so the batch is converted
# once, inside the first of them, instead of in a separate pass
_ANY_DTYPE = ("window", "crop", "resize")


def run_ops(ops: Sequence[Op], images: np.ndarray, ctx: Context | None = None) -> np.ndarray:
    """Apply ``ops`` in order to ``images`` (see :func:`to_nchw`); returns float32 (N, C, H, W)."""
    ctx = ctx or Context()
    x = _nchw_view(images)
    for op in ops:
        if x.dtype != np.float32 and op.name not in _ANY_DTYPE:
            x = x.astype(np.float32)
        x = OPS[op.name][1](x, op.params, ctx)
    return np.ascontiguousarray(x, dtype=np.float32)
