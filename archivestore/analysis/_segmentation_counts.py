"""The counting kernel of the segmentation overlap: exact voxel counts of every rater pair, per series.

Rules (binarising, measures, NaN) are those of :mod:`archivestore.analysis._segmentations`. One
series is a dask graph: :func:`_block_counts` once per z-chunk of its label arrays (all raters,
all segments of the chunk), then :func:`_series_measures` once. Counts are integers summed in
int64, so Dice and Jaccard are exact quotients of exact counts.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import dask.array as da
import numpy as np

from archivestore.errors import InvalidInputError

__all__ = ["series_measures"]


def _cut(dtype: np.dtype, threshold: float) -> Any:
    """The value ``c`` of ``dtype`` with ``x >= c`` iff ``x >= threshold`` (None: never)."""
    if dtype.kind == "f":
        c = dtype.type(threshold)
        if float(c) < threshold:
            c = np.nextafter(c, dtype.type(np.inf))
        return c
    if dtype.kind in "biu":
        low, high = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
        c = max(math.ceil(threshold), low)
        return None if c > high else dtype.type(c)
    raise InvalidInputError(f"labels of dtype {dtype} cannot be binarised")


_PIECE = 1 << 20
"""Voxels per pass of the counting kernel: bounds its buffers (1 MB per rater) whatever the chunk size.
Smaller pieces (kept in the CPU cache between passes) measured slower: Python overhead outweighed it."""


def _indicator(piece: np.ndarray, cut: Any, buffer: np.ndarray) -> np.ndarray:
    """uint8, nonzero exactly where ``piece >= cut``: the labels themselves when that means nonzero."""
    if cut is None:
        buffer.fill(False)
    elif piece.dtype.kind in "ub" and cut == 1:  # unsigned (BINARY 0/1): x >= 1 iff x != 0, no pass needed
        return piece.view(np.uint8)
    else:
        np.greater_equal(piece, cut, out=buffer)
    return buffer.view(np.uint8)


def _block_counts(*blocks: list[Any], index: np.ndarray, cuts: tuple[Any, ...]) -> np.ndarray:
    """Voxel counts of one z-chunk: ``out[0, k, r, o]`` = |A_r ∩ A_o| of key k (the size where r == o).

    ``blocks[r]`` are rater r's label chunks as dask's nested lists (segment chunks, then one y and
    one x chunk). The planes of one key are read piece by piece (:data:`_PIECE` voxels); within a
    piece each mask is a uint8 array nonzero inside the segment (:func:`_indicator`), and an
    intersection is the count of nonzero ``minimum``: exact integers for any stored value.
    """
    planes = [[plane.reshape(-1) for chunk in nested for plane in chunk[0][0]] for nested in blocks]
    n_keys, n_raters = index.shape
    out = np.zeros((1, n_keys, n_raters, n_raters), dtype=np.int64)
    size = next((p[0].size for p in planes if p), 0)
    buffers = [np.empty(min(size, _PIECE), dtype=bool) for _ in range(n_raters)]
    both = np.empty(min(size, _PIECE), dtype=np.uint8)
    for k in range(n_keys):
        have = [r for r in range(n_raters) if index[k, r] >= 0]
        counts = out[0, k]
        for start in range(0, size, _PIECE):
            stop = min(start + _PIECE, size)
            n = stop - start
            masks = [(r, _indicator(planes[r][index[k, r]][start:stop], cuts[r], buffers[r][:n])) for r in have]
            for r, mask in masks:
                counts[r, r] += np.count_nonzero(mask)
            for (r, a), (o, b) in combinations(masks, 2):
                counts[r, o] += np.count_nonzero(np.minimum(a, b, out=both[:n]))
    upper = np.triu(out[0], 1)
    out[0] += np.swapaxes(upper, -1, -2)
    return out


def _series_measures(per_chunk: np.ndarray, *, keys: np.ndarray, raters: np.ndarray, present: np.ndarray,
                     shape: tuple[int, int, int], voxel_ml: float) -> np.ndarray:
    """``(1, 3, key, rater, other)``: Dice, Jaccard and volume (ml, repeated along ``other``) of one series.

    ``per_chunk`` holds the z-chunks' counts of :func:`_block_counts`; the result is on the whole
    result's (key, rater, other) grid, NaN where undefined (rule 6).
    """
    counts = np.full(shape, np.nan)
    defined = present[:, :, None] & present[:, None, :]
    counts[np.ix_(keys, raters, raters)] = np.where(defined, per_chunk.sum(axis=0), np.nan)
    size = np.diagonal(counts, axis1=-2, axis2=-1)
    union = size[:, :, None] + size[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2.0 * counts / union
        jaccard = counts / (union - counts)
    diagonal = np.eye(shape[1], dtype=bool)
    dice[:, diagonal] = jaccard[:, diagonal] = np.nan
    volume = np.broadcast_to((size * voxel_ml)[:, :, None], shape)
    return np.stack([dice, jaccard, volume])[None]


def series_measures(arrays: Sequence[da.Array], index: np.ndarray, threshold: float, *, keys: Sequence[int],
                    raters: Sequence[int], shape: tuple[int, int], voxel_ml: float) -> da.Array:
    """Dice, Jaccard and volumes of one series on the result's grid, lazily.

    Parameters
    ----------
    arrays : sequence of dask.array.Array
        Each rater's labels (segment, z, y, x), one chunk along y and x, the same grid.
    index : ndarray (key, rater) of int
        Position of each of the series' keys in each rater's ``segment`` axis; -1 where absent.
    threshold : float
        Binarising: ``value >= threshold``, exactly.
    keys, raters : sequence of int
        Where the series' keys and raters sit on the result's ``segment`` and ``rater`` axes.
    shape : (int, int)
        Lengths of the result's ``segment`` and ``rater`` axes.
    voxel_ml : float
        Volume of one voxel in ml.

    Returns
    -------
    dask.array.Array
        ``(1, 3, segment, rater, other)`` float64: Dice, Jaccard, and ``volume_ml`` of ``rater``
        repeated along ``other``; NaN where undefined. One task per z-chunk, and one.
    """
    n_keys, n_raters = index.shape
    cuts = tuple(_cut(a.dtype, threshold) for a in arrays)
    args: list[Any] = []
    z_chunks = arrays[0].chunks[1]
    for r, array in enumerate(arrays):  # aligned here: blockwise's own check warns of s0 x s1 "chunks"
        args += [array.rechunk({1: z_chunks}), (f"s{r}", "z", "y", "x")]
    token = uuid.uuid4().hex  # named, not tokenized: hashing the arguments costs more than the graph
    per_chunk = da.blockwise(
        _block_counts, ("z", "k", "r", "o"), *args, name=f"segmentation-counts-{token}",
        new_axes={"k": n_keys, "r": n_raters, "o": n_raters}, adjust_chunks={"z": 1}, concatenate=False,
        align_arrays=False, dtype=np.int64, meta=np.empty((0, 0, 0, 0), dtype=np.int64), index=index, cuts=cuts,
    )
    grid = (shape[0], shape[1], shape[1])
    return da.blockwise(
        _series_measures, ("s", "m", "K", "R", "O"), per_chunk, ("z", "k", "r", "o"),
        name=f"segmentation-measures-{token}",
        new_axes={"s": 1, "m": 3, "K": grid[0], "R": grid[1], "O": grid[2]}, concatenate=True,
        dtype=np.float64, meta=np.empty((0,) * 5, dtype=np.float64),
        keys=np.asarray(keys, dtype=np.int64), raters=np.asarray(raters, dtype=np.int64),
        present=index >= 0, shape=grid, voxel_ml=voxel_ml,
    )
