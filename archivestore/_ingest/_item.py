"""One image item into the store: decode, validate, write what the store lacks (a worker's task).

The image group is written whole when it is new or was interrupted (arrays first,
completion marker last); a complete group only gets the parts it lacks (superpixels,
a mask that came in a later run). Another rater's masks go to ``masks/<rater>/<id>``.
Everything runs under the lease of the image, so two writers never write one group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from archivestore._ingest._results import ItemResult
from archivestore.errors import BadItem, UnreachableError
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.layout import GROUND_TRUTH, compressors
from archivestore.sources import Item
from archivestore.store import GroupTaken, GroupWriter, Store, StudyRow

__all__ = ["process_item"]


def _load(item: Item, what: str, loader: Callable[[], bytes]) -> bytes:
    try:
        return loader()
    except (BadItem, UnreachableError):  # the endpoint out of reach concerns every item: the loop decides
        raise
    except Exception as exc:  # a loader's own failure (I/O, HTTP) belongs to this item
        raise BadItem(item.id, item.where, f"cannot read {what}: {exc}") from None


def _decode(item: Item, what: str, loader: Callable[[], bytes],
            decoder: Callable[[bytes], np.ndarray], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Load and decode one part; with ``shape``, check it matches the image's."""
    data = _load(item, what, loader)
    try:
        arr = decoder(data)
    except ValueError as exc:
        raise BadItem(item.id, item.where, f"{what}: {exc}") from None
    if shape is not None and tuple(arr.shape[:2]) != tuple(shape):
        raise BadItem(item.id, item.where,
                      f"{what} is {arr.shape[1]}x{arr.shape[0]} but the image is {shape[1]}x{shape[0]}")
    return arr


def _n_superpixels(sp: np.ndarray) -> int | None:
    return int(sp.max()) + 1 if sp.size else None


def _write_masks(writer: GroupWriter, item: Item, shape: tuple[int, ...], have: dict[str, str],
                 decoded: dict[str, np.ndarray] | None = None) -> dict[str, str]:
    """Decode and write the item's lesion mask and attribute masks not yet in ``have``.

    The lesion mask is also put in ``decoded`` (the study rows' mask areas need it).
    """
    sums: dict[str, str] = {}
    if item.mask is not None and "mask" not in have:
        mask = _decode(item, "mask", item.mask, decode_mask, shape)
        if decoded is not None:
            decoded["mask"] = mask
        sums["mask"] = writer.put_array("mask", mask, ("y", "x"), codecs=compressors("mask"))
    if item.attributes and "attribute" not in have:
        names = sorted(item.attributes)
        planes = [_decode(item, f"attribute {n}", item.attributes[n], decode_mask, shape) for n in names]
        writer.put_coord("feature", names)
        sums["attribute"] = writer.put_array("attribute", np.stack(planes), ("feature", "y", "x"),
                                             codecs=compressors("mask"))
    return sums


def _lacks(store: Store, item: Item, state: dict[str, Any] | None) -> bool:
    """Whether the store lacks anything this item brings."""
    if not (state or {}).get("complete"):
        return True
    have = state.get("checksums", {})  # type: ignore[union-attr]
    if item.superpixels is not None and "superpixels" not in have:
        return True
    if item.rater == GROUND_TRUTH:
        return (item.mask is not None and "mask" not in have) or bool(item.attributes and "attribute" not in have)
    if item.mask is not None or item.attributes:
        return not (store.masks_state(item.id, item.rater) or {}).get("complete")
    return False


def process_item(store: Store, item: Item) -> ItemResult:
    """Write what the store lacks of one item; return its study rows (worker thread or dask task)."""
    state = store.image_state(item.id)
    wrote, record = False, None
    decoded: dict[str, np.ndarray] = {}
    if _lacks(store, item, state):
        # a new image: claiming its group by creating it stands in for the lease
        claimed = state is None and item.rater == GROUND_TRUTH
        try:
            if claimed:
                wrote, record, decoded, state = _write(store, item, None, claim=True)
        except GroupTaken:
            claimed = False
        if not claimed:
            with store.item_lease(store.layout.image(item.id)):
                state = store.image_state(item.id)  # another writer may have finished it meanwhile
                if _lacks(store, item, state):
                    wrote, record, decoded, state = _write(store, item, state)
    try:
        rows = _study_rows(store, item, state or {}, decoded) if item.annotations else []
    except BadItem as exc:
        return ItemResult(wrote, [], record, exc)
    return ItemResult(wrote or bool(rows), rows, record)


def _write(store: Store, item: Item, state: dict[str, Any] | None, *, claim: bool = False
           ) -> tuple[bool, dict[str, Any] | None, dict[str, np.ndarray], dict[str, Any]]:
    """Write the image group (or the parts it lacks) and the rater's masks; marker last.

    ``state`` is None when there is no group yet, ``{}``-like without ``complete``
    when an earlier write was interrupted (the group is then rewritten whole).
    Returns what was written, the metadata record, the ground-truth arrays decoded on
    the way (superpixels, mask: the study rows need them) and the group's state.
    """
    if (state or {}).get("complete"):
        assert state is not None
        wrote, decoded, state = _add_parts(store, item, state)
        record = None
    else:
        decoded, state = _write_new(store, item, replace=state is not None, claim=claim)
        wrote, record = True, dict(item.metadata)
    if item.rater != GROUND_TRUTH and (item.mask is not None or item.attributes):
        wrote |= _write_rater_masks(store, item, tuple(state["shape"]))
    return wrote, record, decoded, state


def _write_new(store: Store, item: Item, *, replace: bool, claim: bool = False
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if item.image is None:
        raise BadItem(item.id, item.where, "the image is not in the store; ingest the image itself first")
    image = _decode(item, "image", item.image, decode_image)
    shape = image.shape[:2]
    sp = None if item.superpixels is None else _decode(item, "superpixels", item.superpixels, decode_superpixels, shape)
    decoded: dict[str, np.ndarray] = {} if sp is None else {"superpixels": sp}
    if "_archivestore" in item.metadata:
        raise BadItem(item.id, item.where, "metadata record has the reserved key '_archivestore'")
    if claim:
        writer = store.claim_group(store.layout.image(item.id), attributes=item.metadata)
    else:
        writer = store.item_group(item.id, replace=replace, attributes=item.metadata)
    with writer:  # a claim is given up if a part fails
        writer.put_coord("channel", ["R", "G", "B"])
        sums = {"image": writer.put_array("image", image, ("y", "x", "channel"), codecs=compressors("image"))}
        if sp is not None:
            sums["superpixels"] = writer.put_array("superpixels", sp, ("y", "x"), codecs=compressors("superpixels"))
        if item.rater == GROUND_TRUTH:
            sums.update(_write_masks(writer, item, shape, {}, decoded))
        state = {"complete": True, "name": item.id, "shape": [int(shape[0]), int(shape[1])], "checksums": sums,
                 "n_superpixels": None if sp is None else _n_superpixels(sp), "source": item.where,
                 "origin": item.origin}
        writer.finish(state)
    return decoded, state


def _add_parts(store: Store, item: Item, state: dict[str, Any]) -> tuple[bool, dict[str, np.ndarray], dict[str, Any]]:
    """Add superpixels or ground-truth masks a complete image group lacks."""
    shape = tuple(state["shape"])
    have = state.get("checksums", {})
    writer = store.item_group(item.id, replace=None)
    extra: dict[str, str] = {}
    decoded: dict[str, np.ndarray] = {}
    if item.superpixels is not None and "superpixels" not in have:
        sp = decoded["superpixels"] = _decode(item, "superpixels", item.superpixels, decode_superpixels, shape)
        extra["superpixels"] = writer.put_array("superpixels", sp, ("y", "x"), codecs=compressors("superpixels"))
        state["n_superpixels"] = _n_superpixels(sp)
    if item.rater == GROUND_TRUTH:
        extra.update(_write_masks(writer, item, shape, have, decoded))
    if extra:
        state = {**state, "checksums": {**have, **extra}, "origin": _merge_origins(state.get("origin"), item.origin)}
        writer.finish(state)
    return bool(extra), decoded, state


def _merge_origins(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """One origin naming every file an image's parts came from (parts may come in several runs)."""
    if not old or not new or old.get("source") != new.get("source") or "files" not in old:
        return old or new
    return {**old, "files": {**old["files"], **new.get("files", {})}}


def _write_rater_masks(store: Store, item: Item, shape: tuple[int, ...]) -> bool:
    state = store.masks_state(item.id, item.rater)
    if (state or {}).get("complete"):
        return False
    writer = store.item_group(item.id, item.rater, replace=state is not None)
    sums = _write_masks(writer, item, shape, {})
    writer.finish({"complete": True, "name": item.id, "rater": item.rater, "shape": list(shape),
                   "checksums": sums, "source": item.where, "origin": item.origin})
    return True


def _study_rows(store: Store, item: Item, state: dict[str, Any], decoded: dict[str, np.ndarray]
                ) -> list[tuple[str, StudyRow]]:
    """The item's annotations as study rows; superpixels and mask from ``decoded``, else read back."""
    n = state.get("n_superpixels")
    if not n:
        raise BadItem(item.id, item.where, "has study annotations but no superpixels")
    sp = decoded["superpixels"] if "superpixels" in decoded else store.read(item.id, "superpixels")
    area = np.bincount(sp.ravel(), minlength=n).astype(np.uint32)
    mask_area = None
    if "mask" in state.get("checksums", {}):
        mask = decoded["mask"] if "mask" in decoded else store.read(item.id, "mask")
        mask_area = np.bincount(sp[mask.astype(bool)], minlength=n).astype(np.uint32)
    rows = []
    for ann in item.annotations:
        where = ann.where or item.where
        try:
            raw = ann.values()
        except BadItem:
            raise
        except Exception as exc:
            raise BadItem(item.id, where, f"cannot read annotations: {exc}") from None
        values = {str(feature): _feature_values(item.id, where, str(feature), vals, n) for feature, vals in raw.items()}
        rows.append((ann.study, StudyRow(item.id, ann.rater, values, area, mask_area)))
    return rows


def _feature_values(item_id: str, where: str, feature: str, vals: Any, n: int) -> np.ndarray:
    """One feature's values per superpixel as float32 (None -> NaN), checked."""
    arr = np.array([np.nan if v is None else v for v in vals], dtype=np.float32) \
        if isinstance(vals, list) else np.asarray(vals, dtype=np.float32)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise BadItem(item_id, where, f"feature {feature!r} has {arr.size} values but the image has {n} superpixels")
    if np.any((arr < 0) | (arr > 1)):
        raise BadItem(item_id, where, f"feature {feature!r} has values outside 0..1")
    return arr
