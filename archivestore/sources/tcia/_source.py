"""The Cancer Imaging Archive (TCIA) through the NBIA REST API v4, as a source of DICOM series.

v4 needs no login for public collections. Two hosts serve it: :data:`DEFAULT_NBIA_URL`
(every public collection) and :data:`NLST_URL` (the National Lung Screening Trial); any
other base URL works the same (a mirror, or a local stand-in such as
:class:`archivestore.testing.nbia.NbiaServer`).

>>> tcia = Tcia()                                                          # doctest: +SKIP
>>> tcia.series("LIDC-IDRI", modality="CT").head()                         # doctest: +SKIP
>>> archivestore.ingest(store, TciaSource(tcia, "LIDC-IDRI", modality="SEG"))  # doctest: +SKIP

**Queries** come back as pandas DataFrames, one row per record, with the archive's field
names. Numbers the API sends as strings (``ImageCount``, ``FileSize``, ... see
:data:`NUMERIC_FIELDS`) are numbers; UIDs, dates and codes stay strings; ``PatientId``
(``getPatient``'s spelling) is ``PatientID`` as everywhere else, and filters take either
spelling. A query without results is an empty DataFrame (the API answers an empty body).

**Downloads**: ``getImage`` sends a series as a zip of ``.dcm`` files (and a LICENSE). It is
streamed to a temporary file with a byte progress bar, checked whole before any entry is
read (:mod:`archivestore.sources._safezip`: no ``..``, absolute or link entries; total size
and compression ratio capped), read with CRC checks, and removed. 429/5xx answers and
broken connections are retried by the shared client (honouring ``Retry-After``); a
truncated or corrupt zip is fetched again with the same bound and backoff.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from archivestore.errors import APIError, BadItem, InvalidInputError, NotFoundError, UnreachableError
from archivestore.sources._base import SeriesItem, validate_id
from archivestore.sources._http import Client, bounded_map
from archivestore.sources._safezip import UnsafeZipError, ZipLimits
from archivestore.sources.tcia._nbia import NUMERIC_FIELDS, csv_field, query_params, typed
from archivestore.sources.tcia._zipfetch import fetch_dicom_zip

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_NBIA_URL", "NLST_URL", "NUMERIC_FIELDS", "Tcia", "TciaSource", "item_from_origin"]

DEFAULT_NBIA_URL = "https://nbia.cancerimagingarchive.net/nbia-api/services/v4/"
"""NBIA REST API v4 of TCIA's public collections."""

NLST_URL = "https://nlst.cancerimagingarchive.net/nbia-api/services/v4/"
"""NBIA REST API v4 of the National Lung Screening Trial."""

def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(records)


class Tcia:
    """Client of an NBIA REST API v4 (anonymous).

    Parameters
    ----------
    base_url
        API root: :data:`DEFAULT_NBIA_URL` (default), :data:`NLST_URL`, or any other
        server with the same routes.
    retries, backoff_factor, timeout, workers, debug
        See :class:`archivestore.sources._http.Client`. ``retries`` also bounds how often
        a truncated or corrupt zip is fetched again.
    progress
        Show a byte progress bar (tqdm, on stderr) while a series downloads.
    limits
        Caps on what a series zip may expand to (:class:`~archivestore.sources._safezip.ZipLimits`).
    tmp_dir
        Where zips are spooled while they download (default: the system's temporary directory).

    Notes
    -----
    A ``Tcia`` pickles as its options (it travels to dask workers inside a source).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_NBIA_URL,
        *,
        retries: int = 5,
        backoff_factor: float = 0.5,
        timeout: tuple[float, float] = (10.0, 120.0),
        workers: int = 8,
        debug: bool = False,
        progress: bool = True,
        limits: ZipLimits | None = None,
        tmp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._options: dict[str, Any] = dict(
            retries=retries, backoff_factor=backoff_factor, timeout=timeout, workers=workers, debug=debug,
            progress=progress, limits=limits, tmp_dir=tmp_dir,
        )
        self.workers = max(1, int(workers))
        self.client = Client.for_api(base_url, cache_dir=None, cache_expire=0.0, retries=retries,
                                     backoff_factor=backoff_factor, timeout=timeout, workers=self.workers, debug=debug)
        self.progress = progress
        self.limits = limits or ZipLimits()
        self.tmp_dir = tmp_dir

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _new_tcia, (type(self), self.base_url, self._options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def base_url(self) -> str:
        """The API root (ends with ``/``)."""
        return self.client.base_url

    # -- queries --------------------------------------------------------------------
    def records(self, endpoint: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The typed records of a JSON query (see the module docstring), as dictionaries.

        Parameters
        ----------
        endpoint
            An NBIA v4 query, e.g. ``"getSeries"`` or one this class does not wrap.
        params
            Query parameters in NBIA's spelling or an alias (``PatientId``, ``patient``,
            ``body_part``, ...); ``None`` values are left out.

        Raises
        ------
        InvalidInputError
            A parameter the endpoint does not take.
        APIError
            An error answer, retries exhausted, or an answer that is not a JSON list.
        """
        query = query_params(endpoint, params or {})
        response = self.client.get(endpoint, query)
        if not response.content.strip():
            return []  # NBIA answers "no results" with an empty body
        try:
            data = response.json()
        except ValueError:
            raise APIError(self.client.url(endpoint), "answer is not JSON", status=response.status_code) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise APIError(self.client.url(endpoint), "expected a JSON list of records", status=response.status_code)
        return [typed(r) for r in data]

    def query(self, endpoint: str, **params: Any) -> pd.DataFrame:
        """Any JSON query as a DataFrame (see :meth:`records`)."""
        return _frame(self.records(endpoint, params))

    def collections(self) -> pd.DataFrame:
        """Collection names (``getCollectionValues``; column ``Collection``)."""
        return self.query("getCollectionValues")

    def modalities(self, collection: str | None = None, *, body_part: str | None = None) -> pd.DataFrame:
        """Modalities (``getModalityValues``; column ``Modality``)."""
        return self.query("getModalityValues", Collection=collection, BodyPartExamined=body_part)

    def body_parts(self, collection: str | None = None, *, modality: str | None = None) -> pd.DataFrame:
        """Body parts examined (``getBodyPartValues``; column ``BodyPartExamined``)."""
        return self.query("getBodyPartValues", Collection=collection, Modality=modality)

    def manufacturers(self, collection: str | None = None, *, modality: str | None = None,
                      body_part: str | None = None) -> pd.DataFrame:
        """Manufacturers (``getManufacturerValues``; column ``Manufacturer``)."""
        return self.query("getManufacturerValues", Collection=collection, Modality=modality, BodyPartExamined=body_part)

    def patients(self, collection: str | None = None) -> pd.DataFrame:
        """Patients (``getPatient``: ``PatientID``, ``PatientName``, ``PatientSex``, ``Collection``, ...)."""
        return self.query("getPatient", Collection=collection)

    def studies(self, collection: str | None = None, *, patient: str | None = None, study: str | None = None,
                **nbia: str) -> pd.DataFrame:
        """Studies (``getPatientStudy``: ``StudyInstanceUID``, ``StudyDate``, ``SeriesCount``, ...).

        ``nbia`` takes the filters in NBIA's spelling (``PatientID`` or ``PatientId``, ...).
        """
        filters = {"collection": collection, "patient": patient, "study": study, **nbia}
        return _frame(self.records("getPatientStudy", filters))

    def series(self, collection: str | None = None, *, patient: str | None = None, study: str | None = None,
               modality: str | None = None, body_part: str | None = None, manufacturer: str | None = None,
               manufacturer_model: str | None = None, series: str | None = None, **nbia: str) -> pd.DataFrame:
        """Series (``getSeries``), filtered by any of its parameters.

        The keywords map to ``Collection``, ``PatientID``, ``StudyInstanceUID``, ``Modality``,
        ``BodyPartExamined``, ``Manufacturer``, ``ManufacturerModelName`` and
        ``SeriesInstanceUID``; ``nbia`` takes those names directly (and ``PatientId``).
        Columns: ``SeriesInstanceUID``, ``StudyInstanceUID``, ``PatientID``, ``Collection``,
        ``Modality``, ``ImageCount``, ``FileSize``, ...
        """
        return _frame(self.series_records(
            collection=collection, patient=patient, study=study, modality=modality, body_part=body_part,
            manufacturer=manufacturer, manufacturer_model=manufacturer_model, series=series, **nbia))

    def series_records(self, **filters: str | None) -> list[dict[str, Any]]:
        """The typed ``getSeries`` records matching ``filters`` (any spelling :meth:`series` takes)."""
        return self.records("getSeries", filters)

    def series_size(self, series: str) -> pd.DataFrame:
        """``getSeriesSize`` of one series: ``TotalSizeInBytes`` and ``ObjectCount``."""
        return self.query("getSeriesSize", SeriesInstanceUID=series)

    def sop_instance_uids(self, series: str) -> pd.DataFrame:
        """The instances of one series (``getSOPInstanceUIDs``; column ``SOPInstanceUID``)."""
        return self.query("getSOPInstanceUIDs", SeriesInstanceUID=series)

    def series_metadata(self, series: str | Iterable[str], *, chunk: int = 10_000) -> pd.DataFrame:
        """``getSeriesMetadata`` of many series: one POST per ``chunk`` UIDs, answered as CSV.

        Columns are named as :meth:`series` names them: today's headers are those names; the
        spaced headers of older deployments are mapped (``Series ID`` → ``SeriesInstanceUID``,
        ``Subject ID`` → ``PatientID``, ``Study UID`` → ``StudyInstanceUID``, ``Number of images``
        → ``ImageCount``, ``File Size (Bytes)`` → ``FileSize``, ``Collection URI`` →
        ``CollectionURI``; any other loses its spaces). Every value is read as text, then
        :data:`NUMERIC_FIELDS` become numbers (a ``PatientID`` of ``0001`` stays ``"0001"``).
        """
        import pandas as pd

        uids = [series] if isinstance(series, str) else list(dict.fromkeys(series))
        records: list[dict[str, Any]] = []
        for start in range(0, len(uids), max(1, int(chunk))):
            text = self.client.post("getSeriesMetadata", {"list": ",".join(uids[start:start + chunk])}).text
            if not text.strip():
                continue
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            table.columns = [csv_field(c) for c in table.columns]
            records.extend(typed({str(k): v for k, v in r.items()}) for r in table.to_dict("records"))
        return _frame(records)

    def collection_name(self, name: str) -> str:
        """The archive's spelling of collection ``name`` (matched case-insensitively).

        Raises
        ------
        NotFoundError
            No such collection; the message names the closest ones.
        """
        names = [n for r in self.records("getCollectionValues") if isinstance(n := r.get("Collection"), str)]
        for candidate in names:
            if candidate == name or candidate.casefold() == name.casefold():
                return candidate
        close = difflib.get_close_matches(name.casefold(), [n.casefold() for n in names], n=3, cutoff=0.5)
        spelled = [n for c in close for n in names if n.casefold() == c]
        hint = f"; closest: {', '.join(spelled)}" if spelled else ""
        raise NotFoundError(f"no collection {name!r} at {self.base_url}{hint}")

    # -- downloads ------------------------------------------------------------------
    def image_url(self, series: str) -> str:
        """The ``getImage`` URL of a series (the zip of its files)."""
        return self.client.url("getImage") + "?" + urlencode({"SeriesInstanceUID": series})

    def download(self, series: str, *, progress: bool | None = None,
                 expected: int | None = None) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of every DICOM file of a series, from its checked zip.

        Parameters
        ----------
        series
            The SeriesInstanceUID.
        progress
            Show a byte progress bar (default: the client's ``progress``).
        expected
            How many DICOM files the series has (its record's ``ImageCount``). NBIA streams the
            zip after its 200 and, when reading a file fails mid-way, closes the zip normally: a
            well-formed zip with fewer files. One with fewer than ``expected`` is fetched again
            (the usual backoff and bound), then an :class:`APIError` saying ``N of M files``.

        Raises
        ------
        UnsafeZipError
            The zip is refused (unsafe entries, a cap exceeded); nothing was read from it.
        APIError
            An error answer, retries exhausted (also for a zip that stays truncated, corrupt or
            short), or a zip without any DICOM file.
        """
        return fetch_dicom_zip(self.client, self.image_url(series), item=series, limits=self.limits,
                               progress=self.progress if progress is None else progress, tmp_dir=self.tmp_dir,
                               expected=expected)


def _new_tcia(cls: type[Tcia], base_url: str, options: dict[str, Any]) -> Tcia:
    return cls(base_url, **options)


@dataclass(frozen=True)
class _SeriesFiles:
    """The picklable loader of one series' files (all ``expected`` of them); names the series in any failure."""

    tcia: Tcia
    series: str
    expected: int | None = None

    def __call__(self) -> list[tuple[str, bytes]]:
        try:
            return self.tcia.download(self.series, expected=self.expected)
        except UnreachableError:
            raise  # not this series' failure: the archive is out of reach (the ingest stops)
        except APIError as exc:
            raise BadItem(self.series, self.tcia.image_url(self.series), exc.reason) from None
        except UnsafeZipError as exc:
            raise BadItem(self.series, self.tcia.image_url(self.series), str(exc)) from None


def _image_count(metadata: dict[str, Any]) -> int | None:
    count = typed({"ImageCount": metadata.get("ImageCount")}).get("ImageCount")
    return count if isinstance(count, int) and count > 0 else None


def _series_item(tcia: Tcia, uid: str, metadata: dict[str, Any]) -> SeriesItem:
    files = _SeriesFiles(tcia, uid, _image_count(metadata))
    return SeriesItem(id=uid, metadata=metadata, files=files, where=tcia.image_url(uid),
                      origin={"source": "tcia", "base_url": tcia.base_url, "series": uid})


class TciaSource:
    """The series of a TCIA query as a source of :class:`~archivestore.sources.SeriesItem`.

    Parameters
    ----------
    tcia
        A :class:`Tcia` client.
    collection, modality, patient, study
        ``getSeries`` filters (``Collection``, ``Modality``, ``PatientID``, ``StudyInstanceUID``).
    series
        One SeriesInstanceUID or a list of them: only these series (each looked up with
        ``getSeries``, with the other filters too; one not found is a problem).

    Notes
    -----
    Item id = SeriesInstanceUID; metadata = the ``getSeries`` record with numbers typed;
    ``files`` downloads the zip only when called (listing never downloads) and checks it holds
    the record's ``ImageCount`` DICOM files (a short zip is fetched again, then a failure of
    that series saying ``N of M files``; nothing of it is stored); ``where`` =
    the ``getImage`` URL; ``origin`` = ``{"source": "tcia", "base_url", "series"}``.
    ``problems`` collects the series that could not become items. A collection is matched
    case-insensitively; one that does not exist raises :class:`~archivestore.errors.NotFoundError`
    naming the closest collections. The source pickles (for dask workers).
    """

    def __init__(self, tcia: Tcia, collection: str | None = None, modality: str | None = None,
                 patient: str | None = None, study: str | None = None,
                 series: str | Sequence[str] | None = None) -> None:
        uids = [series] if isinstance(series, str) else list(dict.fromkeys(series or ()))
        if not (collection or patient or study or uids):
            raise InvalidInputError("give a collection, patient, study or series"
                                    " (getSeries without them lists the whole archive)")
        self.tcia = tcia
        self.filters = {"collection": collection, "modality": modality, "patient": patient, "study": study}
        self.series = uids
        self.problems: list[BadItem] = []

    def __iter__(self) -> Iterator[SeriesItem]:
        seen: set[str] = set()
        for record in self._records():
            uid = record.get("SeriesInstanceUID")
            try:
                if not isinstance(uid, str):
                    raise BadItem(repr(uid), self.tcia.client.url("getSeries"), "a record without a SeriesInstanceUID")
                validate_id(uid, self.tcia.image_url(uid))
            except BadItem as exc:
                self.problems.append(exc)
                continue
            if uid in seen:
                continue
            seen.add(uid)
            yield _series_item(self.tcia, uid, record)

    def _records(self) -> Iterator[dict[str, Any]]:
        collection = self.filters["collection"]
        if not self.series:
            records = self.tcia.series_records(**self.filters)
            if not records and collection:
                spelled = self.tcia.collection_name(collection)  # NotFoundError for a wrong collection
                if spelled != collection:
                    records = self.tcia.series_records(**{**self.filters, "collection": spelled})
            yield from records
            return
        filters = dict(self.filters)
        if collection:  # its spelling first: one error for a wrong one, not one per series
            filters["collection"] = self.tcia.collection_name(collection)
        found = bounded_map(lambda uid: self.tcia.series_records(**filters, series=uid), self.series, self.tcia.workers)
        for uid, records in zip(self.series, found, strict=True):
            if not records:
                narrowed = " with the given filters" if any(filters.values()) else ""
                reason = f"no such series{narrowed} at {self.tcia.base_url}"
                self.problems.append(BadItem(uid, self.tcia.image_url(uid), reason))
            yield from records

def item_from_origin(item_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> SeriesItem:
    """The item of one series fetched again from the NBIA server an ingest recorded (for ``verify --repair``)."""
    return _series_item(Tcia(origin["base_url"]), origin.get("series", item_id), metadata)
