"""``ImageDataset``: one item per image — its arrays (image, masks, superpixels) and targets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from archivestore.errors import InvalidInputError
from archivestore.layout import GROUND_TRUTH
from archivestore.ml._base import Item, StoreDataset, choose, split_members
from archivestore.ml._fields import Targets, credits
from archivestore.ml._read import read_groups

if TYPE_CHECKING:
    from archivestore.store import Store

__all__ = ["IMAGE_ARRAYS", "ImageDataset"]

IMAGE_ARRAYS = ("image", "superpixels", "mask", "attribute")
"""The arrays an item may carry: ``mask`` and ``attribute`` are the chosen rater's."""


class ImageDataset(StoreDataset):
    """One item per image of a store: a map-style dataset for ``torch.utils.data.DataLoader``.

    Each item is a dict: ``id``; the chosen ``arrays`` as numpy (``image`` (y, x, channel) uint8,
    ``mask`` (y, x) 0/1, ``superpixels`` (y, x), ``attribute`` (feature, y, x) 0/1); one entry per
    target field; ``license`` and ``attribution`` (``""`` where the archive gave none). Arrays are
    read straight from zarr, the groups' documents and then all their chunks in two rounds.

    Parameters
    ----------
    store
        A :class:`~archivestore.Store`, or a path or fsspec URL (``storage_options`` for it).
    ids
        The images, in this order (default: every complete image, in table order).
    arrays
        Which arrays each item carries, from :data:`IMAGE_ARRAYS`.
    targets
        Metadata fields (dotted paths of the ``metadata`` table: ``ground_truth.melanoma``,
        ``metadata.clinical.diagnosis_1``): numbers as float64 (NaN when missing), other values as
        class numbers (-1 when missing) with the encoding in :attr:`classes`.
    rater
        Whose ``mask``/``attribute``: ``ground_truth`` (in the image group) or another rater's
        (``masks/<rater>/<id>``).
    split
        ``(name, part)``: only the images the stored split ``splits/<name>`` put in ``part``
        (see :func:`archivestore.ml.make_split`).
    transform, tensors, storage_options
        See :class:`~archivestore.ml.StoreDataset`.

    Examples
    --------
    >>> ds = ImageDataset("isic.zarr", targets=["ground_truth.melanoma"], split=("v1", "train"))  # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)                    # doctest: +SKIP
    """

    def __init__(self, store: Store | str | os.PathLike[str], ids: Sequence[str] | None = None, *,
                 arrays: Sequence[str] = ("image", "mask"), targets: Sequence[str] = (),
                 rater: str = GROUND_TRUTH, split: tuple[str, str] | None = None,
                 transform: Callable[[Item], Any] | None = None, tensors: bool = False,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(store, storage_options=storage_options, transform=transform, tensors=tensors)
        unknown = [a for a in arrays if a not in IMAGE_ARRAYS]
        if unknown or not arrays:
            raise InvalidInputError(f"arrays are some of {', '.join(IMAGE_ARRAYS)}, not {list(arrays)!r}")
        self.arrays = tuple(arrays)
        self.rater = rater
        s = self.store
        if rater != GROUND_TRUTH and rater not in s.mask_raters():
            raise InvalidInputError(f"no masks of rater {rater!r} in the store; raters: "
                                    f"{', '.join([GROUND_TRUTH, *s.mask_raters()])}")
        self.ids: list[str] = choose(s.image_ids(), ids, split_members(s, split), "image")
        frame = s.metadata_frame()
        self.licenses, self.attributions = credits(frame, self.ids)
        self.targets = Targets.of(frame, self.ids, list(targets))

    @property
    def classes(self) -> dict[str, list[str]]:
        """The encoding of each class target: value ``k`` of ``item[field]`` is ``classes[field][k]``."""
        return self.targets.classes

    def __len__(self) -> int:
        return len(self.ids)

    def _groups(self, image_id: str) -> dict[str, list[str]]:
        layout = self.store.layout
        wanted: dict[str, list[str]] = {}
        for name in self.arrays:
            own = name in ("mask", "attribute") and self.rater != GROUND_TRUTH
            path = layout.masks(image_id, self.rater) if own else layout.image(image_id)
            wanted.setdefault(path, []).append(name)
        return wanted

    def read_item(self, index: int) -> Item:
        """Item ``index``: its arrays as numpy, its targets, licence and attribution."""
        image_id = self.ids[index]
        wanted = self._groups(image_id)
        arrays = read_groups(self.store, wanted)
        item: Item = {"id": image_id}
        for path, names in wanted.items():
            for name in names:
                item[name] = arrays[(path, name)]
        item.update(self.targets.row(index))
        item["license"] = self.licenses[index]
        item["attribution"] = self.attributions[index]
        return item
