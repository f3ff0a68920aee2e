"""Tiny ONNX models with known outputs, built with onnx.helper, and model folders around them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _io(name: str, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8  # readable by every onnxruntime this project pins
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def linear_model(path: Path, weights: np.ndarray, bias: np.ndarray, chw: tuple[int, int, int],
                 batch: Any = "N", in_name: str = "input", out_name: str = "logits") -> Path:
    """scores = flatten(x) @ weights + bias: weights (C*H*W, K), bias (K,)."""
    c, h, w = chw
    nodes = [
        helper.make_node("Flatten", [in_name], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], [out_name]),
    ]
    inits = [numpy_helper.from_array(weights.astype(np.float32), "W"),
             numpy_helper.from_array(bias.astype(np.float32), "B")]
    k = weights.shape[1]
    graph = helper.make_graph(nodes, "linear", [_io(in_name, [batch, c, h, w])], [_io(out_name, [batch, k])], inits)
    return _save(graph, path)


def mean_model(path: Path, chw: tuple[int, int, int], batch: Any = "N") -> Path:
    """scores = [[mean of the image over C, H, W]]: shape (N, 1)."""
    c, h, w = chw
    nodes = [helper.make_node("ReduceMean", ["input"], ["m4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["m4"], ["logits"], axis=1)]
    graph = helper.make_graph(nodes, "mean", [_io("input", [batch, c, h, w])], [_io("logits", [batch, 1])])
    return _save(graph, path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def toml_text(data: dict[str, Any]) -> str:
    """A minimal TOML writer: top-level scalars, tables, and arrays of tables (enough for manifests)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not any(isinstance(x, dict) for x in v))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for t in v:
                lines += ["", f"[[{k}]]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


def manifest_dict(model_file: Path, *, model_id: str = "toy", labels: list[str] | None = None,
                  shape: list[int] | None = None, preprocess: list[dict[str, Any]] | None = None,
                  activation: str = "softmax", modalities: list[str] | None = None, scope: str = "image",
                  out_name: str = "logits") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": model_id,
        "name": f"Toy {model_id}",
        "version": "0.1.0",
        "file": model_file.name,
        "sha256": sha256(model_file),
        "task": "classification",
        "intended_use": "Tests only.",
        "applies_to": {"modalities": modalities or ["CT"], "scope": scope},
        "input": {"name": "input", "layout": "NCHW", "shape": shape or [-1, 1, 4, 4], "dtype": "float32"},
        "preprocess": preprocess or [],
        "output": {"name": out_name, "activation": activation, "labels": labels or ["a", "b"]},
    }


def write_model_dir(folder: Path, build: Any, manifest: dict[str, Any] | None = None, **kw: Any) -> Path:
    """``build(path)`` writes model.onnx in ``folder``; then manifest.toml from ``manifest_dict(**kw)``
    (or the given dict). Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model_file = build(folder / "model.onnx")
    data = manifest if manifest is not None else manifest_dict(model_file, **kw)
    (folder / "manifest.toml").write_text(toml_text(data))
    return folder
