"""The SQLite header index: incremental re-scans, removed files, corruption, and SIGKILL mid-scan."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from viewer.io.index import Index
from viewer.core.records import ScanResult
from viewer.io.series import find_stacks

REPO = Path(__file__).resolve().parents[2]


def summary(res: ScanResult) -> tuple[object, ...]:
    return ([(s.series_uid, s.files, s.split_reason, s.warnings) for s in res.stacks],
            sorted(res.bad_files), sorted(res.non_image))


@pytest.fixture()
def ct_copy(data_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the 20-slice JPEG 2000 CT plus its non-DICOM neighbours."""
    dst = tmp_path / "ct"
    shutil.copytree(data_dir / "ct" / "totalseg-ct-j2k-20", dst)
    return dst


def test_rescan_reads_only_new_changed_and_drops_removed(ct_copy: Path, tmp_path: Path) -> None:
    db = tmp_path / "cache" / "index.sqlite"
    first = find_stacks(ct_copy, index=db)
    assert first.headers_read == first.files_total > 20
    again = find_stacks(ct_copy, index=db)
    assert again.headers_read == 0
    assert summary(again) == summary(first)

    files = sorted((ct_copy / "example_ct_dicom").iterdir())
    st = files[3].stat()
    os.utime(files[3], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = find_stacks(ct_copy, index=db)
    assert touched.headers_read == 1 and summary(touched) == summary(first)

    files[5].unlink()
    shutil.copy(files[0], files[0].parent / "new.dcm")  # same content, new name: read, joins the series
    changed = find_stacks(ct_copy, index=db)
    assert changed.headers_read == 1
    (stack,) = changed.stacks
    assert str(files[5]) not in stack.files and str(files[0].parent / "new.dcm") in stack.files
    with Index(db) as idx:
        assert str(files[5]) not in idx.under(str(ct_copy))
        assert len(idx) == changed.files_total


def test_index_of_a_file_scan_does_not_forget_its_folder(ct_copy: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    find_stacks(ct_copy, index=db)
    one = sorted((ct_copy / "example_ct_dicom").iterdir())[0]
    assert find_stacks(one, index=db).headers_read == 0
    assert find_stacks(ct_copy, index=db).headers_read == 0


def test_corrupt_index_is_rebuilt(ct_copy: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    db.write_bytes(b"this is not an SQLite database" * 100)
    res = find_stacks(ct_copy, index=db)
    assert len(res.stacks) == 1 and any("rebuilt" in w for w in res.warnings)
    assert find_stacks(ct_copy, index=db).headers_read == 0


CHILD = """
import sys
from viewer.io import series, headers, dicomdir, index
import pydicom.filereader
series.BATCH = 8  # many small transactions, so a kill lands between and inside them
headers.FAST_PATH = False  # the slower pydicom path keeps the scan running long enough to be killed
print("go", flush=True)
series.find_stacks(sys.argv[1], index=sys.argv[2], workers=1)
print("done", flush=True)
"""


def test_sigkill_mid_scan_leaves_an_index_that_opens_and_converges(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for k in range(3):
        sub = folder / f"copy{k}"
        sub.mkdir(parents=True)
        for p in sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm")):
            os.symlink(p, sub / p.name)
    os.symlink(data_dir / "ct" / "crc-chest-ct-ge-100", folder / "crc")
    os.symlink(data_dir / "ct" / "totalseg-ct-j2k-20", folder / "j2k")
    db = tmp_path / "index.sqlite"
    rng = random.Random(1234)
    killed_mid_scan = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(db)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        killed_mid_scan += "done" not in out
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        with Index(db) as idx:
            assert not idx.warnings  # opened as is, not rebuilt
    assert killed_mid_scan >= 1
    # symlinked folders are not followed (loops); the crc/j2k links are scanned as given below.
    resumed = find_stacks([folder, folder / "crc", folder / "j2k"], index=db)
    clean = find_stacks([folder, folder / "crc", folder / "j2k"])
    assert summary(resumed) == summary(clean)
    assert resumed.headers_read < clean.headers_read
