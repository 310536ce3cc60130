"""Items → store: decode, validate and write images in parallel, resumably.

Each image is decoded, checked and written by a worker thread into its own group
(``images/<id>``, ``masks/<rater>/<id>``), completion marker last, under a lease on
that image. The main thread collects the results and appends study annotations (every
``batch_size`` rows) and metadata rows (every ``table_batch`` images) under the store's
``tables`` lease, so no two writers ever touch one chunk of the shared arrays.

A rerun skips images already complete, adds what is new for them (a mask, another
rater's annotations) and finishes the rest; a bad item is reported with its id and the
reason while the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from archivestore import _metadata
from archivestore._images import put_array, put_coord, write_group_state
from archivestore._lock import acquire
from archivestore._studies import StudyRow, annotated_pairs, append_study
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.sources._base import BadItem, Item, validate_id
from archivestore.store import GROUND_TRUTH, Store, ensure_group

__all__ = ["IngestReport", "ingest"]

LEASE_SECONDS = 300.0
"""How long a writer's claim on an image (or on the shared tables) lasts if it dies."""


@dataclass
class IngestReport:
    """What an ingest did: ids written, ids already complete, and the bad items."""

    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[BadItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (f"{len(self.ingested)} ingested, {len(self.skipped)} already complete, "
                f"{len(self.failed)} failed")


@dataclass
class _Result:
    wrote: bool
    rows: list[tuple[str, StudyRow]]
    record: dict[str, Any] | None  # the record written now, None if the group was complete
    error: BadItem | None = None    # the image is stored but its annotations were not


def _load(item: Item, what: str, loader) -> bytes:
    try:
        return loader()
    except BadItem:
        raise
    except Exception as exc:  # a loader's own failure (I/O, HTTP) belongs to this item
        raise BadItem(item.id, item.where, f"cannot read {what}: {exc}") from None


def _decode(item: Item, what: str, loader, decoder) -> np.ndarray:
    data = _load(item, what, loader)
    try:
        return decoder(data)
    except ValueError as exc:
        raise BadItem(item.id, item.where, f"{what}: {exc}") from None


def _check_shape(item: Item, what: str, arr: np.ndarray, shape: tuple[int, int]) -> None:
    if tuple(arr.shape[:2]) != tuple(shape):
        raise BadItem(item.id, item.where,
                      f"{what} is {arr.shape[1]}x{arr.shape[0]} but the image is {shape[1]}x{shape[0]}")


def _attributes(item: Item, shape) -> tuple[list[str], np.ndarray]:
    names = sorted(item.attributes)
    planes = []
    for name in names:
        plane = _decode(item, f"attribute {name}", item.attributes[name], decode_mask)
        _check_shape(item, f"attribute {name}", plane, shape)
        planes.append(plane)
    return names, np.stack(planes)


def _write_masks(group, item: Item, shape, have: dict[str, str], fresh: bool) -> dict[str, str]:
    """Decode and write the item's lesion mask and attribute masks not yet in ``have``."""
    sums: dict[str, str] = {}
    if item.mask is not None and "mask" not in have:
        mask = _decode(item, "mask", item.mask, decode_mask)
        _check_shape(item, "mask", mask, shape)
        sums["mask"] = put_array(group, "mask", mask, ("y", "x"), fresh=fresh)
    if item.attributes and "attribute" not in have:
        names, stack = _attributes(item, shape)
        put_coord(group, "feature", names, fresh=fresh)
        sums["attribute"] = put_array(group, "attribute", stack, ("feature", "y", "x"), fresh=fresh)
    return sums


def _todo(store: Store, item: Item, state: dict[str, Any] | None) -> bool:
    """Whether the store lacks anything this item brings."""
    if not (state or {}).get("complete"):
        return True
    have = state.get("checksums", {})
    if item.superpixels is not None and "superpixels" not in have:
        return True
    if item.rater == GROUND_TRUTH:
        return (item.mask is not None and "mask" not in have) or bool(item.attributes and "attribute" not in have)
    if item.mask is not None or item.attributes:
        return not (store._group_state(f"masks/{item.rater}/{item.id}") or {}).get("complete")
    return False


def _process(store: Store, item: Item) -> _Result:
    """Write what the store lacks of one item; return its study rows (worker thread or dask task)."""
    state = store.image_state(item.id)
    wrote, record, sp = False, None, None
    if _todo(store, item, state):
        with acquire(store.zstore, f"images/{item.id}", lease_seconds=LEASE_SECONDS):
            state = store.image_state(item.id)  # another writer may have finished it meanwhile
            if _todo(store, item, state):
                wrote, record, sp, state = _write(store, item, state)
    state = state or {}
    try:
        rows = _study_rows(store, item, state, sp) if item.annotations else []
    except BadItem as exc:
        return _Result(wrote, [], record, exc)
    return _Result(wrote or bool(rows), rows, record)


def _write(store: Store, item: Item, state: dict[str, Any] | None):
    """Write the image group (or the parts it lacks) and the rater's masks; marker last.

    ``state`` is None when there is no group yet, ``{}``-like without ``complete``
    when an earlier write was interrupted (the group is then rewritten whole).
    """
    images = store.images_group
    record, sp = None, None
    if not (state or {}).get("complete"):
        if item.image is None:
            raise BadItem(item.id, item.where, "the image is not in the store; ingest the image itself first")
        image = _decode(item, "image", item.image, decode_image)
        shape = image.shape[:2]
        if item.superpixels is not None:
            sp = _decode(item, "superpixels", item.superpixels, decode_superpixels)
            _check_shape(item, "superpixels", sp, shape)
        if "_archivestore" in item.metadata:
            raise BadItem(item.id, item.where, "metadata record has the reserved key '_archivestore'")
        # an interrupted group is dropped whole; a new one needs no deleting
        group = images.create_group(item.id, overwrite=state is not None, attributes=dict(item.metadata))
        put_coord(group, "channel", ["R", "G", "B"], fresh=True)
        sums = {"image": put_array(group, "image", image, ("y", "x", "channel"), fresh=True)}
        if sp is not None:
            sums["superpixels"] = put_array(group, "superpixels", sp, ("y", "x"), fresh=True)
        if item.rater == GROUND_TRUTH:
            sums.update(_write_masks(group, item, shape, {}, fresh=True))
        state = {"complete": True, "shape": [int(shape[0]), int(shape[1])], "checksums": sums,
                 "n_superpixels": int(sp.max()) + 1 if sp is not None and sp.size else None,
                 "source": item.where, "origin": item.origin}
        write_group_state(group, state)
        wrote = True
        record = dict(item.metadata)
    else:
        shape = tuple(state["shape"])
        have = state.get("checksums", {})
        extra: dict[str, str] = {}
        group = images[item.id]
        if item.superpixels is not None and "superpixels" not in have:
            sp = _decode(item, "superpixels", item.superpixels, decode_superpixels)
            _check_shape(item, "superpixels", sp, shape)
            extra["superpixels"] = put_array(group, "superpixels", sp, ("y", "x"))
            state["n_superpixels"] = int(sp.max()) + 1 if sp.size else None
        if item.rater == GROUND_TRUTH:
            extra.update(_write_masks(group, item, shape, have, fresh=False))
        wrote = bool(extra)
        if extra:
            state = {**state, "checksums": {**have, **extra}, "origin": _merge_origins(state.get("origin"), item.origin)}
            write_group_state(group, state)
    if item.rater != GROUND_TRUTH and (item.mask is not None or item.attributes):
        wrote |= _write_rater_masks(store, item, shape)
    return wrote, record, sp, state


def _merge_origins(old: dict | None, new: dict | None) -> dict | None:
    """One origin naming every file an image's parts came from (parts may come in several runs)."""
    if not old or not new or old.get("source") != new.get("source") or "files" not in old:
        return old or new
    return {**old, "files": {**old["files"], **new.get("files", {})}}


def _write_rater_masks(store: Store, item: Item, shape) -> bool:
    path = f"masks/{item.rater}/{item.id}"
    state = store._group_state(path)
    if (state or {}).get("complete"):
        return False
    group = store.root["masks"][item.rater].create_group(item.id, overwrite=state is not None)
    sums = _write_masks(group, item, shape, {}, fresh=True)
    write_group_state(group, {"complete": True, "shape": list(shape), "checksums": sums,
                              "source": item.where, "origin": item.origin})
    return True


def _study_rows(store: Store, item: Item, state: dict[str, Any], sp: np.ndarray | None) -> list[StudyRow]:
    n = state.get("n_superpixels")
    if not n:
        raise BadItem(item.id, item.where, "has study annotations but no superpixels")
    if sp is None:
        sp = store.images_group[item.id]["superpixels"][...]
    area = np.bincount(sp.ravel(), minlength=n).astype(np.uint32)
    mask_area = None
    if "mask" in state.get("checksums", {}):
        mask = store.images_group[item.id]["mask"][...]
        mask_area = np.bincount(sp[mask.astype(bool)], minlength=n).astype(np.uint32)
    rows = []
    for ann in item.annotations:
        try:
            raw = ann.values()
        except BadItem:
            raise
        except Exception as exc:
            raise BadItem(item.id, ann.where or item.where, f"cannot read annotations: {exc}") from None
        values = {}
        for feature, vals in raw.items():
            arr = np.array([np.nan if v is None else v for v in vals], dtype=np.float32) \
                if isinstance(vals, list) else np.asarray(vals, dtype=np.float32)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise BadItem(item.id, ann.where or item.where,
                              f"feature {feature!r} has {arr.size} values but the image has {n} superpixels")
            if np.any((arr < 0) | (arr > 1)):
                raise BadItem(item.id, ann.where or item.where, f"feature {feature!r} has values outside 0..1")
            values[str(feature)] = arr
        rows.append((ann.study, StudyRow(item.id, ann.rater, values, area, mask_area)))
    return rows


class _Threads:
    """Runs tasks on a local thread pool."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.slots = 2 * workers

    def submit(self, fn, *args) -> Future:
        return self.pool.submit(fn, *args)

    def wait_some(self, futures) -> set:
        return wait(futures, return_when=FIRST_COMPLETED).done

    def close(self) -> None:
        self.pool.shutdown()


class _Dask:
    """Runs tasks on a dask.distributed cluster; the store travels as its URL."""

    def __init__(self, client) -> None:
        self.client = client
        self.slots = 2 * max(1, sum(client.nthreads().values()))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait_some(self, futures) -> set:
        from distributed import wait as dask_wait

        return dask_wait(list(futures), return_when="FIRST_COMPLETED").done

    def close(self) -> None:
        pass


def _runner(workers: int | None, client):
    if client is None:
        return _Threads(workers or os.cpu_count() or 1)
    if isinstance(client, str):
        from distributed import Client

        client = Client(client)
    return _Dask(client)


def ingest(
    store: Store,
    source: Iterable[Item],
    *,
    workers: int | None = None,
    client=None,
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
        Any iterable of :class:`~archivestore.sources.Item`; if it has a ``problems``
        list (items it could not even form), those are reported too.
    workers
        Worker threads decoding and writing images (default: the number of CPUs).
    client
        A ``dask.distributed.Client`` or a scheduler address: each image becomes a
        task (fetch, decode, validate, write) on the cluster's workers, which write
        straight to the store; this process appends the metadata and study rows.
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
    meta_group = store.root["metadata"]
    in_table = _metadata.TableIndex().refresh(meta_group)
    seen: set[str] = set()
    made_raters: set[str] = set()
    records: dict[str, dict] = {}
    study_rows: list[tuple[str, StudyRow]] = []
    annotated: dict[str, set[tuple[str, str]]] = {}

    def done_pairs(study: str) -> set[tuple[str, str]]:
        if study not in annotated:
            annotated[study] = annotated_pairs(store.root["studies"], study)
        return annotated[study]

    last_table = time.monotonic()

    def flush(table: bool) -> None:
        nonlocal last_table
        if not study_rows and not (table and records):
            return
        by_study: dict[str, list[StudyRow]] = {}
        for study, row in study_rows:
            by_study.setdefault(study, []).append(row)
        # the shared arrays have one writer at a time, across processes and hosts
        with acquire(store.zstore, "tables", lease_seconds=LEASE_SECONDS):
            for study, rows in by_study.items():
                append_study(store.root["studies"], study, rows)
            if table and records:
                _metadata.repair(meta_group)
                _metadata.append_rows(meta_group, records, in_table)
        study_rows.clear()
        if table:
            records.clear()
            last_table = time.monotonic()

    def collect(fut, item: Item) -> None:
        try:
            result = fut.result()
        except BadItem as exc:
            report.failed.append(exc)
            return
        except Exception as exc:  # anything unexpected still belongs to this one item
            report.failed.append(BadItem(item.id, item.where, f"{type(exc).__name__}: {exc}"))
            return
        if result.error is not None:
            report.failed.append(result.error)
        elif result.wrote:
            report.ingested.append(item.id)
        else:
            report.skipped.append(item.id)
        if item.id not in in_table:
            records[item.id] = result.record if result.record is not None else store.image_record(item.id)
        study_rows.extend(result.rows)
        table = len(records) >= table_batch or bool(records and time.monotonic() - last_table > table_seconds)
        if table or len(study_rows) >= batch_size:
            flush(table)

    total = len(source) if hasattr(source, "__len__") else None
    bar = tqdm(total=total, unit="image", disable=not progress, desc="ingest")
    runner = _runner(workers, client)
    pending: dict = {}
    try:
        for item in source:
            try:
                validate_id(item.id, item.where)
                if item.id in seen:
                    raise BadItem(item.id, item.where, "the same image id appears twice in this source")
                if item.rater != GROUND_TRUTH:
                    validate_id(item.rater, f"rater of {item.where}")
                    if (item.mask is not None or item.attributes) and item.rater not in made_raters:
                        ensure_group(store.root["masks"], item.rater)
                        made_raters.add(item.rater)
            except BadItem as exc:
                report.failed.append(exc)
                bar.update()
                continue
            seen.add(item.id)
            if item.annotations:  # values a study already holds are not fetched again
                item = dataclasses.replace(item, annotations=[
                    a for a in item.annotations if (item.id, a.rater) not in done_pairs(a.study)])
            pending[runner.submit(_process, store, item)] = item
            while len(pending) >= runner.slots:
                for fut in runner.wait_some(pending):
                    collect(fut, pending.pop(fut))
                    bar.update()
        while pending:
            for fut in runner.wait_some(pending):
                collect(fut, pending.pop(fut))
                bar.update()
        flush(True)
    finally:
        runner.close()
        bar.close()
    report.failed.extend(getattr(source, "problems", []) or [])
    return report
