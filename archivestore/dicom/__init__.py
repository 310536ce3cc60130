"""DICOM decoding: image series -> 3-D volumes, DICOM SEG -> label volumes (files in, arrays out).

Pure functions over the files of one series (``(name, bytes)`` pairs as sources hand them over,
pydicom datasets or paths); nothing here fetches or writes. pydicom decodes the files (with
the pylibjpeg plugins for JPEG, JPEG-LS, JPEG 2000 and RLE), highdicom supplies the slice
normal and reads SEGs. Needs the ``dicom`` extra (``pip install 'archivestore[dicom]'``).

- :func:`read_series` -> list of :class:`Volume` (one, or one per part of a series that holds
  several stacks); the invariants are in :mod:`archivestore.dicom._volume`.
- :func:`is_slide`, :func:`open_slide` -> :class:`Slide` (slide microscopy: pyramid levels of
  tiles in their DICOM encoding, with wsidicom; :mod:`archivestore.dicom._slide`).
- :func:`is_segmentation`, :func:`segmentation_source` (header only: which series a SEG
  segments) and :func:`read_segmentation` -> :class:`Labels` on the source volume's grid.
- :func:`is_rtstruct`, :func:`rtstruct_source` and :func:`read_rtstruct`: an RT Structure Set's
  closed planar contours rasterised into the same :class:`Labels` (one segment per ROI;
  invariants in :mod:`archivestore.dicom._rtstruct`); skipped contours are a :class:`RTStructWarning`.
- :func:`is_report` and :func:`read_findings`: a TID 1500 measurement report (DICOM SR, read with
  highdicom) as :class:`Findings`, one row per measurement or qualitative evaluation.

Every problem with the input is an :class:`archivestore.errors.InvalidInputError` whose message
names the file (or the series) and the reason; uneven slice spacing is a
:class:`UnevenSpacingWarning`.
"""

from archivestore.dicom._files import DicomInput
from archivestore.dicom._rtstruct import RTStructWarning, is_rtstruct, read_rtstruct, rtstruct_source
from archivestore.dicom._seg import (
    Labels,
    SegmentationSource,
    is_segmentation,
    read_segmentation,
    segmentation_source,
)
from archivestore.dicom._slide import SM_SOP_CLASS, Slide, SlideImage, is_slide, open_slide
from archivestore.dicom._sr import FINDING_COLUMNS, Findings, is_report, read_findings
from archivestore.dicom._volume import UnevenSpacingWarning, Volume, read_series

__all__ = [
    "FINDING_COLUMNS",
    "DicomInput",
    "Findings",
    "Labels",
    "RTStructWarning",
    "SM_SOP_CLASS",
    "Slide",
    "SlideImage",
    "SegmentationSource",
    "UnevenSpacingWarning",
    "Volume",
    "is_report",
    "is_rtstruct",
    "is_segmentation",
    "read_findings",
    "read_rtstruct",
    "is_slide",
    "open_slide",
    "read_segmentation",
    "read_series",
    "rtstruct_source",
    "segmentation_source",
]
