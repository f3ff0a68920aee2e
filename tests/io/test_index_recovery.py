"""The scan index recovers from damage, never trusts a changed file, and survives a full disk."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pydicom
import pytest

from viewer.io.index import Index
from viewer.io.series import find_stacks


@pytest.fixture()
def ct(data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ct"
    folder.mkdir()
    for f in sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:6]:
        shutil.copy(f, folder / f.name)
    return folder


def test_damaged_rows_are_dropped_with_a_message_and_read_again(ct: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    first = find_stacks(ct, index=db)
    con = sqlite3.connect(db)
    victim = sorted(str(p) for p in ct.iterdir())[2]
    con.execute("UPDATE files SET rows = 'PatientID-ABC', columns = NULL WHERE path = ?", (victim,))
    con.commit()
    con.close()
    again = find_stacks(ct, index=db)
    assert again.headers_read == 1 and [len(s.files) for s in again.stacks] == [len(s.files) for s in first.stacks]
    (warning,) = [w for w in again.warnings if "damaged" in w]
    assert "1 damaged row" in warning and "PatientID-ABC" not in warning  # counted, never quoted
    assert find_stacks(ct, index=db).headers_read == 0 and not find_stacks(ct, index=db).warnings


def test_a_foreign_table_is_rebuilt(ct: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    find_stacks(ct, index=db)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE files")
    con.execute("CREATE TABLE files (path TEXT, something_else BLOB)")
    con.commit()
    con.close()
    res = find_stacks(ct, index=db)
    assert res.headers_read == 6 and any("unexpected columns" in w for w in res.warnings)
    assert find_stacks(ct, index=db).headers_read == 0


def test_a_full_disk_leaves_the_old_index_valid(ct: Path, tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "index.sqlite"
    find_stacks(ct, index=db)
    for f in sorted((data_dir / "ct" / "crc-chest-ct-ge-100").glob("*.dcm"))[:40]:
        shutil.copy(f, ct / f"crc_{f.name}")
    with Index(db) as idx:
        pages = idx._con.execute("PRAGMA page_count").fetchone()[0]
        idx._con.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full: no page can be added
        res = find_stacks(ct, index=idx)
    assert res.files_total == 46 and sum(len(s.files) for s in res.stacks) == 46  # the scan still answers
    assert any("not updated" in w and "full" in w for w in res.warnings)
    assert db.exists() and not list(tmp_path.glob("*.corrupt-*"))  # never renamed corrupt
    with Index(db) as idx:
        assert len(idx) == 6  # the old rows, all of them
    assert find_stacks(ct, index=db).headers_read == 40


def test_a_changed_header_is_noticed_though_size_and_mtime_are_restored(ct: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    find_stacks(ct, index=db)
    f = sorted(ct.iterdir())[3]
    st = f.stat()
    ds = pydicom.dcmread(f)
    ds.RescaleIntercept = "-1024" if str(ds.RescaleIntercept).strip() != "-1024" else "-1000"
    ds.save_as(f)
    assert f.stat().st_size == st.st_size  # same length (DS is padded to even length)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = find_stacks(ct, index=db)
    assert res.headers_read == 1
    (rec,) = [r for s in res.stacks for r in s.records if r.path == str(f)]
    assert float(rec.rescale_intercept) == float(ds.RescaleIntercept)


def test_non_utf8_file_names_are_scanned_not_indexed(ct: Path, tmp_path: Path) -> None:
    name = os.path.join(os.fsencode(ct), b"slice\xff.dcm")
    src = sorted(ct.iterdir())[0]
    with open(name, "wb") as out:
        out.write(src.read_bytes())
    db = tmp_path / "index.sqlite"
    for _ in range(2):
        res = find_stacks(ct, index=db)
        assert res.files_total == 7 and not res.bad_files
    assert res.headers_read == 1  # that one file is read every time; it cannot be a SQLite key
