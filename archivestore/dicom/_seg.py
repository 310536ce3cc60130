"""DICOM SEG -> label volumes on the grid of the series they segment (highdicom's reader).

Invariants of every :class:`Labels` (the store's ``segmentations/<uid>`` contract):

- ``labels`` is ``(segment, z, y, x)`` on the referenced :class:`~archivestore.dicom.Volume`'s
  grid, slice ``k`` being the segmentation of that volume's slice ``k`` (matched by
  SOPInstanceUID, and frame number for multi-frame sources); slices the SEG has no frame for
  are 0. BINARY (and LABELMAP, one plane per segment) -> uint8 0/1; FRACTIONAL -> float32 in
  [0, 1] (stored value / MaximumFractionalValue).
- ``source_series`` is the SEG's referenced series; every source instance its frames reference
  must be a slice of the volume, with the same rows and columns, and with spatial locations
  preserved (``SpatialLocationsPreserved`` YES or absent) -- else ``InvalidInputError``.
- ``rater``: the algorithm name(s) of AUTOMATIC segments (several joined with ``+``), else
  ContentCreatorName, else SeriesDescription, else the SEG's SeriesInstanceUID (so that two
  unnamed SEGs never share a rater).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from archivestore.dicom._files import DicomInput, Named, header_json, read_files
from archivestore.dicom._volume import Volume
from archivestore.dicom._warm import first_call_alone
from archivestore.errors import InvalidInputError

__all__ = ["Labels", "SegmentationSource", "is_segmentation", "read_segmentation", "segmentation_source"]

_SEG_SOP_CLASSES = frozenset(hd.seg.SOP_CLASS_UIDS)


@dataclass(frozen=True)
class SegmentationSource:
    """What a SEG segments, read from its header alone (no pixels decoded).

    Attributes
    ----------
    series_instance_uid
        The SEG's own SeriesInstanceUID.
    source_series
        The SeriesInstanceUID of the image series it segments.
    source_instances
        SOPInstanceUIDs its frames are derived from (a volume must hold all of them).
    """

    series_instance_uid: str
    source_series: str
    source_instances: frozenset[str]


@dataclass(frozen=True, eq=False)
class Labels:
    """One DICOM SEG as label volumes on its source volume's grid (module docstring: invariants).

    Attributes
    ----------
    labels
        ``(segment, z, y, x)``: uint8 0/1 (BINARY, LABELMAP) or float32 in [0, 1] (FRACTIONAL).
    segment
        SegmentNumber of each plane of ``labels``.
    segment_label
        SegmentLabel of each segment.
    segment_code
        SegmentedPropertyType ``CodeValue:CodingSchemeDesignator`` of each segment.
    segments
        Each segment's full description, JSON-compatible (readable keys and the item as DICOM JSON).
    segmentation_type
        ``BINARY``, ``FRACTIONAL`` or ``LABELMAP``.
    source_series
        SeriesInstanceUID of the segmented series.
    rater
        Who segmented (module docstring).
    series_instance_uid
        The SEG's own SeriesInstanceUID.
    header
        The SEG instance as DICOM JSON without bulk data and per-frame groups.
    """

    labels: np.ndarray
    segment: tuple[int, ...]
    segment_label: tuple[str, ...]
    segment_code: tuple[str, ...]
    segments: tuple[dict[str, Any], ...]
    segmentation_type: str
    source_series: str
    rater: str
    series_instance_uid: str
    header: dict[str, Any]


def is_segmentation(files: Iterable[DicomInput]) -> bool:
    """Whether a series is a DICOM SEG (its first file decides; headers only).

    Parameters
    ----------
    files
        The series' files, as for :func:`read_series`.
    """
    first = next(iter(files), None)
    if first is None:
        raise InvalidInputError("no DICOM files given")
    return read_files([first], pixels=False)[0].dataset.SOPClassUID in _SEG_SOP_CLASSES


def segmentation_source(files: Iterable[DicomInput]) -> SegmentationSource:
    """The series a SEG segments, from its header alone (to find the source series first).

    Raises
    ------
    archivestore.errors.InvalidInputError
        Not one SEG instance, or no reference to exactly one source series.
    """
    return _source_of(_one_seg(read_files(files, pixels=False)))


@first_call_alone
def read_segmentation(files: Iterable[DicomInput], volume: Volume) -> Labels:
    """Decode a DICOM SEG onto the grid of the volume it segments.

    Parameters
    ----------
    files
        The SEG series' file (one SEG instance), as for :func:`read_series`.
    volume
        The :class:`Volume` of the referenced series (the part holding the referenced slices,
        if that series was split).

    Returns
    -------
    Labels

    Raises
    ------
    archivestore.errors.InvalidInputError
        Not a SEG; it segments another series; its frames reference instances that are not
        slices of ``volume``, or have another size or changed spatial locations.
    """
    named = _one_seg(read_files(files))
    source = _source_of(named)
    _check_against(named, source, volume)
    header = header_json(named.dataset)
    try:
        seg = hd.seg.Segmentation.from_dataset(named.dataset, copy=not named.owned)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise InvalidInputError(f"{named.name}: not a usable DICOM SEG ({exc})") from None
    numbers = tuple(int(n) for n in seg.segment_numbers)
    descriptions = [seg.get_segment_description(n) for n in numbers]
    ds = named.dataset
    return Labels(
        labels=_labels_on_grid(seg, named.name, volume),
        segment=numbers,
        segment_label=tuple(d.segment_label for d in descriptions),
        segment_code=tuple(_code(d.segmented_property_type) for d in descriptions),
        segments=tuple(_description(d) for d in descriptions),
        segmentation_type=seg.segmentation_type.value,
        source_series=source.source_series,
        rater=_rater(ds, descriptions),
        series_instance_uid=str(ds.SeriesInstanceUID),
        header=header,
    )


def _one_seg(named: list[Named]) -> Named:
    if len(named) != 1:
        raise InvalidInputError(f"a SEG series of {len(named)} instances ({', '.join(n.name for n in named[:3])}"
                                f"{', ...' if len(named) > 3 else ''}); one SEG instance per series is supported")
    if named[0].dataset.SOPClassUID not in _SEG_SOP_CLASSES:
        raise InvalidInputError(f"{named[0].name}: not a DICOM SEG (SOP class {named[0].dataset.SOPClassUID})")
    return named[0]


def _frame_references(ds: Dataset) -> list[tuple[str, str | None]]:
    """``(ReferencedSOPInstanceUID, SpatialLocationsPreserved)`` of every frame's source images."""
    refs = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                refs.append((str(source.ReferencedSOPInstanceUID), source.get("SpatialLocationsPreserved")))
    return refs


def _source_of(named: Named) -> SegmentationSource:
    ds = named.dataset
    series = sorted({str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])})
    if len(series) != 1:
        raise InvalidInputError(f"{named.name}: the SEG references {len(series)} source series "
                                f"({', '.join(series) or 'none'}); exactly one is supported")
    instances = frozenset(uid for uid, _ in _frame_references(ds))
    if not instances:
        raise InvalidInputError(f"{named.name}: the SEG's frames do not reference their source images")
    return SegmentationSource(str(ds.SeriesInstanceUID), series[0], instances)


def _check_against(named: Named, source: SegmentationSource, volume: Volume) -> None:
    ds = named.dataset
    if source.source_series != volume.series_instance_uid:
        raise InvalidInputError(f"{named.name}: the SEG segments series {source.source_series}, "
                                f"not {volume.series_instance_uid}")
    unknown = sorted(source.source_instances - set(volume.sop_instance_uids))
    if unknown:
        raise InvalidInputError(f"{named.name}: {len(unknown)} frame source instance(s) are not slices of the "
                                f"volume of series {volume.series_instance_uid} (e.g. {unknown[0]})")
    moved = sorted({str(p) for _, p in _frame_references(ds) if p is not None and str(p) != "YES"})
    if moved:
        raise InvalidInputError(f"{named.name}: SpatialLocationsPreserved {', '.join(moved)}: frames are not on "
                                "the source grid")
    if (int(ds.Rows), int(ds.Columns)) != volume.array.shape[1:]:
        raise InvalidInputError(f"{named.name}: frames are {ds.Rows}x{ds.Columns}, the volume's slices "
                                f"{volume.array.shape[1]}x{volume.array.shape[2]}")


def _labels_on_grid(seg: hd.seg.Segmentation, name: str, volume: Volume) -> np.ndarray:
    """``(segment, z, y, x)`` via highdicom, by source instance (or by source frame for multi-frame sources)."""
    fractional = seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    options: dict[str, Any] = {"assert_missing_frames_are_empty": True, "ignore_spatial_locations": True,
                               "rescale_fractional": True, "dtype": np.float32 if fractional else np.uint8}
    try:
        if volume.frame_numbers is None:
            pixels = seg.get_pixels_by_source_instance(list(volume.sop_instance_uids), **options)
        else:
            pixels = np.zeros((len(volume.sop_instance_uids), *volume.array.shape[1:], len(seg.segment_numbers)),
                              dtype=options["dtype"])
            uids = np.asarray(volume.sop_instance_uids)
            for uid in dict.fromkeys(volume.sop_instance_uids):
                where = np.flatnonzero(uids == uid)
                frames = [volume.frame_numbers[k] for k in where]
                pixels[where] = seg.get_pixels_by_source_frame(uid, frames, **options)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise InvalidInputError(f"{name}: cannot place the SEG's frames on the volume's grid ({exc})") from None
    return np.ascontiguousarray(np.moveaxis(pixels, -1, 0))


def _code(concept: hd.sr.CodedConcept) -> str:
    return f"{concept.value}:{concept.scheme_designator}"


def _concept(concept: hd.sr.CodedConcept) -> dict[str, str]:
    return {"code": concept.value, "scheme": concept.scheme_designator, "meaning": concept.meaning}


def _description(d: hd.seg.SegmentDescription) -> dict[str, Any]:
    algorithm = d.algorithm_identification
    return {
        "segment_number": d.segment_number,
        "segment_label": d.segment_label,
        "segment_code": _code(d.segmented_property_type),
        "segmented_property_category": _concept(d.segmented_property_category),
        "segmented_property_type": _concept(d.segmented_property_type),
        "algorithm_type": d.algorithm_type.value,
        "algorithm_name": algorithm.name if algorithm is not None else None,
        "algorithm_version": algorithm.version if algorithm is not None else None,
        "anatomic_regions": [_concept(c) for c in d.anatomic_regions],
        "tracking_id": d.tracking_id,
        "tracking_uid": d.tracking_uid,
        "dicom": header_json(d),
    }


def _rater(ds: Dataset, descriptions: list[hd.seg.SegmentDescription]) -> str:
    algorithms = sorted({d.algorithm_identification.name for d in descriptions
                         if d.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
                         and d.algorithm_identification is not None})
    if algorithms:
        return "+".join(algorithms)
    for keyword in ("ContentCreatorName", "SeriesDescription"):
        value = str(ds.get(keyword) or "").strip()
        if value:
            return value
    return str(ds.SeriesInstanceUID)
