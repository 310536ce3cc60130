"""Deterministic DICOM RT Structure Sets over the test CT series (written with pydicom).

- :func:`observer_rois`: the contours two (or more) observers draw of the same ROIs on a CT grid,
  in pixel units: ``GTV``, a ring (an outer contour and an inner one cutting a hole) on the middle
  slices, and ``Nodules``, two separate contours on each of its slices; each observer's outlines
  a little larger or smaller and shifted (``observer`` picks how).
- :func:`structure_set`: an RTSTRUCT of a series from such contours, mapped from pixel units to
  patient coordinates with the slices' own ImagePositionPatient, ImageOrientationPatient and
  PixelSpacing; ``ROIInterpreter`` is the observer; optionally with an OPEN_PLANAR and a POINT
  contour (which readers must skip), and a ROI code.

Contours are ``{roi name: [(slice index along the normal, (n, 2) array of (row, column)), ...]}``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

__all__ = ["RTSTRUCT_SOP_CLASS", "Contours", "observer_rois", "structure_set"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
Contours = Mapping[str, Sequence[tuple[int, np.ndarray]]]
"""ROI name -> ``[(slice index, (n, 2) (row, column) pixel coordinates), ...]``."""

_CODES = {"GTV": ("228793007", "SCT", "Gross tumor volume"), "Nodules": ("27925004", "SCT", "Nodule")}


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=["archivestore.testing.rtstruct", *map(str, parts)]))


def _circle(centre: tuple[float, float], radius: tuple[float, float], n: int = 48) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([centre[0] + radius[0] * np.sin(angles), centre[1] + radius[1] * np.cos(angles)])


def observer_rois(shape: Sequence[int], observer: int = 0) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Contours of ``GTV`` (a ring with a hole) and ``Nodules`` (two islands per slice) on a grid.

    Parameters
    ----------
    shape
        ``(z, y, x)`` of the CT volume.
    observer
        0, 1, 2, ...: each observer's outlines differ by a few percent in size and a pixel or two
        in position, as two readers' would.
    """
    nz, ny, nx = shape
    grow = 1.0 + 0.04 * ((observer % 3) - 1)
    shift = 0.7 * observer
    rois: dict[str, list[tuple[int, np.ndarray]]] = {"GTV": [], "Nodules": []}
    for k in range(max(1, nz // 5), nz - max(1, nz // 5)):
        taper = 1.0 - 0.5 * abs(k - (nz - 1) / 2) / max(nz / 2, 1)
        centre = (ny * 0.45 + shift, nx * 0.4)
        outer = (ny * 0.22 * taper * grow, nx * 0.2 * taper * grow)
        rois["GTV"].append((k, _circle(centre, outer)))
        rois["GTV"].append((k, _circle(centre, (outer[0] * 0.4, outer[1] * 0.45))))  # the hole
    for k in range(nz // 3, nz - nz // 4):
        for cy, cx in ((0.25, 0.78), (0.72, 0.75)):
            rois["Nodules"].append((k, _circle((ny * cy + shift, nx * cx), (ny * 0.06 * grow, nx * 0.05 * grow), 24)))
    return rois


def structure_set(source: Sequence[tuple[str, bytes]], contours: Contours, *, seed: str = "rtstruct",
                  observer: str | None = "Observer^One", operators: str | None = None,
                  description: str = "archivestore test RTSTRUCT", codes: bool = True,
                  skipped_contours: bool = False, series_uid: str | None = None) -> list[tuple[str, bytes]]:
    """An RT Structure Set of ``source`` holding ``contours`` (one instance).

    Parameters
    ----------
    source
        The CT series' single-frame files, any order.
    contours
        See :data:`Contours`; slice indices count along the slice normal, ascending.
    observer
        ``ROIInterpreter`` of every ROI (``None`` leaves it out).
    operators
        ``OperatorsName``.
    codes
        Give GTV and Nodules an RTROIIdentificationCodeSequence (SNOMED CT).
    skipped_contours
        Add an OPEN_PLANAR contour to the first ROI and a ROI ``Marker`` with only a POINT.
    series_uid
        The structure set's SeriesInstanceUID (default from ``seed``).
    """
    images = [pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True) for _, data in source]
    first = images[0]
    row_cos, col_cos = np.asarray(first.ImageOrientationPatient[:3], float), np.asarray(
        first.ImageOrientationPatient[3:], float)
    normal = np.cross(row_cos, col_cos)
    images.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    ds = _header(first, seed, observer, operators, description, series_uid)
    refs = DicomSequence()
    for image in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
        refs.append(ref)
    series = Dataset()
    series.SeriesInstanceUID, series.ContourImageSequence = first.SeriesInstanceUID, refs
    study = Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = "1.2.840.10008.3.1.2.3.1", first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = first.FrameOfReferenceUID, DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    def patient(k: int, pixels: np.ndarray) -> np.ndarray:
        image = images[k]
        dy, dx = (float(v) for v in image.PixelSpacing)
        origin = np.asarray(image.ImagePositionPatient, float)
        return origin + np.outer(pixels[:, 0] * dy, col_cos) + np.outer(pixels[:, 1] * dx, row_cos)

    rois = {name: [(k, "CLOSED_PLANAR", patient(k, np.asarray(p, float))) for k, p in items]
            for name, items in contours.items()}
    if skipped_contours and rois:
        name = next(iter(rois))
        k = rois[name][0][0]
        rois[name].append((k, "OPEN_PLANAR", patient(k, np.array([[2.0, 2.0], [2.0, 9.0], [6.0, 9.0]]))))
        rois["Marker"] = [(k, "POINT", patient(k, np.array([[5.0, 5.0]])))]
    structure, contour_items, observations = DicomSequence(), DicomSequence(), DicomSequence()
    for number, (name, items) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = number, first.FrameOfReferenceUID, name
        roi.ROIGenerationAlgorithm = "MANUAL"
        structure.append(roi)
        item = Dataset()
        item.ReferencedROINumber, item.ROIDisplayColor = number, [255, 64 * number % 256, 0]
        item.ContourSequence = DicomSequence([_contour(images[k], kind, points) for k, kind, points in items])
        contour_items.append(item)
        observations.append(_observation(number, name, observer, codes))
    ds.StructureSetROISequence, ds.ROIContourSequence = structure, contour_items
    ds.RTROIObservationsSequence = observations
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return [(f"{seed}.dcm", buffer.getvalue())]


def _header(first: Dataset, seed: str, observer: str | None, operators: str | None, description: str,
            series_uid: str | None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UID(RTSTRUCT_SOP_CLASS), UID(_uid(seed, "instance"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_SOP_CLASS, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = "RTSTRUCT", "archivestore"
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid or _uid(seed, "series"), 200
    ds.InstanceNumber, ds.SeriesDescription = 1, description
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = seed[:16], "20240101", "120000"
    if operators:
        ds.OperatorsName = operators
    return ds


def _contour(image: Dataset, kind: str, points: np.ndarray) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    contour = Dataset()
    contour.ContourImageSequence = DicomSequence([ref])
    contour.ContourGeometricType, contour.NumberOfContourPoints = kind, len(points)
    contour.ContourData = [f"{v:.6g}" for v in points.ravel()]
    return contour


def _observation(number: int, name: str, observer: str | None, codes: bool) -> Dataset:
    obs = Dataset()
    obs.ObservationNumber, obs.ReferencedROINumber = number, number
    obs.RTROIInterpretedType = "GTV" if name == "GTV" else "ORGAN"
    obs.ROIInterpreter = observer or ""
    if codes and name in _CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _CODES[name]
        obs.RTROIIdentificationCodeSequence = DicomSequence([code])
    return obs
