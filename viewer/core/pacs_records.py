"""The PACS client's records: a query match, a retrieve's progress and its outcome.

Plain dataclasses with no pydicom or pynetdicom behind them: ``viewer.io.pacs`` fills them (``find``,
``retrieve``) and the PACS dock reads them, typed, without importing ``io``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Match:
    """One study or series found. Counts are -1 when the PACS did not say."""

    level: str
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_description: str = ""
    modalities: str = ""
    study_series: int = -1
    study_instances: int = -1
    series_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    series_instances: int = -1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SeriesProgress:
    """Where one series stands. ``done`` counts instances present (skipped ones included) of ``total``."""

    study_uid: str
    series_uid: str
    folder: Path
    total: int
    done: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class SeriesResult:
    study_uid: str
    series_uid: str
    folder: Path
    method: str
    total: int
    stored: int
    skipped: int
    bytes: int
    seconds: float
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and self.stored + self.skipped >= self.total

    def to_json(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "series_uid": self.series_uid, "folder": str(self.folder),
                "method": self.method, "total": self.total, "stored": self.stored, "skipped": self.skipped,
                "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "mb_per_s": round(self.bytes / 1e6 / self.seconds, 2) if self.seconds > 0 else 0.0,
                "complete": self.complete, "files": [str(f) for f in self.files], "problems": self.problems,
                "error": self.error}


@dataclass
class RetrieveResult:
    node: str
    into: Path
    series: list[SeriesResult]
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(s.complete for s in self.series)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "into": str(self.into), "ok": self.ok, "cancelled": self.cancelled,
                "methods": sorted({s.method for s in self.series if s.method}),
                "series": [s.to_json() for s in self.series]}
