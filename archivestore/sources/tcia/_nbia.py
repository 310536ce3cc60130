"""NBIA REST API v4 conventions: the parameters each query takes, their spellings, and typed answers.

NBIA v4 sends counts and sizes as JSON numbers and leaves out fields without a value; older
answers (and CSV) carry them as strings. :func:`typed` makes the fields of :data:`NUMERIC_FIELDS`
numbers either way (``"133"`` → ``133``, ``"1.5"`` → ``1.5``, ``""`` → ``None``) and keeps every
other field as sent (UIDs, dates, codes, a ``PatientID`` of ``"0001"``). :func:`csv_field` names a
``getSeriesMetadata`` CSV column as ``getSeries`` does, whether the server sends today's unspaced
headers or the older spaced ones (:data:`LEGACY_CSV_HEADERS`).
``getPatient`` spells ``PatientId``; answers are renamed to ``PatientID`` and queries take
either, as well as Python-style aliases (``patient``, ``body_part``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from archivestore.errors import InvalidInputError

__all__ = ["LEGACY_CSV_HEADERS", "NUMERIC_FIELDS", "QUERY_PARAMETERS", "SERIES_FILTERS", "csv_field", "query_params",
           "typed"]

NUMERIC_FIELDS = frozenset({
    "ImageCount", "FileSize", "SeriesNumber", "SeriesCount", "TotalSizeInBytes", "ObjectCount",
    "LongitudinalTemporalOffsetFromEvent",
})
"""Fields that are numbers (the API sends them as strings); every other field is kept as sent."""

SERIES_FILTERS = ("Collection", "PatientID", "StudyInstanceUID", "Modality", "BodyPartExamined",
                  "ManufacturerModelName", "Manufacturer", "SeriesInstanceUID")
"""The filters of ``getSeries``."""

QUERY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "getCollectionValues": (),
    "getModalityValues": ("Collection", "BodyPartExamined"),
    "getBodyPartValues": ("Collection", "Modality"),
    "getManufacturerValues": ("Collection", "Modality", "BodyPartExamined"),
    "getPatient": ("Collection",),
    "getPatientStudy": ("Collection", "PatientID", "StudyInstanceUID"),
    "getSeries": SERIES_FILTERS,
    "getSeriesSize": ("SeriesInstanceUID",),
    "getSOPInstanceUIDs": ("SeriesInstanceUID",),
}
"""The query parameters each endpoint takes."""

_ALIASES = {
    "collection": "Collection", "patient": "PatientID", "PatientId": "PatientID", "study": "StudyInstanceUID",
    "modality": "Modality", "body_part": "BodyPartExamined", "manufacturer": "Manufacturer",
    "manufacturer_model": "ManufacturerModelName", "series": "SeriesInstanceUID",
}
"""Other spellings of query parameters: Python-style names, and getPatient's ``PatientId``."""

_FIELD_NAMES = {"PatientId": "PatientID"}
"""Field names of answers renamed to the spelling every other endpoint uses."""

LEGACY_CSV_HEADERS = {
    "Series ID": "SeriesInstanceUID", "Subject ID": "PatientID", "Study UID": "StudyInstanceUID",
    "Number of images": "ImageCount", "File Size (Bytes)": "FileSize", "Collection URI": "CollectionURI",
}
"""``getSeriesMetadata`` headers of older NBIA deployments that are not today's name without its spaces."""


def csv_field(header: str) -> str:
    """A ``getSeriesMetadata`` CSV header as the ``getSeries`` field name (``Series ID`` → ``SeriesInstanceUID``)."""
    name = LEGACY_CSV_HEADERS.get(" ".join(str(header).split()), None)
    return name if name is not None else "".join(str(header).split())


def _number(value: Any) -> Any:
    """A string holding a number as that number (``int`` when integral); ``""`` as ``None``; else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return int(number) if number.is_integer() else number


def typed(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with normalised field names and its numeric fields as numbers."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = _FIELD_NAMES.get(key, key)
        out[name] = _number(value) if name in NUMERIC_FIELDS else value
    return out


def query_params(endpoint: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` in NBIA's spelling, ``None`` values left out.

    Raises
    ------
    InvalidInputError
        A parameter that a known ``endpoint`` does not take (unknown endpoints take anything),
        or one given twice (``patient=`` and ``PatientId=``) with different values.
    """
    allowed = QUERY_PARAMETERS.get(endpoint)
    query: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        name = _ALIASES.get(key, key)
        if allowed is not None and name not in allowed:
            takes = ", ".join(allowed) or "no parameters"
            raise InvalidInputError(f"{endpoint} takes no filter {key!r} (it takes {takes})")
        if query.get(name, value) != value:
            raise InvalidInputError(f"{name} given twice, as {query[name]!r} and {value!r}")
        query[name] = value
    return query
