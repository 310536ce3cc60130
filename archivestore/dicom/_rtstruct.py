"""DICOM RT Structure Sets -> label volumes on the grid of the series they contour.

An RTSTRUCT becomes a :class:`~archivestore.dicom.Labels`, exactly what a SEG becomes, so the
store keeps it as ``segmentations/<RTSTRUCT uid>`` and the segmentation overlap compares RTSTRUCT
and SEG raters alike. Invariants:

- ``labels`` is ``(segment, z, y, x)`` uint8 0/1 on the referenced :class:`Volume`'s grid, one
  segment per ROI of the StructureSetROISequence that has closed planar contours
  (``segment`` = ROINumber, ``segment_label`` = ROIName, ``segment_code`` = the ROI's
  RTROIIdentificationCodeSequence code as ``CodeValue:CodingSchemeDesignator``, else ``""``).
- **Placement.** Every contour point goes through the patient-to-voxel transform of the volume:
  its position along the slice normal picks the slice (it must lie within
  :data:`PLANE_TOL` of that slice's spacing of it, and all points of one contour on the same
  slice), and its offsets along the column and row cosines divided by the pixel spacing give the
  (row, column) in pixel units, voxel centres at integers.
- **Fill.** A pixel is in a CLOSED_PLANAR contour when its centre is inside the polygon, exactly as
  :func:`skimage.draw.polygon` decides (its point-in-polygon test, :func:`skimage.measure.points_in_poly`,
  decides every pixel within two pixels of an edge; Pillow's scanline fill, ``ImageDraw.polygon``,
  the pixels farther inside or outside, which it cannot get wrong: the test costs O(pixels x vertices)
  over the bounding box, this O(area + perimeter x vertices); ``tests/test_imaging/test_rtstruct.py``
  checks equality with skimage on random polygons). The contours of one ROI on one slice are combined
  by exclusive or (even-odd), as RT practice encodes holes and islands: an inner contour cuts a
  hole, a separate contour adds an island.
- **Refused, never a wrong mask** (``InvalidInputError``): a contour between slices or across
  slices, points off the grid (beyond half a pixel outside the image), a structure set on another
  frame of reference, or one referencing another series. ``OPEN_PLANAR``, ``OPEN_NONPLANAR`` and
  ``POINT`` contours are skipped with an :class:`RTStructWarning`; a ROI left without closed
  contours is left out with one.
- ``rater``: the ROIInterpreter(s) of the RTROIObservationsSequence (several joined with ``+``),
  else OperatorsName, else SeriesDescription, else the structure set's SeriesInstanceUID.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from archivestore.dicom._files import DicomInput, Named, header_json, read_files
from archivestore.dicom._seg import Labels, SegmentationSource
from archivestore.dicom._volume import Volume
from archivestore.errors import InvalidInputError

__all__ = ["PLANE_TOL", "RTSTRUCT_SOP_CLASS", "RTStructWarning", "fill_polygon", "is_rtstruct", "read_rtstruct",
           "rtstruct_source"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
"""RT Structure Set Storage."""
PLANE_TOL = 0.25
"""A contour may lie at most this fraction of the slice spacing away from its slice's plane."""
CONTOUR_DATA = Tag(0x3006, 0x0050)
EDGE_TOL = 0.5
"""Points may reach this many pixels beyond the outermost voxel centres (the image's edge)."""


class RTStructWarning(UserWarning):
    """Part of a structure set was skipped (open or point contours, a ROI without closed contours)."""


def is_rtstruct(files: Iterable[DicomInput]) -> bool:
    """Whether a series is an RT Structure Set (its first file decides; headers only)."""
    first = next(iter(files), None)
    if first is None:
        raise InvalidInputError("no DICOM files given")
    return str(read_files([first], pixels=False)[0].dataset.SOPClassUID) == RTSTRUCT_SOP_CLASS


def rtstruct_source(files: Iterable[DicomInput]) -> SegmentationSource:
    """The series a structure set contours and the images it names, from its header alone.

    Raises
    ------
    archivestore.errors.InvalidInputError
        Not one RTSTRUCT instance, or no reference to exactly one image series.
    """
    return _source_of(_one(read_files(files, pixels=False)))


def read_rtstruct(files: Iterable[DicomInput], volume: Volume) -> Labels:
    """Rasterise an RT Structure Set onto the grid of the volume it contours.

    Parameters
    ----------
    files
        The RTSTRUCT series' file (one instance), as for :func:`archivestore.dicom.read_series`.
    volume
        The :class:`Volume` of the referenced series (the part holding its contour images).

    Returns
    -------
    Labels
        BINARY labels, one segment per ROI with closed planar contours (module docstring).

    Raises
    ------
    archivestore.errors.InvalidInputError
        Not an RTSTRUCT; it contours another series or frame of reference; a contour off the
        volume's grid or between its slices.

    Warns
    -----
    RTStructWarning
        For each skipped open or point contour, and each ROI left without closed contours.
    """
    named = _one(read_files(files))
    ds = named.dataset
    source = _source_of(named)
    if source.source_series != volume.series_instance_uid:
        raise InvalidInputError(f"{named.name}: the structure set contours series {source.source_series}, "
                                f"not {volume.series_instance_uid}")
    grid = _Grid(volume)
    observations = {int(o.ReferencedROINumber): o for o in ds.get("RTROIObservationsSequence", [])}
    contours = {int(c.ReferencedROINumber): c for c in ds.get("ROIContourSequence", [])}
    planes, numbers, names, codes, described = [], [], [], [], []
    for roi in ds.get("StructureSetROISequence", []):
        number, name = int(roi.ROINumber), str(roi.get("ROIName", "") or "")
        frame = str(roi.get("ReferencedFrameOfReferenceUID", "") or "")
        if frame and volume.frame_of_reference_uid and frame != volume.frame_of_reference_uid:
            raise InvalidInputError(f"{named.name}: ROI {number} ({name!r}) is on frame of reference {frame}, "
                                    f"the volume on {volume.frame_of_reference_uid}")
        mask = _rasterise(contours.get(number), grid, f"{named.name}: ROI {number} ({name!r})")
        if mask is None:
            continue
        observation = observations.get(number)
        planes.append(mask)
        numbers.append(number)
        names.append(name)
        codes.append(_code(observation))
        described.append(_description(roi, observation, codes[-1]))
    if not planes:
        raise InvalidInputError(f"{named.name}: the structure set has no ROI with closed planar contours")
    return Labels(
        labels=np.stack(planes), segment=tuple(numbers), segment_label=tuple(names), segment_code=tuple(codes),
        segments=tuple(described), segmentation_type="BINARY", source_series=source.source_series,
        rater=_rater(ds, observations.values()), series_instance_uid=str(ds.SeriesInstanceUID),
        header=_header(ds))


class _Grid:
    """The patient-to-voxel transform of a volume (also for uneven gaps: ``z`` holds the positions)."""

    def __init__(self, volume: Volume) -> None:
        affine = np.asarray(volume.affine, dtype=np.float64)
        self.shape = tuple(int(n) for n in volume.array.shape)
        self.z = np.asarray(volume.z, dtype=np.float64)
        self.origin = affine[:3, 3]
        self.rows = np.asarray(volume.orientation[:3], dtype=np.float64)  # direction of increasing column
        self.cols = np.asarray(volume.orientation[3:], dtype=np.float64)  # direction of increasing row
        self.normal = np.cross(self.rows, self.cols)
        step = affine[:3, 0]
        along = float(step @ self.normal)
        self.line = step / along if abs(along) > 1e-9 else self.normal  # origin drift per mm along the normal
        self.dy, self.dx = float(volume.spacing[1]), float(volume.spacing[2])
        gaps = np.diff(self.z)
        self.tol = PLANE_TOL * (float(gaps.min()) if gaps.size else float(volume.spacing[0]))

    def place(self, points: np.ndarray, where: str) -> tuple[int, np.ndarray, np.ndarray]:
        """``(slice, rows, columns)`` of a planar contour's points, in pixel units."""
        depth = points @ self.normal
        k = int(np.argmin(np.abs(self.z - depth.mean())))
        off = np.abs(depth - self.z[k]).max()
        if off > self.tol:
            raise InvalidInputError(f"{where}: a contour {off:.3g} mm off the nearest slice plane "
                                    f"(z {self.z[k]:.3f} mm; at most {self.tol:.3g} mm): not on the referenced grid")
        offsets = points - (self.origin + (self.z[k] - self.z[0]) * self.line)
        r, c = offsets @ self.cols / self.dy, offsets @ self.rows / self.dx
        ny, nx = self.shape[1:]
        if r.min() < -EDGE_TOL or c.min() < -EDGE_TOL or r.max() > ny - 1 + EDGE_TOL or c.max() > nx - 1 + EDGE_TOL:
            raise InvalidInputError(f"{where}: a contour on slice {k} reaches outside the {ny}x{nx} image "
                                    f"(rows {r.min():.1f}..{r.max():.1f}, columns {c.min():.1f}..{c.max():.1f})")
        return k, r, c


def fill_polygon(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(y, x)`` uint8 mask of the pixels whose centre is inside a polygon (vertices in pixel units).

    Equal to :func:`skimage.draw.polygon`'s pixels (module docstring: how, and why not it alone).
    Work is confined to the polygon's bounding box (plus the two-pixel band).
    """
    from scipy import ndimage  # here, not at import: only RTSTRUCTs need them (0.4 s of imports)
    from skimage.measure import points_in_poly

    ny, nx = int(shape[0]), int(shape[1])
    mask = np.zeros((ny, nx), dtype=np.uint8)
    y0, x0 = max(0, int(np.floor(rows.min())) - 3), max(0, int(np.floor(cols.min())) - 3)
    y1, x1 = min(ny, int(np.ceil(rows.max())) + 4), min(nx, int(np.ceil(cols.max())) + 4)
    if y1 <= y0 or x1 <= x0:
        return mask
    h, w = y1 - y0, x1 - x0
    r, c = rows - y0, cols - x0
    xy = list(zip(c.tolist(), r.tolist(), strict=True))
    filled = Image.new("1", (w, h), 0)
    ImageDraw.Draw(filled).polygon(xy, fill=1, outline=1)
    box = np.array(filled, dtype=np.uint8)
    edges = Image.new("1", (w, h), 0)
    ImageDraw.Draw(edges).line([*xy, xy[0]], fill=1, width=1)
    near = ndimage.binary_dilation(np.asarray(edges, dtype=bool), structure=np.ones((3, 3), bool), iterations=2)
    rr, cc = np.nonzero(near)
    if rr.size:
        box[rr, cc] = points_in_poly(np.column_stack([rr, cc]).astype(np.float64), np.column_stack([r, c]))
    mask[y0:y1, x0:x1] = box
    return mask


def _rasterise(roi_contour: Dataset | None, grid: _Grid, where: str) -> np.ndarray | None:
    """The ROI's ``(z, y, x)`` uint8 mask, contours on a slice XOR-ed; None when nothing is closed."""
    mask = np.zeros(grid.shape, dtype=np.uint8)
    closed = 0
    for item in (roi_contour.get("ContourSequence", []) if roi_contour is not None else []):
        kind = str(item.get("ContourGeometricType", "")).upper()
        if kind != "CLOSED_PLANAR":
            warnings.warn(f"{where}: a {kind or 'untyped'} contour skipped (only CLOSED_PLANAR ones are filled)",
                          RTStructWarning, stacklevel=3)
            continue
        data = _contour_data(item, where)
        if data.size < 9 or data.size % 3:
            raise InvalidInputError(f"{where}: a closed contour of {data.size} coordinates (at least 3 points)")
        k, r, c = grid.place(data.reshape(-1, 3), where)
        mask[k] ^= fill_polygon(r, c, grid.shape[1:])
        closed += 1
    if not closed:
        warnings.warn(f"{where}: no closed planar contours; the ROI is left out", RTStructWarning, stacklevel=3)
        return None
    return mask


def _contour_data(item: Dataset, where: str) -> np.ndarray:
    """ContourData as float64, parsed from the element's raw DS text when pydicom has not converted it yet.

    Converting DS values one by one through pydicom (validation, a DSfloat per value) costs more than
    filling the polygons; the raw text parses to the same numbers with Python's float.
    """
    element = item.get_item(CONTOUR_DATA) if CONTOUR_DATA in item else None
    raw = getattr(element, "value", None)
    try:
        if isinstance(raw, bytes):
            return np.array(raw.decode("ascii").replace("\\", " ").split(), dtype=np.float64)
        return np.asarray(item.get("ContourData", []), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{where}: unreadable ContourData ({exc})") from None


def _one(named: list[Named]) -> Named:
    if len(named) != 1:
        raise InvalidInputError(f"an RTSTRUCT series of {len(named)} instances; one structure set per series "
                                "is supported")
    if str(named[0].dataset.SOPClassUID) != RTSTRUCT_SOP_CLASS:
        raise InvalidInputError(f"{named[0].name}: not an RT Structure Set (SOP class {named[0].dataset.SOPClassUID})")
    return named[0]


def _source_of(named: Named) -> SegmentationSource:
    ds = named.dataset
    series: set[str] = set()
    instances: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for ref in study.get("RTReferencedSeriesSequence", []):
                series.add(str(ref.SeriesInstanceUID))
                instances.update(str(i.ReferencedSOPInstanceUID) for i in ref.get("ContourImageSequence", []))
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            instances.update(str(i.ReferencedSOPInstanceUID) for i in contour.get("ContourImageSequence", []))
    if len(series) != 1:
        raise InvalidInputError(f"{named.name}: the structure set references {len(series)} image series "
                                f"({', '.join(sorted(series)) or 'none'}); exactly one is supported")
    return SegmentationSource(str(ds.SeriesInstanceUID), series.pop(), frozenset(instances))


def _code(observation: Dataset | None) -> str:
    codes = observation.get("RTROIIdentificationCodeSequence", []) if observation is not None else []
    return f"{codes[0].CodeValue}:{codes[0].CodingSchemeDesignator}" if codes else ""


def _description(roi: Dataset, observation: Dataset | None, code: str) -> dict[str, Any]:
    obs = observation if observation is not None else Dataset()
    return {
        "segment_number": int(roi.ROINumber),
        "segment_label": str(roi.get("ROIName", "") or ""),
        "segment_code": code,
        "roi_description": str(roi.get("ROIDescription", "") or "") or None,
        "roi_generation_algorithm": str(roi.get("ROIGenerationAlgorithm", "") or "") or None,
        "rt_roi_interpreted_type": str(obs.get("RTROIInterpretedType", "") or "") or None,
        "roi_interpreter": str(obs.get("ROIInterpreter", "") or "") or None,
        "dicom": header_json(roi),
    }


def _rater(ds: Dataset, observations: Iterable[Dataset]) -> str:
    interpreters = sorted({str(o.get("ROIInterpreter") or "").strip() for o in observations} - {""})
    if interpreters:
        return "+".join(interpreters)
    for keyword in ("OperatorsName", "SeriesDescription"):
        value = str(ds.get(keyword) or "").strip()
        if value:
            return value
    return str(ds.SeriesInstanceUID)


def _header(ds: Dataset) -> dict[str, Any]:
    """The structure set as DICOM JSON without its contour points (they are in ``labels``)."""
    slim = Dataset({tag: ds[tag] for tag in ds.keys() if ds[tag].keyword != "ROIContourSequence"})
    return header_json(slim)
