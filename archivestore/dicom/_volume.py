"""DICOM image series -> 3-D volumes in modality units, on the patient grid (LPS, mm).

Invariants of every :class:`Volume` (the store's ``series/<uid>`` contract):

- ``array`` is ``(z, y, x)``: stored value x RescaleSlope + RescaleIntercept, computed exactly.
  When every slice's slope and intercept are integers, the dtype is the smallest integer type
  holding the rescaled values (unsigned if none is negative); otherwise float32 (each value the
  float32 nearest to the exact product in float64).
- Slices are in ascending order of their position along the slice normal
  ``n = row cosines x column cosines``: ``z[k] = ImagePositionPatient[k] . n`` (mm).
  ``y``/``x`` are row/column offsets in mm (index x PixelSpacing).
- ``affine`` maps ``(k, i, j, 1)`` to the patient position (mm, LPS) of that voxel's centre:
  ``IPP[0] + k * step + i * dy * column_cosines + j * dx * row_cosines`` with
  ``step = (IPP[-1] - IPP[0]) / (n - 1)``; exact for every slice when spacing is uniform (also
  for gantry-tilted stacks, whose step is not along the normal). When gaps are uneven or
  slices missing, ``uniform_spacing`` is False, an :class:`UnevenSpacingWarning` is issued, and
  ``z`` (not the affine) holds the true positions.
- A series is never stacked into a wrong array: duplicate positions, or slices of one
  orientation and size that do not lie on one line, raise ``InvalidInputError``; slices of
  several orientations/sizes/spacings (a localizer mixed in) become separate parts
  (:mod:`archivestore.dicom._slices` says how they are split and ordered).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from highdicom.spatial import get_normal_vector

from archivestore.dicom._files import DicomInput, Named, header_json, read_files
from archivestore.dicom._slices import Slice, describe, group_slices, slices_of
from archivestore.errors import InvalidInputError

__all__ = ["UnevenSpacingWarning", "Volume", "read_series"]

DUPLICATE_TOL_MM = 1e-3
"""Two slices closer than this along the normal are at the same position."""
SPACING_RTOL = 0.01
"""Gaps within 1% of their mean (highdicom's default tolerance) count as uniform spacing."""
LINE_TOL_PIXELS = 0.1
"""Slice origins may stray from the stack's line by at most this fraction of a pixel."""

_SEG_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"})


class UnevenSpacingWarning(UserWarning):
    """A volume's slices are not evenly spaced (missing slices or uneven gaps)."""


@dataclass(frozen=True, eq=False)
class Volume:
    """One 3-D image volume of a DICOM series (see the module docstring for the invariants).

    Attributes
    ----------
    array
        ``(z, y, x)`` values in modality units (integer dtype when exact, else float32).
    z, y, x
        Slice positions along the normal; row and column offsets (mm, float64).
    sop_instance_uids
        SOPInstanceUID of each slice along ``z``.
    frame_numbers
        1-based frame number of each slice along ``z`` within its multi-frame instance, or
        ``None`` when every slice is a single-frame instance.
    affine
        4x4 mapping ``(z, y, x, 1)`` indices to LPS patient mm at voxel centres.
    spacing
        ``(z, y, x)`` spacing in mm; along ``z`` the mean gap (the slice thickness for one slice).
    orientation
        ImageOrientationPatient: row cosines then column cosines.
    positions
        ``(z, 3)`` ImagePositionPatient of each slice (mm).
    uniform_spacing
        ``False`` when the gaps between slices differ by more than 1% of their mean.
    header
        The first slice's instance as DICOM JSON (PS3.18 F.2) without bulk data.
    series_instance_uid, modality, frame_of_reference_uid
        From the instances.
    part, parts
        This volume's index among the parts its series was split into, and their number
        (``0`` and ``1`` for a series that is one volume).
    part_description
        What this part's slices share (orientation, size, pixel spacing, localizer or not).
    """

    array: np.ndarray
    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    sop_instance_uids: tuple[str, ...]
    frame_numbers: tuple[int, ...] | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: tuple[float, ...]
    positions: np.ndarray
    uniform_spacing: bool
    header: dict[str, Any]
    series_instance_uid: str
    modality: str
    frame_of_reference_uid: str
    part: int = 0
    parts: int = 1
    part_description: str = ""


def read_series(files: Iterable[DicomInput]) -> list[Volume]:
    """Decode the DICOM files of one image series into volumes.

    Parameters
    ----------
    files
        ``(name, bytes)`` pairs (as :meth:`archivestore.sources.SeriesItem.files` returns),
        pydicom datasets, or paths; single-frame and enhanced multi-frame images, in any order.

    Returns
    -------
    list of Volume
        One volume, or one per part when the series holds stacks of different orientation,
        size or pixel spacing, or localizers beside images (see :attr:`Volume.part`).

    Raises
    ------
    archivestore.errors.InvalidInputError
        A file that is not DICOM or whose pixels cannot be decoded (the message names it);
        files of several series; a segmentation or a non-image object; slices without patient
        geometry; two slices at one position; a stack whose slices are not on one line.

    Warns
    -----
    UnevenSpacingWarning
        For each volume whose slices are not evenly spaced.
    """
    named = read_files(files)
    _check_one_image_series(named)
    slices = [s for n in named for s in slices_of(n)]
    groups = group_slices(slices)
    volumes = [_stack(group, part, len(groups), describe(group) if len(groups) > 1 else "")
               for part, group in enumerate(groups)]
    for volume in volumes:
        if not volume.uniform_spacing:
            gaps = ", ".join(f"{g:.4g}" for g in np.unique(np.round(np.diff(volume.z), 4)))
            warnings.warn(f"series {volume.series_instance_uid}: uneven slice spacing (gaps {gaps} mm); "
                          "z keeps the true positions", UnevenSpacingWarning, stacklevel=2)
    return volumes


def _check_one_image_series(named: list[Named]) -> None:
    uids = sorted({str(n.dataset.get("SeriesInstanceUID", "")) for n in named})
    if len(uids) > 1:
        raise InvalidInputError(f"files of {len(uids)} series given as one: {', '.join(uids)}")
    for n in named:
        if n.dataset.SOPClassUID in _SEG_SOP_CLASSES:
            raise InvalidInputError(f"{n.name}: a segmentation (DICOM SEG), not an image; read it with "
                                    "read_segmentation")


def _stack(group: list[Slice], part: int, parts: int, description: str) -> Volume:
    first = group[0]
    normal = get_normal_vector(first.orientation, index_convention="RD")  # row x column cosines
    positions = np.array([s.position for s in group], dtype=np.float64)
    order = sorted(range(len(group)), key=lambda k: (float(positions[k] @ normal), group[k].sort_key()))
    group, positions = [group[k] for k in order], positions[order]
    z = positions @ normal
    series = str(first.source.dataset.get("SeriesInstanceUID", ""))
    _check_positions(group, positions, z, series)
    step, z_spacing = _step(group, positions, normal)
    rows, cols = first.shape
    dy, dx = first.pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = np.asarray(first.orientation[3:]) * dy
    affine[:3, 2] = np.asarray(first.orientation[:3]) * dx
    affine[:3, 3] = positions[0]
    multiframe = any(s.frame is not None for s in group)
    return Volume(
        array=_rescaled(group),
        z=z,
        y=np.arange(rows) * dy,
        x=np.arange(cols) * dx,
        sop_instance_uids=tuple(s.sop_instance_uid for s in group),
        frame_numbers=tuple((s.frame or 0) + 1 for s in group) if multiframe else None,
        affine=affine,
        spacing=(z_spacing, dy, dx),
        orientation=first.orientation,
        positions=positions,
        uniform_spacing=_uniform(z),
        header=header_json(group[0].source.dataset),
        series_instance_uid=series,
        modality=str(first.source.dataset.get("Modality", "")),
        frame_of_reference_uid=first.frame_of_reference,
        part=part,
        parts=parts,
        part_description=description,
    )


def _where(s: Slice) -> str:
    return s.source.name if s.frame is None else f"{s.source.name} frame {s.frame + 1}"


def _check_positions(group: list[Slice], positions: np.ndarray, z: np.ndarray, series: str) -> None:
    """Refuse duplicate positions and slices that are not on one line (never a wrong array)."""
    gaps = np.diff(z)
    if gaps.size and gaps.min() < DUPLICATE_TOL_MM:
        k = int(np.argmin(gaps))
        raise InvalidInputError(
            f"series {series}: two slices at one position ({z[k]:.3f} mm along the normal): "
            f"{_where(group[k])} and {_where(group[k + 1])}; several acquisitions (echoes, phases, time "
            "points) in one series are not one volume")
    if len(group) < 3:
        return
    direction = (positions[-1] - positions[0]) / (z[-1] - z[0])  # per mm along the normal
    expected = positions[0] + np.outer(z - z[0], direction)
    stray = np.linalg.norm(positions - expected, axis=1)
    tolerance = LINE_TOL_PIXELS * min(group[0].pixel_spacing)
    if stray.max() > tolerance:
        k = int(np.argmax(stray))
        raise InvalidInputError(
            f"series {series}: slices of one orientation are not stacked on one line ({_where(group[k])} is "
            f"{stray[k]:.3g} mm off it); not one volume")


def _uniform(z: np.ndarray) -> bool:
    gaps = np.diff(z)
    return gaps.size < 2 or bool(np.ptp(gaps) <= SPACING_RTOL * gaps.mean())


def _step(group: list[Slice], positions: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, float]:
    """The affine's slice step (a 3-vector) and the spacing along the normal."""
    if len(group) == 1:
        thickness = group[0].thickness or 1.0
        return normal * thickness, thickness
    step = (positions[-1] - positions[0]) / (len(group) - 1)
    return step, float(step @ normal)


def _decoded(s: Slice, cache: dict[int, np.ndarray]) -> np.ndarray:
    ds = s.source.dataset
    if id(ds) not in cache:
        try:
            cache[id(ds)] = np.asarray(ds.pixel_array)
        except Exception as exc:  # pixel handlers raise many kinds of error on corrupt data
            reason = f"{type(exc).__name__}: {exc}"
            raise InvalidInputError(f"{s.source.name}: cannot decode pixel data ({reason})") from None
    pixels = cache[id(ds)]
    frame = pixels if s.frame is None else (pixels[s.frame] if pixels.ndim == 3 else pixels)
    if frame.shape != s.shape:
        raise InvalidInputError(f"{_where(s)}: decoded pixels are {frame.shape}, Rows/Columns say {s.shape}")
    return frame


def _rescaled(group: list[Slice]) -> np.ndarray:
    """Decode and rescale the slices into one array (module docstring: dtype rule)."""
    cache: dict[int, np.ndarray] = {}
    stored = [_decoded(s, cache) for s in group]
    dtypes = _integer_dtypes(group, stored)
    out = np.empty((len(group), *group[0].shape), dtype=dtypes[0] if dtypes else np.float32)
    for k, (s, frame) in enumerate(zip(group, stored, strict=True)):
        if dtypes is None:
            out[k] = frame * s.slope + s.intercept  # float64, then the nearest float32
            continue
        values = frame.astype(dtypes[1])
        if s.slope != 1:
            values *= int(s.slope)
        if s.intercept != 0:
            values += int(s.intercept)
        out[k] = values
    return out


def _integer_dtypes(group: list[Slice], stored: list[np.ndarray]) -> tuple[np.dtype[Any], np.dtype[Any]] | None:
    """``(output, working)`` integer dtypes, or None when rescaling is not integral.

    The output dtype is the smallest holding every rescaled value; the working dtype (int32 or
    int64) also holds every intermediate ``stored x slope``, so the arithmetic is exact.
    """
    if any(frame.dtype.kind not in "iu" for frame in stored):
        return None
    if not all(float(v).is_integer() for s in group for v in (s.slope, s.intercept)):
        return None
    ends = [(s, int(v)) for s, frame in zip(group, stored, strict=True) for v in (frame.min(), frame.max())]
    products = [v * int(s.slope) for s, v in ends]
    finals = [v * int(s.slope) + int(s.intercept) for s, v in ends]
    output = _smallest_integer(min(finals), max(finals))
    working = _smallest_integer(min(products + finals), max(products + finals), ("i4", "i8"))
    return None if output is None or working is None else (output, working)


def _smallest_integer(lo: int, hi: int, codes: tuple[str, ...] | None = None) -> np.dtype[Any] | None:
    candidates = codes or (("u1", "u2", "u4", "u8") if lo >= 0 else ("i1", "i2", "i4", "i8"))
    for code in candidates:
        info = np.iinfo(code)
        if info.min <= lo and hi <= info.max:
            return np.dtype(code)
    return None
