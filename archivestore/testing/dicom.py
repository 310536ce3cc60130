"""Deterministic DICOM test series, built offline from files that ship inside the pydicom wheel.

Every builder returns ``[(name, bytes), ...]`` in a shuffled (but fixed) order -- never sorted
by position -- so that sources can serve them and tests can feed them to
:func:`archivestore.dicom.read_series`. UIDs come from :func:`pydicom.uid.generate_uid` with
fixed entropy, so the same call gives the same bytes.

- :func:`ct_series`: ``CT_small.dcm`` (128x128) copied ``n`` times along z, pixel values varied
  per slice; slope/intercept, spacing, orientation, transfer syntax chosen by the caller.
- :func:`uneven_ct_series`: the four 16x16 ``dicomdirtests/77654033/CT2`` slices as shipped
  (one series; gaps 202.5, 1.25, 1.25 mm).
- :func:`localizer_mixed_series`: the five axial ``98892001/CT5N`` slices plus the two
  ``CT2N`` localizers (sagittal and coronal), all given the axial series' UID.
- :func:`multi_orientation_series`: an axial and a coronal stack of ``CT_small`` in one series.
- :func:`enhanced_ct`: one Legacy Converted Enhanced CT (multi-frame) made by highdicom from a
  :func:`ct_series` (per-frame positions and rescale).
- :func:`corrupt_series`, :func:`duplicate_position_series`: bad inputs.
- :func:`segmentation`: a DICOM SEG over a series, written with highdicom (BINARY or FRACTIONAL,
  MANUAL with a content creator or AUTOMATIC with an algorithm name; empty frames omitted),
  and :func:`blob_masks` to draw its segments.
"""

from __future__ import annotations

import copy
import io
import random
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

__all__ = [
    "AXIAL",
    "CORONAL",
    "Files",
    "blob_masks",
    "corrupt_series",
    "ct_series",
    "datasets",
    "duplicate_position_series",
    "enhanced_ct",
    "localizer_mixed_series",
    "multi_orientation_series",
    "segmentation",
    "uneven_ct_series",
]

Files = list[tuple[str, bytes]]
"""A series as ``(name, bytes)`` pairs."""

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
_CT_SMALL_ORIGIN = (-158.135803, -179.035797, -75.699997)


def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=["archivestore.testing.dicom", *map(str, parts)])


def _shipped(relative: str) -> Path:
    """A file of pydicom's test data that ships in the wheel (never downloaded)."""
    path = get_testdata_file(relative, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom's test file {relative} is not installed")
    return Path(path)


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


_FIXED = {"InstanceCreationDate": "20240101", "InstanceCreationTime": "120000", "ContentDate": "20240101",
          "ContentTime": "120000", "ContributionDateTime": "20240101120000"}


def _pinned(ds: Dataset, seed: str) -> Dataset:
    """``ds`` with the dates, times and UIDs highdicom takes from the clock fixed (same call, same bytes)."""
    def pin(dataset: Dataset, element: pydicom.DataElement) -> None:
        if element.keyword in _FIXED:
            element.value = _FIXED[element.keyword]
        elif element.keyword == "DimensionOrganizationUID":
            element.value = _uid(seed, "dimension-organization")

    ds.walk(pin)
    return ds


def _shuffled(files: Files, seed: str) -> Files:
    out = list(files)
    random.Random(seed).shuffle(out)
    return out


def datasets(files: Files) -> list[Dataset]:
    """The files parsed with pydicom (in the given order)."""
    return [pydicom.dcmread(io.BytesIO(data)) for _, data in files]


def ct_series(n: int = 5, *, seed: str = "ct", spacing: float = 5.0, slope: float = 1.0,
              intercept: float = -1024.0, divide: int = 1, orientation: Sequence[float] = AXIAL,
              origin: Sequence[float] = _CT_SMALL_ORIGIN, shear: Sequence[float] = (0.0, 0.0, 0.0),
              pixel_spacing: Sequence[float] = (0.661468, 0.661468), series_uid: str | None = None,
              frame_of_reference_uid: str | None = None, transfer_syntax: str = ExplicitVRLittleEndian) -> Files:
    """``CT_small.dcm`` copied ``n`` times, slice ``k`` at ``origin + k * (spacing * normal + shear)``.

    Parameters
    ----------
    n
        Number of slices.
    seed
        Makes the UIDs, pixel offsets and file order (same seed, same bytes).
    spacing
        Distance between slices along the normal (mm).
    slope, intercept
        RescaleSlope and RescaleIntercept written into every slice.
    divide
        Stored values are ``(CT_small // divide) + 3k`` for slice ``k`` (``divide=16`` keeps them
        below 256).
    orientation
        ImageOrientationPatient of every slice.
    origin
        ImagePositionPatient of slice 0.
    shear
        An in-plane shift per slice (mm), as a gantry tilt gives.
    pixel_spacing
        PixelSpacing (between rows, between columns; mm).
    series_uid, frame_of_reference_uid
        Defaults derived from ``seed``.
    transfer_syntax
        Written compressed when not Explicit VR Little Endian (e.g. RLE Lossless, JPEG 2000
        Lossless: pydicom's encoders).
    """
    base = pydicom.dcmread(_shipped("CT_small.dcm"))
    normal = np.cross(orientation[:3], orientation[3:])
    series_uid = series_uid or _uid(seed, "series")
    files = []
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid or _uid(seed, "frame-of-reference")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(seed, "instance", k)
        ds.InstanceNumber = n - k  # deliberately not the spatial order
        ds.ImagePositionPatient = [round(float(v), 6) for v in np.asarray(origin) + k * (spacing * normal + shear)]
        ds.ImageOrientationPatient = list(orientation)
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceLocation = round(float(np.dot(ds.ImagePositionPatient, normal)), 6)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = (base.pixel_array // divide + 3 * k).astype(np.int16).tobytes()
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax)
        files.append((f"{seed}-{k:03d}.dcm", _encode(ds)))
    return _shuffled(files, seed)


def uneven_ct_series() -> Files:
    """The four 16x16 CT slices of ``dicomdirtests/77654033/CT2`` (z -99.48, 103.02, 104.27, 105.52)."""
    folder = _shipped("dicomdirtests/77654033/CT2/17106").parent
    return _shuffled([(p.name, p.read_bytes()) for p in sorted(folder.iterdir())], "ct2")


def localizer_mixed_series() -> Files:
    """Five axial 16x16 CT slices (``98892001/CT5N``) and two localizers (``CT2N``) as one series."""
    axial = sorted(_shipped("dicomdirtests/98892001/CT5N/2062").parent.iterdir())
    localizers = sorted(_shipped("dicomdirtests/98892001/CT2N/6293").parent.iterdir())
    series_uid = pydicom.dcmread(axial[0], stop_before_pixels=True).SeriesInstanceUID
    files = [(p.name, p.read_bytes()) for p in axial]
    for p in localizers:
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = series_uid
        files.append((f"localizer-{p.name}", _encode(ds)))
    return _shuffled(files, "localizer")


def multi_orientation_series(seed: str = "multi") -> Files:
    """Three axial and two coronal ``CT_small`` slices sharing one series and frame of reference."""
    series, frame_of_reference = _uid(seed, "series"), _uid(seed, "frame-of-reference")
    axial = ct_series(3, seed=f"{seed}-axial", series_uid=series, frame_of_reference_uid=frame_of_reference)
    coronal = ct_series(2, seed=f"{seed}-coronal", orientation=CORONAL, origin=(-158.0, -40.0, 10.0),
                        series_uid=series, frame_of_reference_uid=frame_of_reference)
    return _shuffled(axial + coronal, seed)


def enhanced_ct(n: int = 4, *, seed: str = "enhanced", spacing: float = 5.0) -> Files:
    """One Legacy Converted Enhanced CT instance holding the ``n`` slices of a :func:`ct_series`."""
    source = datasets(ct_series(n, seed=seed, spacing=spacing))
    image = hd.legacy.LegacyConvertedEnhancedCTImage(source, series_instance_uid=_uid(seed, "enhanced-series"),
                                                     series_number=2, sop_instance_uid=_uid(seed, "enhanced"),
                                                     instance_number=1)
    return [(f"{seed}.dcm", _encode(_pinned(image, seed)))]


def corrupt_series(bad: str = "truncated") -> Files:
    """A three-slice :func:`ct_series` whose file ``corrupt-001.dcm`` is broken.

    ``bad`` is ``"truncated"`` (cut inside the pixel data) or ``"garbage"`` (not DICOM at all).
    """
    files = dict(ct_series(3, seed="corrupt"))
    data = files["corrupt-001.dcm"]
    files["corrupt-001.dcm"] = data[: len(data) - 1000] if bad == "truncated" else b"not a DICOM file\n" * 40
    return _shuffled(list(files.items()), "corrupt")


def duplicate_position_series() -> Files:
    """A four-slice :func:`ct_series` whose slice 2 repeats slice 1's position (two acquisitions)."""
    files = dict(ct_series(4, seed="duplicate"))
    ds = pydicom.dcmread(io.BytesIO(files["duplicate-002.dcm"]))
    ds.ImagePositionPatient = pydicom.dcmread(io.BytesIO(files["duplicate-001.dcm"])).ImagePositionPatient
    files["duplicate-002.dcm"] = _encode(ds)
    return _shuffled(list(files.items()), "duplicate")


def blob_masks(shape: Sequence[int], segments: int = 2, *, empty_slices: Sequence[int] = (0,),
               fractional: bool = False, seed: int = 0) -> np.ndarray:
    """``(segment, z, y, x)`` masks: one ellipsoid per segment, nothing on ``empty_slices``.

    Binary masks are bool; fractional ones float in [0, 1] falling off from each centre (values
    on a 1/255 grid, so a SEG with MaximumFractionalValue 255 stores them exactly).
    """
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    masks = []
    for _ in range(segments):
        centre = rng.uniform((0, ny * 0.3, nx * 0.3), (nz - 1, ny * 0.7, nx * 0.7))
        radii = rng.uniform((1.0, ny * 0.1, nx * 0.1), (max(nz / 2, 1.5), ny * 0.25, nx * 0.25))
        distance = np.sqrt(((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
                           + ((xx - centre[2]) / radii[2]) ** 2)
        masks.append(np.round(np.clip(1.2 - distance, 0, 1) * 255) / 255 if fractional else distance <= 1)
    out = np.stack(masks)
    out[:, list(empty_slices)] = 0
    return out


def _normal(orientation: Sequence[float]) -> np.ndarray:
    cosines = np.asarray(orientation, dtype=float)
    return np.cross(cosines[:3], cosines[3:])


def _in_source_order(source: list[Dataset], masks: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """The source images and ``(frame, y, x, segment)`` masks in the order highdicom expects.

    Single-frame images are sorted along the normal (the masks' z order); for one multi-frame
    image the z-ordered masks are put in frame order instead.
    """
    if len(source) == 1 and "PerFrameFunctionalGroupsSequence" in source[0]:
        ds = source[0]
        normal = _normal(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient)
        z = [float(np.dot(f.PlanePositionSequence[0].ImagePositionPatient, normal))
             for f in ds.PerFrameFunctionalGroupsSequence]
        frames = np.empty_like(masks)
        frames[:, np.argsort(z)] = masks
        return source, np.moveaxis(frames, 0, -1)
    normal = _normal(source[0].ImageOrientationPatient)
    images = sorted(source, key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    return images, np.moveaxis(masks, 0, -1)


_SEGMENTS = ((codes.SCT.Organ, codes.SCT.Liver, "liver"), (codes.SCT.MorphologicallyAbnormalStructure,
                                                            codes.SCT.Neoplasm, "tumour"))


def segmentation(source: Files, masks: np.ndarray, *, seed: str = "seg", fractional: bool = False,
                 algorithm: str | None = None, creator: str | None = "Doe^Jane",
                 description: str = "archivestore test SEG") -> Files:
    """A DICOM SEG of ``source``, written with highdicom.

    Parameters
    ----------
    source
        The series' files (single-frame images in any order, or one multi-frame image).
    masks
        ``(segment, z, y, x)`` with ``z`` in ascending order along the slice normal; up to two
        segments (liver, tumour).
    fractional
        FRACTIONAL (PROBABILITY, MaximumFractionalValue 255) instead of BINARY.
    algorithm
        Makes the segments AUTOMATIC by this algorithm; ``None`` makes them MANUAL.
    creator, description
        ContentCreatorName and SeriesDescription (``None``/empty leaves them out).
    """
    images, pixels = _in_source_order(datasets(source), masks)
    identification = (hd.AlgorithmIdentificationSequence(algorithm, codes.DCM.ArtificialIntelligence, "1.0")
                      if algorithm else None)
    descriptions = [hd.seg.SegmentDescription(
        number, label, category, kind, "AUTOMATIC" if algorithm else "MANUAL", identification,
        tracking_id=f"{label}-{seed}", tracking_uid=_uid(seed, "tracking", number))
        for number, (category, kind, label) in enumerate(_SEGMENTS[: len(masks)], start=1)]
    seg = hd.seg.Segmentation(
        images, pixels.astype(np.float32 if fractional else bool),
        "FRACTIONAL" if fractional else "BINARY", descriptions, series_instance_uid=_uid(seed, "series"),
        series_number=100, sop_instance_uid=_uid(seed, "instance"), instance_number=1,
        manufacturer="archivestore", manufacturer_model_name="testing", software_versions="1",
        device_serial_number="0", content_creator_name=creator or None, series_description=description or None,
        omit_empty_frames=True)
    return [(f"{seed}.dcm", _encode(_pinned(seg, seed)))]
