"""Exports never destroy data; a damaged or foreign label store gives a sentence and stays as it was."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from viewer.annotations.model import ImageKey, Label
from viewer.annotations.nifti import NiftiError, write_label_map
from viewer.annotations.store import LabelStore, StoreError
from viewer.cli import main
from viewer.core.atomic import OutputRefused, write_atomically


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIEWER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def series_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 real CT slices, copied (a test below must see that they are not overwritten)."""
    folder = tmp_path_factory.mktemp("ct4")
    for f in sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:4]:
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def _store_with_labels(n: int = 3) -> Path:
    key = ImageKey("1.2.3", "1.2.3.4", "1.2.3.4.5", 1)
    with LabelStore() as store:
        store.put_labels([Label(ImageKey(key.study_uid, key.series_uid, f"{key.sop_uid}.{k}", 1), "Image quality",
                                "diagnostic", "a") for k in range(n)])
        return store.path


def test_export_over_the_label_store_is_refused_and_keeps_every_label(env: Path, capsys) -> None:
    path = _store_with_labels()
    for fmt in ("csv", "json"):
        assert main(["labels", "export", "--format", fmt, "--out", str(path), "--force"]) == 2
        assert "would destroy" in capsys.readouterr().err
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    with LabelStore() as store:
        assert len(store.labels()) == 3


def test_export_over_the_index_or_a_source_dicom_is_refused(env: Path, series_dir: Path, capsys) -> None:
    from viewer.io.index import default_index_path
    from viewer.io.series import find_stacks

    _store_with_labels()
    find_stacks(series_dir, index=True)
    index = default_index_path()
    before = index.read_bytes()
    assert main(["labels", "export", "--format", "csv", "--out", str(index), "--force"]) == 2
    assert "would destroy" in capsys.readouterr().err and index.read_bytes() == before
    source = sorted(series_dir.iterdir())[1]
    original = source.read_bytes()
    for fmt in ("seg", "nifti", "sr"):
        assert main(["labels", "export", "--format", fmt, "--series", str(series_dir), "--out", str(source),
                     "--force"]) == 2
        assert "would destroy" in capsys.readouterr().err
    assert source.read_bytes() == original


def test_existing_output_needs_force_and_missing_folder_gets_a_sentence(env: Path, capsys) -> None:
    _store_with_labels()
    out = env / "labels.csv"
    out.write_text("precious\n")
    assert main(["labels", "export", "--format", "csv", "--out", str(out)]) == 2
    assert "already exists; use --force" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(["labels", "export", "--format", "csv", "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("study_uid,")
    missing = env / "no" / "such" / "folder" / "l.csv"
    assert main(["labels", "export", "--format", "csv", "--out", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Errno" not in err and not missing.parent.exists()


def test_failed_write_leaves_the_earlier_file_and_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    out.write_text("earlier export\n")

    def disk_full(tmp: Path) -> None:
        tmp.write_text("half of the new expo")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError):
        write_atomically(out, disk_full)
    assert out.read_text() == "earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]
    with pytest.raises(OutputRefused, match="already exists"):
        write_atomically(out, lambda tmp: tmp.write_text("x"), overwrite=False)
    write_atomically(out, lambda tmp: tmp.write_text("new\n"))
    assert out.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]


def test_nifti_sidecar_never_overwrites_an_unrelated_file(tmp_path: Path) -> None:
    out = tmp_path / "mask.nii.gz"
    unrelated = Path(str(out) + ".labels.json")
    unrelated.write_text('{"my": "notes"}')
    labels = np.zeros((2, 3, 4), np.uint8)
    labels[0, 1, 2] = 1
    with pytest.raises(NiftiError, match="not a label-names sidecar"):
        write_label_map(out, labels, np.eye(4), {1: "liver"})
    assert unrelated.read_text() == '{"my": "notes"}' and not out.exists()
    unrelated.unlink()
    write_label_map(out, labels, np.eye(4), {1: "liver"})
    write_label_map(out, labels, np.eye(4), {1: "spleen"})  # our own sidecar is replaced with the map
    assert "spleen" in unrelated.read_text()


def test_damaged_or_foreign_store_gives_a_sentence_and_is_not_changed(env: Path, capsys) -> None:
    path = _store_with_labels(200)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 3000] = b"\xa5" * 3000  # a damaged page in the middle
    path.write_bytes(bytes(data))
    for wal in (Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        wal.unlink(missing_ok=True)
    with pytest.raises(StoreError, match="damaged.*not changed"):
        LabelStore(path)
    assert path.read_bytes() == bytes(data)
    assert main(["labels", "export", "--format", "csv", "--out", str(env / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "Traceback" not in err and path.read_bytes() == bytes(data)

    from viewer.io.index import Index

    with Index(env / "idx.sqlite"):
        pass
    before = (env / "idx.sqlite").read_bytes()
    with pytest.raises(StoreError, match="not a label store"):
        LabelStore(env / "idx.sqlite")
    assert (env / "idx.sqlite").read_bytes() == before
    dicom = env / "x.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 100)
    with pytest.raises(StoreError, match="not an SQLite file"):
        LabelStore(dicom)


def test_store_and_index_are_created_private(env: Path) -> None:
    from viewer.io.index import Index

    with LabelStore(env / "new.sqlite") as store:
        assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    with Index(env / "cache" / "index.sqlite") as idx:
        assert stat.S_IMODE(os.stat(idx.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(idx.path.parent).st_mode) == 0o700
