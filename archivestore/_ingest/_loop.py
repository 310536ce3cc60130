"""Items → store: decode, validate and write images in parallel, resumably.

Each image is decoded, checked and written by a worker (thread or dask task) into its
own group (``images/<id>``, ``masks/<rater>/<id>``), completion marker last, under a
lease on that group. The submitting process collects the results and appends study
annotations (every ``batch_size`` rows) and metadata rows (every ``table_batch``
images, or ``table_seconds``) with :meth:`Store.append_tables`, under the store's
``tables`` lease, so no two writers ever touch one chunk of the shared arrays.

A rerun skips images already complete, adds what is new for them (a mask, another
rater's annotations) and finishes the rest; a bad item is reported with its id and the
reason while the others go on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from archivestore._ingest._item import process_item
from archivestore._ingest._results import ItemResult, SeriesResult
from archivestore._ingest._runner import runner
from archivestore.errors import BadItem, InvalidInputError
from archivestore.layout import GROUND_TRUTH
from archivestore.sources import ArrayItem, Item, PlateItem, SeriesItem, validate_id
from archivestore.store import Store, StudyRow

__all__ = ["AnyItem", "IngestReport", "ingest"]

AnyItem = Item | SeriesItem | ArrayItem | PlateItem
"""What a source may yield: images, DICOM series, microscopy images and plates."""


@dataclass
class IngestReport:
    """What an ingest did: ids written, ids already complete, the bad items, and warnings."""

    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[BadItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Items stored with a caveat, e.g. ``<uid>: uneven slice spacing ...``."""

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: how many ingested, already complete, failed."""
        return (f"{len(self.ingested)} ingested, {len(self.skipped)} already complete, "
                f"{len(self.failed)} failed")


class _Pending:
    """Rows waiting to be appended to the shared tables, flushed in batches on a background thread.

    An append rewrites the last chunk of every column one request after another: on a
    bucket that is seconds (~180 requests for a 30-field record), during which the
    submitting process would collect no results and the workers would run dry. So each
    batch is handed to one background thread and the loop goes on. One append is in flight
    at a time; rows that come meanwhile wait for the next, which is then larger (an append
    costs about the same whatever its size), so the loop never waits for the tables.
    :meth:`close` appends the rest and waits; an append's error is raised at the next
    flush or at close.
    """

    def __init__(self, store: Store, batch_size: int, table_batch: int, table_seconds: float) -> None:
        self.store = store
        self.index = store.table_index()
        self.series_index = store.table_index(store.layout.SERIES_METADATA)
        self.records: dict[str, dict[str, Any]] = {}
        self.series_records: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[StudyRow]] = {}
        self.n_rows = 0
        self.limits = (batch_size, table_batch, table_seconds)
        self.last_table = time.monotonic()
        self.appending: Future[int] | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archivestore-tables")

    def add(self, item_id: str, result: ItemResult | SeriesResult) -> None:
        if isinstance(result, ItemResult):
            if item_id not in self.index:
                self.records[item_id] = result.record if result.record is not None \
                    else self.store.image_record(item_id)
            for study, row in result.rows:
                self.rows.setdefault(study, []).append(row)
                self.n_rows += 1
        else:
            self.series_records.update((k, v) for k, v in result.rows.items() if k not in self.series_index)
        batch_size, table_batch, table_seconds = self.limits
        waiting = len(self.records) + len(self.series_records)
        table = waiting >= table_batch or bool(waiting and time.monotonic() - self.last_table > table_seconds)
        if (table or self.n_rows >= batch_size) and not (self.appending and not self.appending.done()):
            self.flush(table)

    def flush(self, table: bool = True) -> None:
        """Hand the waiting rows to the background append (once the one in flight has finished)."""
        if not self.rows and not (table and (self.records or self.series_records)):
            return
        self.wait()
        self.appending = self.pool.submit(
            self.store.append_tables, self.records if table else None, self.rows, self.index,
            series_records=self.series_records if table else None, series_index=self.series_index)
        self.rows, self.n_rows = {}, 0
        if table:
            self.records, self.series_records = {}, {}
            self.last_table = time.monotonic()

    def wait(self) -> None:
        """Wait for the append in flight; raise its error."""
        appending, self.appending = self.appending, None
        if appending is not None:
            appending.result()

    def close(self, *, flush: bool) -> None:
        """Append what is waiting (if ``flush``), wait for the last append, and stop the thread."""
        try:
            if flush:
                self.flush()
            self.wait()
        finally:
            self.pool.shutdown()


class _Admission:
    """Checks an item before it is submitted, and drops annotations a study already holds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.done: dict[str, set[tuple[str, str]]] = {}

    def __call__(self, item: AnyItem) -> AnyItem:
        validate_id(item.id, item.where)
        key = f"plate\0{item.id}" if isinstance(item, PlateItem) else item.id  # plates and images apart
        if key in self.seen:
            raise BadItem(item.id, item.where, "the same id appears twice in this source")
        if not isinstance(item, Item):
            self.seen.add(key)
            return item
        if item.rater != GROUND_TRUTH:
            validate_id(item.rater, f"rater of {item.where}")
        for name in {item.id, item.rater, *(a.study for a in item.annotations)}:
            try:
                self.store.layout.node(name)  # a layout-1 store refuses what it cannot name
            except InvalidInputError as exc:
                raise BadItem(item.id, item.where, str(exc)) from None
        self.seen.add(item.id)
        if not item.annotations:
            return item
        keep = [a for a in item.annotations if (item.id, a.rater) not in self._done(a.study)]
        return dataclasses.replace(item, annotations=keep)

    def _done(self, study: str) -> set[tuple[str, str]]:
        if study not in self.done:
            self.done[study] = self.store.annotated_pairs(study)
        return self.done[study]


def _collect(report: IngestReport, pending: _Pending, fut: Any, item: AnyItem) -> None:
    try:
        result = fut.result()
    except BadItem as exc:
        report.failed.append(exc)
        return
    except Exception as exc:  # anything unexpected still belongs to this one item
        report.failed.append(BadItem(item.id, item.where, f"{type(exc).__name__}: {exc}"))
        return
    if isinstance(result, SeriesResult):
        report.warnings.extend(result.warnings)
    if isinstance(result, ItemResult) and result.error is not None:
        report.failed.append(result.error)
    elif result.wrote:
        report.ingested.append(item.id)
    else:
        report.skipped.append(item.id)
    if not isinstance(item, PlateItem):  # a plate is its own group, not a table row
        pending.add(item.id, result)


def _is_seg(item: SeriesItem) -> bool:
    """Whether the archive's record says the series is a SEG or RTSTRUCT (written after the others)."""
    return str(item.metadata.get("Modality", "")).upper() in {"SEG", "RTSTRUCT"}


def _task(item: AnyItem) -> Any:
    """The function that writes one item (series and microscopy code load only when such an item comes)."""
    if isinstance(item, SeriesItem):
        from archivestore._ingest._series import process_series

        return process_series
    if isinstance(item, (ArrayItem, PlateItem)):
        from archivestore._ingest import _array

        return _array.process_array if isinstance(item, ArrayItem) else _array.process_plate
    return process_item


def ingest(
    store: Store,
    source: Iterable[AnyItem],
    *,
    workers: int | None = None,
    client: Any = None,
    progress: bool = True,
    batch_size: int = 256,
    table_batch: int = 4096,
    table_seconds: float = 60.0,
) -> IngestReport:
    """Ingest every item of ``source`` into ``store`` (opened with ``mode="a"``).

    Parameters
    ----------
    store
        The target store.
    source
        Any iterable of :class:`~archivestore.sources.Item` (images),
        :class:`~archivestore.sources.SeriesItem` (DICOM series),
        :class:`~archivestore.sources.ArrayItem` (microscopy images) and
        :class:`~archivestore.sources.PlateItem` (plates); if it has a ``problems``
        list (items it could not even form), those are reported too.
        Series whose record says ``Modality: SEG`` or ``RTSTRUCT`` are written after the others,
        because a segmentation is stored on the grid of the volume it segments.
    workers
        Worker threads decoding and writing images (default: the number of CPUs).
    client
        A ``dask.distributed.Client`` or a scheduler address: each image becomes a
        task (fetch, decode, validate, write) on the cluster's workers, which write
        straight to the store; this process appends the metadata and study rows.
        A client made here from an address is closed at the end.
    progress
        Show a tqdm progress bar on stderr.
    batch_size
        Study rows per append to ``studies/<study>``.
    table_batch, table_seconds
        Rows are added to the metadata table every ``table_batch`` images or
        ``table_seconds`` seconds, whichever comes first (each append rewrites the
        table's last chunk of every column, so small appends would make a long
        ingest quadratic). A crash loses no row: the rerun adds the rows of every
        complete image the table lacks.

    Returns
    -------
    IngestReport
        ``ok`` is false when any item failed; each failure names the item and the reason.
    """
    report = IngestReport()
    pending = _Pending(store, batch_size, table_batch, table_seconds)
    admit = _Admission(store)
    total = len(source) if isinstance(source, Sized) else None
    bar = tqdm(total=total, unit="image", disable=not progress, desc="ingest")
    run = runner(workers, client)
    futures: dict[Any, AnyItem] = {}
    later: list[SeriesItem] = []

    def drain(limit: int) -> None:
        while len(futures) > limit:
            for fut in run.wait_some(futures):
                _collect(report, pending, fut, futures.pop(fut))
                bar.update()

    def submit(item: AnyItem) -> None:
        futures[run.submit(_task(item), store, item)] = item
        drain(run.slots - 1)

    try:
        for item in source:
            try:
                item = admit(item)
            except BadItem as exc:
                report.failed.append(exc)
                bar.update()
                continue
            if isinstance(item, SeriesItem) and _is_seg(item):
                later.append(item)
            else:
                submit(item)
        drain(0)
        for item in later:  # segmentations, once the volumes they segment are stored
            submit(item)
        drain(0)
        pending.close(flush=True)
    finally:
        pending.close(flush=False)  # after an error: the append in flight ends before ingest does
        run.close()
        bar.close()
    report.failed.extend(getattr(source, "problems", []) or [])
    return report
