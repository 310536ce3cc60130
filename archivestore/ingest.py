"""Items → store: decode, validate and write images in parallel, resumably.

Each image is decoded, checked and written by a worker thread into its own group
(``images/<id>``, ``masks/<rater>/<id>``), completion marker last. The main thread
collects the results and, one batch at a time, appends the metadata rows and study
annotations (the only shared arrays), so no two writers ever touch one chunk.

A rerun skips images already complete, adds what is new for them (a mask, another
rater's annotations) and finishes the rest; a bad item is reported with its id and the
reason while the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from archivestore import _metadata
from archivestore._images import checksum, put_array, put_coord, write_group_state
from archivestore._studies import StudyRow, append_study
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.sources._base import BadItem, Item, validate_id
from archivestore.store import GROUND_TRUTH, Store

__all__ = ["IngestReport", "ingest"]


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
    item: Item
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


def _attributes(item: Item, shape) -> tuple[list[str], np.ndarray] | None:
    if not item.attributes:
        return None
    names = sorted(item.attributes)
    planes = []
    for name in names:
        plane = _decode(item, f"attribute {name}", item.attributes[name], decode_mask)
        _check_shape(item, f"attribute {name}", plane, shape)
        planes.append(plane)
    return names, np.stack(planes)


def _write_masks(group, item: Item, shape, have: dict[str, str]) -> dict[str, str]:
    """Decode and write the item's lesion mask and attribute masks not yet in ``have``."""
    sums: dict[str, str] = {}
    if item.mask is not None and "mask" not in have:
        mask = _decode(item, "mask", item.mask, decode_mask)
        _check_shape(item, "mask", mask, shape)
        sums["mask"] = put_array(group, "mask", mask, ("y", "x"))
    if item.attributes and "attribute" not in have:
        names, stack = _attributes(item, shape)
        put_coord(group, "feature", names)
        sums["attribute"] = put_array(group, "attribute", stack, ("feature", "y", "x"))
    return sums


def _process(store: Store, item: Item) -> _Result:
    """Write what the store lacks of one item; return its study rows (worker thread)."""
    images = store.root["images"]
    state = store.image_state(item.id) or {}
    wrote = False
    record = None
    sp = None
    if not state.get("complete"):
        if item.image is None:
            raise BadItem(item.id, item.where, "the image is not in the store; ingest the image itself first")
        image = _decode(item, "image", item.image, decode_image)
        shape = image.shape[:2]
        if item.superpixels is not None:
            sp = _decode(item, "superpixels", item.superpixels, decode_superpixels)
            _check_shape(item, "superpixels", sp, shape)
        if "_archivestore" in item.metadata:
            raise BadItem(item.id, item.where, "metadata record has the reserved key '_archivestore'")
        group = images.create_group(item.id, overwrite=True, attributes=dict(item.metadata))
        put_coord(group, "channel", ["R", "G", "B"])
        sums = {"image": put_array(group, "image", image, ("y", "x", "channel"))}
        if sp is not None:
            sums["superpixels"] = put_array(group, "superpixels", sp, ("y", "x"))
        if item.rater == GROUND_TRUTH:
            sums.update(_write_masks(group, item, shape, {}))
        state = {"complete": True, "shape": [int(shape[0]), int(shape[1])], "checksums": sums,
                 "n_superpixels": int(sp.max()) + 1 if sp is not None and sp.size else None,
                 "source": item.where}
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
            extra.update(_write_masks(group, item, shape, have))
        if extra:
            state = {**state, "checksums": {**have, **extra}}
            write_group_state(group, state)
            wrote = True

    if item.rater != GROUND_TRUTH and (item.mask is not None or item.attributes):
        wrote |= _write_rater_masks(store, item, shape)

    try:
        rows = _study_rows(store, item, state, sp) if item.annotations else []
    except BadItem as exc:
        return _Result(item, wrote, [], record, exc)
    return _Result(item, wrote or bool(rows), rows, record)


def _write_rater_masks(store: Store, item: Item, shape) -> bool:
    path = f"masks/{item.rater}/{item.id}"
    existing = store._group_state(path) or {}
    if existing.get("complete"):
        return False
    group = store.root["masks"][item.rater].create_group(item.id, overwrite=True)
    sums = _write_masks(group, item, shape, {})
    write_group_state(group, {"complete": True, "shape": list(shape), "checksums": sums, "source": item.where})
    return True


def _study_rows(store: Store, item: Item, state: dict[str, Any], sp: np.ndarray | None) -> list[StudyRow]:
    n = state.get("n_superpixels")
    if not n:
        raise BadItem(item.id, item.where, "has study annotations but no superpixels")
    if sp is None:
        sp = store.root["images"][item.id]["superpixels"][...]
    area = np.bincount(sp.ravel(), minlength=n).astype(np.uint32)
    mask_area = None
    if "mask" in state.get("checksums", {}):
        mask = store.root["images"][item.id]["mask"][...]
        mask_area = np.bincount(sp.ravel(), weights=mask.ravel(), minlength=n).astype(np.uint32)
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


def ingest(
    store: Store,
    source: Iterable[Item],
    *,
    workers: int | None = None,
    progress: bool = True,
    batch_size: int = 256,
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
    progress
        Show a tqdm progress bar on stderr.
    batch_size
        Images per metadata/study append; a crash loses at most one batch's rows,
        which the rerun writes again.

    Returns
    -------
    IngestReport
        ``ok`` is false when any item failed; each failure names the item and the reason.
    """
    workers = workers or os.cpu_count() or 1
    report = IngestReport()
    meta_group = store.root["metadata"]
    _metadata.repair(meta_group)
    in_table = set(_metadata.table_ids(meta_group))
    seen: set[str] = set()
    made_raters: set[str] = set()
    records: dict[str, dict] = {}
    study_rows: list[tuple[str, StudyRow]] = []

    def flush() -> None:
        by_study: dict[str, list[StudyRow]] = {}
        for study, row in study_rows:
            by_study.setdefault(study, []).append(row)
        for study, rows in by_study.items():
            append_study(store.root["studies"], study, rows)
        if records:
            _metadata.append_rows(meta_group, records)
            in_table.update(records)
        records.clear()
        study_rows.clear()

    def collect(fut: Future, item: Item) -> None:
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
        if len(records) + len(study_rows) >= batch_size:
            flush()

    total = len(source) if hasattr(source, "__len__") else None
    bar = tqdm(total=total, unit="image", disable=not progress, desc="ingest")
    pending: dict[Future, Item] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item in source:
            try:
                validate_id(item.id, item.where)
                if item.id in seen:
                    raise BadItem(item.id, item.where, "the same image id appears twice in this source")
                if item.rater != GROUND_TRUTH:
                    validate_id(item.rater, f"rater of {item.where}")
                    if (item.mask is not None or item.attributes) and item.rater not in made_raters:
                        store.root["masks"].require_group(item.rater)
                        made_raters.add(item.rater)
            except BadItem as exc:
                report.failed.append(exc)
                bar.update()
                continue
            seen.add(item.id)
            pending[pool.submit(_process, store, item)] = item
            while len(pending) >= 2 * workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    collect(fut, pending.pop(fut))
                    bar.update()
        for fut in list(pending):
            wait([fut])
            collect(fut, pending.pop(fut))
            bar.update()
    flush()
    bar.close()
    report.failed.extend(getattr(source, "problems", []) or [])
    return report
