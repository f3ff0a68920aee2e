"""A persistent header index in SQLite, so that re-opening a scanned folder reads no file again.

One table, one row per file: the :class:`~viewer.core.records.HeaderRecord` columns, keyed by absolute
path. A row is valid while the file's size and mtime_ns are unchanged. Writes go in one transaction per
batch in WAL mode, so a process killed mid-scan leaves a database that opens and holds every batch
committed before the kill; the next scan simply reads the rest. A database that is not SQLite or is
corrupt is moved aside and rebuilt (the index is a cache; nothing is lost but time); a table with other
columns is rebuilt and damaged rows are dropped, each with a warning. A locked index or a full disk is
never taken for corruption: the index is left as it is (:class:`IndexUnavailable`, or writes stop with a
warning) and the scan goes on. The file is created 0600 (it holds patient names).

Default location: ``$VIEWER_CACHE_DIR/index.sqlite``, else ``~/.cache/dicom-viewer/index.sqlite``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from viewer.core.atomic import create_private
from viewer.core.records import RECORD_FIELDS, HeaderRecord

#: Bumped whenever HeaderRecord's fields or their meaning change; an older database is rebuilt.
SCHEMA_VERSION = 4  # 2: rescale, bits, PixelData offset/length; 3: ctime_ns and header digest; 4: VOI windows

_INT_FIELDS = {"size", "mtime_ns", "ctime_ns", "rows", "columns", "frames", "bits_allocated", "bits_stored",
               "pixel_representation", "samples_per_pixel", "pixel_offset", "pixel_length"}


_TEXT_FIELDS = tuple(f for f in RECORD_FIELDS if f not in _INT_FIELDS)


def storable(text: str) -> bool:
    """False for text SQLite cannot hold: a path that is not valid UTF-8 on disk reaches Python with
    lone surrogates (PEP 383). Such files are simply not indexed: read on every scan, never a crash."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        try:
            # Created private (it will hold patient names); `scan --index` checks a named folder exists.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise IndexUnavailable(f"the index's folder {self.path.parent} cannot be created "
                                   f"({exc.strerror or exc})") from exc
        self.warnings: list[str] = []
        self.writable = True
        _create_private(self.path)
        try:
            self._con = self._open()
        except sqlite3.OperationalError as exc:
            # Locked, read-only, disk full, cannot open: the file may be a perfectly good index. It is
            # left alone; the caller scans without it.
            raise IndexUnavailable(f"index {self.path} cannot be used now ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(str(aside) + suffix)
            self.warnings.append(f"index {self.path} was unreadable ({exc}); moved to {aside} and rebuilt")
            _create_private(self.path)
            self._con = self._open()

    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last batches, never consistency.
            con.execute("PRAGMA synchronous=NORMAL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            cols = ", ".join(f"{f} {'INTEGER' if f in _INT_FIELDS else 'TEXT'}" for f in RECORD_FIELDS)
            have = [r[1] for r in con.execute("PRAGMA table_info(files)")]
            if version != SCHEMA_VERSION or have != list(RECORD_FIELDS):
                con.execute("BEGIN IMMEDIATE")
                have = [r[1] for r in con.execute("PRAGMA table_info(files)")]
                if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION \
                        and have == list(RECORD_FIELDS):
                    con.execute("COMMIT")  # another process built it while we waited for the lock
                    return con
                if version == SCHEMA_VERSION:  # right version, wrong table: damaged or edited by hand
                    self.warnings.append(f"index {self.path}: the files table had unexpected columns; "
                                         "rebuilt")
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
        return self._records(cur)

    def _records(self, rows: Iterable[tuple[object, ...]]) -> dict[str, HeaderRecord]:
        """Records of well-formed rows; damaged rows (wrong types, NULLs) are dropped from the index with
        a warning that counts them (never their contents: they hold patient data), and their files are
        simply read again."""
        out: dict[str, HeaderRecord] = {}
        damaged: list[object] = []
        for row in rows:
            if len(row) == len(RECORD_FIELDS) and all(
                    type(v) is (int if f in _INT_FIELDS else str) for f, v in zip(RECORD_FIELDS, row)):
                out[str(row[0])] = HeaderRecord(*row)  # type: ignore[arg-type]
            else:
                damaged.append(row[0] if row else None)
        if damaged:
            self.warnings.append(f"index {self.path}: {len(damaged)} damaged row(s) dropped; those files "
                                 "are read again")
            self.remove(p for p in damaged if isinstance(p, str))
        return out

    def get(self, paths: Iterable[str]) -> dict[str, HeaderRecord]:
        """Indexed records of the given absolute paths (missing ones are left out)."""
        out: dict[str, HeaderRecord] = {}
        sql = f"SELECT {', '.join(RECORD_FIELDS)} FROM files WHERE path = ?"
        for p in filter(storable, paths):
            row = self._con.execute(sql, (p,)).fetchone()
            if row is not None:
                out.update(self._records([row]))
        return out

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM files").fetchone()[0])

    # -- updates ------------------------------------------------------------------------------------------
    def put(self, records: Iterable[HeaderRecord]) -> None:
        """Insert or replace ``records`` in one transaction."""
        marks = ", ".join("?" * len(RECORD_FIELDS))
        rows = [tuple(getattr(r, f) for f in RECORD_FIELDS) for r in records if storable(r.path)
                and all(storable(getattr(r, f)) for f in _TEXT_FIELDS)]
        if not rows or not self.writable:
            return
        self._write(f"INSERT OR REPLACE INTO files VALUES ({marks})", rows)

    def remove(self, paths: Iterable[str]) -> None:
        """Forget ``paths`` (files that disappeared) in one transaction."""
        rows = [(p,) for p in paths if storable(p)]
        if rows and self.writable:
            self._write("DELETE FROM files WHERE path = ?", rows)

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """One transaction; when it fails (disk full, read-only, locked too long) it is rolled back, so
        the index keeps every earlier batch, and the index stops taking writes for this scan."""
        try:
            with _Tx(self._con):
                self._con.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            self.writable = False
            self.warnings.append(f"index {self.path} not updated ({exc}); it keeps what it held, and "
                                 "the files not indexed are read again next time")


class IndexUnavailable(OSError):
    """The index file cannot be used now (its folder is missing, it is locked, the disk is full); it is
    left untouched and the scan goes on without it."""


def _create_private(path: Path) -> None:
    """Create the index file 0600 (it holds patient names and IDs); an existing file is left as it is."""
    try:
        create_private(path)
    except OSError as exc:
        raise IndexUnavailable(f"index {path} cannot be created ({exc.strerror or exc})") from exc


class _Tx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self.con.execute("COMMIT")
                return
            except sqlite3.OperationalError:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # SQLite already rolled back (a full disk can end the transaction itself)
