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
import errno
import urllib.parse
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from archivestore._ingest._item import process_item
from archivestore._ingest._pending import Pending
from archivestore._ingest._results import ItemResult, SeriesResult
from archivestore._ingest._runner import runner
from archivestore.errors import APIError, BadItem, InvalidInputError, StoreWriteError, UnreachableError
from archivestore.layout import GROUND_TRUTH
from archivestore.sources import ArrayItem, Item, PlateItem, SeriesItem, validate_id
from archivestore.store import Store

__all__ = ["AnyItem", "IngestInterrupted", "IngestReport", "ingest", "store_failure"]

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
    stopped: Exception | None = None
    """Why the run stopped before the end of the source, if it did: a :class:`~archivestore.errors.StoreWriteError`
    (the store refused a write) or an :class:`~archivestore.errors.UnreachableError` (the archive or bucket
    was out of reach for several items in a row). What completed is stored and in the tables; a rerun resumes."""
    interrupted: bool = False
    """Whether the run was interrupted (Ctrl-C); :func:`ingest` then raises :class:`IngestInterrupted`."""

    @property
    def ok(self) -> bool:
        """True when no item failed and the run went to the end."""
        return not self.failed and self.stopped is None and not self.interrupted

    def summary(self) -> str:
        """One line: how many ingested, already complete, failed (and why the run stopped early)."""
        text = f"{len(self.ingested)} ingested, {len(self.skipped)} already complete, {len(self.failed)} failed"
        if self.stopped is not None:
            text += f"; stopped early: {self.stopped}"
        return text


class IngestInterrupted(KeyboardInterrupt):
    """An ingest interrupted by Ctrl-C, after it cancelled what had not started and stored the rows of
    every item that completed; ``report`` says what completed. Also a :class:`KeyboardInterrupt`."""

    def __init__(self, report: IngestReport) -> None:
        super().__init__(f"interrupted: {len(report.ingested)} stored; rerun to resume")
        self.report = report


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


UNREACHABLE_LIMIT = 3
"""Items in a row failing with :class:`~archivestore.errors.UnreachableError` that stop an ingest."""

_STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def store_failure(exc: BaseException) -> StoreWriteError | None:
    """``exc`` as a :class:`StoreWriteError` if it is the store refusing a write (it concerns every item), else None.

    A worker's task wraps what its loaders raise in :class:`BadItem`, so an ``OSError`` that reaches
    the loop came from the store: no space, a read-only filesystem, no permission (a bucket answering
    ``AccessDenied`` is a :class:`PermissionError` in s3fs).
    """
    if isinstance(exc, StoreWriteError):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, (APIError, TimeoutError)) and (
            isinstance(exc, PermissionError) or exc.errno in _STORE_ERRNOS):
        return StoreWriteError(f"the store refused a write: {exc}")
    return None


def _endpoint(exc: UnreachableError) -> str:
    """The host (and port) an :class:`UnreachableError` could not reach."""
    parts = urllib.parse.urlsplit(exc.url)
    return parts.netloc.rpartition("@")[2] or exc.url


class _Run:
    """Collects the results of an ingest's tasks into its report, and decides when the run must stop."""

    def __init__(self, report: IngestReport, pending: Pending, bar: Any) -> None:
        self.report = report
        self.pending = pending
        self.bar = bar
        self.unreachable = 0

    def stop(self, exc: Exception) -> None:
        if self.report.stopped is None:
            self.report.stopped = exc

    def collect(self, fut: Any, item: AnyItem) -> None:
        if fut.cancelled():  # never ran (the run stopped): the rerun does it
            return
        self.bar.update()
        try:
            result = fut.result()
        except BadItem as exc:
            self.failed(exc)
            return
        except UnreachableError as exc:
            self.report.failed.append(BadItem(item.id, item.where, str(exc)))
            self.unreachable += 1
            if self.unreachable >= UNREACHABLE_LIMIT:
                self.stop(UnreachableError(exc.url, f"cannot reach {_endpoint(exc)} ({self.unreachable} items in a "
                                           f"row): {exc.reason}", status=exc.status))
            return
        except Exception as exc:  # anything unexpected still belongs to this one item
            self.failed(BadItem(item.id, item.where, f"{type(exc).__name__}: {exc}"))
            failure = store_failure(exc)
            if failure is not None:
                self.stop(failure)
            return
        self.unreachable = 0
        if isinstance(result, SeriesResult):
            self.report.warnings.extend(result.warnings)
        if isinstance(result, ItemResult) and result.error is not None:
            self.report.failed.append(result.error)
        elif result.wrote:
            self.report.ingested.append(item.id)
        else:
            self.report.skipped.append(item.id)
        if not isinstance(item, PlateItem):  # a plate is its own group, not a table row
            try:
                self.pending.add(item.id, result)
            except OSError as exc:  # the append of an earlier batch failed
                self.stop(store_failure(exc) or StoreWriteError(f"cannot append to the tables: {exc}"))

    def failed(self, exc: BadItem) -> None:
        self.unreachable = 0
        self.report.failed.append(exc)

    def close(self) -> None:
        """Append every row that waits (the items that completed; tried even when image writes were refused:
        a quota or a policy on one prefix may leave the tables writable)."""
        try:
            self.pending.close(flush=True)
        except OSError as exc:
            self.stop(store_failure(exc) or StoreWriteError(f"cannot append to the tables: {exc}"))


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
        ``ok`` is false when any item failed or the run stopped early; each failure names the
        item and the reason. A store that refuses a write, or an archive out of reach for
        :data:`UNREACHABLE_LIMIT` items in a row, stops the submitting at once: the items that
        were running finish, the rows of every completed item are appended, and
        ``report.stopped`` says why.

    Raises
    ------
    IngestInterrupted
        On Ctrl-C (a :class:`KeyboardInterrupt`), after cancelling what had not started,
        letting what ran finish (a second Ctrl-C stops waiting) and appending the rows of
        every completed item; its ``report`` says what completed.
    """
    report = IngestReport()
    pending = Pending(store, batch_size, table_batch, table_seconds)
    admit = _Admission(store)
    total = len(source) if isinstance(source, Sized) else None
    bar = tqdm(total=total, unit="image", disable=not progress, desc="ingest")
    run = runner(workers, client)
    flow = _Run(report, pending, bar)
    futures: dict[Any, AnyItem] = {}
    later: list[SeriesItem] = []

    def drain(limit: int) -> None:
        while len(futures) > limit:
            for fut in run.wait_some(futures):
                flow.collect(fut, futures.pop(fut))

    def submit(item: AnyItem) -> None:
        futures[run.submit(_task(item), store, item)] = item
        drain(run.slots - 1)

    try:
        try:
            for item in _admitted(source, admit, report, bar):
                if report.stopped is not None:
                    break
                if isinstance(item, SeriesItem) and _is_seg(item):
                    later.append(item)
                else:
                    submit(item)
            if report.stopped is None:
                drain(0)
            for item in later:  # segmentations, once the volumes they segment are stored
                if report.stopped is not None:
                    break
                submit(item)
            if report.stopped is None:
                drain(0)
        except KeyboardInterrupt:
            report.interrupted = True
        # stopped or interrupted: what has not started never will; what runs finishes and is collected
        run.cancel(list(futures))
        try:
            drain(0)
        except KeyboardInterrupt:  # a second Ctrl-C: leave the running tasks, keep what completed
            report.interrupted = True
            run.cancel(list(futures), force=True)
            futures.clear()
        flow.close()
    finally:
        pending.close(flush=False)  # after an error: the append in flight ends before ingest does
        run.close()
        bar.close()
    if not report.interrupted:
        report.failed.extend(getattr(source, "problems", []) or [])
    if report.interrupted:
        raise IngestInterrupted(report)
    return report


def _admitted(source: Iterable[AnyItem], admit: _Admission, report: IngestReport, bar: Any) -> Iterator[AnyItem]:
    """The source's items that pass :class:`_Admission`; the others go to the report."""
    for item in source:
        try:
            yield admit(item)
        except BadItem as exc:
            report.failed.append(exc)
            bar.update()
