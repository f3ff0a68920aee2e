"""A folder of broken files made from real ones: no crash, no hang, a reason for each, good series intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.io.badcorpus import make_corpus
from viewer.io.series import find_stacks


@pytest.fixture(scope="module")
def corpus(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_corpus(data_dir, tmp_path_factory.mktemp("bad") / "mixed", seed=7)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idx") / "index.sqlite"


@pytest.fixture(scope="module")
def scanned(corpus, db: Path):  # type: ignore[no-untyped-def]
    return find_stacks(corpus.folder, index=db)


def test_every_bad_file_has_a_specific_reason(corpus, scanned) -> None:  # type: ignore[no-untyped-def]
    bad = dict(scanned.bad_files)
    missing = sorted(set(corpus.bad) - set(bad))
    assert not missing, f"bad files not reported: {missing}"
    expect = {"empty": "empty file", "random": "", "fifo": "not a regular file", "no_pixels": "no PixelData",
              "size_mismatch": "PixelData is", "absurd": "PixelData is", "truncated": "",
              "dicm_flipped": "not DICOM", "length_flipped": ""}
    for path, category in corpus.bad.items():
        reason = bad[path]
        assert reason and expect[category] in reason, (path, reason)
        assert "Traceback" not in reason
    for path, reason in bad.items():
        if "trunc_at_300000" in path:
            assert reason.startswith("truncated at byte 300000")
        if "trunc_at_60" in path or "random_" in path:
            assert "not DICOM" in reason or "truncated" in reason or "invalid" in reason, (path, reason)


def test_good_series_are_found_intact(corpus, scanned) -> None:  # type: ignore[no-untyped-def]
    bad = set(dict(scanned.bad_files))
    maybe_ok = set(corpus.maybe_bad) - bad  # flipped bytes that did not break the file
    for name, files in corpus.good.items():
        stack = next((s for s in scanned.stacks if set(files) <= set(s.files)), None)
        assert stack is not None, f"good series {name} not found whole"
        assert set(stack.files) - set(files) <= maybe_ok, f"{name} took in bad files"
    listed = {f for s in scanned.stacks for f in s.files} | bad | {p for p, _ in scanned.non_image}
    assert listed == {str(p) for p in corpus.folder.iterdir()}, "every file is accounted for"


def test_compressed_file_with_absurd_rows_is_kept_apart(corpus, scanned) -> None:  # type: ignore[no-untyped-def]
    (path,) = corpus.absurd_compressed
    if path in dict(scanned.bad_files):
        return
    stack = next(s for s in scanned.stacks if path in s.files)
    assert stack.files == [path] and "image size" in (stack.split_reason or "")


def test_index_and_plain_scans_agree(corpus, scanned, db: Path) -> None:  # type: ignore[no-untyped-def]
    plain = find_stacks(corpus.folder)
    from_index = find_stacks(corpus.folder, index=db)
    assert from_index.headers_read == 0  # bad files are remembered too: not re-read while unchanged
    for again in (plain, from_index):
        assert sorted(again.bad_files) == sorted(scanned.bad_files)
        assert [s.files for s in again.stacks] == [s.files for s in scanned.stacks]


def test_good_stacks_load_and_bad_ones_fail_clearly(corpus, scanned) -> None:  # type: ignore[no-untyped-def]
    from viewer.io import LoadError, load_stack

    shapes = {"pancreas": (12, 512, 512), "crc": (10, 512, 512), "j2k": (8, 512, 512)}
    for name, files in corpus.good.items():
        stack = next(s for s in scanned.stacks if set(files) <= set(s.files))
        extra = len(stack.files) - len(files)
        vol = load_stack(stack)
        z, y, x = shapes[name]
        assert vol.shape == (z + extra, y, x), name
    (path,) = corpus.absurd_compressed
    stack = next((s for s in scanned.stacks if path in s.files), None)
    if stack is not None:
        with pytest.raises(LoadError) as err:
            load_stack(stack)
        assert "absurd_j2k.dcm" in str(err.value) or "65535" in str(err.value)


def test_every_pydicom_test_file_is_classified() -> None:
    """pydicom's own odd files (truncated, no meta, big endian, deflate, DICOMDIRs, RT, SR ...)."""
    import pydicom
    from data_store import __file__ as store

    folders = [Path(pydicom.__file__).parent / "data" / "test_files", Path(store).parent / "data"]
    res = find_stacks(folders)
    n = len({f for s in res.stacks for f in s.files}) + len(res.bad_files) + len(res.non_image)
    assert n == res.files_total > 200
    bad = {Path(p).name: r for p, r in res.bad_files}
    assert bad["MR_truncated.dcm"].startswith("truncated at byte 9630")
    assert "image_dfl.dcm" not in bad  # deflated: offsets are of the inflated stream, not the file
    assert "SC_ybr_full_422_uncompressed.dcm" not in bad  # 4:2:2 stores 2 bytes per pixel, not 3
    non_image = {Path(p).name: r for p, r in res.non_image}
    assert "RT Plan" in non_image["rtplan.dcm"] and "SR" in non_image["reportsi.dcm"]
