"""A local stand-in for TCIA's NBIA REST API v4 (127.0.0.1, port 0, offline).

>>> with NbiaServer() as server:                                           # doctest: +SKIP
...     server.add_series(files, collection="TEST-COLLECTION")
...     tcia = Tcia(server.url)

:class:`NbiaServer` serves the series given to it as ``(name, DICOM bytes)`` lists, with the
answer shapes of the real API (its REST code, and the recorded ``getSeries`` answer in
``fixtures/real/tcia/``): JSON lists of objects whose counts and sizes are JSON numbers
(``"ImageCount": 3``), fields without a value left out (never ``null``), v4's field names
(``MaxSubmissionTimestamp``, ``DataDescriptionURI``), an empty body for no results, a 400 for a
query parameter the route does not take, ``getPatient``'s ``PatientId`` spelling,
``getSeriesMetadata`` as a POSTed form answered with CSV (today's unspaced headers, or with
``legacy_csv`` the older spaced ones: ``Series ID``, ``Number of images``, ...), and ``getImage``
as a zip holding a ``LICENSE`` beside the ``.dcm`` files. Records are read from the DICOM headers
(pydicom) and may be overridden.

Faults: the HTTP faults of :class:`~archivestore.testing.faults.Faults` (429 with
``Retry-After``, 500, connection reset, a body cut short) on every route, and
``zip_faults`` on ``getImage`` drawn per series (kinds ``"truncated_zip"``: a complete
answer holding half a zip; ``"corrupt_zip"``: one flipped byte inside a DICOM entry, which
fails its CRC; ``"short_zip"``: a well-formed zip missing the series' last file, what the real
server sends when reading a file fails after the 200 went out — it logs the error and closes
the zip normally). Hostile zips are served on demand through :attr:`NbiaServer.zips`, built
by :func:`traversal_zip`, :func:`absolute_zip`, :func:`symlink_zip` and :func:`zip_bomb`.
Needs pydicom.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, FakeServer, Request

__all__ = [
    "LICENSE_TEXT",
    "NbiaServer",
    "absolute_zip",
    "series_record",
    "symlink_zip",
    "traversal_zip",
    "zip_bomb",
    "zip_of",
]

LICENSE_TEXT = b"Creative Commons Attribution 4.0 International License (CC BY 4.0)\n"

Files = Sequence[tuple[str, bytes]]

_CSV_FIELDS = (
    "Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "StudyDate", "StudyDesc", "SeriesDate",
    "SeriesDescription", "Modality", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "SeriesNumber",
    "ImageCount", "FileSize", "DateReleased", "BodyPartExamined", "LicenseName", "LicenseURI", "DataDescriptionURI",
)
"""``getSeriesMetadata``'s CSV columns today: the ``getSeries`` field names, unspaced."""

_LEGACY_CSV_HEADERS = {
    "PatientID": "Subject ID", "StudyInstanceUID": "Study UID", "SeriesInstanceUID": "Series ID",
    "StudyDate": "Study Date", "StudyDesc": "Study Description", "SeriesDescription": "Series Description",
    "ManufacturerModelName": "Manufacturer Model Name", "SoftwareVersions": "Software Versions",
    "ImageCount": "Number of images", "FileSize": "File Size (Bytes)", "DataDescriptionURI": "Collection URI",
    "DateReleased": "Date Released", "LicenseName": "License Name", "LicenseURI": "License URL",
}
"""The spaced headers older NBIA deployments answer (the ones tcia_utils still maps)."""

_NUMBERS = ("ImageCount", "FileSize", "SeriesNumber")
"""``getSeries`` fields NBIA v4 sends as JSON numbers."""

_SERIES_PARAMETERS = ("Collection", "PatientID", "StudyInstanceUID", "Modality", "BodyPartExamined",
                      "ManufacturerModelName", "Manufacturer", "SeriesInstanceUID")

_TAKES: dict[str, tuple[str, ...]] = {
    "getCollectionValues": (), "getModalityValues": ("Collection", "BodyPartExamined"),
    "getBodyPartValues": ("Collection", "Modality"),
    "getManufacturerValues": ("Collection", "Modality", "BodyPartExamined"), "getPatient": ("Collection",),
    "getPatientStudy": ("Collection", "PatientID", "StudyInstanceUID"), "getSeries": _SERIES_PARAMETERS,
    "getSeriesSize": ("SeriesInstanceUID",), "getSOPInstanceUIDs": ("SeriesInstanceUID",),
    "getImage": ("SeriesInstanceUID", "NewFileNames"),
}
"""The query parameters each GET route takes; any other is a 400, as NBIA answers."""


def _date(value: Any, time: bool = False) -> str | None:
    text = str(value or "")
    if len(text) != 8 or not text.isdigit():
        return None
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" + (" 00:00:00.0" if time else "")


def series_record(files: Files, *, collection: str, **overrides: Any) -> dict[str, Any]:
    """The ``getSeries`` record of a series as NBIA v4 sends it, read from its first file.

    Counts and sizes (``ImageCount``, ``FileSize``, ``SeriesNumber``) are numbers, every other value
    a string. ``overrides`` replace or add fields (``None`` removes one); fields without a value are
    left out, as NBIA leaves them out.
    """
    import pydicom

    header = pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True)

    def get(keyword: str) -> str | None:
        value = header.get(keyword)
        return None if value is None or str(value) == "" else str(value)

    record: dict[str, Any] = {
        "SeriesInstanceUID": get("SeriesInstanceUID"), "StudyInstanceUID": get("StudyInstanceUID"),
        "Modality": get("Modality"), "ProtocolName": get("ProtocolName"),
        "SeriesDate": _date(header.get("SeriesDate"), time=True), "SeriesDescription": get("SeriesDescription"),
        "BodyPartExamined": get("BodyPartExamined"), "SeriesNumber": get("SeriesNumber"), "Collection": collection,
        "PatientID": get("PatientID"), "Manufacturer": get("Manufacturer"),
        "ManufacturerModelName": get("ManufacturerModelName"), "SoftwareVersions": get("SoftwareVersions"),
        "ImageCount": len(files), "MaxSubmissionTimestamp": "2024-01-01 00:00:00.0", "LicenseName": "CC BY 4.0",
        "LicenseURI": "https://creativecommons.org/licenses/by/4.0/",
        "DataDescriptionURI": f"https://doi.org/10.7937/test.{collection.lower()}",
        "FileSize": sum(len(data) for _, data in files), "DateReleased": "2024-01-01 00:00:00.0",
        "StudyDesc": get("StudyDescription"), "StudyDate": _date(header.get("StudyDate"), time=True),
        "ThirdPartyAnalysis": "NO",
        # not getSeries fields: what getPatient / getPatientStudy / getSOPInstanceUIDs answer
        "_PatientName": get("PatientName"), "_PatientSex": get("PatientSex"), "_PatientAge": get("PatientAge"),
        "_StudyDescription": get("StudyDescription"),
    }
    record.update(overrides)
    out = {k: v for k, v in record.items() if v is not None and str(v) != ""}
    for key in _NUMBERS:
        if isinstance(out.get(key), str):
            try:
                out[key] = int(out[key])
            except ValueError:
                pass  # an override that is not a number is sent as given
    return {k: v if k in _NUMBERS else str(v) for k, v in out.items()}


def zip_of(files: Iterable[tuple[str, bytes]], *, license: bool = True,
           compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip like ``getImage`` sends: a ``LICENSE`` (when ``license``) and the files under their names."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        if license:
            archive.writestr("LICENSE", LICENSE_TEXT)
        for name, data in files:
            archive.writestr(name, data)
    return buf.getvalue()


def traversal_zip(files: Files) -> bytes:
    """A zip whose first DICOM entry climbs out of the folder (``../<name>``)."""
    return zip_of([(f"../{files[0][0]}", files[0][1]), *files[1:]])


def absolute_zip(files: Files) -> bytes:
    """A zip whose first DICOM entry has an absolute path (``/tmp/<name>``)."""
    return zip_of([(f"/tmp/{files[0][0]}", files[0][1]), *files[1:]])


def symlink_zip(files: Files, target: str = "/etc/passwd") -> bytes:
    """A zip with the series' files and one symbolic link entry (Unix mode ``0o120777``) to ``target``."""
    buf = io.BytesIO(zip_of(files))
    with zipfile.ZipFile(buf, "a") as archive:
        link = zipfile.ZipInfo("link.dcm")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, target)
    return buf.getvalue()


@functools.lru_cache(maxsize=2)
def zip_bomb(size: int = 200 << 20) -> bytes:
    """A zip with one ``size``-byte run of zeros (default 200 MiB, about 200 kB deflated), written streamed."""
    buf = io.BytesIO()
    block = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("LICENSE", LICENSE_TEXT)
        with archive.open("bomb.dcm", "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as entry:
            for start in range(0, size, len(block)):
                entry.write(block[: min(len(block), size - start)])
    return buf.getvalue()


def _corrupted(body: bytes) -> bytes:
    """``body`` with one byte flipped in the middle of the data of its first non-empty entry after the LICENSE."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        info = next(i for i in archive.infolist() if i.filename != "LICENSE" and i.compress_size)
    name_len, extra_len = struct.unpack("<HH", body[info.header_offset + 26: info.header_offset + 30])
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]


def _listing(records: Iterable[Mapping[str, Any]]) -> Answer:
    """A JSON list, or an empty body for no results (as NBIA answers)."""
    rows = list(records)
    return Answer(200, json.dumps(rows).encode() if rows else b"")


class NbiaServer(FakeServer):
    """The NBIA REST API v4 routes on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    faults
        HTTP faults on every route.
    zip_faults
        Faults of ``getImage`` answers drawn per series (kinds ``"truncated_zip"``, ``"corrupt_zip"``,
        ``"short_zip"``).
    legacy_csv
        Answer ``getSeriesMetadata`` with the older spaced CSV headers.

    Attributes
    ----------
    series
        ``{SeriesInstanceUID: getSeries record}`` (as sent; fields starting with ``_`` feed the
        patient and study routes and are not sent by ``getSeries``).
    files
        ``{SeriesInstanceUID: [(name, bytes), ...]}``.
    zips
        ``{SeriesInstanceUID: bytes}``: a body ``getImage`` sends instead of the series' own zip.
    collections
        ``getCollectionValues``' answer as sent (e.g. a recorded one); ``None``: the served series'.
    """

    prefix = "/nbia-api/services/v4/"

    def __init__(self, faults: Faults | None = None, *, zip_faults: Faults | None = None,
                 legacy_csv: bool = False) -> None:
        super().__init__(faults)
        self.zip_faults = zip_faults
        self.legacy_csv = legacy_csv
        self.series: dict[str, dict[str, Any]] = {}
        self.files: dict[str, list[tuple[str, bytes]]] = {}
        self.zips: dict[str, bytes] = {}
        self.collections: list[dict[str, Any]] | None = None
        self._routes: dict[tuple[str, str], Callable[[Mapping[str, str]], Answer]] = {
            ("GET", "getCollectionValues"): lambda q: (_listing(self.collections) if self.collections is not None
                                                       else self._values(q, "Collection", ())),
            ("GET", "getModalityValues"): lambda q: self._values(q, "Modality", ("Collection", "BodyPartExamined")),
            ("GET", "getBodyPartValues"): lambda q: self._values(q, "BodyPartExamined", ("Collection", "Modality")),
            ("GET", "getManufacturerValues"): lambda q: self._values(
                q, "Manufacturer", ("Collection", "Modality", "BodyPartExamined")),
            ("GET", "getPatient"): self._patients,
            ("GET", "getPatientStudy"): self._studies,
            ("GET", "getSeries"): lambda q: _listing(self._public(r) for r in self._match(q, _SERIES_PARAMETERS)),
            ("GET", "getSeriesSize"): self._size,
            ("GET", "getSOPInstanceUIDs"): self._sop_instance_uids,
            ("POST", "getSeriesMetadata"): self._metadata,
            ("GET", "getImage"): self._image,
        }

    def add_series(self, files: Files, *, collection: str, **record: Any) -> str:
        """Serve a series (its ``getSeries`` record from :func:`series_record`); return its SeriesInstanceUID."""
        row = series_record(files, collection=collection, **record)
        uid = row["SeriesInstanceUID"]
        self.series[uid] = row
        self.files[uid] = list(files)
        return uid

    # -- routes -----------------------------------------------------------------------
    def route(self, request: Request) -> Answer:
        """The answer of one NBIA route; 404 for anything else."""
        name = request.path[len(self.prefix):] if request.path.startswith(self.prefix) else ""
        handler = self._routes.get((request.method, name))
        if handler is None:
            return Answer(404, b"Not Found", "text/plain")
        if request.method == "GET":
            unknown = sorted(set(request.query) - set(_TAKES.get(name, ())) - {"format"})
            if unknown:
                return Answer(400, f"unknown parameter(s): {', '.join(unknown)}".encode(), "text/plain")
        return handler(request.form if request.method == "POST" else request.query)

    def _match(self, query: Mapping[str, str], allowed: Sequence[str]) -> list[dict[str, Any]]:
        filters = {k: v for k, v in query.items() if k in allowed and v != ""}
        return [r for r in self.series.values() if all(str(r.get(k)) == v for k, v in filters.items())]

    @staticmethod
    def _public(record: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    def _values(self, query: Mapping[str, str], field: str, allowed: Sequence[str]) -> Answer:
        values = sorted({r[field] for r in self._match(query, allowed) if field in r})
        return _listing({field: v} for v in values)

    def _patients(self, query: Mapping[str, str]) -> Answer:
        patients: dict[tuple[str, str], dict[str, str]] = {}
        for r in self._match(query, ("Collection",)):
            patient = {"PatientId": r.get("PatientID"), "PatientName": r.get("_PatientName"),
                       "PatientSex": r.get("_PatientSex"), "Collection": r["Collection"], "Phantom": "NO",
                       "SpeciesCode": "337915000", "SpeciesDescription": "Homo sapiens"}
            patients[(r["Collection"], r.get("PatientID", ""))] = {k: v for k, v in patient.items() if v}
        return _listing(patients.values())

    def _studies(self, query: Mapping[str, str]) -> Answer:
        studies: dict[str, dict[str, str]] = {}
        counts: dict[str, int] = {}
        for r in self._match(query, ("Collection", "PatientID", "StudyInstanceUID")):
            uid = r["StudyInstanceUID"]
            counts[uid] = counts.get(uid, 0) + 1
            study = {"StudyInstanceUID": uid, "StudyDate": r.get("StudyDate"),
                     "StudyDescription": r.get("_StudyDescription"), "PatientAge": r.get("_PatientAge"),
                     "PatientID": r.get("PatientID"),
                     "PatientName": r.get("_PatientName"), "PatientSex": r.get("_PatientSex"),
                     "Collection": r["Collection"], "SeriesCount": counts[uid]}
            studies[uid] = {k: v for k, v in study.items() if v}
        return _listing(studies.values())

    def _size(self, query: Mapping[str, str]) -> Answer:
        files = self.files.get(query.get("SeriesInstanceUID", ""))
        if files is None:
            return _listing([])
        total = sum(len(data) for _, data in files)
        return _listing([{"TotalSizeInBytes": float(total), "ObjectCount": len(files)}])

    def _sop_instance_uids(self, query: Mapping[str, str]) -> Answer:
        import pydicom

        files = self.files.get(query.get("SeriesInstanceUID", ""), [])
        uids = [str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID) for _, data in files]
        return _listing({"SOPInstanceUID": uid} for uid in uids)

    def _metadata(self, form: Mapping[str, str]) -> Answer:
        if "list" not in form:
            return Answer(400, b"missing form field: list", "text/plain")
        rows = [self.series[uid] for uid in form["list"].split(",") if uid in self.series]
        if not rows:
            return Answer(200, b"", "text/csv")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([_LEGACY_CSV_HEADERS.get(f, f) if self.legacy_csv else f for f in _CSV_FIELDS])
        for row in rows:
            writer.writerow([row.get(field, "") for field in _CSV_FIELDS])
        return Answer(200, out.getvalue().encode(), "text/csv")

    def _image(self, query: Mapping[str, str]) -> Answer:
        uid = query.get("SeriesInstanceUID", "")
        fault = self.zip_faults.draw(f"getImage/{uid}") if self.zip_faults and uid in self.files else None
        if uid in self.zips:
            body = self.zips[uid]
        elif fault == "short_zip":  # reading a file failed after the 200: the zip is closed without the rest
            body = zip_of(self.files[uid][:-1])
        else:  # an unknown series: an empty zip
            body = zip_of(self.files.get(uid, []), license=uid in self.files)
        if fault == "truncated_zip":
            body = body[: len(body) // 2]
        elif fault == "corrupt_zip":
            body = _corrupted(body)
        return Answer(200, body, "application/zip",
                      {"Content-Disposition": f'attachment; filename="{uid}.zip"'})
