"""The Image Data Resource (IDR, ``https://idr.openmicroscopy.org``) via OMERO.web, as a source of microscopy images.

>>> idr = Idr()                                                                  # doctest: +SKIP
>>> idr.screens().head()                                                         # doctest: +SKIP
>>> idr.annotations("well", 590000)                                              # doctest: +SKIP
>>> source = IdrSource(idr, plate=2551, zarr_url=IDR_ZARR_URL, storage_options=IDR_STORAGE_OPTIONS,
...                    fallback_storage_options=IDR_FALLBACK_STORAGE_OPTIONS)     # doctest: +SKIP
>>> archivestore.ingest(store, source)                                           # doctest: +SKIP

**Queries**: :class:`Idr` (:mod:`archivestore.sources.idr._client`).

**The source** (:class:`IdrSource`) yields one :class:`~archivestore.sources.ArrayItem` per image and
one :class:`~archivestore.sources.PlateItem` per plate. An image's ``metadata`` is its JSON API record
(for plate images the record the plate's wells list) plus ``map`` (its map annotations — a key given
once maps to its value, a repeated key to the list of its values; for plate images merged with its
**well's** annotations, where IDR keeps gene, siRNA and phenotype), ``study``, ``project`` and
``dataset`` (``{"id", "name"}``) for images of projects, and ``screen``, ``plate`` (the plate id, as the
group ``plates/<id>`` names it), ``plate_name``, ``well`` (``B3``), ``well_id``, ``row``, ``column``
(labels, as the plate grid gives them), ``field`` (0-based) and ``well_sample`` for images of screens.
Pixels: see :class:`~archivestore.sources.idr._items.ImageLoader`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from archivestore.errors import BadItem, InvalidInputError
from archivestore.sources._base import ArrayItem, PlateItem
from archivestore.sources.idr._client import Idr, as_id
from archivestore.sources.idr._items import ImageLoader, ZarrUrls, image_item
from archivestore.sources.idr._walk import Walker

__all__ = ["IdrSource", "item_from_origin"]


class IdrSource:
    """IDR images (and plates) as a source of :class:`~archivestore.sources.ArrayItem` and
    :class:`~archivestore.sources.PlateItem` (see the module docstring for their metadata).

    Parameters
    ----------
    idr
        An :class:`Idr` client.
    project, dataset, screen, plate
        A container: every image in it (a screen: every plate, and each plate's images and grid).
    images
        Image ids: these images (one IDR does not have is a problem, the others go on).
    zarr_url
        Template of an image's OME-Zarr URL (e.g. :data:`IDR_ZARR_URL`): raw pixels are read from there;
        see :class:`~archivestore.sources.idr._items.ZarrUrls`. An image without an OME-Zarr is a
        problem of that item (``no OME-Zarr at <URLs tried>``), never silently rendered planes.
        Without ``zarr_url``, give ``rendered`` or ``thumbnails``.
    plate_zarr_url
        Template of a plate's OME-Zarr URL (default: ``zarr_url`` with ``{plate_id}`` for ``{image_id}``).
    rendered
        Take OMERO.web's rendered 8-bit planes (marked ``rendered``), whether or not an OME-Zarr exists.
    thumbnails
        Take each image's thumbnail (the default rendering, RGB, scaled; marked ``rendered``): a quick preview.
    storage_options
        fsspec options for the OME-Zarr URLs (e.g. :data:`IDR_STORAGE_OPTIONS`).
    fallback_storage_options
        Other fsspec options (e.g. :data:`IDR_FALLBACK_STORAGE_OPTIONS`, IDR's old host) under which an
        image's URL is tried, in order, when ``storage_options`` finds nothing.
    level
        OME-Zarr resolution level (0: full resolution).

    Notes
    -----
    Listing reads records and annotations (a few requests per hundred images), never pixels; the
    source pickles. Several containers may be given; an image is yielded once.
    """

    def __init__(self, idr: Idr, *, project: int | None = None, dataset: int | None = None,
                 screen: int | None = None, plate: int | None = None, images: Sequence[int] | None = None,
                 zarr_url: str | None = None, plate_zarr_url: str | None = None, rendered: bool = False,
                 thumbnails: bool = False, storage_options: dict[str, Any] | None = None, level: int = 0,
                 fallback_storage_options: Sequence[dict[str, Any]] = ()) -> None:
        self.containers = [(kind, as_id(value, kind)) for kind, value in
                           (("project", project), ("dataset", dataset), ("screen", screen), ("plate", plate))
                           if value is not None]
        self.images = [as_id(i, "image") for i in dict.fromkeys(images or ())]
        if not (self.containers or self.images):
            raise InvalidInputError("give a project, dataset, screen, plate or image ids")
        if not (zarr_url or rendered or thumbnails):
            raise InvalidInputError("give zarr_url (IDR's own: IDR_ZARR_URL with IDR_STORAGE_OPTIONS; --zarr-url idr) "
                                    "for raw pixels, or rendered=True (--rendered) for OMERO.web's 8-bit rendered "
                                    "planes")
        self.idr = idr
        self.urls = ZarrUrls(zarr_url, plate_zarr_url or "") if zarr_url else None
        self.rendered, self.thumbnails = bool(rendered), bool(thumbnails)
        self.storage_options = dict(storage_options or {}) or None
        self.fallback_options = tuple(dict(o) for o in fallback_storage_options)
        self.level = int(level)
        self.problems: list[BadItem] = []

    def __iter__(self) -> Iterator[ArrayItem | PlateItem]:
        self.problems = []
        seen: set[tuple[str, str]] = set()
        for item in self._items():
            key = ("plate" if isinstance(item, PlateItem) else "image", item.id)
            if key not in seen:
                seen.add(key)
                yield item

    def _items(self) -> Iterator[ArrayItem | PlateItem]:
        walker = Walker(self)
        for kind, oid in self.containers:
            yield from walker.container(kind, oid)
        for image in self.images:
            yield from walker.image(image)

    def loader(self, image: int, zarr_url: str | None, size: tuple[int, int] | None) -> ImageLoader:
        """The pixel loader of one image with this source's options."""
        return ImageLoader(self.idr, image, zarr_url, size, self.rendered, self.thumbnails,
                           self.storage_options, self.level, self.fallback_options)

    def problem(self, item: str, where: str, reason: str) -> None:
        """Record an item that cannot be yielded."""
        self.problems.append(BadItem(item, where, reason))



def item_from_origin(item_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> ArrayItem:
    """The item of one IDR image loaded again from what an ingest recorded (for ``verify --repair``)."""
    size = origin.get("size")
    loader = ImageLoader(Idr(origin["base_url"]), int(origin.get("image", item_id)), origin.get("zarr_url"),
                         (int(size[0]), int(size[1])) if size else None, bool(origin.get("rendered")),
                         bool(origin.get("thumbnails")), origin.get("storage_options") or None,
                         int(origin.get("level") or 0), tuple(origin.get("fallback_options") or ()))
    return image_item(loader, metadata)
