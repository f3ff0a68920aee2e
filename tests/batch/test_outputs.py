"""``batch infer``'s labels and DICOM outputs, on a real 1-worker LocalCluster:

- pneumonia-cxr's operating point (threshold 0.42) decides the rows'
  labels exactly as ``infer --json`` does,
  on real chest radiographs (PneumoniaMNIST test images in a CR header), and the SR per series says the same;
- ct-denoise writes a derived series per source series that loads with the geometry of its source.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from viewer.cli import main

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

# PneumoniaMNIST test images: the first five (far from the threshold) and five whose P(pneumonia) lies in
# [0.42, 0.5), where the manifest's threshold and the
# arg-max disagree (checked below, not assumed).
CXR_INDICES = (0, 1, 2, 3, 4, 68, 88, 107, 180, 221)


@pytest.fixture(scope="module")
def client() -> Any:
    from viewer.batch.job import local_cluster

    cluster = local_cluster(1, dashboard=False)
    c = cluster.get_client()
    yield c
    c.close()
    cluster.close()


def write_radiographs(folder: Path, data_dir: Path, indices: tuple[int, ...]) -> list[Path]:
    """Each PneumoniaMNIST test image as a chest PA CR (pydicom's RG1 header), its own series; pixels repeated
    10x10 so the 280x280 image passes the model's 256-pixel minimum and area-resizes back to the original."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    images = np.load(data_dir / "labeled" / "pneumoniamnist.npz")["test_images"]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in indices:
        ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
        big = np.kron(images[i].astype(np.uint16), np.ones((10, 10), np.uint16))
        ds.Rows, ds.Columns = big.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 8, 7, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.WindowCenter, ds.WindowWidth = 127.5, 256
        ds.PixelData = big.tobytes()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"cxr{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def infer_json(*argv: str) -> dict[str, Any]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["infer", *argv, "--json", "--device", "cpu"]) == 0
    return json.loads(buf.getvalue())


def test_labels_follow_the_operating_point_as_infer_and_the_sr_says_so(client: Any, data_dir: Path,
                                                                      tmp_path: Path) -> None:
    import pydicom

    from viewer.annotations.findings_sr import read_findings
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.outputs import OutputOptions
    from viewer.batch.results import read_results
    from viewer.batch.sources import scan_sources
    from viewer.batch.stored import read_stored

    files = write_radiographs(tmp_path / "cxr", data_dir, CXR_INDICES)
    (m,) = resolve_models(["pneumonia-cxr"])
    threshold = m.output.threshold  # the manifest's operating point
    assert threshold is not None and 0.0 < threshold < 0.5
    scan = scan_sources([str(tmp_path / "cxr")], index=str(tmp_path / "index.sqlite"))
    assert len(scan.units) == len(files)
    out = tmp_path / "results.parquet"
    summary = run_job(client, scan.units, [m], str(out), opts=RunOptions(device="cpu"),
                      outputs=OutputOptions(sr_dir=str(tmp_path / "sr")))
    assert summary.progress.series_failed == 0
    t = read_results(out).to_pydict()
    rows = {sop: i for i, sop in enumerate(t["sop_instance_uid"])}
    disagree_with_argmax = 0
    for f in files:
        want = infer_json(str(f), "--model", "pneumonia-cxr")["series"][0]["predictions"][0]
        i = rows[want["instance_uid"]]
        assert t["label"][i] == want["label"]
        assert t["probability"][i] == pytest.approx(want["probability"], abs=1e-5)
        assert t["threshold"][i] == pytest.approx(threshold) and t["bias"][i] is None
        probs = dict(zip(t["class_names"][i], t["probabilities"][i]))
        disagree_with_argmax += t["label"][i] != max(probs, key=lambda k: probs[k])
        # the SR of the series: one image, its decided class, the source series referenced
        assert t["output_kind"][i] == "sr" and t["output_error"][i] is None
        sr = pydicom.dcmread(t["output_path"][i])
        assert sr.Modality == "SR" and sr.SeriesInstanceUID == t["output_series_uid"][i]
        ev = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        assert ev.SeriesInstanceUID == t["series_instance_uid"][i]
        assert read_findings(sr) == {(want["instance_uid"], 1): want["label"]}
    assert disagree_with_argmax >= 3  # the threshold, not the arg-max, decided those
    # the viewer's stored results (--results) and batch evaluate decide the same way
    stored = read_stored(out)
    for uid, i in ((t["series_instance_uid"][i], i) for i in range(len(files))):
        assert stored[uid].label == t["label"][i]


def test_denoiser_writes_a_derived_series_per_source_series(client: Any, data_dir: Path, tmp_path: Path) -> None:
    from viewer.ai import ModelRegistry, ModelSession
    from viewer.ai.image_to_image import run_on_volume
    from viewer.batch.job import run_job
    from viewer.batch.models import RunOptions, resolve_models
    from viewer.batch.outputs import OutputOptions
    from viewer.batch.results import read_results
    from viewer.batch.sources import scan_sources
    from viewer.io import load_series

    ct = data_dir / "ct" / "totalseg-ct-j2k-20"
    scan = scan_sources([str(ct)], index=str(tmp_path / "index.sqlite"))
    (unit,) = scan.units
    out = tmp_path / "results.parquet"
    models = resolve_models(["ct-denoise"])
    summary = run_job(client, scan.units, models, str(out), opts=RunOptions(device="cpu"),
                      outputs=OutputOptions(dicom_dir=str(tmp_path / "derived")))
    assert summary.progress.series_failed == 0
    t = read_results(out).to_pydict()
    assert t["status"] == ["ok"] and t["slice"] == [None] and t["n_slices"] == [20]  # one row per series
    assert t["output_kind"] == ["dicom"] and t["load_ms"][0] > 0 and t["infer_ms"][0] > 0 and t["output_ms"][0] > 0
    src = load_series(str(ct))
    got = load_series(t["output_path"][0])
    assert got.shape == src.shape and got.series_uid == t["output_series_uid"][0]
    assert got.series_uid and got.series_uid != src.series_uid
    np.testing.assert_allclose(got.affine, src.affine, atol=1e-4)  # spacing, orientation and origin
    if src.slice_positions is not None:
        np.testing.assert_allclose(got.slice_positions, src.slice_positions, atol=1e-4)
    import pydicom

    head = pydicom.dcmread(got.info.files[0], stop_before_pixels=True)
    assert list(head.ImageType)[:2] == ["DERIVED", "SECONDARY"] and head.file_meta.TransferSyntaxUID.is_little_endian
    new_sops = set(got.info.instance_uids)
    assert len(new_sops) == 20 and not new_sops & set(src.info.instance_uids)
    assert {f.split("/")[-2] for f in got.info.files} == {Path(t["output_path"][0]).name}
    # a slice equals the model run in this process on the source (rounded to the stored integers)
    k = 10
    want = run_on_volume(ModelSession.get(ModelRegistry().get("ct-denoise"), "cpu"), src, [k])[0]
    np.testing.assert_allclose(got.array[k], np.clip(np.rint(want), -32768, 32767), atol=1)
    assert not np.array_equal(got.array[k], src.array[k])


def test_output_flags_are_checked_before_anything_runs(data_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ct = str(data_dir / "ct" / "totalseg-ct-j2k-20")
    out = str(tmp_path / "r.parquet")
    assert main(["batch", "infer", ct, "--model", "ct-denoise", "--out", out]) == 1
    err = capsys.readouterr().err
    assert "ct-denoise" in err and "give --dicom-out FOLDER" in err
    assert main(["batch", "infer", ct, "--model", "organ-ct", "--out", out, "--send", "dimse://X@127.0.0.1:1"]) == 1
    assert "--send sends the SRs" in capsys.readouterr().err
    assert main(["batch", "infer", ct, "--model", "organ-ct", "--out", out, "--sr", str(tmp_path / "sr"),
                 "--send", "ftp://nowhere"]) == 1
    assert "--send ftp://nowhere" in capsys.readouterr().err
    assert not Path(out).exists()  # refused before a cluster started or a results folder was made
