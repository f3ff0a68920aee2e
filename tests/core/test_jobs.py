"""One Cancelled for every layer, and the synchronous executor commands and tests use."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.ai.errors import Cancelled as AiCancelled
from viewer.core.jobs import Cancelled, JobContext, SyncExecutor
from viewer.io import LoadCancelled, load_series
from viewer.io.errors import LoadError
from viewer.io.load import SeriesLoader


def test_every_layer_raises_the_one_cancelled() -> None:
    assert AiCancelled is Cancelled
    assert issubclass(LoadCancelled, Cancelled) and issubclass(LoadCancelled, LoadError)


def test_sync_executor_runs_a_real_load_with_progress_partials_and_result(data_dir: Path) -> None:
    seen: dict[str, list[object]] = {"progress": [], "partial": [], "result": [], "done": []}

    def job(ctx: JobContext) -> object:
        ctx.partial("first")
        return load_series(data_dir / "ct" / "totalseg-ct-j2k-20", progress=ctx.progress, cancel=ctx.cancelled)

    SyncExecutor().submit("load:0", job, on_progress=lambda d, t: seen["progress"].append((d, t)),
                          on_partial=seen["partial"].append, on_result=seen["result"].append,
                          on_done=lambda: seen["done"].append(True))
    assert seen["partial"] == ["first"] and seen["done"] == [True]
    assert seen["progress"][-1] == (20, 20)
    assert seen["result"][0].shape == (20, 512, 512)  # type: ignore[attr-defined]


def test_sync_executor_cancelled_job_delivers_nothing_and_errors_arrive_as_text(data_dir: Path) -> None:
    got: list[object] = []

    def cancelled(ctx: JobContext) -> object:
        files = sorted(str(f) for f in (data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
        return SeriesLoader(files).load(cancel=lambda: True)

    SyncExecutor().submit("load:0", cancelled, on_result=got.append, on_error=got.append, on_done=lambda: got.append("done"))
    assert got == []

    def broken(ctx: JobContext) -> object:
        return load_series(data_dir / "no-such-folder")

    SyncExecutor().submit("load:0", broken, on_result=got.append, on_error=got.append)
    assert len(got) == 1 and isinstance(got[0], str) and got[0]
    with pytest.raises(Exception):
        SyncExecutor(raise_errors=True).submit("load:0", broken, on_error=got.append)
