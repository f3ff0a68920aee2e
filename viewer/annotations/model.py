"""Labels and ROIs as plain, immutable dataclasses (no I/O, no Qt).

Everything a user decides is keyed by the DICOM identity of what it is about: Study, Series and SOP
Instance UID and the frame number. Conventions:

- ``frame`` is the 1-based DICOM frame number (PS3.3 C.7.6.6); 1 for single-frame images. A
  series-scope label has ``sop_uid == ""`` and ``frame == 0``.
- Times are UTC ISO 8601 strings with seconds, e.g. ``2026-11-27T05:30:00.123456+00:00``.
- ROI points are image pixel coordinates (column, row) = (x, y) with the centre of the top-left pixel at
  (0, 0), floats. This is the DICOM SCOORD convention shifted by half a pixel: SCOORD's (0.0, 0.0) is the
  top-left corner of that pixel (PS3.3 C.18.6.1.2), and the SR writer converts.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

SOURCES = ("human", "model")
ROI_KINDS = ("point", "line", "angle", "box", "ellipse", "polygon")
# viewer.state.measurements kinds -> ROI kinds (the measurements of the workstation are ROIs too).
MEASUREMENT_KINDS = {"distance": "line", "angle": "angle", "rect": "box", "ellipse": "ellipse"}


def utc_now() -> str:
    """The current time as a UTC ISO 8601 string (microseconds, explicit +00:00)."""
    return datetime.now(timezone.utc).isoformat()


def parse_time(text: str) -> str:
    """Normalise an ISO 8601 time to UTC; a time without zone is taken as UTC.

    Raises
    ------
    ValueError
        When ``text`` is not ISO 8601.
    """
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat()


def derived_uid(*parts: str) -> str:
    """A stable UID (``2.25.<int>``, PS3.5 B.2) derived from text, for images that carry none.

    Some files have empty Study/Series/SOP Instance UIDs (TotalSegmentator's example CT); labels keyed
    by "" would collide, so the layer that reads them derives UIDs from something stable, e.g. the file's
    content hash: ``derived_uid("sop", sha256_of_file)``.
    """
    import hashlib

    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True, order=True)
class ImageKey:
    """What a label is attached to: one frame of one instance, or (sop_uid "", frame 0) a whole series."""

    study_uid: str
    series_uid: str
    sop_uid: str = ""
    frame: int = 1

    @classmethod
    def series(cls, study_uid: str, series_uid: str) -> ImageKey:
        return cls(study_uid, series_uid, "", 0)

    @property
    def is_series(self) -> bool:
        return self.sop_uid == "" and self.frame == 0


@dataclass(frozen=True)
class Label:
    """One decision about one image (or series) in one label set.

    ``source`` is "human" for a user's own choice and "model" for an accepted AI suggestion, which then
    also carries ``model_id``, ``model_version`` and the model's ``probability`` (0..1) of that label.
    """

    key: ImageKey
    label_set: str
    label: str
    annotator: str
    time: str = field(default_factory=utc_now)
    source: str = "human"
    model_id: str = ""
    model_version: str = ""
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "model" and not self.model_id:
            raise ValueError("a label from a model needs model_id")
        if self.probability is not None and not (0.0 <= self.probability <= 1.0):
            raise ValueError(f"probability must be within 0..1, got {self.probability}")


@dataclass(frozen=True)
class Suggestion:
    """A model's prediction offered to the annotator (accept = one key press)."""

    label: str
    model_id: str
    model_version: str
    probability: float


@dataclass(frozen=True)
class Roi:
    """A region or measurement drawn on one frame.

    kinds and their ``points`` (column, row pixel coordinates, see the module docstring):
    point (1), line (2: a length measurement), angle (3: arm end, vertex, arm end), box (2 opposite
    corners), ellipse (2 opposite corners of its axis-aligned bounding box), polygon (>= 3 vertices,
    implicitly closed).
    """

    key: ImageKey
    kind: str
    points: tuple[tuple[float, float], ...]
    label_set: str = ""
    label: str = ""
    annotator: str = ""
    time: str = field(default_factory=utc_now)
    source: str = "human"
    model_id: str = ""
    model_version: str = ""
    probability: float | None = None
    roi_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.kind not in ROI_KINDS:
            raise ValueError(f"ROI kind must be one of {ROI_KINDS}, got {self.kind!r}")
        want = {"point": 1, "line": 2, "angle": 3, "box": 2, "ellipse": 2}.get(self.kind)
        n = len(self.points)
        if (want is not None and n != want) or (self.kind == "polygon" and n < 3):
            raise ValueError(f"a {self.kind} ROI needs {want or '>= 3'} points, got {n}")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in self.points))
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    def with_(self, **changes: object) -> Roi:
        """A copy with fields changed (same roi_id unless given)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def length_mm(self, spacing: tuple[float, float]) -> float | None:
        """Length of a line in mm, given (column mm, row mm) pixel spacing; None for other kinds."""
        if self.kind != "line":
            return None
        (x0, y0), (x1, y1) = self.points
        return math.hypot((x1 - x0) * spacing[0], (y1 - y0) * spacing[1])

    def angle_deg(self, spacing: tuple[float, float]) -> float | None:
        """The angle at the vertex (second point) in degrees for an angle ROI; None for other kinds."""
        if self.kind != "angle":
            return None
        (ax, ay), (vx, vy), (bx, by) = self.points
        u = ((ax - vx) * spacing[0], (ay - vy) * spacing[1])
        w = ((bx - vx) * spacing[0], (by - vy) * spacing[1])
        return abs(math.degrees(math.atan2(u[0] * w[1] - u[1] * w[0], u[0] * w[0] + u[1] * w[1])))

    def area_mm2(self, spacing: tuple[float, float]) -> float | None:
        """Area in mm² of a box, ellipse or polygon given (column mm, row mm) spacing; None otherwise."""
        sx, sy = spacing
        if self.kind in ("box", "ellipse"):
            (x0, y0), (x1, y1) = self.points
            w, h = abs(x1 - x0) * sx, abs(y1 - y0) * sy
            return w * h if self.kind == "box" else math.pi * w * h / 4.0
        if self.kind == "polygon":
            xs = [p[0] * sx for p in self.points]
            ys = [p[1] * sy for p in self.points]
            s = sum(xs[i] * ys[(i + 1) % len(xs)] - xs[(i + 1) % len(xs)] * ys[i] for i in range(len(xs)))
            return abs(s) / 2.0
        return None
