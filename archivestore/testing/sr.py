"""Deterministic TID 1500 measurement reports (DICOM SR) by several observers, written with highdicom.

:func:`observer_ratings` draws what ``n`` readers say about the same nodules (LIDC-IDRI style: per
nodule a malignancy rating 1-5 and a subtlety rating 1-5, and a diameter and a volume in mm), with
chance agreement mixed in so kappas are neither 0 nor 1. :func:`measurement_report` writes one
reader's findings as a Comprehensive 3D SR over a series: a measurement group (TID 1501) per nodule,
or a volumetric ROI group (TID 1411) referencing a SEG's segment when a SEG is given. Nodules keep
the same tracking UID across readers (``tracking="shared"``) or get per-reader UIDs and shared
tracking identifiers (``"by_id"``), the two ways reports in IDC link a finding across observers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

__all__ = ["MALIGNANCY", "SUBTLETY", "measurement_report", "observer_ratings"]

MALIGNANCY = hd.sr.CodedConcept("RID36042", "RADLEX", "Malignancy")
SUBTLETY = hd.sr.CodedConcept("LIDC-SUBTLETY", "99ARCHIVESTORE", "Subtlety")
_NODULE = hd.sr.CodedConcept("27925004", "SCT", "Nodule")
_RATING = [hd.sr.CodedConcept(f"R{k}", "99ARCHIVESTORE", f"Rating {k}") for k in range(1, 6)]


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=["archivestore.testing.sr", *map(str, parts)]))


def observer_ratings(nodules: int = 12, readers: int = 3, *, seed: int = 0) -> list[list[dict[str, Any]]]:
    """Per reader, per nodule: ``{"nodule", "malignancy", "subtlety", "diameter", "volume"}`` (ratings 1..5).

    Each reader keeps the nodule's true rating with probability 0.6, else says a random one;
    measurements are the truth times ``1 + N(0, 0.08)``.
    """
    rng = np.random.default_rng(seed)
    truth = [{"malignancy": int(rng.integers(1, 6)), "subtlety": int(rng.integers(1, 6)),
              "diameter": float(rng.uniform(4, 30))} for _ in range(nodules)]
    out = []
    for _ in range(readers):
        said = []
        for k, t in enumerate(truth):
            rating = {name: t[name] if rng.random() < 0.6 else int(rng.integers(1, 6))
                      for name in ("malignancy", "subtlety")}
            diameter = round(t["diameter"] * (1 + rng.normal(0, 0.08)), 2)
            said.append({"nodule": k, **rating, "diameter": diameter,
                         "volume": round(np.pi / 6 * diameter ** 3, 1)})
        out.append(said)
    return out


def measurement_report(source: Sequence[tuple[str, bytes]], findings: Sequence[Mapping[str, Any]], *,
                       observer: str, seed: str = "sr", tracking: str = "shared",
                       segmentation: Sequence[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    """One reader's TID 1500 report over ``source`` (a CT series' files) as a Comprehensive 3D SR.

    Parameters
    ----------
    findings
        As :func:`observer_ratings` gives for one reader.
    observer
        The person observer's name (DICOM PN, e.g. ``Reader^A``).
    tracking
        ``"shared"``: nodule ``k`` has the same tracking UID in every reader's report; ``"by_id"``:
        tracking UIDs differ per reader, identifiers (``nodule k``) are shared.
    segmentation
        A SEG (one file) of ``source``: findings become volumetric ROI groups referencing its
        segment ``k % segments + 1``.
    """
    images = [pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True) for _, data in source]
    seg = pydicom.dcmread(io.BytesIO(segmentation[0][1])) if segmentation else None
    context = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=observer)))
    groups: list[Any] = []
    for f in findings:
        k = int(f["nodule"])
        uid = _uid("nodule", k) if tracking == "shared" else _uid(seed, "nodule", k)
        identifier = hd.sr.TrackingIdentifier(uid=uid, identifier=f"nodule {k}")
        measurements = [
            hd.sr.Measurement(name=codes.SCT.Diameter, value=float(f["diameter"]), unit=codes.UCUM.Millimeter),
            hd.sr.Measurement(name=codes.SCT.Volume, value=float(f["volume"]), unit=codes.UCUM.CubicMillimeter),
        ]
        evaluations = [hd.sr.QualitativeEvaluation(MALIGNANCY, _RATING[int(f["malignancy"]) - 1]),
                       hd.sr.QualitativeEvaluation(SUBTLETY, _RATING[int(f["subtlety"]) - 1])]
        common: dict[str, Any] = {"tracking_identifier": identifier, "finding_type": _NODULE,
                                  "measurements": measurements, "qualitative_evaluations": evaluations}
        if seg is not None:
            number = k % len(seg.SegmentSequence) + 1
            segment = hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                              segment_number=number, source_series=hd.sr.SourceSeriesForSegmentation(
                                                  images[0].SeriesInstanceUID))
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment,
                                                                                  **common))
        else:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
                                     imaging_measurements=groups)
    evidence = images + ([seg] if seg is not None else [])
    sr = hd.sr.Comprehensive3DSR(evidence=evidence, content=report, series_instance_uid=_uid(seed, "series"),
                                 series_number=300, sop_instance_uid=_uid(seed, "instance"), instance_number=1,
                                 manufacturer="archivestore", is_complete=True, is_final=True,
                                 series_description=f"measurements by {observer}")
    for keyword, value in (("ContentDate", "20240101"), ("ContentTime", "120000"),
                           ("InstanceCreationDate", "20240101"), ("InstanceCreationTime", "120000")):
        setattr(sr, keyword, value)  # the same call gives the same bytes
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    return [(f"{seed}.dcm", buffer.getvalue())]
