"""Display filters on a whole volume, for MPR: SimpleITK's 3-D filters with the volume's true spacing.

The toolbar's filters act on the slice on screen in 2-D (:mod:`viewer.core.filters`); a reformatted plane
of a filtered volume must instead see the volume filtered in 3-D, else a coronal plane would be smoothed
across rows of different axial slices only. The neighbourhood is the 2-D preset's reach in millimetres
(:func:`viewer.core.filters.neighbourhood_mm`), so each axis gets the radius its spacing calls for. Mean
and median are ITK's neighbourhood filters (edges repeated, as in 2-D), the Gaussian is ITK's discrete
Gaussian in millimetres, and the edge-preserving choice is curvature flow (see
:data:`viewer.core.filters.CURVATURE_FLOW_STEP`). SimpleITK releases the GIL while it runs, so the UI
thread keeps drawing; ``progress``/``cancel`` follow ITK's progress events (cancel aborts the filter).
Here in ``io`` because only io may import SimpleITK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from viewer.core.filters import (CURVATURE_FLOW_ITERATIONS, CURVATURE_FLOW_STEP, DisplayFilter,
                                 neighbourhood_mm, volume_radii)
from viewer.core.jobs import Cancelled

# Steps of the progress callback (ITK reports a fraction 0..1).
PROGRESS_STEPS = 1000


def _sitk() -> Any:
    """SimpleITK, imported when first used (its partial type hints are not followed: SWIG objects)."""
    import SimpleITK

    return SimpleITK


def itk_filter(f: DisplayFilter, spacing: tuple[float, float, float]) -> Any:
    """The configured SimpleITK filter object for ``f`` on a volume of ``spacing`` (column, row, slice mm)."""
    sitk = _sitk()
    if f.name in ("mean", "median"):
        flt = sitk.MeanImageFilter() if f.name == "mean" else sitk.MedianImageFilter()
        rz, ry, rx = volume_radii(f, spacing)
        flt.SetRadius([rx, ry, rz])  # ITK's order: x, y, z
        return flt
    if f.name == "gaussian":
        flt = sitk.DiscreteGaussianImageFilter()
        flt.SetVariance([neighbourhood_mm(f, spacing) ** 2] * 3)
        flt.SetUseImageSpacing(True)
        flt.SetMaximumError(0.01)
        flt.SetMaximumKernelWidth(64)
        return flt
    if f.name == "bilateral":
        flt = sitk.CurvatureFlowImageFilter()
        flt.SetTimeStep(CURVATURE_FLOW_STEP)
        flt.SetNumberOfIterations(CURVATURE_FLOW_ITERATIONS)
        return flt
    raise ValueError(f"unknown display filter {f.name!r}")


def filter_volume(array: np.ndarray, spacing: tuple[float, float, float], f: DisplayFilter, *,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """``f`` applied to the (z, y, x) ``array`` in 3-D, ``spacing`` = (column, row, slice) mm.

    Returns float32 (z, y, x) in the input's units (HU stays HU). Raises
    :class:`viewer.core.jobs.Cancelled` when ``cancel()`` turns true while it runs.
    """
    sitk = _sitk()
    if np.asarray(array).ndim != 3:
        raise ValueError(f"volume filters take a (z, y, x) grey volume; got shape {np.shape(array)}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    img.SetSpacing([float(s) for s in spacing])
    flt = itk_filter(f, spacing)

    def report() -> None:
        if cancel is not None and cancel():
            flt.Abort()
        if progress is not None:
            progress(int(flt.GetProgress() * PROGRESS_STEPS), PROGRESS_STEPS)

    flt.AddCommand(sitk.sitkProgressEvent, report)
    try:
        out = flt.Execute(img)
    except RuntimeError as exc:
        if cancel is not None and cancel():
            raise Cancelled() from exc
        raise
    if cancel is not None and cancel():
        raise Cancelled()
    if progress is not None:
        progress(PROGRESS_STEPS, PROGRESS_STEPS)
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)
