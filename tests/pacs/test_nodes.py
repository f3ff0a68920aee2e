"""Node URLs, saved nodes and query values (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.io.pacs import DimseNode, PacsError, WebNode, parse_node
from viewer.io.pacs.nodes import load_nodes, save_nodes
from viewer.io.pacs.query import normalize_date_range
from viewer.io.pacs.store import check_instance, write_atomic


def test_dimse_and_web_urls() -> None:
    n = parse_node("dimse://PACS_1@10.0.0.5:104", saved=[])
    assert n == DimseNode(called_ae="PACS_1", host="10.0.0.5", port=104)
    assert n.url == "dimse://PACS_1@10.0.0.5:104"
    assert parse_node("dimses://PACS@pacs.example:2762", saved=[]).tls
    w = parse_node("https://pacs.example/dicom-web/", saved=[])
    assert isinstance(w, WebNode) and w.base_url == "https://pacs.example/dicom-web"


@pytest.mark.parametrize(("text", "fragment"), [
    ("dimse://host:104", "called AE title is missing"),
    ("dimse://AE@host", "host and port are needed"),
    ("dimse://AE_TITLE_FAR_TOO_LONG@host:104", "not valid"),
    ("ftp://x", "neither a saved node"),
    ("mypacs", "neither a saved node"),
])
def test_bad_node_says_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(PacsError, match=fragment):
        parse_node(text, saved=[])


def test_saved_nodes_round_trip_by_name(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    nodes = [DimseNode("ORTHANC", "127.0.0.1", 4242, name="lab", retrieve="move"),
             WebNode("http://127.0.0.1:8042/dicom-web", name="web", auth="bearer", token="t0k")]
    save_nodes(nodes, path)
    assert path.stat().st_mode & 0o077 == 0  # may hold a token: owner only
    again = load_nodes(path)
    assert again == nodes
    assert parse_node("lab", saved=again).retrieve == "move"
    path.write_text("{not json")
    with pytest.raises(PacsError, match="cannot read the saved PACS nodes"):
        load_nodes(path)


@pytest.mark.parametrize(("text", "dicom"), [
    ("20200101-20201231", "20200101-20201231"), ("2020-01-01..2020-12-31", "20200101-20201231"),
    ("2020-01-01-2020-12-31", "20200101-20201231"), ("20200101-", "20200101-"), ("-20201231", "-20201231"),
    ("2020-03-04", "20200304"), ("", ""),
])
def test_date_ranges(text: str, dicom: str) -> None:
    assert normalize_date_range(text) == dicom


def test_bad_date_range() -> None:
    with pytest.raises(PacsError, match="study date"):
        normalize_date_range("last week")


def test_truncated_instances_are_refused_and_nothing_is_left(data_dir: Path, tmp_path: Path) -> None:
    good = sorted((data_dir / "ct/pancreas-ct-philips-134").glob("*.dcm"))[0].read_bytes()
    assert check_instance(good).sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    for cut, why in ((good[:-1000], "truncated"), (good[:2000], "truncated"), (b"x" * 400, "not a readable")):
        with pytest.raises(PacsError, match=why):
            check_instance(cut)
    path = write_atomic(tmp_path / "s", "1.2.3.dcm", good)
    assert path.read_bytes() == good and [p.name for p in path.parent.iterdir()] == ["1.2.3.dcm"]


def test_quick_instance_check_accepts_only_what_pydicom_accepts(data_dir: Path) -> None:
    # check_instance accepts the common instance by a byte-level walk and leaves everything else to a
    # whole pydicom parse: whatever the walk accepts, pydicom accepts too, with the same UIDs; cut short
    # anywhere, the walk accepts nothing. Real files: CT (explicit and implicit VR, JPEG 2000), enhanced
    # multi-frame MR, 12-bit, and the transfer syntax collection (deflate, big endian, JPEG, RLE).
    from viewer.io.pacs.store import _parsed, _walked

    files = [p for sub in ("ct/crc-chest-ct-ge-100", "ct/totalseg-ct-j2k-20", "dcm_qa")
             for p in sorted((data_dir / sub).rglob("*"))[:40] if p.is_file() and p.stat().st_size < 20e6]
    quick = 0
    for f in files:
        data = f.read_bytes()
        walked = _walked(data)
        if walked is not None:
            quick += 1
            assert _parsed(data) == walked, f
        for cut in (1, 2, 200, len(data) // 2):
            assert _walked(data[:-cut]) is None, (f, cut)
    assert quick >= 40  # the common case takes the quick way


def test_nodes_command_adds_lists_and_removes(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "VIEWER_CONFIG_DIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "viewer", "pacs", "nodes", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    assert pacs("add", "lab", "dimse://ORTHANC@10.1.2.3:4242", "--retrieve", "move").returncode == 0
    assert pacs("add", "web", "https://pacs.example/dicom-web", "--auth", "bearer", "--token", "s3cret").returncode == 0
    assert pacs("add", "sec", "dimse://PACS@10.1.2.4:2762", "--tls-ca", "/etc/pacs-ca.pem").returncode == 0
    listed = json.loads(pacs("list", "--json").stdout)
    assert [(n["name"], n["kind"]) for n in listed] == [("lab", "dimse"), ("web", "dicomweb"), ("sec", "dimse")]
    assert (listed[2]["tls"], listed[2]["tls_ca"], listed[2]["tls_verify"]) == (True, "/etc/pacs-ca.pem", True)
    assert "sec: dimses://PACS@10.1.2.4:2762" in pacs("list").stdout
    assert "s3cret" not in pacs("list", "--json").stdout  # secrets stay in the file
    assert load_nodes(tmp_path / "pacs-nodes.json")[1].token == "s3cret"
    assert pacs("remove", "lab").returncode == 0
    r = pacs("remove", "lab")
    assert r.returncode == 1 and "no saved node named 'lab'" in r.stderr


def test_tls_options_turn_tls_on_and_keep_verification() -> None:
    from viewer.io.pacs.nodes import with_tls

    plain = parse_node("dimse://PACS@10.0.0.5:104", saved=[])
    assert with_tls(plain) is plain and not plain.tls
    n = with_tls(plain, ca="ca.pem", cert="me.pem", key="me.key")
    assert isinstance(n, DimseNode) and (n.tls, n.tls_verify, n.url) == (True, True, "dimses://PACS@10.0.0.5:104")
    assert with_tls(plain, verify=False).tls_verify is False  # type: ignore[union-attr]
    with pytest.raises(PacsError, match="--tls-key needs --tls-cert"):
        with_tls(plain, key="me.key")
    web_node = with_tls(parse_node("https://pacs.example/dicom-web", saved=[]), ca="ca.pem")
    assert isinstance(web_node, WebNode) and web_node.tls_ca == "ca.pem"
    with pytest.raises(PacsError, match="for DIMSE nodes"):
        with_tls(web_node, cert="me.pem")


@pytest.mark.parametrize(("charset", "name"), [
    (None, "DOE^JOHN"), ("ISO_IR 100", "Müller^Jürgen"), ("ISO_IR 192", "Ærøskøbing^Зоя^李"),
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎"),  # code extensions: pydicom's decoders
])
def test_c_find_responses_read_fast_and_the_same(charset: str | None, name: str) -> None:
    """A decoded C-FIND response read from its raw elements gives the Match pydicom's conversion gives."""
    import io

    from pydicom.dataset import Dataset
    from pynetdicom.dsutils import decode, encode

    from viewer.io.pacs.query import _raw_texts, match_from_dataset

    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID = name, "ID 7", "1.2.840.99.1"
    ds.StudyDate, ds.AccessionNumber, ds.ModalitiesInStudy = "20240102", "", ["CT", "SEG"]
    ds.NumberOfStudyRelatedSeries, ds.NumberOfStudyRelatedInstances = "3", ""
    raw = encode(ds, True, True)
    assert raw is not None
    fast_ds = decode(io.BytesIO(raw), True, True)
    assert (_raw_texts(fast_ds) is None) == ("2022 IR 87" in (charset or ""))
    fast = match_from_dataset(fast_ds, "study")
    slow_ds = decode(io.BytesIO(raw), True, True)
    for _ in slow_ds:  # converts every element: the slow path
        pass
    assert _raw_texts(slow_ds) is None
    assert fast == match_from_dataset(slow_ds, "study")
    assert (fast.patient_name, fast.modalities, fast.study_series, fast.study_instances, fast.accession) == \
        (name, "CT\\SEG", 3, -1, "")
