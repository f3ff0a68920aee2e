"""The single source of truth the widgets bind to (plain Python, no Qt).

``ImageState`` holds what all views of one volume share (volume, window, invert, crosshair,
measurements); ``ViewState`` holds one viewport's plane, slice, zoom, pan, flips and rotation, and
the active tool. Both are ``Observable``: ``subscribe(callback)`` gets the set of changed aspects.
"""

from __future__ import annotations

from viewer.state.image import ImageState, file_window, is_monochrome1, opening_window, orientation_known
from viewer.state.measurements import KINDS, Measurement, compute
from viewer.state.observable import Observable
from viewer.state.view import TOOLS, ViewState

__all__ = [
    "KINDS",
    "TOOLS",
    "ImageState",
    "Measurement",
    "Observable",
    "ViewState",
    "compute",
    "file_window",
    "is_monochrome1",
    "opening_window",
    "orientation_known",
]
