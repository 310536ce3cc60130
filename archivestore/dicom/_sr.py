"""DICOM SR measurement reports (TID 1500) -> rows of findings, read with highdicom's SR templates.

Invariants of :func:`read_findings` (the store's ``findings/<SR uid>`` contract):

- One row per measurement and per qualitative evaluation of every measurement group of the report
  (TID 1501 image-level, TID 1410 planar ROI and TID 1411 volumetric ROI groups, as
  :class:`highdicom.sr.MeasurementReport` finds them), in document order.
- ``kind`` is ``measurement`` (``value`` the number, ``unit`` its UCUM code, ``value_code`` and
  ``value_meaning`` empty) or ``qualitative`` (``value`` NaN, ``value_code`` the coded answer as
  ``CodeValue:CodingSchemeDesignator``, ``value_meaning`` its meaning, ``unit`` empty).
- ``concept`` is the measured or evaluated concept (``CodeValue:CodingSchemeDesignator``, meaning in
  ``concept_meaning``); ``finding`` the group's finding type meaning (``finding_code`` its code);
  ``tracking_id``/``tracking_uid`` the group's tracking identifier and UID; ``referenced_segment``
  ``<SEG SOPInstanceUID>:<segment number>`` for a volumetric or planar group that references a
  segment; ``finding_site`` the meanings of its finding sites joined with ``; ``. Missing text is ``""``.
- ``observer``: the person observers' names (several joined with ``+``), else the device observers'
  names or UIDs, else ContentCreatorName, else SeriesDescription, else the SR's SeriesInstanceUID.
- ``source_series``: the image series the report's evidence references (segmentations left out);
  several are joined with ``+``; ``""`` when it references none.
- Not an SR, or an SR that is not a TID 1500 measurement report: ``InvalidInputError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from archivestore.dicom._files import DicomInput, Named, header_json, read_files
from archivestore.dicom._warm import first_call_alone
from archivestore.errors import InvalidInputError

__all__ = ["FINDING_COLUMNS", "Findings", "is_report", "read_findings"]

SR_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.35",
})
"""Basic Text, Enhanced, Comprehensive, Comprehensive 3D and Extensible SR Storage."""
_SEG_SOP_CLASSES = frozenset(hd.seg.SOP_CLASS_UIDS)
FINDING_COLUMNS = ("observer", "finding", "finding_code", "tracking_id", "tracking_uid", "referenced_segment",
                   "finding_site", "kind", "concept", "concept_meaning", "value", "unit", "value_code",
                   "value_meaning")
"""The columns of each finding row (``value`` float, the others strings)."""


@dataclass(frozen=True, eq=False)
class Findings:
    """One TID 1500 report's findings (module docstring: invariants).

    Attributes
    ----------
    rows
        One dict per measurement or qualitative evaluation, keys :data:`FINDING_COLUMNS`.
    series_instance_uid
        The SR's SeriesInstanceUID.
    source_series
        The image series the report is about.
    observer
        Who reported.
    header
        The SR instance as DICOM JSON without its content tree (the rows hold what it says).
    """

    rows: list[dict[str, Any]]
    series_instance_uid: str
    source_series: str
    observer: str
    header: dict[str, Any]


def is_report(files: Iterable[DicomInput]) -> bool:
    """Whether a series is a DICOM SR document (its first file decides; headers only)."""
    first = next(iter(files), None)
    if first is None:
        raise InvalidInputError("no DICOM files given")
    return str(read_files([first], pixels=False)[0].dataset.SOPClassUID) in SR_SOP_CLASSES


@first_call_alone
def read_findings(files: Iterable[DicomInput]) -> Findings:
    """Every measurement and qualitative evaluation of a TID 1500 measurement report.

    Parameters
    ----------
    files
        The SR series' file (one instance), as for :func:`archivestore.dicom.read_series`.

    Raises
    ------
    archivestore.errors.InvalidInputError
        Not one SR instance, or not a TID 1500 measurement report.
    """
    named = _one(read_files(files))
    ds = named.dataset
    try:
        report = hd.sr.MeasurementReport.from_sequence([ds])
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise InvalidInputError(f"{named.name}: not a TID 1500 measurement report ({exc})") from None
    observer = _observer(ds, report)
    groups: list[Any] = [*report.get_image_measurement_groups(), *report.get_planar_roi_measurement_groups(),
                         *report.get_volumetric_roi_measurement_groups()]
    rows = []
    for group in groups:
        base = {"observer": observer, **_group_fields(group)}
        for m in group.get_measurements():
            rows.append({**base, "kind": "measurement", **_concept(m.name), "value": float(m.value),
                         "unit": str(m.unit.value) if m.unit is not None else "", "value_code": "",
                         "value_meaning": ""})
        for q in group.get_qualitative_evaluations():
            rows.append({**base, "kind": "qualitative", **_concept(q.name), "value": np.nan, "unit": "",
                         "value_code": _code(q.value), "value_meaning": str(q.value.meaning)})
    slim = Dataset({tag: ds[tag] for tag in ds.keys() if ds[tag].keyword != "ContentSequence"})
    return Findings(rows=rows, series_instance_uid=str(ds.SeriesInstanceUID), source_series=_source_series(ds),
                    observer=observer, header=header_json(slim))


def _one(named: list[Named]) -> Named:
    if len(named) != 1:
        raise InvalidInputError(f"an SR series of {len(named)} instances; one report per series is supported")
    if str(named[0].dataset.SOPClassUID) not in SR_SOP_CLASSES:
        raise InvalidInputError(f"{named[0].name}: not a DICOM SR document (SOP class {named[0].dataset.SOPClassUID})")
    return named[0]


def _code(concept: Any) -> str:
    return f"{concept.value}:{concept.scheme_designator}" if concept is not None else ""


def _concept(name: Any) -> dict[str, str]:
    return {"concept": _code(name), "concept_meaning": str(name.meaning)}


def _group_fields(group: Any) -> dict[str, str]:
    finding = group.finding_type
    segment = ""
    reference = getattr(group, "referenced_segment", None)
    if reference is None:
        reference = getattr(group, "referenced_segmentation_frame", None)
    if reference is not None:
        numbers = ",".join(str(int(n)) for n in reference.referenced_segment_numbers)
        segment = f"{reference.referenced_sop_instance_uid}:{numbers}"
    return {
        "finding": str(finding.meaning) if finding is not None else "",
        "finding_code": _code(finding),
        "tracking_id": str(group.tracking_identifier or ""),
        "tracking_uid": str(group.tracking_uid or ""),
        "referenced_segment": segment,
        "finding_site": "; ".join(str(s.value.meaning) for s in group.finding_sites),
    }


def _observer(ds: Dataset, report: hd.sr.MeasurementReport) -> str:
    people, devices = [], []
    for context in report.get_observer_contexts():
        attrs = context.observer_identifying_attributes
        if isinstance(attrs, hd.sr.PersonObserverIdentifyingAttributes):
            people.append(str(attrs.name))
        elif attrs is not None:
            devices.append(str(getattr(attrs, "name", None) or attrs.uid))
    for names in (people, devices):
        names = [n for n in dict.fromkeys(names) if n.strip()]
        if names:
            return "+".join(names)
    for keyword in ("ContentCreatorName", "SeriesDescription"):
        value = str(ds.get(keyword) or "").strip()
        if value:
            return value
    return str(ds.SeriesInstanceUID)


def _source_series(ds: Dataset) -> str:
    series = []
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(keyword, []):
            for ref in study.get("ReferencedSeriesSequence", []):
                classes = {str(i.ReferencedSOPClassUID) for i in ref.get("ReferencedSOPSequence", [])}
                if classes and classes <= _SEG_SOP_CLASSES:
                    continue
                series.append(str(ref.SeriesInstanceUID))
    return "+".join(dict.fromkeys(series))
