"""Lossless export: every codec writes copies that load to the same values; sources are never touched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("imagecodecs")

from viewer.io.export import CODECS, ExportError, export_series  # noqa: E402
from viewer.io.load import SeriesLoader  # noqa: E402

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _some(folder: Path, n: int) -> list[str]:
    return sorted(str(f) for f in folder.glob("*.dcm"))[:n]


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("series", ["crc-chest-ct-ge-100", "pancreas-ct-philips-134"])
def test_every_codec_round_trips_real_ct(data_dir, tmp_path, codec, series):
    files = _some(data_dir / "ct" / series, 6)
    report = export_series(files, str(tmp_path), codec)
    assert len(report.written) == 6 and report.ratio > 1.3
    assert report.raw_bytes == 6 * 512 * 512 * 2 and report.encoded_bytes < report.raw_bytes
    for src, dst in zip(files, report.written):
        a, b = pydicom.dcmread(src), pydicom.dcmread(dst)
        assert b.file_meta.TransferSyntaxUID == CODECS[codec]
        # A lossless change of transfer syntax is the same instance: UIDs kept.
        assert (b.SOPInstanceUID, b.SeriesInstanceUID) == (a.SOPInstanceUID, a.SeriesInstanceUID)
    ref = SeriesLoader(files).load(workers=1).array
    np.testing.assert_array_equal(SeriesLoader(report.written).load(workers=1).array, ref)


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("name", ["SC_rgb_2frame.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm"])
def test_colour_multiframe_and_signed_files(tmp_path, codec, name):
    from pydicom.data import get_testdata_file

    src = get_testdata_file(name)
    report = export_series([str(src)], str(tmp_path), codec)
    back = pydicom.dcmread(report.written[0]).pixel_array
    np.testing.assert_array_equal(back, pydicom.dcmread(src).pixel_array)


@pytest.mark.parametrize("codec", list(CODECS))
def test_signed_12_bit_with_junk_in_the_high_bits(data_dir, tmp_path, codec):
    """dcm_qa_12bit: the values are the low 12 bits, sign-extended; the copy must hold exactly those."""
    src = data_dir / "dcm_qa" / "12bit" / "In" / "12bitSigned_0x0F0F.dcm"
    report = export_series([str(src)], str(tmp_path), codec)
    np.testing.assert_array_equal(SeriesLoader(report.written).load(workers=1).array,
                                  SeriesLoader([str(src)]).load(workers=1).array)


def test_a_source_file_is_never_overwritten(data_dir, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for f in _some(data_dir / "ct" / "crc-chest-ct-ge-100", 3):
        (folder / os.path.basename(f)).write_bytes(Path(f).read_bytes())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ExportError, match="is one of the source files"):
        export_series(sorted(str(p) for p in folder.iterdir()), str(folder), "rle", overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_existing_targets_stop_the_export_before_anything_is_written(data_dir, tmp_path):
    files = _some(data_dir / "ct" / "crc-chest-ct-ge-100", 3)
    (tmp_path / os.path.basename(files[2])).write_bytes(b"mine")
    with pytest.raises(ExportError, match="exists already"):
        export_series(files, str(tmp_path), "jpeg-ls")
    assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(files[2])]
    report = export_series(files, str(tmp_path), "jpeg-ls", overwrite=True)
    assert len(report.written) == 3 and not list(tmp_path.glob(".export-*"))


def test_a_copy_that_does_not_decode_to_the_original_is_removed(data_dir, tmp_path, monkeypatch):
    import viewer.io.export as ex

    real = ex.encode_frame

    def off_by_one(frame, codec, bits, signed):
        frame = frame.copy()
        frame[10, 10] += 1
        return real(frame, codec, bits, signed)

    monkeypatch.setattr(ex, "encode_frame", off_by_one)
    files = _some(data_dir / "ct" / "crc-chest-ct-ge-100", 1)
    with pytest.raises(ExportError, match="does not decode to the original values"):
        export_series(files, str(tmp_path), "htj2k")
    assert list(tmp_path.iterdir()) == []


def test_unknown_codec_and_palette_colour_are_refused(tmp_path):
    from pydicom.data import get_testdata_file

    with pytest.raises(ExportError, match="unknown codec"):
        export_series([str(TEST_FILES / "CT_small.dcm")], str(tmp_path), "zip")
    with pytest.raises(ExportError, match="PALETTE COLOR"):
        export_series([str(get_testdata_file("OBXXXX1A.dcm"))], str(tmp_path), "rle")
