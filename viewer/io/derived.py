"""Writing a derived series: the same images with new pixel values (a denoiser's output) as DICOM.

Each instance is its source file with the pixels replaced, so patient, study, geometry and acquisition
attributes stay exactly as they were; what changes is what PS3.3 requires of a derived image: a new
SeriesInstanceUID and SOPInstanceUIDs, ImageType DERIVED\\SECONDARY, a DerivationDescription, the
source instances referenced (Source Image Sequence), and a SeriesDescription that says what was done.
Pixels are written uncompressed (Explicit VR Little Endian, lossless) as signed 16-bit values in
modality units (RescaleSlope 1, RescaleIntercept 0), rounded to the nearest integer (the unit the CT
source was stored in) and clipped to the int16 range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from viewer.io.errors import LoadError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def write_derived_series(files: Sequence[str], values: np.ndarray, out_dir: str | Path, *, description: str,
                         derivation: str, series_number: int | None = None,
                         progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write ``values[k]`` (modality units, (n, rows, columns)) as a copy of ``files[k]`` into ``out_dir``.

    Returns the written paths (``<index>.dcm``). Raises LoadError naming the file when a source cannot be
    read or is multi-frame, or its size differs from the values'.
    """
    import pydicom
    from pydicom.uid import generate_uid

    if len(files) != len(values):
        raise ValueError(f"{len(values)} images for {len(files)} source files")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    written: list[Path] = []
    for k, (src, img) in enumerate(zip(files, values)):
        try:
            ds = pydicom.dcmread(src)
        except Exception as exc:  # any unreadable source: say which
            raise LoadError(f"{src}: cannot be read to derive from it ({exc})") from None
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise LoadError(f"{src}: multi-frame images are not written as derived series yet")
        if (int(ds.Rows), int(ds.Columns)) != tuple(img.shape):
            raise LoadError(f"{src}: {ds.Rows}x{ds.Columns} pixels but the derived image is {img.shape}")
        source_sop = (str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        pixels = np.clip(np.rint(np.asarray(img, dtype=np.float64)), -32768, 32767).astype("<i2")
        for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "LossyImageCompression",
                    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "SmallestImagePixelValue",
                    "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit"):
            if tag in ds:
                del ds[tag]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, ds.get("PhotometricInterpretation", "MONOCHROME2")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = pixels.tobytes()
        ds["PixelData"].VR = "OW"
        kind = [str(v) for v in (ds.get("ImageType") or [])]
        ds.ImageType = ["DERIVED", "SECONDARY"] + kind[2:]
        ds.DerivationDescription = derivation[:1024]
        ref = pydicom.Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source_sop
        ds.SourceImageSequence = pydicom.Sequence([ref])
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = description[:64]
        if series_number is not None:
            ds.SeriesNumber = series_number
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(EXPLICIT_VR_LITTLE_ENDIAN)
        path = out / f"{k + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
        if progress is not None:
            progress(k + 1, len(files))
    return written
