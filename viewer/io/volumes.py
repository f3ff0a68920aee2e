"""The fourth dimension: which slices of a stack form which volume, and what sets each volume apart.

A stack holds several volumes when its slices repeat the same positions: fMRI time points, diffusion
directions, echoes, cardiac phases, magnitude and phase images (single-frame files, frames of one
enhanced file, several enhanced files, or Siemens/UIH mosaics, one file per volume). Slices are grouped
by their distance along the slice normal; when every position holds the same number V of slices, there
are V volumes, and each position's slices are dealt to volumes 0..V-1 in the order of their volume key
(TemporalPositionIdentifier / TemporalPositionIndex, EchoNumbers, AcquisitionNumber), then
InstanceNumber, file and frame.

Per-volume fields (:class:`~viewer.core.volume.VolumeInfo`) come from one slice of each volume: the
standard attributes first (DiffusionBValue, DiffusionGradientOrientation, EchoTime, TriggerTime,
TemporalPositionIdentifier, AcquisitionTime; per-frame functional groups of enhanced objects), then the
vendors' private ones where the standard ones are absent (Siemens (0019,100C)/(0019,100E), GE
(0043,1039), Philips (2001,1003)/(2005,10B0-10B2)), as dcm2niix reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from viewer.core.series_info import VolumeInfo

T = TypeVar("T")

#: Slices whose distances along the normal differ by less than this (mm) share a position.
SAME_POSITION_MM = 0.01


def group_volumes(items: Sequence[T], distance: Callable[[T], float],
                  key: Callable[[T], tuple[Any, ...]]) -> tuple[list[list[T]], str | None]:
    """Split slices into volumes (each in input order), and a warning when they do not form volumes.

    Returns ``[items]`` when every position occurs once. When positions repeat but not equally often
    (a few duplicated slices), the first slice (by ``key``) at each position is kept, with a warning.
    """
    if len(items) < 2:
        return [list(items)], None
    dist = np.array([distance(it) for it in items], dtype=np.float64)
    order = np.argsort(dist, kind="stable")
    if bool(np.all(np.diff(dist[order]) >= SAME_POSITION_MM)):
        return [list(items)], None
    clusters: list[list[int]] = []
    for i in order.tolist():
        if clusters and abs(dist[i] - dist[clusters[-1][0]]) < SAME_POSITION_MM:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    for c in clusters:
        c.sort(key=lambda i: key(items[i]))
    sizes = {len(c) for c in clusters}
    if len(sizes) == 1:
        count = sizes.pop()
        return [[items[c[v]] for c in clusters] for v in range(count)], None
    dups = [c for c in clusters if len(c) > 1]
    warning = (f"{len(dups)} of {len(clusters)} positions hold more than one slice (but not equally many, so "
               "they are not separate volumes): kept the first at each position")
    return [[items[c[0]] for c in clusters]], warning


#: What :func:`volume_info` reads of a single-frame file (one per volume): parsing only these keeps the
#: per-volume pass cheap for a 156-volume fMRI. Enhanced files are read whole (their groups are needed).
VOLUME_KEYWORDS = ("Manufacturer", "DiffusionBValue", "DiffusionGradientOrientation", "EchoTime", "EchoNumbers",
                   "TriggerTime", "TemporalPositionIdentifier", "AcquisitionTime", "AcquisitionDateTime",
                   "ContentTime", "AcquisitionNumber", "ImageType", "NumberOfFrames")
#: The vendors' private b-value / direction tags and their private creators.
VOLUME_PRIVATE_TAGS = (0x0019100C, 0x0019100E, 0x00431039, 0x20011003, 0x200510B0, 0x200510B1, 0x200510B2,
                       0x00651037, 0x00190010, 0x00430010, 0x20010010, 0x20050010, 0x00650010)


def read_volume_header(path: str) -> Any:
    """The attributes :func:`volume_info` needs of ``path`` (the whole header for multi-frame files)."""
    import pydicom
    from pydicom.datadict import tag_for_keyword

    tags = [int(tag_for_keyword(k) or 0) for k in VOLUME_KEYWORDS] + list(VOLUME_PRIVATE_TAGS)
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    if int(_num(ds.get("NumberOfFrames")) or 1) > 1:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds


def _num(v: Any) -> float | None:
    try:
        if v is None or v == "":
            return None
        return float(v[0] if isinstance(v, (list, tuple)) or (hasattr(v, "__len__") and not isinstance(
            v, (str, bytes))) else v)
    except (TypeError, ValueError, IndexError):
        return None


def _vec(v: Any) -> tuple[float, float, float] | None:
    try:
        vals = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    return (vals[0], vals[1], vals[2]) if len(vals) == 3 else None


def _private(ds: Any, group: int, element: int) -> Any:
    elem = ds.get((group, element)) if ds is not None else None
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        # Private tags read as UN (implicit VR) arrive as bytes: three little-endian doubles (Siemens
        # DiffusionGradientDirection, FD) or decimal strings (the b-values of every vendor here).
        if len(value) == 24 and elem.VR in ("UN", "FD", "OB"):
            import struct

            vals = struct.unpack("<3d", value)
            if all(abs(v) <= 1.5 for v in vals):
                return list(vals)
        try:
            text = value.decode("ascii", "replace").strip(" \x00")
            parts = [p for p in text.split("\\") if p]
            return parts if len(parts) > 1 else (parts[0] if parts else None)
        except (UnicodeDecodeError, AttributeError):
            return None
    return value


def _first(seq: Any) -> Any:
    return seq[0] if seq else None


def volume_info(index: int, ds: Any, frame_groups: Callable[[str], Any] | None = None) -> VolumeInfo:
    """The :class:`VolumeInfo` of volume ``index`` from one of its slices' data set ``ds``.

    ``frame_groups(name)`` returns the functional-group item ``name`` of that slice's frame (enhanced
    objects), or None.
    """
    def group(name: str) -> Any:
        return frame_groups(name) if frame_groups is not None else None

    diff = group("MRDiffusionSequence")
    src = diff if diff is not None else ds
    b_value = _num(src.get("DiffusionBValue"))
    direction = _first(src.get("DiffusionGradientDirectionSequence")) if diff is not None else None
    b_vector = _vec((direction or src).get("DiffusionGradientOrientation"))
    manufacturer = str(ds.get("Manufacturer", "") or "").upper()
    if b_value is None:
        if "SIEMENS" in manufacturer:
            b_value = _num(_private(ds, 0x0019, 0x100C))
        elif "GE" in manufacturer.split():
            # GE adds 1e9 * a flag to the b-value on some releases (dcm2niix keeps it modulo 1e5).
            b = _num(_private(ds, 0x0043, 0x1039))
            b_value = b % 100000 if b is not None else None
        elif "PHILIPS" in manufacturer:
            b_value = _num(_private(ds, 0x2001, 0x1003))
    if b_vector is None:
        if "SIEMENS" in manufacturer:
            b_vector = _vec(_private(ds, 0x0019, 0x100E))
        elif "PHILIPS" in manufacturer:
            parts = [_num(_private(ds, 0x2005, e)) for e in (0x10B0, 0x10B1, 0x10B2)]
            b_vector = _vec(parts) if all(p is not None for p in parts) else None
    if "UIH" in manufacturer or "UNITED IMAGING" in manufacturer:
        # dcm2niix prefers UIH's private direction (0065,1037) over the standard one.
        b_vector = _vec(_private(ds, 0x0065, 0x1037)) or b_vector
    echo = group("MREchoSequence")
    echo_time = _num(echo.get("EffectiveEchoTime") if echo is not None else ds.get("EchoTime"))
    en = _num(ds.get("EchoNumbers"))
    cardiac = group("CardiacSynchronizationSequence")
    trig = _num(cardiac.get("NominalCardiacTriggerDelayTime")) if cardiac is not None else None
    content = group("FrameContentSequence")
    tp = _num(content.get("TemporalPositionIndex")) if content is not None else None
    tp = tp if tp is not None else _num(ds.get("TemporalPositionIdentifier"))
    when = content.get("FrameAcquisitionDateTime") if content is not None else None
    an = _num(ds.get("AcquisitionNumber"))
    frame_type = group("MRImageFrameTypeSequence") or group("CTImageFrameTypeSequence")
    itype = (frame_type.get("FrameType") if frame_type is not None else None) or ds.get("ImageType") or []
    return VolumeInfo(
        index=index, b_value=b_value, b_vector=b_vector, echo_time=echo_time,
        echo_number=int(en) if en is not None else None,
        trigger_time=trig if trig is not None else _num(ds.get("TriggerTime")),
        temporal_position=int(tp) if tp is not None else None,
        acquisition_time=str(when or ds.get("AcquisitionTime") or ds.get("AcquisitionDateTime")
                             or ds.get("ContentTime") or ""),
        acquisition_number=int(an) if an is not None else None,
        image_type="\\".join(str(v) for v in itype) if not isinstance(itype, str) else itype)


def axis_kind(infos: Sequence[VolumeInfo]) -> str:
    """What the volume index means, from what varies between volumes."""
    def varies(get: Callable[[VolumeInfo], Any]) -> bool:
        return len({get(i) for i in infos}) > 1

    if varies(lambda i: i.b_value) or varies(lambda i: i.b_vector):
        return "diffusion"
    if varies(lambda i: i.echo_time) or varies(lambda i: i.echo_number):
        return "echo"
    if varies(lambda i: i.trigger_time):
        return "phase"
    if varies(lambda i: i.image_type):
        return "image type"
    if (varies(lambda i: i.temporal_position) or varies(lambda i: i.acquisition_time)
            or varies(lambda i: i.acquisition_number)):
        return "time"
    return "stack"
