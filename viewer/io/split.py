"""Splitting one DICOM series into loadable stacks, the way 3D Slicer's DICOMScalarVolumePlugin does.

A "series" as the user sees it (one SeriesInstanceUID) is not always one volume. In order:

1. multi-frame files are stacks of their own, except that files of one series with the same frame
   count, size and ImageType form one stack (an enhanced fMRI or DWI written one file per volume; the
   loader puts frames that repeat positions into volumes);
2. single-frame files split by orientation (ImageOrientationPatient, cosines within 1e-4), then by
   image size (Rows x Columns), then by ImageType (a localizer or a derived/phase image never joins the
   primary stack; Slicer's ``imageType`` sub-series);
3. when positions repeat inside a stack, the first of AcquisitionNumber, EchoNumbers,
   TemporalPositionIdentifier that separates the repeats into volumes without repeats makes the stack 4D
   (``volumes`` > 1: fMRI time points, Siemens mosaics one file per time point, multi-echo): one stack,
   not one per volume, labelled "4D: 6 time points (AcquisitionNumber)" (no split reason: nothing was
   split off). SeriesNumber separating them (one UID reused for copies) splits into stacks.
   Repeats that no tag separates but that occur equally often at every position are 4D as well. A tag
   that varies but does not separate volumes (a CT with one AcquisitionNumber per slice) does neither;
4. images without ImagePositionPatient (projection radiographs) are one stack each.

Every stack made by a split carries a human ``reason`` and a short ``label`` that tells it from its
siblings (the browser shows it after the description); unresolved problems become ``warnings``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from viewer.core.records import HeaderRecord

#: Direction cosines closer than this are the same orientation (Slicer uses a similar epsilon).
ORIENTATION_TOL = 1e-4
#: Slice positions (mm, along the normal and in-plane) closer than this are the same position.
POSITION_TOL_MM = 1e-3

#: Enhanced (functional-group) image SOP classes: CT, legacy-converted CT, MR, legacy MR, PET, legacy
#: PET, XA, XRF, US volume, breast tomosynthesis; their positions are per frame, not at the top level.
ENHANCED_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2", "1.2.840.10008.5.1.4.1.1.4.1",
    "1.2.840.10008.5.1.4.1.1.4.4", "1.2.840.10008.5.1.4.1.1.130", "1.2.840.10008.5.1.4.1.1.128.1",
    "1.2.840.10008.5.1.4.1.1.12.1.1", "1.2.840.10008.5.1.4.1.1.12.2.1", "1.2.840.10008.5.1.4.1.1.6.2",
    "1.2.840.10008.5.1.4.1.1.13.1.3",
})

_VOLUME_MEANING = {"acquisition_number": "time points", "echo_number": "echoes",
                   "temporal_position": "time points"}

_SEPARATING_KEYS: tuple[tuple[str, str], ...] = (
    ("acquisition_number", "AcquisitionNumber"),
    ("echo_number", "EchoNumbers"),
    ("temporal_position", "TemporalPositionIdentifier"),
    ("series_number", "SeriesNumber"),
)


@dataclass
class Part:
    """One loadable stack of a series: its files' records, why it was split off, what is odd about it."""

    records: list[HeaderRecord]
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    volumes: int = 1

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None

    @property
    def label(self) -> str | None:
        """Short text telling this stack from the others of its series ("ImageType DERIVED\\SECONDARY",
        "4D: 156 time points"), or None."""
        return ", ".join(self.labels) or None


def split_series(records: Sequence[HeaderRecord]) -> list[Part]:
    """Split the image records of one series into loadable stacks (see the module docstring).

    Parameters
    ----------
    records
        ``status == "image"`` records of one series, in any order.

    Returns
    -------
    list of Part
        In a stable order: multi-frame files by path, then single-frame stacks by orientation, size,
        image type and separating-tag value.
    """
    multi = sorted((r for r in records if r.frames > 1), key=lambda r: r.path)
    single = sorted((r for r in records if r.frames <= 1), key=lambda r: r.path)
    parts: list[Part] = []
    same: dict[tuple[int, int, int, str], list[HeaderRecord]] = {}
    for r in multi:
        same.setdefault((r.frames, r.rows, r.columns, r.image_type), []).append(r)
    many = len(same) + (1 if single else 0) > 1
    for recs in same.values():
        if len(recs) > 1:
            reason = []  # files joined, nothing split off: the label says it
        else:
            reason = [f"multi-frame file ({recs[0].frames} frames): one stack per file"] if many else []
        parts.append(Part(recs, reason, labels=[f"{len(recs)} x {recs[0].frames} frames" if len(recs) > 1
                                                else f"{recs[0].frames} frames"] if many else []))
    if not single:
        return parts
    groups = [Part(single)]
    groups = _split_by(groups, _orientation_key(single), "orientation", _fmt_orientation)
    groups = _split_by(groups, lambda r: (r.rows, r.columns), "image size", _fmt_size)
    groups = _split_by(groups, lambda r: r.image_type, "ImageType", lambda k: str(k or "(none)"))
    for g in groups:
        parts.extend(_split_repeats(g))
    return parts


def _split_by(parts: list[Part], key: Callable[[HeaderRecord], object], what: str,
              fmt: Callable[[object], str]) -> list[Part]:
    out: list[Part] = []
    for part in parts:
        buckets: dict[object, list[HeaderRecord]] = {}
        for r in part.records:
            buckets.setdefault(key(r), []).append(r)
        if len(buckets) == 1:
            out.append(part)
            continue
        for k, recs in buckets.items():
            out.append(Part(recs, part.reasons + [f"{what} differs within the series ({len(buckets)} values); "
                                                  f"this stack: {fmt(k)}"], list(part.warnings),
                            part.labels + [f"{what} {fmt(k)}"]))
    return out


def _orientation_key(records: Sequence[HeaderRecord]) -> Callable[[HeaderRecord], object]:
    """Cluster orientations within ORIENTATION_TOL (rounding alone would cut clusters at a boundary)."""
    reps: list[tuple[float, ...]] = []
    seen: dict[str, object] = {}  # the same text is the same orientation: skip parsing and comparing

    def key(r: HeaderRecord) -> object:
        if r.orientation in seen:
            return seen[r.orientation]
        o = r.floats("orientation")
        found: object = None
        if o is not None:
            found = next((rep for rep in reps
                          if max(abs(a - b) for a, b in zip(o, rep, strict=True)) <= ORIENTATION_TOL), None)
            if found is None:
                reps.append(o)
                found = o
        seen[r.orientation] = found
        return found

    return key


def _fmt_orientation(k: object) -> str:
    if not isinstance(k, tuple):
        return "no ImageOrientationPatient"
    return "[" + ", ".join(f"{v:.4g}" for v in k) + "]"


def _fmt_size(k: object) -> str:
    rows, columns = k if isinstance(k, tuple) else (0, 0)
    return f"{columns} x {rows} (columns x rows)"


def _position_keys(part: Part) -> dict[int, tuple[int, int, int]] | None:
    """Positions quantised to POSITION_TOL_MM, by record id; None when any record has no position."""
    out = {}
    for r in part.records:
        p = r.floats("position")
        if p is None:
            return None
        out[id(r)] = tuple(round(v / POSITION_TOL_MM) for v in p)
    return out  # type: ignore[return-value]


def _positioned_inside(r: HeaderRecord) -> bool:
    return r.sop_class_uid in ENHANCED_CLASSES or "MOSAIC" in r.image_type.upper()


def _has_repeats(records: Sequence[HeaderRecord], pos: dict[int, tuple[int, int, int]]) -> bool:
    seen = {pos[id(r)] for r in records}
    return len(seen) < len(records)


def _split_repeats(part: Part) -> list[Part]:
    recs = part.records
    if len(recs) == 1:
        return [part]
    pos = _position_keys(part)
    if pos is None:
        with_pos = [r for r in recs if r.floats("position") is not None]
        rest = [r for r in recs if r.floats("position") is None]
        # One-frame enhanced objects keep their position in the functional groups and UIH mosaics per tile
        # in a private sequence, which the scan does not read: they stay one stack, and the loader sorts
        # them by those positions (a mosaic file is one volume).
        enhanced = [r for r in rest if _positioned_inside(r)]
        without = [r for r in rest if not _positioned_inside(r)]
        out = [Part([r], part.reasons + ["no ImagePositionPatient: each such image is its own stack"],
                    list(part.warnings), part.labels + [f"image {r.instance_number or os.path.basename(r.path)}"])
               for r in without]
        if with_pos:
            out = _split_repeats(Part(with_pos, list(part.reasons), list(part.warnings), list(part.labels))) + out
        if enhanced:
            mosaics = sum("MOSAIC" in r.image_type.upper() for r in enhanced)
            volumes = mosaics if mosaics == len(enhanced) and mosaics > 1 else 1
            out = [Part(enhanced, list(part.reasons), list(part.warnings),
                        part.labels + ([f"4D: {volumes} volumes"] if volumes > 1 else []), volumes)] + out
        return out
    if not _has_repeats(recs, pos):
        return [part]
    for attr, tag in _SEPARATING_KEYS:
        buckets: dict[str, list[HeaderRecord]] = {}
        for r in recs:
            buckets.setdefault(getattr(r, attr), []).append(r)
        if len(buckets) > 1 and not any(_has_repeats(b, pos) for b in buckets.values()):
            if attr != "series_number":
                # Not a split: one 4D stack, which its label says (a reason would mark it as odd).
                meaning = _VOLUME_MEANING[attr]
                return [Part(recs, list(part.reasons), list(part.warnings),
                             part.labels + [f"4D: {len(buckets)} {meaning} ({tag})"], volumes=len(buckets))]
            ordered = sorted(buckets.items(), key=lambda kv: _num_key(kv[0]))
            return [Part(b, part.reasons + [f"slice positions repeat; {tag} separates {len(buckets)} volumes; "
                                            f"this stack: {tag} {v or '(empty)'}"], list(part.warnings),
                         part.labels + [f"{tag} {v or '(empty)'}"])
                    for v, b in ordered]
    n_unique = len({pos[id(r)] for r in recs})
    counts: dict[tuple[int, int, int], int] = {}
    for r in recs:
        counts[pos[id(r)]] = counts.get(pos[id(r)], 0) + 1
    if len(set(counts.values())) == 1:
        volumes = len(recs) // n_unique
        # Every position holds the same number of images and no tag says why: volumes in InstanceNumber order.
        return [Part(recs, list(part.reasons), list(part.warnings),
                     part.labels + [f"4D: {volumes} volumes"], volumes=volumes)]
    part.warnings.append(f"{len(recs) - n_unique} of {len(recs)} files repeat a slice position already "
                         "taken and no tag (AcquisitionNumber, EchoNumbers, TemporalPositionIdentifier, "
                         "SeriesNumber) separates them into volumes")
    return [part]


def _num_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)
