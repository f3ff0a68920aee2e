"""What users decide about images: label sets, labels, ROIs and masks; saved at once; exported.

Modules (all free of Qt; only ``seg``, ``sr`` and ``deid`` import pydicom/highdicom, lazily):

- ``labelsets``: label sets from TOML (names, colours, keys, scope image | series | roi).
- ``model``: ``ImageKey`` (Study/Series/SOP Instance UID + frame), ``Label``, ``Roi``, ``Suggestion``.
- ``store``: ``LabelStore``, SQLite in WAL mode, every change one fsynced transaction.
- ``session``: ``LabelingSession`` (keys -> label -> next unlabeled, accept AI suggestions, undo/redo)
  and ``MaskEditor`` (brush, eraser, fill, copy to next slice).
- ``masks``, ``history``: the pure mask operations and the undo stack under them.
- ``tabular``: CSV/JSON export and validated all-or-nothing import.
- ``seg``, ``sr``, ``nifti``: DICOM SEG, DICOM SR TID 1500 and NIfTI label maps, both ways.
- ``deid``: DICOM PS3.15 Basic Profile de-identification with consistent UID remapping.
- ``roi_geometry``: ROIs (image pixels) <-> measurements (LPS mm) with a ``Volume``'s affine.
"""
