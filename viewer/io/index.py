"""A persistent header index in SQLite, so that re-opening a scanned folder reads no file again.

One table, one row per file: the :class:`~viewer.io.headers.HeaderRecord` columns, keyed by absolute
path. A row is valid while the file's size and mtime_ns are unchanged. Writes go in one transaction per
batch in WAL mode, so a process killed mid-scan leaves a database that opens and holds every batch
committed before the kill; the next scan simply reads the rest. A database that is not SQLite or is
corrupt is moved aside and rebuilt (the index is a cache; nothing is lost but time).

Default location: ``$VIEWER_CACHE_DIR/index.sqlite``, else ``~/.cache/dicom-viewer/index.sqlite``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from viewer.io.headers import RECORD_FIELDS, HeaderRecord

#: Bumped whenever HeaderRecord's fields or their meaning change; an older database is rebuilt.
SCHEMA_VERSION = 2  # 2: rescale, bits and native PixelData offset/length, for the indexed load

_INT_FIELDS = {"size", "mtime_ns", "rows", "columns", "frames", "bits_allocated", "bits_stored",
               "pixel_representation", "samples_per_pixel", "pixel_offset", "pixel_length"}


def default_index_path() -> Path:
    """``$VIEWER_CACHE_DIR/index.sqlite`` or ``~/.cache/dicom-viewer/index.sqlite``."""
    base = os.environ.get("VIEWER_CACHE_DIR")
    folder = Path(base) if base else Path.home() / ".cache" / "dicom-viewer"
    return folder / "index.sqlite"


class Index:
    """The file index. Use as a context manager or call :meth:`close`.

    Parameters
    ----------
    path
        SQLite file; None for :func:`default_index_path`. Its folder is created if needed.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.warnings: list[str] = []
        try:
            self._con = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(str(aside) + suffix)
            self.warnings.append(f"index {self.path} was unreadable ({exc}); moved to {aside} and rebuilt")
            self._con = self._open()

    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last batches, never consistency.
            con.execute("PRAGMA synchronous=NORMAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            cols = ", ".join(f"{f} {'INTEGER' if f in _INT_FIELDS else 'TEXT'}" for f in RECORD_FIELDS)
            if version != SCHEMA_VERSION:
                con.execute("BEGIN IMMEDIATE")
                if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    con.execute("COMMIT")  # another process built it while we waited for the lock
                    return con
                con.execute("DROP TABLE IF EXISTS files")
                con.execute(f"CREATE TABLE files ({cols}, PRIMARY KEY (path)) WITHOUT ROWID")
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                con.execute("COMMIT")
            con.execute("SELECT count(*) FROM files").fetchone()
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------------------------
    def under(self, folder: str) -> dict[str, HeaderRecord]:
        """Every indexed record whose path lies inside ``folder`` (absolute), by path."""
        folder = folder.rstrip(os.sep)
        lo, hi = folder + os.sep, folder + chr(ord(os.sep) + 1)
        cur = self._con.execute(f"SELECT {', '.join(RECORD_FIELDS)} FROM files WHERE path >= ? AND path < ?",
                                (lo, hi))
        return {row[0]: HeaderRecord(*row) for row in cur}

    def get(self, paths: Iterable[str]) -> dict[str, HeaderRecord]:
        """Indexed records of the given absolute paths (missing ones are left out)."""
        out: dict[str, HeaderRecord] = {}
        sql = f"SELECT {', '.join(RECORD_FIELDS)} FROM files WHERE path = ?"
        for p in paths:
            row = self._con.execute(sql, (p,)).fetchone()
            if row is not None:
                out[p] = HeaderRecord(*row)
        return out

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM files").fetchone()[0])

    # -- updates ------------------------------------------------------------------------------------------
    def put(self, records: Iterable[HeaderRecord]) -> None:
        """Insert or replace ``records`` in one transaction."""
        marks = ", ".join("?" * len(RECORD_FIELDS))
        rows = [tuple(getattr(r, f) for f in RECORD_FIELDS) for r in records]
        if not rows:
            return
        with self._transaction():
            self._con.executemany(f"INSERT OR REPLACE INTO files VALUES ({marks})", rows)

    def remove(self, paths: Iterable[str]) -> None:
        """Forget ``paths`` (files that disappeared) in one transaction."""
        rows = [(p,) for p in paths]
        if rows:
            with self._transaction():
                self._con.executemany("DELETE FROM files WHERE path = ?", rows)

    def _transaction(self) -> _Tx:
        return _Tx(self._con)


class _Tx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.con.execute("ROLLBACK" if exc_type is not None else "COMMIT")
