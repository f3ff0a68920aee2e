"""manifest.toml: a good one loads; every kind of mistake is refused naming its field and file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ai.helpers import linear_model, manifest_dict, toml_text, write_model_dir
from viewer.ai import ManifestError, load_manifest
from viewer.ai.session import inspect_model

W = np.arange(32, dtype=np.float32).reshape(16, 2) / 100.0
B = np.array([0.5, -0.5], dtype=np.float32)
GOOD_OPS = [{"op": "window", "center": 40.0, "width": 400.0},
            {"op": "resize", "size": [4, 4], "interpolation": "bilinear"},
            {"op": "normalize", "mean": [0.5], "std": [0.25]}]


@pytest.fixture()
def good(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = write_model_dir(tmp_path / "toy", lambda p: linear_model(p, W, B, (1, 4, 4)), preprocess=GOOD_OPS)
    import tomllib

    return folder, tomllib.loads((folder / "manifest.toml").read_text())


def test_good_manifest_loads_with_every_field(good: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = good
    m = load_manifest(folder)
    assert (m.id, m.version, m.task, m.file) == ("toy", "0.1.0", "classification", "model.onnx")
    assert m.applies_to.modalities == ("CT",) and m.applies_to.scope == "image" and m.applies_to.dims == "2d"
    assert m.input.shape == (-1, 1, 4, 4) and m.input.name == "input"
    assert [op.name for op in m.preprocess] == ["window", "resize", "normalize"]
    assert m.preprocess[1].params == {"size": [4, 4], "interpolation": "bilinear"}
    assert m.output.labels == ("a", "b") and m.output.activation == "softmax"
    assert load_manifest(folder / "manifest.toml") == m
    inspect_model(m)  # names, shapes and dtype agree with the graph


def _broken(folder: Path, data: dict[str, Any], edit: Any) -> ManifestError:
    d = copy.deepcopy(data)
    edit(d)
    (folder / "manifest.toml").write_text(toml_text(d))
    with pytest.raises(ManifestError) as info:
        inspect_model(load_manifest(folder))
    return info.value


def _walk(d: dict[str, Any], path: str) -> tuple[Any, Any]:
    *parents, last = path.split(".")
    t: Any = d
    for p in parents:
        t = t[int(p)] if p.isdigit() else t[p]
    return t, int(last) if last.isdigit() else last


def _set(path: str, value: Any) -> Any:
    def edit(d: dict[str, Any]) -> None:
        t, key = _walk(d, path)
        t[key] = value
    return edit


def _delete(path: str) -> Any:
    def edit(d: dict[str, Any]) -> None:
        t, key = _walk(d, path)
        del t[key]
    return edit


@pytest.mark.parametrize("edit, field, words", [
    (_set("schema_version", 2), "schema_version", "reads schema_version 1"),
    (_set("schema_version", "1"), "schema_version", "integer"),
    (_set("id", "Bad Id"), "id", "lower-case"),
    (_delete("name"), "name", "missing"),
    (_set("version", 1), "version", "string"),
    (_set("file", "../model.onnx"), "file", "inside the model folder"),
    (_set("sha256", "abc"), "sha256", "64 hexadecimal"),
    (_set("task", "segmentation"), "task", "'classification'"),
    (_delete("intended_use"), "intended_use", "missing"),
    (_set("colour", "blue"), "colour", "unknown key"),
    (_delete("applies_to"), "applies_to", "missing table"),
    (_set("applies_to.modalities", []), "applies_to.modalities", "non-empty"),
    (_set("applies_to.scope", "volume"), "applies_to.scope", "'image', 'roi'"),
    (_set("applies_to.dims", "3d"), "applies_to.dims", "'2d'"),
    (_set("applies_to.roi_size_mm", [30.0]), "applies_to.roi_size_mm", "2 values"),
    (_set("applies_to.extra", 1), "applies_to.extra", "unknown key"),
    (_set("input.layout", "NHWC"), "input.layout", "'NCHW'"),
    (_set("input.shape", [-1, 1, 4]), "input.shape", "4 values"),
    (_set("input.shape", [-1, -1, 4, 4]), "input.shape", "channel"),
    (_set("input.shape", [-1, 1, 0, 4]), "input.shape", "positive or -1"),
    (_set("input.shape", [-1, 1, 8, 8]), "input.shape", "last resize gives"),
    (_set("input.dtype", "float64"), "input.dtype", "'float32'"),
    (_set("input.mean", [0.5]), "input.mean", "unknown key"),
    (_set("output.activation", "relu"), "output.activation", "'softmax'"),
    (_set("output.labels", ["a", "a"]), "output.labels", "unique"),
    (_set("output.labels", "a"), "output.labels", "list of"),
    (_set("preprocess.0.op", "gamma"), "preprocess[0].op", "must be one of"),
    (_set("preprocess.0.width", -5.0), "preprocess[0].width", "> 0"),
    (_set("preprocess.0.center", "50"), "preprocess[0].center", "finite number"),
    (_set("preprocess.0.source", "dicom"), "preprocess[0].source", "not both"),
    (_set("preprocess.0.level", 1.0), "preprocess[0].level", "unknown key"),
    (_set("preprocess.1.interpolation", "bicubic"), "preprocess[1].interpolation", "'nearest'"),
    (_delete("preprocess.1.interpolation"), "preprocess[1].interpolation", "missing"),
    (_set("preprocess.1.size", [4, 0]), "preprocess[1].size", ">= 1"),
    (_set("preprocess.2.std", [0.0]), "preprocess[2].std", "> 0"),
    (_set("preprocess.2.std", [0.5, 0.5]), "preprocess[2].std", "as many values as mean"),
    (_set("preprocess.0", {"op": "invert_monochrome1"}), "preprocess[0].op", "after window or scale"),
    (_set("preprocess.0", {"op": "crop", "fraction": 1.5}), "preprocess[0].fraction", "(0, 1]"),
    (_set("preprocess.0", {"op": "crop"}), "preprocess[0].fraction", "exactly one"),
    (_set("preprocess.0", {"op": "crop", "box": [4, 0, 2, 3]}), "preprocess[0].box", "row0 < row1"),
    (_set("preprocess.0", {"op": "crop", "square": False}), "preprocess[0].square", "must be true"),
    (_set("preprocess.0", {"op": "crop", "square": True, "fraction": 0.5}), "preprocess[0].fraction", "exactly one"),
    (_set("preprocess.0", {"op": "scale", "mode": "fixed", "low": 5.0, "high": 1.0}), "preprocess[0].high",
     "greater than low"),
    (_set("preprocess.0", {"op": "repeat_channels", "count": 3}), "input.shape", "channels"),
])
def test_each_manifest_mistake_names_its_field(good: tuple[Path, dict[str, Any]], edit: Any, field: str,
                                               words: str) -> None:
    folder, data = good
    err = _broken(folder, data, edit)
    assert err.field == field, str(err)
    assert words in err.problem, str(err)
    assert str(folder / "manifest.toml") in str(err)


def test_sha256_mismatch_is_refused_naming_the_onnx_file(good: tuple[Path, dict[str, Any]]) -> None:
    folder, data = good
    with open(folder / "model.onnx", "ab") as fh:
        fh.write(b"\0")  # one extra byte: same graph, different file
    with pytest.raises(ManifestError) as info:
        load_manifest(folder)
    assert info.value.field == "sha256" and info.value.path == folder / "model.onnx"
    assert data["sha256"] in str(info.value)
    assert load_manifest(folder, verify_file=False).id == "toy"


def test_missing_onnx_file_and_bad_toml(good: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = good
    (folder / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="not found") as info:
        load_manifest(folder)
    assert info.value.field == "file"
    (folder / "manifest.toml").write_text("id = [unclosed\n")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(folder)
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(folder / "nowhere")


def _graph_mismatch(tmp_path: Path, build: Any, **kw: Any) -> ManifestError:
    folder = write_model_dir(tmp_path / "m", build, **kw)
    with pytest.raises(ManifestError) as info:
        inspect_model(load_manifest(folder))
    assert info.value.path == folder / "model.onnx"
    return info.value


def test_input_name_disagreeing_with_the_graph(tmp_path: Path) -> None:
    err = _graph_mismatch(tmp_path, lambda p: linear_model(p, W, B, (1, 4, 4), in_name="pixels"))
    assert err.field == "input.name" and "'pixels'" in err.problem


def test_output_name_disagreeing_with_the_graph(tmp_path: Path) -> None:
    err = _graph_mismatch(tmp_path, lambda p: linear_model(p, W, B, (1, 4, 4)), out_name="probs")
    assert err.field == "output.name" and "'logits'" in err.problem


def test_shape_disagreeing_with_the_graph(tmp_path: Path) -> None:
    err = _graph_mismatch(tmp_path, lambda p: linear_model(p, W, B, (1, 4, 4), batch=8))
    assert err.field == "input.shape" and "[8, 1, 4, 4]" in err.problem
    err = _graph_mismatch(tmp_path, lambda p: linear_model(p, W[:, :1], B[:1], (1, 4, 4)))
    assert err.field == "output.labels" and "gives 1" in err.problem


def test_dtype_disagreeing_with_the_graph(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    def build(p: Path) -> Path:
        linear_model(p, W, B, (1, 4, 4))
        model = onnx.load(str(p))
        g = model.graph
        g.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
        g.node.insert(0, helper.make_node("Cast", ["input"], ["input_f"], to=TensorProto.FLOAT))
        g.node[1].input[0] = "input_f"
        onnx.save(model, str(p))
        return p

    err = _graph_mismatch(tmp_path, build)
    assert err.field == "input.dtype" and "tensor(double)" in err.problem
