"""NCI Imaging Data Commons (IDC) as a source: its series index queried with DuckDB, files read from its buckets.

>>> index = IdcIndex()            # the parquet index the ``idc-index-data`` package ships; offline  # doctest: +SKIP
>>> index.sql("SELECT collection_id, count(*) AS n FROM index GROUP BY 1 ORDER BY n DESC")          # doctest: +SKIP
>>> source = IdcSource(index, collection="NSCLC-Radiomics", modality=["CT", "SEG"])               # doctest: +SKIP
>>> archivestore.ingest(store, source)                                                            # doctest: +SKIP

Invariants:

- The index is one parquet file with the columns of ``idc-index-data``'s ``idc_index.parquet`` (at least
  :data:`REQUIRED_COLUMNS`); queries see it as the view ``index`` and run in DuckDB, never by loading the
  file into pandas.
- A series' files are the ``*.dcm`` objects under ``s3://<aws_bucket>/<crdc_series_uuid>/`` (the layout of
  ``idc-open-data``), read with fsspec/s3fs, anonymously unless ``source_options`` say otherwise. A series
  whose object count differs from the index's ``instanceCount`` is refused (never half a volume).
- Nothing is read from a bucket until an item's ``files`` loader runs; every failure there is a
  :class:`~archivestore.errors.BadItem` naming the SeriesInstanceUID, secrets redacted.
- ``duckdb``, ``idc-index-data`` and ``s3fs`` (the ``idc`` extra) are imported only when used.
"""

import os
import posixpath
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from archivestore._secrets import redact
from archivestore.errors import BadItem, InvalidInputError, UnreachableError
from archivestore.sources._base import SeriesItem, validate_id
from archivestore.sources._reach import unreachable
from archivestore.sources.idc._index import (
    EXTRA_HINT,
    REQUIRED_COLUMNS,
    IdcIndex,
    as_list,
    collection_id,
    packaged_index_path,
    require_extra,
)

__all__ = [
    "DEFAULT_SOURCE_OPTIONS",
    "EXTRA_HINT",
    "REQUIRED_COLUMNS",
    "IdcIndex",
    "IdcSource",
    "SeriesFiles",
    "collection_id",
    "item_from_origin",
    "packaged_index_path",
    "series_url",
]

DEFAULT_SOURCE_OPTIONS: dict[str, Any] = {"anon": True}
"""fsspec/s3fs options for IDC's buckets: anonymous reads (they are public)."""

_SECRET_OPTION = re.compile(r"(?i)key|secret|token|password|passwd|credential|session|auth|profile")


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without credentials (keys such as ``key``, ``secret``, ``token``), for the stored origin."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if _SECRET_OPTION.search(str(key)):
            continue
        if isinstance(value, Mapping):
            out[str(key)] = _public_options(value)
        elif value is None or isinstance(value, str | int | float | bool):
            out[str(key)] = redact(value) if isinstance(value, str) else value
    return out


def series_url(row: Mapping[str, Any]) -> str:
    """``s3://<aws_bucket>/<crdc_series_uuid>/`` of an index row (where the series' ``.dcm`` objects are)."""
    bucket, uuid = row.get("aws_bucket"), row.get("crdc_series_uuid")
    if not bucket or not uuid:
        raise BadItem(str(row.get("SeriesInstanceUID")), "IDC index", "no aws_bucket/crdc_series_uuid in the row")
    return f"s3://{bucket}/{uuid}/"


@dataclass
class SeriesFiles:
    """Loader of one series' files: ``(object name, bytes)`` of every ``.dcm`` under ``url``, sorted by name.

    Picklable (plain data); lists the prefix, checks the object count against ``instances``, then
    reads the objects concurrently (``concurrency`` at a time) with an optional byte progress bar.
    Any failure is a :class:`BadItem` naming ``uid``.
    """

    uid: str
    url: str
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SOURCE_OPTIONS))
    instances: int | None = None
    concurrency: int = 8
    progress: bool = False

    def __call__(self) -> list[tuple[str, bytes]]:
        try:
            return self._fetch()
        except BadItem:
            raise
        except Exception as exc:  # s3fs/botocore raise many kinds; each is this series' failure
            cannot = unreachable(exc)
            if cannot is not None:  # ... but for a bucket endpoint that cannot be reached at all (issue 17)
                endpoint = self.options.get("endpoint_url") or "the bucket's S3 endpoint"
                raise UnreachableError(redact(self.url), f"cannot reach {endpoint}: {cannot}", item=self.uid) from None
            raise BadItem(self.uid, redact(self.url), redact(f"{type(exc).__name__}: {exc}")) from None

    def _fetch(self) -> list[tuple[str, bytes]]:
        import fsspec
        from tqdm.auto import tqdm

        require_extra("s3fs")
        fs = fsspec.filesystem("s3", **self.options)
        prefix = self.url.removeprefix("s3://").rstrip("/") + "/"
        listing = fs.find(prefix, detail=True)
        paths = sorted(p for p, info in listing.items() if p.endswith(".dcm") and info.get("type") != "directory")
        if not paths:
            raise BadItem(self.uid, self.url, "no .dcm objects under this prefix")
        if self.instances is not None and len(paths) != self.instances:
            raise BadItem(self.uid, self.url, f"{len(paths)} .dcm objects, the index says {self.instances} instances")
        sizes = {p: listing[p].get("size") for p in paths}
        lock = threading.Lock()
        with tqdm(total=sum(s or 0 for s in sizes.values()), unit="B", unit_scale=True, leave=False,
                  desc=self.uid[-16:], disable=not self.progress) as bar:

            def read(path: str) -> bytes:
                data = fs.cat_file(path)
                if sizes[path] is not None and len(data) != sizes[path]:
                    name = posixpath.basename(path)
                    raise BadItem(self.uid, self.url, f"{name}: read {len(data)} bytes of {sizes[path]}")
                with lock:
                    bar.update(len(data))
                return bytes(data)

            with ThreadPoolExecutor(max(1, min(self.concurrency, len(paths)))) as pool:
                blobs = list(pool.map(read, paths))
        return [(posixpath.basename(p), b) for p, b in zip(paths, blobs, strict=True)]


class IdcSource:
    """IDC series as a source of :class:`~archivestore.sources.SeriesItem`.

    Parameters
    ----------
    index
        An :class:`IdcIndex`, or the path of an index parquet; default the packaged index.
    collection, patient, study, series, modality
        Filters (one value or several each) as :meth:`IdcIndex.series`.
    sql
        A DuckDB query over ``index`` returning a ``SeriesInstanceUID`` column.
    source_options
        fsspec/s3fs options for the buckets, over :data:`DEFAULT_SOURCE_OPTIONS` (``{"anon": True}``),
        e.g. ``endpoint_url`` for a mirror or a test server, ``client_kwargs``.
    concurrency
        Objects read at a time per series.
    progress
        A byte progress bar per series being read.

    Notes
    -----
    The selection is checked (a wrong id is a one-line :class:`NotFoundError`) and counted when the
    source is created; its rows are streamed from the index as the source is iterated (a source of
    a whole collection holds a query, not the rows, and pickles small), and nothing is read from a
    bucket until an item's ``files`` runs. Item id = SeriesInstanceUID, metadata = the index row
    (JSON values) and its ``viewer_url`` (as idc-index's ``get_viewer_URL`` gives it), origin = bucket
    URL, instance count and the non-secret ``source_options`` (enough to fetch again without the index).
    """

    def __init__(
        self,
        index: IdcIndex | str | os.PathLike[str] | None = None,
        *,
        collection: str | Iterable[str] | None = None,
        modality: str | Iterable[str] | None = None,
        sql: str | None = None,
        series: str | Iterable[str] | None = None,
        patient: str | Iterable[str] | None = None,
        study: str | Iterable[str] | None = None,
        source_options: Mapping[str, Any] | None = None,
        concurrency: int = 8,
        progress: bool = False,
    ) -> None:
        if not any(as_list(v) for v in (collection, series, patient, study)) and sql is None:
            raise InvalidInputError("choose series with collection=, patient=, study=, series= or sql= "
                                    "(the whole IDC is over a million series)")
        require_extra("s3fs")
        self.index = index if isinstance(index, IdcIndex) else IdcIndex(index)
        self.source_options = {**DEFAULT_SOURCE_OPTIONS, **dict(source_options or {})}
        self.concurrency = max(1, int(concurrency))
        self.progress = progress
        self.query, self.params = self.index.selection(collection, patient, study, series, modality, sql=sql)
        self._count = self.index.count(self.query, self.params)
        self.problems: list[BadItem] = []

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[SeriesItem]:
        from archivestore.sources.idc._urls import slim_studies, viewer_url

        origin_options = _public_options(self.source_options)
        slim = slim_studies(self.index, self.query, self.params)
        for row in self.index.records(self.query, self.params):
            study = str(row.get("StudyInstanceUID"))
            row["viewer_url"] = viewer_url(study, str(row.get("SeriesInstanceUID")), modalities=slim.get(study, ()))
            uid = str(row.get("SeriesInstanceUID"))
            try:
                validate_id(uid, "IDC index")
                url = series_url(row)
            except BadItem as exc:
                self.problems.append(exc)
                continue
            instances = row.get("instanceCount")
            instances = int(instances) if isinstance(instances, int | float) else None
            files = SeriesFiles(uid, url, dict(self.source_options), instances, self.concurrency, self.progress)
            origin = {"source": "idc", "series": uid, "url": url, "instances": instances,
                      "source_options": origin_options}
            yield SeriesItem(id=uid, metadata=dict(row), files=files, where=url, origin=origin)


def item_from_origin(series_uid: str, origin: dict[str, Any], metadata: dict[str, Any]) -> SeriesItem:
    """The item of one series fetched again from the bucket URL its ingest recorded (no index needed).

    Credentials, if the bucket needs any, come from the usual AWS environment variables.
    """
    require_extra("s3fs")
    options = {**DEFAULT_SOURCE_OPTIONS, **(origin.get("source_options") or {})}
    files = SeriesFiles(series_uid, origin["url"], options, origin.get("instances"))
    return SeriesItem(id=series_uid, metadata=metadata, files=files, where=origin["url"], origin=origin)
