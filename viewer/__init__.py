"""Desktop DICOM viewer with embedded AI.

Layers (see README "Architecture"): ``core`` (numpy math) <- ``io`` | ``ai`` | ``annotations`` <- ``state``
<- ``ui`` <- ``app``/``commands`` (composition root).
"""

__version__ = "0.1.0"
