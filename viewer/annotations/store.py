"""The local label store: every change is committed to SQLite the moment it is made.

Why SQLite in WAL mode with ``synchronous=FULL``:

- A commit in WAL mode appends the changed pages to the ``-wal`` file; a reader or the next opener replays
  only whole committed transactions, so a process killed at any instant (even mid-write) leaves a store
  that opens and holds every transaction whose COMMIT returned.
- ``synchronous=NORMAL`` would already survive a *process* kill (the WAL is in the OS page cache), but a
  power cut or OS crash could then drop the last transactions. ``FULL`` fsyncs the WAL on every commit,
  so "saved" means on disk. Labels are made at human speed (a few per second), so the cost of one fsync
  per change (about a millisecond on an SSD) is invisible.
- One file, no server, safe for several readers and one writer at a time (``busy_timeout`` waits for the
  lock rather than failing when the UI and a command line export touch the store together).

Public methods that change anything are each one transaction; :meth:`LabelStore.put_labels` and
:meth:`LabelStore.put_rois` take many rows in one transaction, so an import that fails half-way changes
nothing. Masks are stored per slice (z index) as zlib-compressed packed bits, so a brush stroke rewrites
one small row, not the whole volume.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer.annotations.model import ImageKey, Label, Roi, utc_now
from viewer.annotations.paths import default_store_path
from viewer.core.atomic import create_private

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL, frame INTEGER NOT NULL,
    label_set TEXT NOT NULL, label TEXT NOT NULL, annotator TEXT NOT NULL, time TEXT NOT NULL,
    source TEXT NOT NULL, model_id TEXT NOT NULL, model_version TEXT NOT NULL, probability REAL,
    PRIMARY KEY (study_uid, series_uid, sop_uid, frame, label_set)
);
CREATE INDEX IF NOT EXISTS labels_series ON labels (series_uid);
CREATE TABLE IF NOT EXISTS rois (
    roi_id TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL, frame INTEGER NOT NULL,
    kind TEXT NOT NULL, points TEXT NOT NULL, label_set TEXT NOT NULL, label TEXT NOT NULL,
    annotator TEXT NOT NULL, time TEXT NOT NULL, source TEXT NOT NULL, model_id TEXT NOT NULL,
    model_version TEXT NOT NULL, probability REAL
);
CREATE INDEX IF NOT EXISTS rois_series ON rois (series_uid);
CREATE TABLE IF NOT EXISTS mask_slices (
    series_uid TEXT NOT NULL, label_set TEXT NOT NULL, label TEXT NOT NULL, z INTEGER NOT NULL,
    study_uid TEXT NOT NULL, sop_uid TEXT NOT NULL, frame INTEGER NOT NULL,
    rows INTEGER NOT NULL, cols INTEGER NOT NULL, bits BLOB NOT NULL, annotator TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (series_uid, label_set, label, z)
);
"""

_LABEL_COLS = ("study_uid, series_uid, sop_uid, frame, label_set, label, annotator, time, source, model_id, "
               "model_version, probability")
_ROI_COLS = ("roi_id, study_uid, series_uid, sop_uid, frame, kind, points, label_set, label, annotator, time, "
             "source, model_id, model_version, probability")


class StoreError(RuntimeError):
    """The store file cannot be opened or is not a label store."""


def _label_row(lab: Label) -> tuple[Any, ...]:
    k = lab.key
    return (k.study_uid, k.series_uid, k.sop_uid, k.frame, lab.label_set, lab.label, lab.annotator, lab.time,
            lab.source, lab.model_id, lab.model_version, lab.probability)


def _row_label(r: tuple[Any, ...]) -> Label:
    return Label(ImageKey(r[0], r[1], r[2], int(r[3])), r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                 None if r[11] is None else float(r[11]))


def _roi_row(roi: Roi) -> tuple[Any, ...]:
    k = roi.key
    return (roi.roi_id, k.study_uid, k.series_uid, k.sop_uid, k.frame, roi.kind, json.dumps(roi.points),
            roi.label_set, roi.label, roi.annotator, roi.time, roi.source, roi.model_id, roi.model_version,
            roi.probability)


def _row_roi(r: tuple[Any, ...]) -> Roi:
    return Roi(ImageKey(r[1], r[2], r[3], int(r[4])), r[5], tuple(tuple(p) for p in json.loads(r[6])), r[7], r[8],
               r[9], r[10], r[11], r[12], r[13], None if r[14] is None else float(r[14]), r[0])


_OUR_TABLES = {"labels", "rois", "mask_slices"}


def _check_existing(path: Path) -> None:
    """Refuse, before anything is written to it, a file that is not a healthy label store: not SQLite,
    damaged, or an SQLite file of something else (the scan index, another program's database). Such a
    file is never changed: the user gets a sentence and the file as it was."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with path.open("rb") as f:
            magic = f.read(16)
    except OSError as exc:
        raise StoreError(f"{path}: the label store cannot be read ({exc.strerror or exc})") from exc
    if magic != b"SQLite format 3\x00":
        raise StoreError(f"{path} is not a label store (not an SQLite file); it was not changed. Choose "
                         "another --store, or move the file away")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return  # another process writes it: the normal open waits for the lock
        raise StoreError(f"{path}: the label store is damaged ({exc}); it was not changed. Restore it from "
                         "a backup, or move it away to start a new one") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: the label store is damaged ({exc}); it was not changed. Restore it from "
                         "a backup, or move it away to start a new one") from exc
    if tables and not tables & _OUR_TABLES:
        raise StoreError(f"{path} is an SQLite file of something else (tables: {', '.join(sorted(tables)[:5])}), "
                         "not a label store; it was not changed")
    if check != "ok":
        raise StoreError(f"{path}: the label store is damaged (SQLite: {str(check)[:120]}); it was not "
                         "changed. Restore it from a backup, or move it away to start a new one")


def _create_private(path: Path) -> None:
    """A new store is created 0600: it holds who labelled what, with UIDs of patients' images."""
    try:
        create_private(path)
    except OSError as exc:
        raise StoreError(f"{path}: the label store cannot be created ({exc.strerror or exc})") from exc


class LabelStore:
    """Labels, ROIs and masks of one user, saved at once to an SQLite file.

    Parameters
    ----------
    path
        The store file; default ``<data dir>/labels.sqlite`` (``$VIEWER_DATA_DIR`` overrides the folder).
        Its folder is created.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _check_existing(self.path)
        _create_private(self.path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each method is exactly one transaction.
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: label store version {version} is newer than this viewer "
                                 f"understands ({SCHEMA_VERSION}); update the viewer")
            with self._transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: the label store cannot be opened now ({exc}); it is left as "
                             "it is") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable label store ({exc}); it is left as it is") from exc

    # -- plumbing -----------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of failing at COMMIT.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """SQLite's own consistency check: "ok" for a healthy file."""
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- labels ---------------------------------------------------------------------------------------
    def set_label(self, label: Label) -> Label | None:
        """Save ``label``, replacing the one of the same image and label set; returns the replaced one."""
        with self._transaction():
            previous = self._get_label(label.key, label.label_set)
            self._conn.execute(f"INSERT OR REPLACE INTO labels ({_LABEL_COLS}) VALUES ({','.join('?' * 12)})",
                               _label_row(label))
        return previous

    def _get_label(self, key: ImageKey, label_set: str) -> Label | None:
        r = self._conn.execute(
            f"SELECT {_LABEL_COLS} FROM labels WHERE study_uid=? AND series_uid=? AND sop_uid=? AND frame=? "
            "AND label_set=?", (key.study_uid, key.series_uid, key.sop_uid, key.frame, label_set)).fetchone()
        return None if r is None else _row_label(r)

    def get_label(self, key: ImageKey, label_set: str) -> Label | None:
        """The label of ``key`` in ``label_set``, None when unlabeled."""
        return self._get_label(key, label_set)

    def delete_label(self, key: ImageKey, label_set: str) -> Label | None:
        """Remove the label of ``key`` in ``label_set``; returns what was removed."""
        with self._transaction():
            previous = self._get_label(key, label_set)
            self._conn.execute("DELETE FROM labels WHERE study_uid=? AND series_uid=? AND sop_uid=? AND frame=? "
                               "AND label_set=?", (key.study_uid, key.series_uid, key.sop_uid, key.frame,
                                                   label_set))
        return previous

    def labels(self, label_set: str | None = None, series_uid: str | None = None) -> list[Label]:
        """All labels, optionally of one label set and/or series, ordered by UIDs and frame."""
        where, args = [], []
        if label_set is not None:
            where.append("label_set=?")
            args.append(label_set)
        if series_uid is not None:
            where.append("series_uid=?")
            args.append(series_uid)
        sql = f"SELECT {_LABEL_COLS} FROM labels"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY study_uid, series_uid, sop_uid, frame, label_set"
        return [_row_label(r) for r in self._conn.execute(sql, args)]

    def labeled_keys(self, label_set: str) -> set[ImageKey]:
        """The images that have a label in ``label_set``."""
        return {ImageKey(r[0], r[1], r[2], int(r[3])) for r in self._conn.execute(
            "SELECT study_uid, series_uid, sop_uid, frame FROM labels WHERE label_set=?", (label_set,))}

    def put_labels(self, labels: Iterable[Label]) -> int:
        """Save many labels in ONE transaction (all or nothing); returns how many were written."""
        rows = [_label_row(lab) for lab in labels]
        with self._transaction():
            self._conn.executemany(f"INSERT OR REPLACE INTO labels ({_LABEL_COLS}) VALUES ({','.join('?' * 12)})",
                                   rows)
        return len(rows)

    def put_all(self, labels: Iterable[Label], rois: Iterable[Roi]) -> None:
        """Save labels and ROIs together in ONE transaction (an import: all or nothing)."""
        label_rows, roi_rows = [_label_row(x) for x in labels], [_roi_row(r) for r in rois]
        with self._transaction():
            self._conn.executemany(f"INSERT OR REPLACE INTO labels ({_LABEL_COLS}) VALUES ({','.join('?' * 12)})",
                                   label_rows)
            self._conn.executemany(f"INSERT OR REPLACE INTO rois ({_ROI_COLS}) VALUES ({','.join('?' * 15)})",
                                   roi_rows)

    # -- ROIs -----------------------------------------------------------------------------------------
    def put_roi(self, roi: Roi) -> Roi | None:
        """Save ``roi`` (new, or replacing the one with its roi_id); returns the replaced one."""
        with self._transaction():
            previous = self.get_roi(roi.roi_id)
            self._conn.execute(f"INSERT OR REPLACE INTO rois ({_ROI_COLS}) VALUES ({','.join('?' * 15)})",
                               _roi_row(roi))
        return previous

    def put_rois(self, rois: Iterable[Roi]) -> int:
        """Save many ROIs in one transaction (all or nothing)."""
        rows = [_roi_row(r) for r in rois]
        with self._transaction():
            self._conn.executemany(f"INSERT OR REPLACE INTO rois ({_ROI_COLS}) VALUES ({','.join('?' * 15)})", rows)
        return len(rows)

    def get_roi(self, roi_id: str) -> Roi | None:
        r = self._conn.execute(f"SELECT {_ROI_COLS} FROM rois WHERE roi_id=?", (roi_id,)).fetchone()
        return None if r is None else _row_roi(r)

    def delete_roi(self, roi_id: str) -> Roi | None:
        """Remove an ROI; returns it (None when there was none)."""
        with self._transaction():
            previous = self.get_roi(roi_id)
            self._conn.execute("DELETE FROM rois WHERE roi_id=?", (roi_id,))
        return previous

    def rois(self, series_uid: str | None = None, label_set: str | None = None) -> list[Roi]:
        """All ROIs, optionally of one series and/or label set, ordered by image and time."""
        where, args = [], []
        if series_uid is not None:
            where.append("series_uid=?")
            args.append(series_uid)
        if label_set is not None:
            where.append("label_set=?")
            args.append(label_set)
        sql = f"SELECT {_ROI_COLS} FROM rois" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY study_uid, series_uid, sop_uid, frame, time, roi_id"
        return [_row_roi(r) for r in self._conn.execute(sql, args)]

    # -- masks ----------------------------------------------------------------------------------------
    def save_mask_slice(self, series_uid: str, label_set: str, label: str, z: int, plane: np.ndarray, *,
                        study_uid: str = "", sop_uid: str = "", frame: int = 1, annotator: str = "") -> None:
        """Save one (rows, cols) boolean slice of a label's mask; an empty slice deletes the row.

        ``z`` is the slice index in the series volume (z, y, x); ``sop_uid``/``frame`` name the DICOM image
        it lies on, which the SEG export references.
        """
        import numpy as np

        plane = np.asarray(plane, dtype=bool)
        with self._transaction():
            if not plane.any():
                self._conn.execute("DELETE FROM mask_slices WHERE series_uid=? AND label_set=? AND label=? AND z=?",
                                   (series_uid, label_set, label, int(z)))
                return
            bits = zlib.compress(np.packbits(plane, axis=None).tobytes(), 1)
            self._conn.execute(
                "INSERT OR REPLACE INTO mask_slices (series_uid, label_set, label, z, study_uid, sop_uid, frame, "
                "rows, cols, bits, annotator, time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (series_uid, label_set, label, int(z), study_uid, sop_uid, int(frame), plane.shape[0],
                 plane.shape[1], bits, annotator, utc_now()))

    def save_mask(self, series_uid: str, label_set: str, label: str, mask: np.ndarray,
                  slice_refs: Sequence[ImageKey], *, annotator: str = "") -> int:
        """Replace a label's whole (z, y, x) mask in ONE transaction (an import: all or nothing).

        ``slice_refs`` names the image of each z. Returns the number of non-empty slices written.
        """
        import numpy as np

        mask = np.asarray(mask, dtype=bool)
        if len(slice_refs) != mask.shape[0]:
            raise ValueError(f"{len(slice_refs)} slice references for a mask of {mask.shape[0]} slices")
        now = utc_now()
        rows = []
        for z in np.nonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0]:
            ref = slice_refs[int(z)]
            rows.append((series_uid, label_set, label, int(z), ref.study_uid, ref.sop_uid, ref.frame, mask.shape[1],
                         mask.shape[2], zlib.compress(np.packbits(mask[z], axis=None).tobytes(), 1), annotator, now))
        with self._transaction():
            self._conn.execute("DELETE FROM mask_slices WHERE series_uid=? AND label_set=? AND label=?",
                               (series_uid, label_set, label))
            self._conn.executemany(
                "INSERT INTO mask_slices (series_uid, label_set, label, z, study_uid, sop_uid, frame, rows, cols, "
                "bits, annotator, time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def load_mask_slice(self, series_uid: str, label_set: str, label: str, z: int,
                        shape: tuple[int, int]) -> np.ndarray:
        """One saved (rows, cols) boolean slice; all False when nothing is saved there."""
        import numpy as np

        r = self._conn.execute("SELECT rows, cols, bits FROM mask_slices WHERE series_uid=? AND label_set=? AND "
                               "label=? AND z=?", (series_uid, label_set, label, int(z))).fetchone()
        if r is None:
            return np.zeros(shape, dtype=bool)
        return _unpack(r[0], r[1], r[2], shape, z)

    def load_mask(self, series_uid: str, label_set: str, label: str, shape: tuple[int, int, int]) -> np.ndarray:
        """A label's whole mask as a (z, y, x) boolean array of ``shape`` (the series volume's shape).

        Raises
        ------
        ValueError
            When a saved slice has another size or lies outside ``shape`` (the mask belongs to other
            geometry).
        """
        import numpy as np

        out = np.zeros(shape, dtype=bool)
        for z, rows, cols, bits in self._conn.execute(
                "SELECT z, rows, cols, bits FROM mask_slices WHERE series_uid=? AND label_set=? AND label=?",
                (series_uid, label_set, label)):
            if not 0 <= z < shape[0]:
                raise ValueError(f"mask of {label!r} has slice {z} outside a volume of {shape[0]} slices")
            out[z] = _unpack(rows, cols, bits, shape[1:], z)
        return out

    def mask_labels(self, series_uid: str) -> list[tuple[str, str]]:
        """(label_set, label) pairs that have a non-empty mask in ``series_uid``."""
        return [(r[0], r[1]) for r in self._conn.execute(
            "SELECT DISTINCT label_set, label FROM mask_slices WHERE series_uid=? ORDER BY label_set, label",
            (series_uid,))]

    def mask_slice_refs(self, series_uid: str, label_set: str, label: str) -> dict[int, tuple[str, str, int]]:
        """z -> (study_uid, sop_uid, frame) of the saved non-empty slices of one mask."""
        return {int(r[0]): (r[1], r[2], int(r[3])) for r in self._conn.execute(
            "SELECT z, study_uid, sop_uid, frame FROM mask_slices WHERE series_uid=? AND label_set=? AND label=?",
            (series_uid, label_set, label))}


def _unpack(rows: int, cols: int, bits: bytes, shape: tuple[int, ...], z: int) -> np.ndarray:
    import numpy as np

    if (rows, cols) != tuple(shape):
        raise ValueError(f"mask slice {z} is {rows}x{cols}, the volume's slices are {shape[0]}x{shape[1]}")
    flat = np.unpackbits(np.frombuffer(zlib.decompress(bits), dtype=np.uint8), count=rows * cols)
    return flat.reshape(rows, cols).astype(bool)


def _sentences(method: Any) -> Any:
    """A store method whose SQLite failures (a file damaged after opening, a full disk) reach the caller
    as a :class:`StoreError` sentence instead of a raw sqlite3 traceback; the transaction is rolled back."""
    import functools

    @functools.wraps(method)
    def wrapper(self: LabelStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: the label store failed ({exc}); nothing of this change was "
                             "saved, earlier changes are kept") from exc
    return wrapper


for _name, _method in list(vars(LabelStore).items()):
    if callable(_method) and not _name.startswith("_") and _name != "close":
        setattr(LabelStore, _name, _sentences(_method))
