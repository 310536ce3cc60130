"""``VolumeDataset``: 3-D patches of CT/MR volumes with their segmentation labels, read chunk by chunk.

A patch is a slice of the stored arrays, so it costs the chunks it touches and nothing more
(volumes are chunked 16 slices × 512 × 512): a 64 × 128 × 128 patch of a 512 × 512 CT reads
4-5 chunks of the volume and as many of each label volume, never the whole series. Along an axis
where the patch spans whole chunks (z: 64 = 4 × 16), ``aligned=True`` starts it on a chunk
boundary, so it touches 4 chunks rather than 5.

Patch positions are drawn from ``numpy.random.default_rng((seed, epoch, index))``: the same
item is the same patch in every worker and run, and :meth:`VolumeDataset.set_epoch` draws
new ones. ``sampler="label"`` centres patches on labelled voxels: the candidates (up to
:data:`CANDIDATES` per chunk of z) are found once, when the dataset is made, by reading the label
volumes chunk by chunk.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml._base import Item, StoreDataset, choose, split_members
from archivestore.ml._fields import credits

if TYPE_CHECKING:
    import pandas as pd

    from archivestore.store import Store

__all__ = ["CANDIDATES", "VolumeDataset"]

CANDIDATES = 64
"""Labelled voxels kept per z-chunk of a label volume as patch centres for ``sampler="label"``."""


def _segmentations(frame: pd.DataFrame, rater: str | None) -> dict[str, str]:
    """Volume id → the segmentation to use (of ``rater`` if given, else the first by uid)."""
    if "store.kind" not in frame:
        return {}
    segs = frame[frame["store.kind"].astype(object) == "segmentation"]
    out: dict[str, str] = {}
    for uid in sorted(map(str, segs.index)):
        row = segs.loc[uid]
        volume = row.get("store.source_volume")
        if volume is None or (rater is not None and str(row.get("store.rater")) != rater):
            continue
        out.setdefault(str(volume), uid)
    return out


class VolumeDataset(StoreDataset):
    """Patches (or whole volumes) of a store's volumes with their segmentation labels.

    Each item is a dict: ``id`` and ``series`` (the volume), ``segmentation`` (the SEG's uid, ``""``
    without labels), ``start`` (the patch's first index along z, y, x), ``volume`` (z, y, x) in the
    stored dtype, ``labels`` (segment, z, y, x) as stored (uint8 0/1, or float32 fractions),
    ``spacing`` (mm), ``license`` and ``attribution``.

    Parameters
    ----------
    store
        A :class:`~archivestore.Store`, or a path or fsspec URL (``storage_options`` for it).
    series
        The volumes (``series/<id>`` ids, ``<uid>_part<k>`` for a split series); default every
        volume (every volume with a segmentation when ``labels``).
    patch
        The patch shape (z, y, x); None for whole volumes (one item per volume). A volume smaller
        than the patch along an axis is padded with ``pad_value`` (labels with 0).
    labels
        Carry each volume's segmentation (``segmentations/<uid>`` on its grid).
    samples_per_volume
        Patches per volume per epoch (the dataset has ``len(volumes) * samples_per_volume`` items).
    sampler
        ``uniform`` (any position) or ``label`` (centred on a labelled voxel; needs ``labels``).
    segments
        Keep these segments, in this order, by ``segment_label`` or ``segment_code`` (zeros where a
        segmentation lacks one), so that items of different volumes batch together; default all.
    rater
        Use the segmentations of this rater (``store.rater`` of the series table).
    seed, aligned, pad_value
        See the module docstring.
    split, transform, tensors, storage_options
        See :class:`~archivestore.ml.ImageDataset`.
    """

    def __init__(self, store: Store | str | os.PathLike[str], series: Sequence[str] | None = None, *,
                 patch: Sequence[int] | None = (64, 128, 128), labels: bool = True, samples_per_volume: int = 8,
                 sampler: str = "uniform", segments: Sequence[str] | None = None, rater: str | None = None,
                 seed: int = 0, aligned: bool = True, pad_value: float = 0, split: tuple[str, str] | None = None,
                 transform: Callable[[Item], Any] | None = None, tensors: bool = False,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(store, storage_options=storage_options, transform=transform, tensors=tensors)
        if sampler not in ("uniform", "label"):
            raise InvalidInputError(f"sampler is 'uniform' or 'label', not {sampler!r}")
        if sampler == "label" and not labels:
            raise InvalidInputError("sampler='label' needs labels=True")
        if patch is not None and (len(patch) != 3 or any(int(p) < 1 for p in patch)):
            raise InvalidInputError(f"patch is three positive lengths (z, y, x) or None, not {patch!r}")
        self.patch = None if patch is None else tuple(int(p) for p in patch)
        self.samples_per_volume = 1 if patch is None else int(samples_per_volume)
        self.labels, self.sampler, self.seed, self.aligned = labels, sampler, seed, aligned
        self.pad_value, self.segments, self.epoch = pad_value, None if segments is None else list(segments), 0
        s = self.store
        frame = s.metadata_frame("series")
        kinds = frame["store.kind"].astype(object) if "store.kind" in frame else None
        volumes = [str(i) for i in frame.index if kinds is not None and kinds[i] == "volume"]
        segs = _segmentations(frame, rater) if labels else {}
        if series is None and labels:
            volumes = [v for v in volumes if v in segs]
        self.ids: list[str] = choose(volumes, series, split_members(s, split), "volume")
        missing = [v for v in self.ids if labels and v not in segs]
        if missing:
            raise NotFoundError(f"no segmentation{' of rater ' + repr(rater) if rater else ''} of volume "
                                f"{missing[0]!r} (labels=False to read volumes alone)")
        self.segmentation = {v: segs.get(v, "") for v in self.ids}
        self.licenses, self.attributions = credits(frame, self.ids)
        self.shapes, self.chunks, self.spacing = {}, {}, {}
        for v in self.ids:
            arr = zarr.open_array(s.zstore, path=f"{s.layout.series(v)}/volume", mode="r", zarr_format=3)
            self.shapes[v], self.chunks[v] = tuple(arr.shape), tuple(arr.chunks)
            self.spacing[v] = np.asarray(s.root[s.layout.series(v)].attrs.get("spacing", [np.nan] * 3), np.float64)
        self._arrays: dict[tuple[int, str], zarr.Array] = {}
        self.segment_index = {v: self._segment_index(v) for v in self.ids if self.segmentation[v]}
        self.candidates = {v: self._candidates(v) for v in self.ids} if sampler == "label" else {}

    def _segment_index(self, volume: str) -> list[int | None]:
        """Positions, in the segmentation's ``segment`` axis, of the segments each item carries."""
        ds = self.store.segmentation(self.segmentation[volume])
        labels, codes = [str(x) for x in ds["segment_label"].values], [str(x) for x in ds["segment_code"].values]
        if self.segments is None:
            return list(range(len(labels)))
        return [labels.index(s) if s in labels else codes.index(s) if s in codes else None for s in self.segments]

    def _candidates(self, volume: str) -> np.ndarray:
        """Up to :data:`CANDIDATES` labelled voxels per z-chunk (rows z, y, x), read a chunk at a time."""
        arr = self._array(self.store.layout.segmentation(self.segmentation[volume]), "labels")
        keep = [k for k in self.segment_index[volume] if k is not None]
        if not keep:
            raise NotFoundError(f"segmentation {self.segmentation[volume]!r} has none of the segments {self.segments}")
        rng = np.random.default_rng((self.seed, zlib.crc32(volume.encode())))
        step = arr.chunks[1]
        found: list[np.ndarray] = [np.zeros((0, 3), np.int64)]
        for z0 in range(0, arr.shape[1], step):
            block = np.asarray(arr.oindex[(np.asarray(keep, np.int64), slice(z0, z0 + step), slice(None), slice(None))])
            where = np.argwhere(block.any(axis=0)) if block.size else np.zeros((0, 3), np.int64)
            if len(where) > CANDIDATES:
                where = where[np.sort(rng.choice(len(where), CANDIDATES, replace=False))]
            found.append(where + [z0, 0, 0])
        out = np.concatenate(found)
        if not len(out):
            raise NotFoundError(f"segmentation {self.segmentation[volume]!r} of volume {volume!r} labels no voxel "
                                "(sampler='label' needs some)")
        return out

    def set_epoch(self, epoch: int) -> None:
        """Draw other patch positions (call before each epoch; workers get it with the next iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids) * self.samples_per_volume

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_arrays"] = {}
        return state

    def _array(self, group: str, name: str) -> zarr.Array:
        """The array at ``group/name``, opened once per process (a forked worker opens its own)."""
        key = (os.getpid(), f"{group}/{name}")
        if key not in self._arrays:
            self._arrays[key] = zarr.open_array(self.store.zstore, path=key[1], mode="r", zarr_format=3)
        return self._arrays[key]

    def start(self, index: int) -> tuple[int, int, int]:
        """Where item ``index``'s patch begins (z, y, x); (0, 0, 0) for whole volumes."""
        volume = self.ids[index // self.samples_per_volume]
        if self.patch is None:
            return (0, 0, 0)
        shape, chunks = self.shapes[volume], self.chunks[volume]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        centre = None
        if self.sampler == "label":
            cands = self.candidates[volume]
            centre = cands[rng.integers(len(cands))]
        out = []
        for axis, (n, p, c) in enumerate(zip(shape, self.patch, chunks, strict=True)):
            room = max(n - p, 0)
            start = int(rng.integers(room + 1)) if centre is None else int(np.clip(centre[axis] - p // 2, 0, room))
            if self.aligned and p >= c and room >= c:
                start = min(start // c * c, room // c * c)
            out.append(start)
        return (out[0], out[1], out[2])

    def read_item(self, index: int) -> Item:
        """Item ``index``: its patch of the volume and labels, and where it came from."""
        k = index // self.samples_per_volume
        volume = self.ids[k]
        start = self.start(index)
        shape = self.shapes[volume]
        size = shape if self.patch is None else self.patch
        box = tuple(slice(s, min(s + p, n)) for s, p, n in zip(start, size, shape, strict=True))
        layout = self.store.layout
        data = np.asarray(self._array(layout.series(volume), "volume")[box])
        item: Item = {"id": volume, "series": volume, "segmentation": self.segmentation[volume],
                      "start": np.asarray(start, np.int64), "volume": self._pad(data, size, self.pad_value)}
        if self.labels:
            arr = self._array(layout.segmentation(self.segmentation[volume]), "labels")
            index_of = self.segment_index[volume]
            present = [i for i in index_of if i is not None]
            out = np.zeros((len(index_of), *data.shape), arr.dtype)
            if present:
                rows = [j for j, i in enumerate(index_of) if i is not None]
                out[rows] = np.asarray(arr.oindex[(np.asarray(present, np.int64), *box)])
            item["labels"] = self._pad(out, (len(index_of), *size), 0)
        item["spacing"] = self.spacing[volume]
        item["license"], item["attribution"] = self.licenses[k], self.attributions[k]
        return item

    @staticmethod
    def _pad(data: np.ndarray, shape: Sequence[int], value: float) -> np.ndarray:
        if tuple(data.shape) == tuple(shape):
            return data
        return np.pad(data, [(0, n - m) for m, n in zip(data.shape, shape, strict=True)], constant_values=value)
