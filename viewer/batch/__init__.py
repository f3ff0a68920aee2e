"""Batch inference over an archive: series in, one Parquet results folder out, on Dask distributed.

The job (:func:`viewer.batch.job.run_job`) runs in the calling process (the *driver*): it scans the sources
with the project's header index (:mod:`viewer.batch.sources`), submits one task per series to a Dask
cluster (a local one by default, worker processes), and writes what comes back in chunks
(:mod:`viewer.batch.results`). A task (:func:`viewer.batch.work.infer_unit`) loads the series, runs every
requested model with an ONNX Runtime session kept per worker process (:mod:`viewer.batch.models`), and
returns its rows. ``batch evaluate`` scores a results folder against labels (:mod:`viewer.batch.evaluate`);
:mod:`viewer.batch.export` writes it as CSV; :mod:`viewer.batch.stored` reads it back per series for the
viewer (``dicom-viewer PATH --results RESULTS.parquet``). :mod:`viewer.batch.outputs` writes DICOM per series
in the task (an SR of a classifier's findings, a denoiser's derived series) and sends it to a PACS;
:mod:`viewer.batch.pacs_feed` streams a PACS source into a running job, series by series.

Layer: above ``io``, ``ai`` and ``annotations``, beside ``state``; no Qt. dask and pyarrow are imported
lazily (inside functions), so ``python -m viewer --help`` stays fast.
"""

from __future__ import annotations
