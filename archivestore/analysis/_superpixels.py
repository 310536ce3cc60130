"""Compact superpixel maps: which pixels belong to which superpixel.

isicarchive's ``jitfunc.superpixel_map`` returns a dense ``int32`` array of shape
(superpixels, largest superpixel + 1), mostly padding. :class:`SuperpixelMap`
keeps the same information in compressed sparse row (CSR) form: ``offsets``
(``n + 1`` positions) and ``pixel_index`` (every flat pixel index exactly once,
grouped by superpixel, ascending inside each group), so
``pixel_index[offsets[k]:offsets[k + 1]]`` are the pixels of superpixel ``k``,
in the same order as isicarchive's ``map[k, :map[k, -1]]``.

The map is built by a counting sort over *runs*: superpixels are spatially
compact, so a row of an index image consists of a few long runs of one label.
The runs (label, start, length) are found in one vectorised pass, sorted stably
by label (a few hundred thousand runs for a 24-megapixel image), and expanded
into pixel indices with one cumulative sum. Per-superpixel area and centroid
follow from the runs alone; painting values is a ``numpy.repeat`` over runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

__all__ = ["SuperpixelMap", "superpixel_map", "superpixel_stats"]

_BLOCK = 1 << 20
"""Pixels per block where a pass over the pixels would otherwise need a large temporary."""


def _flat_index(index: ArrayLike) -> tuple[np.ndarray, tuple[int, int]]:
    index = np.asarray(index)
    if index.ndim != 2:
        raise ValueError(f"superpixel index image must be 2-D (y, x), got shape {index.shape}")
    if index.dtype.kind not in "ui":
        raise ValueError(f"superpixel index image must be integer, got {index.dtype}")
    if index.dtype.kind == "i" and index.size and int(index.min()) < 0:
        raise ValueError("superpixel index image has negative labels")
    return np.ascontiguousarray(index).reshape(-1), (int(index.shape[0]), int(index.shape[1]))


class SuperpixelMap:
    """Pixels of every superpixel of one index image, in CSR form.

    Build it with :func:`superpixel_map`. Superpixel ``k`` is label ``k`` of the
    index image; labels that do not occur have area 0.

    Attributes
    ----------
    shape : tuple of int
        ``(y, x)`` shape of the index image.
    n : int
        Number of superpixels: largest label + 1.
    offsets : numpy.ndarray
        int64, ``(n + 1,)``: superpixel ``k`` owns ``pixel_index[offsets[k]:offsets[k+1]]``.
    pixel_index : numpy.ndarray
        uint32 (uint64 for images over 2**32 pixels), ``(y * x,)``: flat (C-order)
        pixel indices grouped by superpixel, ascending within a superpixel.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        offsets: NDArray[np.int64],
        pixel_index: np.ndarray,  # uint32 or uint64, chosen at run time (numpy's stubs cannot follow it)
        runs: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    ) -> None:
        self.shape = shape
        self.offsets = offsets
        self.pixel_index = pixel_index
        # (label, start, length) of every run of equal labels within a row.
        self._run_label, self._run_start, self._run_length = runs

    def __repr__(self) -> str:
        return f"<SuperpixelMap {self.n} superpixels over {self.shape[0]}x{self.shape[1]} pixels>"

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the map (offsets, pixel indices and runs)."""
        parts = (self.offsets, self.pixel_index, self._run_label, self._run_start, self._run_length)
        return sum(a.nbytes for a in parts)

    @property
    def area(self) -> np.ndarray:
        """Pixel count of every superpixel, int64 ``(n,)`` (isicarchive's ``szs``)."""
        return np.diff(self.offsets)

    @property
    def centroid(self) -> np.ndarray:
        """Mean ``(y, x)`` pixel coordinates of every superpixel, float64 ``(n, 2)``.

        NaN for labels that do not occur. isicarchive's ``xyc`` is
        ``numpy.trunc(centroid[:, ::-1]).astype(int)`` (it lists x first and truncates).
        """
        width = self.shape[1]
        start, length, label = self._run_start, self._run_length, self._run_label
        y, x0 = np.divmod(start, width)
        lf = length.astype(np.float64)
        sum_y = np.bincount(label, weights=lf * y, minlength=self.n)
        # x0 + (x0 + 1) + ... + (x0 + length - 1), exact in float64 for any real image
        sum_x = np.bincount(label, weights=lf * x0 + lf * (lf - 1) / 2, minlength=self.n)
        area = self.area.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.stack([sum_y / area, sum_x / area], axis=-1)
        out[area == 0] = np.nan
        return out

    def pixels(self, k: int) -> np.ndarray:
        """Flat (C-order) pixel indices of superpixel ``k``, ascending (a view)."""
        k = int(k)
        if not 0 <= k < self.n:
            raise IndexError(f"superpixel {k} out of range 0..{self.n - 1}")
        return self.pixel_index[self.offsets[k] : self.offsets[k + 1]]

    def coords(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(y, x)`` coordinate arrays of the pixels of superpixel ``k``."""
        y, x = np.divmod(self.pixels(k), self.shape[1])
        return y.astype(np.intp), x.astype(np.intp)

    def paint(self, values: ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
        """Paint per-superpixel values onto the pixel grid.

        Parameters
        ----------
        values : array_like, shape (..., n)
            One value per superpixel along the last axis (more may follow; they are
            ignored). Leading axes paint several maps at once.
        out : numpy.ndarray, optional
            Array of shape ``(..., y, x)`` to paint into.

        Returns
        -------
        numpy.ndarray
            ``(..., y, x)``, pixel ``p`` holding ``values[..., label of p]``.
        """
        values = np.asarray(values)
        if values.shape[-1:] < (self.n,) or values.ndim == 0:
            raise ValueError(f"need a value for each of {self.n} superpixels, got shape {values.shape}")
        per_run = np.take(values, self._run_label, axis=-1)
        painted = np.repeat(per_run, self._run_length, axis=-1)
        painted = painted.reshape(values.shape[:-1] + self.shape)
        if out is None:
            return painted
        out[...] = painted
        return out

    def label_image(self) -> np.ndarray:
        """The index image back, ``(y, x)`` (uint16 or uint32 like the store keeps it)."""
        dtype = np.uint16 if self.n - 1 <= np.iinfo(np.uint16).max else np.uint32
        return self.paint(np.arange(self.n, dtype=dtype))

    def mask_area(self, mask: ArrayLike) -> np.ndarray:
        """Pixels of every superpixel inside ``mask`` (nonzero = inside), int64 ``(n,)``.

        This is the store's ``superpixel_mask_area``.
        """
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise ValueError(f"mask shape {mask.shape} differs from superpixel image shape {self.shape}")
        mask = np.ascontiguousarray(mask).reshape(-1)
        counts = np.zeros(self.n, dtype=np.int64)
        # Sum over runs: mask pixels inside each run, via a blocked walk over the runs.
        start, length, label = self._run_start, self._run_length, self._run_label
        bounds = np.searchsorted(start, np.arange(0, mask.size + _BLOCK, _BLOCK))
        for a, b in zip(bounds[:-1], bounds[1:], strict=False):
            if a == b:
                continue
            lo = int(start[a])
            hi = int(start[b - 1] + length[b - 1])
            csum = np.zeros(hi - lo + 1, dtype=np.int64)
            np.cumsum(mask[lo:hi] != 0, out=csum[1:])
            s = start[a:b] - lo
            inside = csum[s + length[a:b]] - csum[s]
            counts += np.bincount(label[a:b], weights=inside, minlength=self.n).astype(np.int64)
        return counts

    def fraction_in(self, mask: ArrayLike) -> np.ndarray:
        """Fraction of every superpixel's pixels inside ``mask``, float64 ``(n,)``.

        isicarchive's ``Segmentation.superpixels_in_mask()``; NaN for labels that
        do not occur.
        """
        area = self.area
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.mask_area(mask) / area
        out[area == 0] = np.nan
        return out

    def lesion_share(self, mask: ArrayLike) -> np.ndarray:
        """Share of the lesion (``mask``) area lying in every superpixel, float64 ``(n,)``.

        isicarchive's ``szp`` (``superpixels_in_mask * szs / lesion area``); sums
        to 1 over superpixels; all NaN for an empty mask.
        """
        inside = self.mask_area(mask)
        total = inside.sum()
        if total == 0:
            return np.full(self.n, np.nan)
        return inside / total


def superpixel_map(index: ArrayLike) -> SuperpixelMap:
    """Map a superpixel index image to the pixels of each superpixel.

    Parameters
    ----------
    index : array_like of int, shape (y, x)
        Superpixel label of every pixel (non-negative), as the store's
        ``superpixels`` variable or :func:`archivestore.imaging.decode_superpixels`.

    Returns
    -------
    SuperpixelMap
        CSR map with ``n = index.max() + 1`` superpixels.

    Notes
    -----
    Cost is one pass over the pixels plus a stable sort of the runs of equal
    labels (a noise-like index image, with runs of one pixel, degrades to a
    stable sort of all pixels: still correct, slower); memory is the ``uint32``
    pixel list (4 bytes a pixel), the runs and a 1-megapixel scratch buffer,
    against isicarchive's ``4 * n * (largest + 1)`` bytes.
    """
    flat, shape = _flat_index(index)
    size = flat.size
    pix_dtype = np.uint32 if size <= np.iinfo(np.uint32).max else np.uint64
    if size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SuperpixelMap(shape, np.zeros(1, np.int64), np.zeros(0, pix_dtype), (empty, empty, empty))

    # Runs of equal labels, broken at every row start so a run lies in one row;
    # found block by block in one small reused buffer.
    width = shape[1]
    block = max(width, _BLOCK // width * width)
    change = np.empty(block, dtype=bool)
    starts = []
    for lo in range(0, size, block):
        hi = min(lo + block, size)
        buf = change[: hi - lo]
        buf[0] = True
        np.not_equal(flat[lo + 1 : hi], flat[lo : hi - 1], out=buf[1:])
        buf[::width] = True
        starts.append(np.flatnonzero(buf) + lo)
    start = np.concatenate(starts)
    del starts, change
    length = np.diff(start, append=size)
    label = flat[start].astype(np.int64)
    n = int(label.max()) + 1

    counts = np.bincount(label, weights=length, minlength=n).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    # Counting sort of the runs by label (stable, so pixels stay ascending), then
    # expand the sorted runs into pixel indices: each run is consecutive pixels, so
    # write the step from the previous pixel (1 inside a run, a jump at a run start)
    # and take one cumulative sum, in modular unsigned arithmetic.
    order = np.argsort(label, kind="stable")
    s_start = start[order]
    s_length = length[order]
    out_pos = np.cumsum(s_length) - s_length
    steps = np.empty(len(order), dtype=np.int64)
    steps[0] = s_start[0]
    steps[1:] = s_start[1:] - (s_start[:-1] + s_length[:-1] - 1)
    pixel_index = np.ones(size, dtype=pix_dtype)
    pixel_index[out_pos] = steps.astype(pix_dtype)  # negative steps wrap modulo 2**bits
    np.cumsum(pixel_index, dtype=pix_dtype, out=pixel_index)
    return SuperpixelMap(shape, offsets, pixel_index, (label, start, length))


def _image_stats(index: ArrayLike | None, mask: ArrayLike | None, n_max: int) -> np.ndarray:
    """``(n_max, 4)`` float64 of area, mask area, centroid y, centroid x for one image."""
    out = np.zeros((n_max, 4), dtype=np.float64)
    out[:, 2:] = np.nan
    if index is None:
        return out
    smap = superpixel_map(np.asarray(index))
    if smap.n > n_max:
        raise ValueError(f"superpixel image has {smap.n} superpixels, more than the {n_max} recorded")
    out[: smap.n, 0] = smap.area
    if mask is not None:
        out[: smap.n, 1] = smap.mask_area(np.asarray(mask))
    out[: smap.n, 2:] = smap.centroid
    return out


def _batch_stats(n_max: int, indexes: list[ArrayLike | None], masks: list[ArrayLike | None]) -> np.ndarray:
    return np.stack([_image_stats(i, m, n_max) for i, m in zip(indexes, masks, strict=False)])


def superpixel_stats(
    store: Any, images: Iterable[str] | xr.Dataset | None = None, *, images_per_task: int = 16
) -> xr.Dataset:
    """Per-superpixel area, lesion-mask area and centroid of many images, with dask.

    Parameters
    ----------
    store
        An archivestore ``Store`` or the path/URL of one (opened read-only).
    images : list of str or xarray.Dataset, optional
        Image ids, or a study Dataset whose ``image`` coordinate lists them;
        default every complete image of the store.
    images_per_task : int
        Images computed in one dask task.

    Returns
    -------
    xarray.Dataset
        Lazy, over (image, superpixel), superpixel = 0 .. largest count - 1:
        ``superpixel_area`` and ``superpixel_mask_area`` (uint32, as the study
        layout keeps them; 0 where a superpixel does not exist), ``has_mask``
        (image), ``n_superpixels`` (image), ``superpixel_centroid`` (image,
        superpixel, axis = y, x; NaN where absent), ``superpixel_fraction``
        (share of the superpixel inside the mask, isicarchive's
        ``superpixels_in_mask``) and ``superpixel_lesion_share`` (share of the
        lesion in the superpixel, isicarchive's ``szp``), NaN where undefined.
    """
    import xarray as xr

    if isinstance(store, (str, bytes)) or hasattr(store, "__fspath__"):
        from archivestore.store import open_store

        store = open_store(store, mode="r")
    if images is None:
        ids = list(store.image_ids())
    elif isinstance(images, xr.Dataset):
        ids = [str(v) for v in images["image"].values]
    else:
        ids = [str(v) for v in images]

    sources, counts = _image_arrays(store, ids)
    stats, has_mask = _stats_blocks(sources, max(counts, default=0), images_per_task)

    area = stats[..., 0].astype(np.uint32)
    mask_area = stats[..., 1].astype(np.uint32)
    ds = xr.Dataset(
        {
            "superpixel_area": (("image", "superpixel"), area,
                                {"long_name": "pixels in each superpixel", "units": "pixels"}),
            "superpixel_mask_area": (("image", "superpixel"), mask_area,
                                     {"long_name": "pixels of each superpixel inside the ground_truth lesion mask",
                                      "units": "pixels"}),
            "has_mask": (("image",), np.array(has_mask, dtype=np.bool_)),
            "n_superpixels": (("image",), np.array(counts, dtype=np.int64)),
            "superpixel_centroid": (("image", "superpixel", "axis"), stats[..., 2:],
                                    {"long_name": "mean pixel coordinates of each superpixel"}),
        },
        coords={"image": np.array(ids, dtype=str), "axis": ["y", "x"]},
    )
    return _with_shares(ds)


def _image_arrays(store: Any, ids: list[str]) -> tuple[list[tuple[Any, Any]], list[int]]:
    """Each image's lazy superpixel index and mask (None where absent), and its superpixel count."""
    sources, counts = [], []
    for image_id in ids:
        ds = store.image(image_id)
        index = ds["superpixels"].data if "superpixels" in ds else None
        mask = ds["mask"].data if "mask" in ds else None
        n = (store.image_state(image_id) or {}).get("n_superpixels") if hasattr(store, "image_state") else None
        if n is None and index is not None:
            n = int(ds["superpixels"].max()) + 1
        counts.append(int(n or 0))
        sources.append((index, mask))
    return sources, counts


def _stats_blocks(sources: list[tuple[Any, Any]], n_max: int, images_per_task: int) -> tuple[da.Array, list[bool]]:
    """(image, superpixel, 4) area, mask area, centroid y, x: one dask task per block of images."""
    import dask
    import dask.array as da

    blocks: list[da.Array] = []
    has_mask: list[bool] = []
    for lo in range(0, len(sources), images_per_task):
        part = sources[lo : lo + images_per_task]
        task = dask.delayed(_batch_stats, pure=True)(n_max, [p[0] for p in part], [p[1] for p in part])
        blocks.append(da.from_delayed(task, shape=(len(part), n_max, 4), dtype=np.float64))
        has_mask.extend(p[1] is not None for p in part)
    stats = da.concatenate(blocks) if blocks else da.zeros((0, n_max, 4), chunks=(1, n_max, 4))
    return stats, has_mask


def _with_shares(ds: xr.Dataset) -> xr.Dataset:
    """Add the share of each superpixel inside the mask, and of the lesion in each superpixel."""
    fraction = ds["superpixel_mask_area"] / ds["superpixel_area"].where(ds["superpixel_area"] > 0)
    ds["superpixel_fraction"] = fraction.where(ds["has_mask"])
    total = ds["superpixel_mask_area"].sum("superpixel")
    share = ds["superpixel_mask_area"] / total.where(total > 0)
    ds["superpixel_lesion_share"] = share.where(ds["has_mask"] & (ds["superpixel_area"] > 0))
    ds["superpixel_fraction"].attrs = {"long_name": "share of each superpixel's pixels inside the lesion mask"}
    ds["superpixel_lesion_share"].attrs = {"long_name": "share of the lesion's pixels lying in each superpixel"}
    return ds
