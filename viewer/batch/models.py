"""Models in a batch job: what travels to the workers, and one ONNX Runtime session per worker process.

The driver resolves ``--model`` ids to manifests (:func:`resolve_models`) and describes each as a small
:class:`ModelSpec` that every task carries. The model files travel once per worker, not per task: the
:class:`ShipModels` worker plugin holds the bytes of ``manifest.toml`` and ``model.onnx``; on each worker
(also one that joins later or is restarted after a crash) it uses the driver's folder when the worker sees
it with the same SHA-256 (a local cluster, a shared file system), else writes the files into the worker's
local directory. It then creates and warms the sessions, so the first task pays no start-up.

Sessions are kept per process by :meth:`viewer.ai.session.ModelSession.get` (its cache is per process);
:func:`session_for` is what a task calls.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from viewer.ai.manifest import MANIFEST_NAME, Manifest, load_manifest
from viewer.ai.registry import ModelRegistry
from viewer.ai.session import ModelSession
from viewer.core.atomic import write_atomically


@dataclass(frozen=True)
class ModelSpec:
    """A model as a task names it: identity (id, version, SHA-256 of the ONNX file) and the driver's folder;
    its operating point (``[output] threshold`` or ``bias``, :mod:`viewer.core.decision`), which decides the
    rows' ``label`` as ``infer`` does; and its ``task`` (``classification`` or ``image-to-image``)."""

    id: str
    version: str
    sha256: str
    folder: str
    threshold: float | None = None
    bias: tuple[float, ...] | None = None
    task: str = "classification"


@dataclass(frozen=True)
class RunOptions:
    """How sessions run on the workers: ``device`` (auto|cuda|cpu), ONNX Runtime ``threads`` per session,
    network ``batch_size`` (None: the session's default), ``force`` (run models outside their scope)."""

    device: str = "auto"
    threads: int = 1
    batch_size: int | None = None
    force: bool = False


def resolve_models(ids: Sequence[str], models_dirs: Sequence[str] | None = None) -> list[Manifest]:
    """The usable manifests of ``ids`` (ModelError names an unknown or broken one); duplicates dropped."""
    registry = ModelRegistry(models_dirs)
    out: list[Manifest] = []
    for mid in ids:
        m = registry.get(mid)
        if all(o.sha256 != m.sha256 or o.id != m.id for o in out):
            out.append(m)
    return out


def spec_of(m: Manifest) -> ModelSpec:
    return ModelSpec(m.id, m.version, m.sha256, str(m.folder), m.output.threshold, m.output.bias, m.task)


# -- per worker process ------------------------------------------------------------------------------
_manifests: dict[str, Manifest] = {}
_lock = threading.Lock()
#: Seconds this process spent materialising models and creating + warming sessions (the engine overhead).
setup_seconds: float = 0.0


def manifest_for(spec: ModelSpec) -> Manifest:
    """The manifest of ``spec`` in this process (checked once; the SHA-256 is verified on first use)."""
    with _lock:
        m = _manifests.get(spec.sha256)
        if m is None:
            m = load_manifest(spec.folder)
            if m.sha256 != spec.sha256:
                raise ValueError(f"model {spec.id}: the folder {spec.folder} holds sha256 {m.sha256}, the job "
                                 f"asked for {spec.sha256}")
            _manifests[spec.sha256] = m
        return m


def session_for(spec: ModelSpec, opts: RunOptions) -> ModelSession:
    """The session of ``spec`` in this process: created on first use, then reused by every task."""
    return ModelSession.get(manifest_for(spec), opts.device, batch_size=opts.batch_size, threads=opts.threads)


def materialise(spec: ModelSpec, files: dict[str, bytes], local_dir: str) -> None:
    """Make ``spec`` loadable in this process: the driver's folder if it is here with the same hash, else
    the shipped ``files`` (name -> bytes: the ONNX file, then ``manifest.toml``) written atomically into a
    folder under ``local_dir``. A model this process already holds (a job before this one) is kept: each job
    registers the plugin again, and reading the manifest hashes the whole ONNX file."""
    with _lock:
        if spec.sha256 in _manifests:
            return
    try:
        m = load_manifest(spec.folder)
        if m.sha256 == spec.sha256:
            with _lock:
                _manifests[spec.sha256] = m
            return
    except Exception:  # noqa: BLE001 - the folder is not on this machine (or differs): use the shipped copy
        pass
    folder = Path(local_dir) / "viewer-models" / f"{spec.id}-{spec.sha256[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():  # workers of one machine may write the same folder at once
        write_atomically(folder / name, functools.partial(Path.write_bytes, data=data))
    m = load_manifest(folder)  # verifies the SHA-256 of what arrived
    with _lock:
        _manifests[spec.sha256] = m


def warm(specs: Sequence[ModelSpec], opts: RunOptions) -> float:
    """Create (and warm) every session of ``specs`` in this process; returns the seconds it took."""
    global setup_seconds
    t0 = time.perf_counter()
    for spec in specs:
        session_for(spec, opts)
    dt = time.perf_counter() - t0
    setup_seconds += dt
    return dt


class ShipModels(WorkerPlugin):  # type: ignore[misc]  # distributed is not followed by mypy
    """Carries the models' files to every worker and warms their sessions there (see module doc)."""

    name = "viewer-batch-models"

    def __init__(self, manifests: Sequence[Manifest], opts: RunOptions) -> None:
        # the manifest last: a folder with a manifest always has its ONNX file (manifest.file is a bare name)
        self.payload = [(spec_of(m), {m.file: m.model_path.read_bytes(), MANIFEST_NAME: m.manifest_path.read_bytes()})
                        for m in manifests]
        self.opts = opts

    def setup(self, worker: Any) -> None:
        global setup_seconds
        t0 = time.perf_counter()
        for spec, files in self.payload:
            materialise(spec, files, str(worker.local_directory))
        setup_seconds += time.perf_counter() - t0
        warm([spec for spec, _ in self.payload], self.opts)
