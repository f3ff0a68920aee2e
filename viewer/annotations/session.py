"""A labeling session: the API the labeling UI drives (keys set labels and move on; brush; undo).

The UI owns no labeling logic: it forwards key presses and mouse positions here and redraws from
:attr:`LabelingSession.current`, :meth:`LabelingSession.label_of` and :attr:`MaskEditor.mask`.
Every change is saved to the :class:`~viewer.annotations.store.LabelStore` before the call returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from viewer.annotations import masks as mask_ops
from viewer.annotations.history import UndoStack
from viewer.annotations.labelsets import LabelSet
from viewer.annotations.model import ImageKey, Label, Roi, Suggestion, utc_now
from viewer.annotations.store import LabelStore


@dataclass
class _SetLabel:
    store: LabelStore
    index: int
    key: ImageKey
    label_set: str
    new: Label | None
    old: Label | None
    text: str

    def _put(self, lab: Label | None) -> None:
        if lab is None:
            self.store.delete_label(self.key, self.label_set)
        else:
            self.store.set_label(lab)

    def redo(self) -> None:
        self._put(self.new)

    def undo(self) -> None:
        self._put(self.old)


@dataclass
class _PutRoi:
    store: LabelStore
    roi_id: str
    new: Roi | None
    old: Roi | None
    text: str

    def _put(self, roi: Roi | None) -> None:
        if roi is None:
            self.store.delete_roi(self.roi_id)
        else:
            self.store.put_roi(roi)

    def redo(self) -> None:
        self._put(self.new)

    def undo(self) -> None:
        self._put(self.old)


class LabelingSession:
    """Labels one label set over an ordered list of images (or series), one key press per image.

    Parameters
    ----------
    store
        Where every change is saved at once.
    label_set
        The choices; their ``key`` fields are the keyboard shortcuts.
    images
        The images in viewing order (for a series-scope set: ``ImageKey.series(...)`` entries).
    annotator
        Recorded with every label.
    advance
        After a label is set, move to the next unlabeled image (the fast labeling mode).
    """

    def __init__(self, store: LabelStore, label_set: LabelSet, images: Sequence[ImageKey], annotator: str, *,
                 advance: bool = True, clock: Callable[[], str] = utc_now) -> None:
        if not annotator.strip():
            raise ValueError("a labeling session needs an annotator name")
        if len(set(images)) != len(images):
            raise ValueError("two images of the session have the same Study/Series/SOP Instance UID and frame "
                             "(files without UIDs?); their labels would overwrite each other. Give them "
                             "distinct keys (viewer.annotations.model.derived_uid)")
        # A series-scope set labels whole series (ImageKey.series keys), an image-scope set single frames.
        if label_set.scope == "series" and not all(k.is_series for k in images):
            raise ValueError(f"label set {label_set.name!r} labels whole series: give ImageKey.series(...) keys")
        if label_set.scope == "image" and any(k.is_series for k in images):
            raise ValueError(f"label set {label_set.name!r} labels single images, not whole series")
        self.store = store
        self.label_set = label_set
        self.images = list(images)
        self.annotator = annotator
        self.advance = advance
        self.clock = clock
        self.undo_stack = UndoStack()
        self.index = 0
        first = self.next_unlabeled(0)
        if first is not None:
            self.index = first

    # -- where we are ---------------------------------------------------------------------------------
    @property
    def current(self) -> ImageKey | None:
        """The image being labeled; None for an empty list."""
        return self.images[self.index] if self.images else None

    def label_of(self, key: ImageKey | None = None) -> Label | None:
        """The saved label of ``key`` (default: the current image)."""
        key = key if key is not None else self.current
        return None if key is None else self.store.get_label(key, self.label_set.name)

    def next_unlabeled(self, start: int | None = None) -> int | None:
        """Index of the first unlabeled image at or after ``start`` (default: after the current one),
        wrapping around to the start; None when every image is labeled."""
        if not self.images:
            return None
        done = self.store.labeled_keys(self.label_set.name)
        begin = self.index + 1 if start is None else start
        n = len(self.images)
        for step in range(n):
            i = (begin + step) % n
            if self.images[i] not in done:
                return i
        return None

    @property
    def progress(self) -> tuple[int, int]:
        """(labeled, total) images of this session."""
        done = self.store.labeled_keys(self.label_set.name)
        return sum(k in done for k in self.images), len(self.images)

    def go_to(self, index: int) -> ImageKey:
        """Show image ``index`` (clamped to the list)."""
        self.index = min(max(int(index), 0), max(len(self.images) - 1, 0))
        key = self.current
        if key is None:
            raise IndexError("the session has no images")
        return key

    def _move_on(self) -> None:
        if self.advance:
            nxt = self.next_unlabeled()
            if nxt is not None:
                self.index = nxt

    # -- labeling -------------------------------------------------------------------------------------
    def set_label(self, name: str) -> Label:
        """Label the current image ``name`` (saved at once), then move to the next unlabeled image."""
        self.label_set.by_name(name)
        key = self._require_current()
        lab = Label(key, self.label_set.name, name, self.annotator, self.clock())
        self._push_label(key, lab, f"label {name!r}")
        self._move_on()
        return lab

    def press_key(self, key: str) -> Label | None:
        """Handle a key press: set the label bound to ``key``; None (nothing done) for unbound keys."""
        lab = self.label_set.by_key(key)
        return None if lab is None else self.set_label(lab.name)

    def accept(self, suggestion: Suggestion) -> Label:
        """Accept a model's suggestion as the label of the current image (source "model")."""
        self.label_set.by_name(suggestion.label)
        key = self._require_current()
        lab = Label(key, self.label_set.name, suggestion.label, self.annotator, self.clock(), source="model",
                    model_id=suggestion.model_id, model_version=suggestion.model_version,
                    probability=float(suggestion.probability))
        self._push_label(key, lab, f"accept {suggestion.label!r} from {suggestion.model_id}")
        self._move_on()
        return lab

    def reject(self) -> None:
        """Reject a suggestion: nothing is saved, the image stays unlabeled, the view moves on."""
        if self.images:
            self.index = (self.index + 1) % len(self.images)

    def clear_label(self) -> None:
        """Remove the current image's label (undoable)."""
        key = self._require_current()
        if self.label_of(key) is not None:
            self._push_label(key, None, "clear label")

    def _require_current(self) -> ImageKey:
        key = self.current
        if key is None:
            raise IndexError("the session has no images")
        return key

    def _push_label(self, key: ImageKey, new: Label | None, text: str) -> None:
        old = self.store.get_label(key, self.label_set.name)
        self.undo_stack.push(_SetLabel(self.store, self.index, key, self.label_set.name, new, old, text))

    # -- undo -----------------------------------------------------------------------------------------
    def undo(self) -> bool:
        """Take back the last change (label, ROI or brush stroke) and show its image; False if none."""
        cmd = self.undo_stack.undo()
        if cmd is not None and isinstance(cmd, _SetLabel):
            self.index = cmd.index
        return cmd is not None

    def redo(self) -> bool:
        """Apply the last undone change again; False if none."""
        cmd = self.undo_stack.redo()
        if cmd is not None and isinstance(cmd, _SetLabel):
            self.index = cmd.index
            self._move_on()
        return cmd is not None

    # -- ROIs -----------------------------------------------------------------------------------------
    def add_roi(self, roi: Roi) -> Roi:
        """Save a new or edited ROI (undoable)."""
        old = self.store.get_roi(roi.roi_id)
        self.undo_stack.push(_PutRoi(self.store, roi.roi_id, roi, old, f"{'edit' if old else 'add'} {roi.kind}"))
        return roi

    def remove_roi(self, roi_id: str) -> None:
        """Delete an ROI (undoable)."""
        old = self.store.get_roi(roi_id)
        if old is not None:
            self.undo_stack.push(_PutRoi(self.store, roi_id, None, old, f"delete {old.kind}"))

    # -- masks ----------------------------------------------------------------------------------------
    def mask_editor(self, label: str, shape: tuple[int, int, int],
                    slice_refs: Sequence[ImageKey]) -> MaskEditor:
        """An editor for ``label``'s mask on the series whose slices are ``slice_refs`` (one per z).

        ``shape`` is the series volume's (z, y, x); edits share this session's undo stack.
        """
        self.label_set.by_name(label)
        return MaskEditor(self.store, self.undo_stack, self.label_set.name, label, shape, slice_refs,
                          self.annotator)


@dataclass
class _SliceEdit:
    editor: MaskEditor
    z: int
    before: np.ndarray
    after: np.ndarray
    text: str

    def redo(self) -> None:
        self.editor._write(self.z, self.after)

    def undo(self) -> None:
        self.editor._write(self.z, self.before)


class MaskEditor:
    """Brush, eraser, fill and slice copy on one label's (z, y, x) boolean mask, saved per slice.

    Brush centres are (x=column, y=row) pixel coordinates, radii in pixels. Each operation is one undo
    step and is saved before it returns; an edit that changes no pixel records nothing.
    """

    def __init__(self, store: LabelStore, undo_stack: UndoStack, label_set: str, label: str,
                 shape: tuple[int, int, int], slice_refs: Sequence[ImageKey], annotator: str) -> None:
        if len(slice_refs) != shape[0]:
            raise ValueError(f"{len(slice_refs)} slice references for a volume of {shape[0]} slices")
        series = {k.series_uid for k in slice_refs}
        if len(series) != 1:
            raise ValueError(f"a mask belongs to one series; slice references name {len(series)}")
        self.store = store
        self.undo_stack = undo_stack
        self.label_set = label_set
        self.label = label
        self.refs = list(slice_refs)
        self.series_uid = series.pop()
        self.annotator = annotator
        self.mask = store.load_mask(self.series_uid, label_set, label, shape)
        self._live: tuple[int, np.ndarray, bool, tuple[float, float] | None] | None = None

    def _write(self, z: int, plane: np.ndarray) -> None:
        ref = self.refs[z]
        self.store.save_mask_slice(self.series_uid, self.label_set, self.label, z, plane, study_uid=ref.study_uid,
                                   sop_uid=ref.sop_uid, frame=ref.frame, annotator=self.annotator)
        self.mask[z] = plane

    def _apply(self, z: int, plane: np.ndarray, text: str) -> bool:
        if not 0 <= z < self.mask.shape[0]:
            raise IndexError(f"slice {z} outside 0..{self.mask.shape[0] - 1}")
        before = self.mask[z].copy()
        if np.array_equal(before, plane):
            return False
        self.undo_stack.push(_SliceEdit(self, z, before, np.asarray(plane, dtype=bool).copy(), text))
        return True

    def paint(self, z: int, center_xy: tuple[float, float], radius: float) -> bool:
        """Brush a disc; True when pixels changed."""
        return self._apply(z, mask_ops.paint(self.mask[z], center_xy, radius, True), "brush")

    def erase(self, z: int, center_xy: tuple[float, float], radius: float) -> bool:
        """Erase a disc; True when pixels changed."""
        return self._apply(z, mask_ops.paint(self.mask[z], center_xy, radius, False), "erase")

    def stroke(self, z: int, points_xy: list[tuple[float, float]], radius: float, erase: bool = False) -> bool:
        """One mouse drag of the brush (or eraser) as one undo step."""
        return self._apply(z, mask_ops.stroke(self.mask[z], points_xy, radius, not erase),
                           "erase" if erase else "brush")

    # -- live strokes: the mask changes under the mouse, one undo step and one save at release ----------
    def begin_stroke(self, z: int, erase: bool = False) -> None:
        """Start a brush (or eraser) drag on slice ``z``; :attr:`mask` then changes as the mouse moves."""
        if not 0 <= z < self.mask.shape[0]:
            raise IndexError(f"slice {z} outside 0..{self.mask.shape[0] - 1}")
        if self._live is not None:
            self.end_stroke()
        self._live = (z, self.mask[z].copy(), erase, None)

    def stroke_to(self, center_xy: tuple[float, float], radius: float) -> None:
        """Extend the live stroke to a new brush centre (x=column, y=row pixels), filling the gap."""
        if self._live is None:
            raise RuntimeError("stroke_to() without begin_stroke()")
        z, before, erase, last = self._live
        points = [center_xy] if last is None else [last, center_xy]
        self.mask[z] = mask_ops.stroke(self.mask[z], points, radius, not erase)
        self._live = (z, before, erase, center_xy)

    def end_stroke(self) -> bool:
        """Finish the live stroke: save it and make it one undo step; True when pixels changed.

        Until then the stroke exists only in memory (a crash mid-drag loses that one drag, nothing saved).
        """
        if self._live is None:
            return False
        z, before, erase, _ = self._live
        self._live = None
        after = self.mask[z].copy()
        if np.array_equal(before, after):
            return False
        self.mask[z] = before  # _SliceEdit.redo() writes `after` to the mask and the store together
        self.undo_stack.push(_SliceEdit(self, z, before, after, "erase" if erase else "brush"))
        return True

    def cancel_stroke(self) -> None:
        """Drop the live stroke (Escape during a drag)."""
        if self._live is not None:
            z, before, _, _ = self._live
            self.mask[z] = before
            self._live = None

    def fill(self, z: int, seed_rc: tuple[int, int]) -> bool:
        """Fill the 4-connected region at (row, col) with the label."""
        return self._apply(z, mask_ops.flood_fill(self.mask[z], seed_rc, True), "fill")

    def fill_holes(self, z: int) -> bool:
        """Fill every enclosed hole of the slice's mask."""
        return self._apply(z, mask_ops.fill_holes(self.mask[z]), "fill holes")

    def copy_slice(self, src: int, dst: int) -> bool:
        """Replace slice ``dst`` with a copy of slice ``src``."""
        if not 0 <= src < self.mask.shape[0]:
            raise IndexError(f"slice {src} outside 0..{self.mask.shape[0] - 1}")
        return self._apply(dst, self.mask[src].copy(), f"copy slice {src} to {dst}")

    def copy_to_next(self, z: int, step: int = 1) -> bool:
        """Copy slice ``z`` onto ``z + step`` (+1 next, -1 previous); False at the end of the volume."""
        dst = z + step
        if not 0 <= dst < self.mask.shape[0]:
            return False
        return self.copy_slice(z, dst)

    def clear(self, z: int) -> bool:
        """Empty slice ``z``."""
        return self._apply(z, np.zeros_like(self.mask[z]), "clear slice")
