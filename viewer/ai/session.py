"""ONNX Runtime sessions: one per (model, device), created once (off the UI thread) and reused.

Provider choice (``device``):

- ``"auto"``: CUDA when this onnxruntime build has the CUDA provider (``onnxruntime-gpu``) and it starts
  on a GPU, else CPU without a message.
- ``"cuda"``: the same, but when CUDA is unavailable or fails to start, the CPU session comes with a
  ``message`` saying why, for the UI to show.
- ``"cpu"``: CPU only.

Batches run with fixed shapes so the CUDA provider does not search convolution algorithms again for
every new shape: a request is cut into chunks of ``batch_size`` and the last chunk is padded; a request
of exactly one image runs at batch 1 (the latency case: the slice being looked at). Both shapes are
warmed up when the session is created. On CUDA, inputs and the preallocated output are bound with
``io_binding``. ``run`` releases the GIL, so sessions are used from worker threads.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from viewer.ai.errors import Cancelled, ModelError
from viewer.ai.manifest import Manifest, check_onnx_io

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cuda", "cpu")



#: The largest input batch (bytes of float32) a session allocates, for warm-up or a request.
MAX_INPUT_BYTES = 2 << 30

def _ort() -> Any:
    import onnxruntime  # type: ignore[import-untyped,unused-ignore]  # typed in some builds only

    return onnxruntime


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has (a seam tests replace to simulate a GPU)."""
    return list(_ort().get_available_providers())


def default_threads() -> int:
    """CPU cores this process may use (affinity-aware), for intra-op parallelism."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _make_session(path: str, providers: list[Any], threads: int, optimize: bool = True) -> Any:
    """Create an InferenceSession (a seam tests replace to simulate a failing CUDA start)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # warnings about providers are reported through ``message`` instead
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=providers)


def inspect_model(m: Manifest) -> None:
    """Open ``m``'s ONNX file on the CPU and check its input/output names, shapes and dtype against the
    manifest (raises ManifestError naming the field) or ModelError when ONNX Runtime cannot read it."""
    try:
        sess = _make_session(str(m.model_path), [CPU], 1, optimize=False)
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidGraph, Fail, ...)
        raise ModelError(f"{m.model_path}: ONNX Runtime cannot load it: {exc}") from exc
    check_onnx_io(m, sess.get_inputs(), sess.get_outputs())


class ModelSession:
    """A model ready to run: the manifest, the ORT session and how it was started.

    Use :meth:`get` (cached) rather than the constructor.

    Attributes
    ----------
    manifest
        The model's :class:`~viewer.ai.manifest.Manifest`.
    provider
        The provider actually running it: ``"CUDAExecutionProvider"`` or ``"CPUExecutionProvider"``.
    device
        ``"cuda"`` or ``"cpu"`` (short form of ``provider``).
    message
        Why a CUDA request ended on the CPU (show it to the user), else None.
    batch_size
        The fixed batch the network runs at (requests are chunked and padded to it).
    """

    _cache: dict[tuple[str, str, str, int, int], ModelSession] = {}
    _cache_lock = threading.Lock()
    _creating: dict[tuple[str, str, str, int, int], threading.Lock] = {}

    def __init__(self, manifest: Manifest, device: str = "auto", *, batch_size: int | None = None,
                 threads: int | None = None, warmup: bool = True) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        self.manifest = manifest
        self.threads = threads or default_threads()
        self.message: str | None = None
        self.io_binding_error: str | None = None  # set if IO binding failed and plain run took over
        self._lock = threading.Lock()  # IO binding buffers are per session; runs are serialised
        path = str(manifest.model_path)
        sess = None
        if device in ("auto", "cuda"):
            sess, self.message = self._start_cuda(path, device)
        if sess is None:
            try:
                sess = _make_session(path, [CPU], self.threads)
            except Exception as exc:
                raise ModelError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        self._session = sess
        self.provider = sess.get_providers()[0]
        self.device = "cuda" if self.provider == CUDA else "cpu"
        check_onnx_io(manifest, sess.get_inputs(), sess.get_outputs())
        fixed_batch = manifest.input.shape[0]
        if fixed_batch != -1:
            self.batch_size = fixed_batch  # the graph itself fixes it
        else:
            self.batch_size = batch_size or (64 if self.device == "cuda" else 32)
        self._bindings: dict[int, tuple[Any, Any, Any]] = {}
        self._bind_device = "cuda"  # where IO-bound buffers live (tests exercise the binding path on "cpu")
        if warmup:
            self.warmup()

    def _start_cuda(self, path: str, device: str) -> tuple[Any, str | None]:
        explicit = device == "cuda"
        if CUDA not in available_providers():
            return None, ("CUDA requested but this onnxruntime build has no CUDA provider (install "
                          "onnxruntime-gpu); running on the CPU") if explicit else None
        # HEURISTIC: EXHAUSTIVE tunes each new shape for seconds, breaking the first-result-in-1-s goal.
        opts = {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}
        try:
            with warnings.catch_warnings():  # ORT warns when it drops the provider; reported below instead
                warnings.simplefilter("ignore")
                sess = _make_session(path, [(CUDA, opts), CPU], self.threads)
        except Exception as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None, f"CUDA failed to start ({why}); running on the CPU"
        if sess.get_providers()[0] != CUDA:
            # ORT silently drops a provider whose libraries (CUDA, cuDNN) do not load.
            return None, "CUDA failed to start (CUDA or cuDNN libraries missing or no GPU); running on the CPU"
        return sess, None

    @classmethod
    def get(cls, manifest: Manifest, device: str = "auto", *, batch_size: int | None = None,
            threads: int | None = None) -> ModelSession:
        """The shared session for ``manifest`` on ``device``, created on first use (call it from a
        worker thread: creation and warm-up take from milliseconds to seconds)."""
        key = (str(manifest.model_path.resolve()), manifest.sha256, device, batch_size or 0, threads or 0)
        with cls._cache_lock:
            s = cls._cache.get(key)
            if s is not None:
                return s
            key_lock = cls._creating.setdefault(key, threading.Lock())
        # One creation per key; other models' sessions are not held up while this one starts (seconds on CUDA).
        with key_lock:
            with cls._cache_lock:
                s = cls._cache.get(key)
            if s is None:
                s = cls(manifest, device, batch_size=batch_size, threads=threads)
                with cls._cache_lock:
                    cls._cache[key] = s
                    cls._creating.pop(key, None)
            return s

    @classmethod
    def clear_cache(cls) -> None:
        """Forget every cached session (their memory is freed when no caller holds them)."""
        with cls._cache_lock:
            cls._cache.clear()

    def input_hw(self) -> tuple[int, int] | None:
        """(rows, columns) the network receives, from the manifest's shape or its last resize."""
        if self.manifest.input.tile is not None:  # image-to-image: always run at the tile shape
            return self.manifest.input.tile
        h, w = self.manifest.input.shape[2:]
        if h != -1 and w != -1:
            return h, w
        sizes = [op.params["size"] for op in self.manifest.preprocess if op.name == "resize"]
        return (int(sizes[-1][0]), int(sizes[-1][1])) if sizes else None

    def warmup(self) -> None:
        """Run each fixed batch shape once (kernels, memory arenas, cuDNN algorithm choice)."""
        hw = self.input_hw()
        if hw is None:
            return
        dynamic = self.manifest.input.shape[0] == -1
        sizes = sorted({1, self.batch_size} if dynamic else {self.batch_size})
        need = max(sizes) * self.manifest.input.channels * hw[0] * hw[1] * 4
        if need > MAX_INPUT_BYTES:
            # A manifest's shape is a statement like a DICOM header's: 1 x 3 x 65536 x 50000 would ask
            # for tens of GiB before the first image. Refused with the size, before allocating it.
            raise ModelError(f"{self.manifest.model_path}: its input batch {max(sizes)} x "
                             f"{self.manifest.input.channels} x {hw[0]} x {hw[1]} (float32) needs "
                             f"{need / (1 << 30):.1f} GiB, over the {MAX_INPUT_BYTES >> 30} GiB a model input may "
                             "take; check the manifest's input shape and resize")
        for n in sizes:
            self._run_exact(np.zeros((n, self.manifest.input.channels, *hw), dtype=np.float32))

    def _run_exact(self, x: np.ndarray) -> np.ndarray:
        if self.device == "cuda":
            try:
                return self._run_bound(x)
            except Exception as exc:  # an IO binding problem should cost speed, not the result
                self.io_binding_error = f"{type(exc).__name__}: {exc}"
        out = self._session.run([self.manifest.output.name], {self.manifest.input.name: x})[0]
        return np.asarray(out, dtype=np.float32)

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        ort = _ort()
        with self._lock:
            n = x.shape[0]
            cached = self._bindings.get(n)
            if cached is None or cached[0].shape() != list(x.shape):
                binding = self._session.io_binding()
                k = len(self.manifest.output.labels)
                shape = list(x.shape) if self.manifest.task == "image-to-image" else [n, k]
                out = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, self._bind_device, 0)
                # a private copy: on a CPU device the OrtValue wraps this memory, and update_inplace
                # must never write into the caller's array
                inp = ort.OrtValue.ortvalue_from_numpy(np.array(x, dtype=np.float32, copy=True), self._bind_device, 0)
                binding.bind_ortvalue_input(self.manifest.input.name, inp)
                binding.bind_ortvalue_output(self.manifest.output.name, out)
                self._bindings[n] = (inp, out, binding)
                cached = self._bindings[n]
            else:
                cached[0].update_inplace(np.ascontiguousarray(x))
            inp, out, binding = cached
            self._session.run_with_iobinding(binding)
            # copy: the buffer is reused by the next run (numpy() of a CPU OrtValue is a view of it)
            return np.array(out.numpy(), dtype=np.float32, copy=True)

    def run(self, x: np.ndarray, *, cancel: Callable[[], bool] | None = None,
            progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Raw network outputs (N, K) for a preprocessed float32 batch ``x`` (N, C, H, W).

        Chunks of ``batch_size``; the last chunk padded with zeros (results dropped); N == 1 runs at
        batch 1. ``cancel`` is polled between chunks (raises :class:`~viewer.ai.errors.Cancelled`).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        if n == 0:
            if self.manifest.task == "image-to-image":
                return np.zeros(x.shape, dtype=np.float32)
            return np.zeros((0, len(self.manifest.output.labels)), dtype=np.float32)
        if n == 1 and self.manifest.input.shape[0] in (-1, 1):
            return self._run_exact(x)
        b = self.batch_size
        outs = []
        for start in range(0, n, b):
            if cancel is not None and cancel():
                raise Cancelled()
            chunk = x[start:start + b]
            m = chunk.shape[0]
            if m < b:
                chunk = np.concatenate([chunk, np.zeros((b - m, *x.shape[1:]), dtype=np.float32)])
            outs.append(self._run_exact(chunk)[:m])
            if progress is not None:
                progress(min(start + b, n), n)
        return np.concatenate(outs)
