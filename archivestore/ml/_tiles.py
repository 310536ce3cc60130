"""``TileDataset``: tiles of large 2-D images (microscopy now, slides later) with their label images.

What gets tiled is a :class:`Tiled`: one array per pyramid level, its dimension names (a subsequence
of t, channel, z, y, x) and label arrays over its spatial axes. :func:`tiled` asks each opener of
:data:`OPENERS` in turn; the built-in one reads a microscopy image group (``images/<id>``: ``image``
and the arrays marked ``label``). Another kind of item — a whole-slide image ``slides/<uid>`` with
its pyramid — plugs in with :func:`register_opener`, without changing the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml._base import Item, StoreDataset, choose, split_members
from archivestore.ml._fields import credits

if TYPE_CHECKING:
    from archivestore.store import Store

__all__ = ["OPENERS", "TileDataset", "Tiled", "register_opener", "tiled"]


@dataclass
class Tiled:
    """Something to cut tiles from: arrays per level (0 = full resolution), their dims, label arrays."""

    levels: list[Any]
    dims: tuple[str, ...]
    labels: dict[str, Any] = field(default_factory=dict)
    """Label arrays at level 0 over the spatial dims (``y``, ``x``, and ``z``/``t`` where the image has them)."""
    channels: list[str] = field(default_factory=list)


Opener = Callable[["Store", str], "Tiled | None"]

OPENERS: list[Opener] = []
"""Openers tried in order by :func:`tiled`: each returns a :class:`Tiled` for an id it knows, else None."""


def register_opener(opener: Opener, *, first: bool = True) -> None:
    """Let :class:`TileDataset` tile another kind of item (e.g. slides); ``first`` puts it before the others."""
    if first:
        OPENERS.insert(0, opener)
    else:
        OPENERS.append(opener)


def _microscopy(store: Store, image_id: str) -> Tiled | None:
    path = store.layout.image(image_id)
    try:
        group = zarr.open_group(store.zstore, path=path, mode="r", zarr_format=3)
        image = group["image"]
    except (KeyError, FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    if not isinstance(image, zarr.Array):
        return None
    dims = tuple(image.metadata.dimension_names or ())  # type: ignore[union-attr]
    labels = {name: arr for name, arr in group.arrays() if arr.attrs.get("label")}
    channels = []
    if "channel" in group:
        channels = [str(c) for c in np.asarray(group["channel"][...]).tolist()]  # type: ignore[index]
    return Tiled([image], dims, labels, channels)


OPENERS.append(_microscopy)


def tiled(store: Store, item_id: str) -> Tiled:
    """The :class:`Tiled` of an item; ``NotFoundError`` if no opener knows it."""
    for opener in OPENERS:
        found = opener(store, item_id)
        if found is not None:
            return found
    raise NotFoundError(f"no image {item_id!r} with an 'image' array in {store.url} (nothing to tile)")


class TileDataset(StoreDataset):
    """Tiles of images and their label images: one item per tile of every (t, z) plane.

    Each item is a dict: ``id``, ``image`` (channel, y, x) — or (y, x) for an image without channels —
    of the tile, padded with 0 to the full tile at the right and bottom edges, ``valid`` (the rows and
    columns that hold pixels), ``start`` (y, x of the tile in the level's pixels), ``plane`` (t, z
    indices, 0 where the image lacks the axis), ``level``, each label image's tile under its name
    (e.g. ``nuclei``), ``license`` and ``attribution``.

    Parameters
    ----------
    store
        A :class:`~archivestore.Store`, or a path or fsspec URL (``storage_options`` for it).
    images
        The images to tile; default every complete image with an ``image`` over ``y`` and ``x``
        that an opener knows (microscopy and ISIC images; slides once they have an opener).
    level
        The pyramid level (0: full resolution); label images only come with level 0.
    tile
        The tile shape (y, x).
    channels
        Keep these channels, by index or name; default all.
    labels
        Carry the label images.
    split, transform, tensors, storage_options
        See :class:`~archivestore.ml.ImageDataset`.
    """

    def __init__(self, store: Store | str | os.PathLike[str], images: Sequence[str] | None = None, *,
                 level: int = 0, tile: Sequence[int] = (512, 512), channels: Sequence[int | str] | None = None,
                 labels: bool = True, split: tuple[str, str] | None = None,
                 transform: Callable[[Item], Any] | None = None, tensors: bool = False,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(store, storage_options=storage_options, transform=transform, tensors=tensors)
        if len(tile) != 2 or any(int(t) < 1 for t in tile):
            raise InvalidInputError(f"tile is two positive lengths (y, x), not {tile!r}")
        self.tile, self.level, self.labels = (int(tile[0]), int(tile[1])), int(level), labels
        s = self.store
        known = s.image_ids()
        if images is None:
            images = [i for i in known if self._tileable(i)]
        self.ids: list[str] = choose(known, images, split_members(s, split), "image")
        self.licenses, self.attributions = credits(s.metadata_frame(), self.ids)
        self.channel_index: dict[str, list[int] | None] = {}
        self.index: list[tuple[int, int, int, int, int]] = []  # (image, t, z, y0, x0)
        for k, image_id in enumerate(self.ids):
            t = tiled(s, image_id)
            if self.level >= len(t.levels):
                raise NotFoundError(f"image {image_id!r} has levels 0..{len(t.levels) - 1}, not {self.level}")
            shape = dict(zip(t.dims, t.levels[self.level].shape, strict=True))
            if "y" not in shape or "x" not in shape:
                raise InvalidInputError(f"image {image_id!r} has axes {t.dims}: no y and x to tile")
            self.channel_index[image_id] = self._channels(image_id, t, channels)
            for tt in range(shape.get("t", 1)):
                for zz in range(shape.get("z", 1)):
                    for y0 in range(0, shape["y"], self.tile[0]):
                        for x0 in range(0, shape["x"], self.tile[1]):
                            self.index.append((k, tt, zz, y0, x0))
        self._opened: dict[tuple[int, str], Tiled] = {}

    def _tileable(self, image_id: str) -> bool:
        try:
            t = tiled(self.store, image_id)
        except NotFoundError:
            return False
        return "y" in t.dims and "x" in t.dims

    @staticmethod
    def _channels(image_id: str, t: Tiled, channels: Sequence[int | str] | None) -> list[int] | None:
        if channels is None:
            return None
        if "channel" not in t.dims:
            raise InvalidInputError(f"image {image_id!r} has no channel axis to choose from")
        out = []
        for c in channels:
            if isinstance(c, str):
                if c not in t.channels:
                    raise NotFoundError(f"image {image_id!r} has no channel {c!r}; channels: {', '.join(t.channels)}")
                out.append(t.channels.index(c))
            else:
                out.append(int(c))
        return out

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_opened"] = {}
        return state

    def _tiled(self, image_id: str) -> Tiled:
        key = (os.getpid(), image_id)
        if key not in self._opened:
            self._opened[key] = tiled(self.store, image_id)
        return self._opened[key]

    def _cut(self, arr: Any, dims: tuple[str, ...], t: int, z: int, ys: slice, xs: slice,
             channels: list[int] | None) -> np.ndarray:
        pick = {"t": t, "z": z, "y": ys, "x": xs, "channel": slice(None)}
        data = np.asarray(arr[tuple(pick[d] for d in dims)])
        kept = [d for d in dims if d in ("channel", "y", "x")]
        if channels is not None and "channel" in kept:
            data = np.take(data, channels, axis=kept.index("channel"))
        full = [len(channels) if d == "channel" and channels is not None else
                data.shape[kept.index("channel")] if d == "channel" else self.tile[0] if d == "y" else self.tile[1]
                for d in kept]
        if list(data.shape) != full:
            data = np.pad(data, [(0, f - n) for n, f in zip(data.shape, full, strict=True)])
        return np.moveaxis(data, kept.index("channel"), 0) if "channel" in kept else data

    def read_item(self, index: int) -> Item:
        """Tile ``index``: its image and label tiles, and where it came from."""
        k, tt, zz, y0, x0 = self.index[index]
        image_id = self.ids[k]
        t = self._tiled(image_id)
        arr = t.levels[self.level]
        shape = dict(zip(t.dims, arr.shape, strict=True))
        ys, xs = slice(y0, min(y0 + self.tile[0], shape["y"])), slice(x0, min(x0 + self.tile[1], shape["x"]))
        item: Item = {"id": image_id,
                      "image": self._cut(arr, t.dims, tt, zz, ys, xs, self.channel_index[image_id]),
                      "valid": np.array([ys.stop - ys.start, xs.stop - xs.start], np.int64),
                      "start": np.array([y0, x0], np.int64), "plane": np.array([tt, zz], np.int64),
                      "level": self.level}
        if self.labels and self.level == 0:
            for name, label in t.labels.items():
                dims = tuple(label.metadata.dimension_names or ()) if hasattr(label, "metadata") else t.dims
                item[name] = self._cut(label, dims, tt, zz, ys, xs, None)
        item["license"], item["attribution"] = self.licenses[k], self.attributions[k]
        return item
