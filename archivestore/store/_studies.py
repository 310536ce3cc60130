"""Writing ``studies/<study>``: per-superpixel annotations of images × features × raters.

Only the ingest's main thread writes a study, one batch of rows at a time, so
read-modify-write of a chunk never races. Chunks (:data:`~archivestore.layout.STUDY_CHUNKS`)
follow how overlap reads a study: a block of images with all their features, raters and
superpixels; a study keeps the chunks it was created with, so older studies (16, 8, 8, 2048)
are read and appended as they are. Arrays grow along any dimension (new images,
features, raters, or an image with more superpixels); the coordinates are written
last, so a reader never sees a label whose values are not written yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from archivestore.layout import STUDY_CHUNKS, compressors, study_compressors
from archivestore.store._groups import array

__all__ = ["StudyArrays", "StudyRow", "StudyRows", "annotated_pairs", "append_study", "read_study", "repair_study"]

IMAGE_CHUNK, FEATURE_CHUNK, RATER_CHUNK, SUPERPIXEL_CHUNK = (
    STUDY_CHUNKS[d] for d in ("image", "feature", "rater", "superpixel"))
_DATA = {
    "annotation": (("image", "feature", "rater", "superpixel"), "float32", np.nan,
                   (IMAGE_CHUNK, FEATURE_CHUNK, RATER_CHUNK, SUPERPIXEL_CHUNK)),
    "superpixel_area": (("image", "superpixel"), "uint32", 0, (IMAGE_CHUNK, SUPERPIXEL_CHUNK)),
    "superpixel_mask_area": (("image", "superpixel"), "uint32", 0, (IMAGE_CHUNK, SUPERPIXEL_CHUNK)),
    "has_mask": (("image",), "bool", False, (1024,)),
    "annotated": (("image", "rater"), "bool", False, (1024, 64)),
}
_ATTRS: dict[str, dict[str, Any]] = {
    "annotation": {"long_name": "per-superpixel feature value", "flag_values": [0.0, 0.5, 1.0],
                   "flag_meanings": "absent possible definite"},
    "superpixel_area": {"long_name": "pixels in each superpixel", "units": "pixels"},
    "superpixel_mask_area": {"long_name": "pixels of each superpixel inside the ground_truth lesion mask",
                             "units": "pixels"},
    "has_mask": {"long_name": "whether superpixel_mask_area is known (the image has a lesion mask)"},
    "annotated": {"long_name": "whether the rater's values for the image are stored (a rerun skips them)"},
}


@dataclass
class StudyRow:
    """One rater's values for one image, with the image's superpixel areas."""

    image: str
    rater: str
    values: dict[str, np.ndarray]  # feature -> float32 per superpixel
    area: np.ndarray               # uint32 per superpixel
    mask_area: np.ndarray | None   # uint32 per superpixel, None without a mask


@dataclass(frozen=True)
class StudyRows:
    """A study's annotations read a block of images at a time: ``rows[lo:hi]`` is numpy.

    Reading block by block as the blocks are computed holds one block per thread in memory
    instead of the whole study; :attr:`block` (the array's image chunk) reads every chunk once.
    """

    array: zarr.Array
    shape: tuple[int, int, int, int]  # (image, feature, rater, superpixel), cut to the coordinates

    @property
    def block(self) -> int:
        """Images per chunk of the array."""
        return int(self.array.chunks[0])

    def __getitem__(self, images: slice) -> np.ndarray:
        lo, hi, _ = images.indices(self.shape[0])
        return np.asarray(self.array[lo:hi, : self.shape[1], : self.shape[2]])


@dataclass
class StudyArrays:
    """A study read straight through zarr (no xarray, no dask).

    The arrays are those of ``studies/<study>`` (see the README's store layout), cut to the
    lengths of the coordinates ``image``, ``feature`` and ``rater``.
    """

    image: list[str]
    feature: list[str]
    rater: list[str]
    annotation: StudyRows            # (image, feature, rater, superpixel) float32, read by blocks of images
    superpixel_area: np.ndarray      # (image, superpixel) uint32
    superpixel_mask_area: np.ndarray  # (image, superpixel) uint32
    has_mask: np.ndarray             # (image,) bool


def read_study(group: zarr.Group, max_bytes: int | None = None) -> StudyArrays | None:
    """A study group: its coordinates and small arrays as numpy, its annotations as :class:`StudyRows`.

    The coordinates are written last by an append, so cutting the arrays to their lengths gives
    the rows of the last complete append even while another one is under way. None, reading
    nothing more, when the annotations would take more than ``max_bytes``.
    """
    annotation = array(group, "annotation")
    if max_bytes is not None and annotation.nbytes > max_bytes:
        return None
    images, features, raters = (_labels(group, n) for n in ("image", "feature", "rater"))
    n_img, n_feat, n_rat = len(images), len(features), len(raters)
    n_sp = int(annotation.shape[-1])
    area, mask_area = (np.asarray(array(group, n)[:n_img, :n_sp]) for n in ("superpixel_area", "superpixel_mask_area"))
    has_mask = np.asarray(array(group, "has_mask")[:n_img], dtype=bool)
    rows = StudyRows(annotation, (n_img, n_feat, n_rat, n_sp))
    return StudyArrays(images, features, raters, rows, area, mask_area, has_mask)


def _ensure(group: zarr.Group) -> None:
    for name in ("image", "feature", "rater"):
        if name not in group:
            group.create_array(name, shape=(0,), chunks=(4096,), dtype=str, fill_value="",
                               dimension_names=(name,))
    for name, (dims, dtype, fill, chunks) in _DATA.items():
        if name not in group:
            codecs = study_compressors() if name == "annotation" else compressors()
            group.create_array(name, shape=(0,) * len(dims), chunks=chunks, dtype=dtype, fill_value=fill,
                               compressors=codecs, dimension_names=dims, attributes=_ATTRS[name])


def annotated_pairs(group: zarr.Group | None) -> set[tuple[str, str]]:
    """The (image, rater) pairs whose values a study group already holds."""
    if group is None or "annotated" not in group:
        return set()
    images, raters = _labels(group, "image"), _labels(group, "rater")
    done = np.asarray(array(group, "annotated")[: len(images), : len(raters)])
    return {(images[i], raters[r]) for i, r in zip(*np.nonzero(done), strict=True)}


def _labels(group: zarr.Group, name: str) -> list[str]:
    return [str(v) for v in np.asarray(array(group, name)[:])]


def repair_study(group: zarr.Group) -> None:
    """Cut data arrays back to the coordinates' lengths after an interrupted append."""
    if "image" not in group:
        return
    sizes = {d: array(group, d).shape[0] for d in ("image", "feature", "rater")}
    sizes["superpixel"] = array(group, "superpixel_area").shape[1] if "superpixel_area" in group else 0
    for name, (dims, *_rest) in _DATA.items():
        if name in group:
            want = tuple(sizes[d] for d in dims)
            if array(group, name).shape != want:
                array(group, name).resize(want)


def append_study(group: zarr.Group, rows: list[StudyRow]) -> None:
    """Write ``rows`` into a study group, growing it as needed (idempotent per row).

    The caller holds the tables lease: no other writer touches the group meanwhile.
    """
    if not rows:
        return
    _ensure(group)
    repair_study(group)
    images, features, raters = (_labels(group, n) for n in ("image", "feature", "rater"))
    n_img, n_feat, n_rat = len(images), len(features), len(raters)
    index = {n: {v: i for i, v in enumerate(lst)} for n, lst in
             (("image", images), ("feature", features), ("rater", raters))}
    for row in rows:
        for key, label in (("image", row.image), ("rater", row.rater)):
            if label not in index[key]:
                lst = images if key == "image" else raters
                index[key][label] = len(lst)
                lst.append(label)
        for f in row.values:
            if f not in index["feature"]:
                index["feature"][f] = len(features)
                features.append(f)
    n_sp = max([array(group, "superpixel_area").shape[1]] + [len(r.area) for r in rows])
    shape = {"image": len(images), "feature": len(features), "rater": len(raters), "superpixel": n_sp}
    for name, (dims, *_rest) in _DATA.items():
        array(group, name).resize(tuple(shape[d] for d in dims))

    ann, area, mask_area, has_mask = (array(group, n) for n in ("annotation", "superpixel_area",
                                                         "superpixel_mask_area", "has_mask"))
    step = ann.chunks[0]  # a study keeps the chunks it was created with (older ones: 16 images)
    by_chunk: dict[int, list[StudyRow]] = defaultdict(list)
    for row in rows:
        by_chunk[index["image"][row.image] // step].append(row)
    for c, chunk_rows in sorted(by_chunk.items()):
        lo, hi = c * step, min((c + 1) * step, shape["image"])
        block = np.asarray(ann[lo:hi])
        area_block, mask_block, has_block = (np.asarray(a[lo:hi]) for a in (area, mask_area, has_mask))
        for row in chunk_rows:
            i = index["image"][row.image] - lo
            r = index["rater"][row.rater]
            n = len(row.area)
            for f, values in row.values.items():
                block[i, index["feature"][f], r, :] = np.nan
                block[i, index["feature"][f], r, :n] = values
            area_block[i, :] = 0
            area_block[i, :n] = row.area
            mask_block[i, :] = 0
            if row.mask_area is not None:
                mask_block[i, :n] = row.mask_area
            has_block[i] = row.mask_area is not None
        ann[lo:hi] = block
        area[lo:hi], mask_area[lo:hi], has_mask[lo:hi] = area_block, mask_block, has_block
    done = array(group, "annotated")
    for row in rows:
        done[index["image"][row.image], index["rater"][row.rater]] = True

    for name, labels, old in (("feature", features, n_feat), ("rater", raters, n_rat), ("image", images, n_img)):
        if len(labels) > old:
            array(group, name).resize((len(labels),))
            array(group, name)[old:] = np.array(labels[old:], dtype=str)
