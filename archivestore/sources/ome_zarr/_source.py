"""OME-Zarr (OME-NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) as a source: images, their labels, and HCS plates.

>>> image = read_ome_zarr("s3://bucket/cells.zarr", storage_options={"anon": True})   # doctest: +SKIP
>>> image.axes, image.data.shape, image.units["x"], list(image.labels)                 # doctest: +SKIP
(('channel', 'z', 'y', 'x'), (2, 5, 64, 48), 'micrometer', ['nuclei'])
>>> archivestore.ingest(store, OmeZarrSource(["cells.zarr", "plate.zarr"]))           # doctest: +SKIP

What an image becomes (:class:`~archivestore.sources.ArrayImage`): the raw values of one
resolution level (0, the full one, by default) with archivestore's axes (``t``, ``channel``,
``z``, ``y``, ``x``; NGFF's ``c`` is ``channel``), each axis' physical coordinates from the
level's scale and translation with the axis' unit (``micrometer``, ``second``), OMERO's channel
labels, colours and windows in ``channels``, and every label image of ``labels/`` as an integer
array over the image's axes without ``channel``. The NGFF version is detected: 0.4 in a Zarr v2
group, 0.5 in a Zarr v3 group; the metadata is validated with ome-zarr-models. A group that is
not OME-Zarr, an unknown version, invalid metadata or a ``multiscales`` entry pointing at a
missing array is an :class:`~archivestore.errors.InvalidInputError` naming the URL; a flaw in the
transitional ``omero`` block (rendering settings) is only reported, in ``attrs["warnings"]``. A
bioformats2raw container is read as its first series (``0``). Two leniencies for real files:
ome-zarr-py 0.18 writes a 0.5 ``labels`` group without ``version`` (read as its image's version),
and its default multiscales name ``image`` names no image.

:class:`OmeZarrSource` yields, per URL, an :class:`~archivestore.sources.ArrayItem` for an image
(id: the multiscales ``name``, unless it is missing or ome-zarr-py's placeholder ``image``; then
the URL's last path part without ``.zarr``), or for an HCS plate a
:class:`~archivestore.sources.PlateItem` (id: the plate's ``name``, else the last path part)
and an ArrayItem per field image, with id ``<plate>_<row><column>_<field>`` (``plate1_B03_0``;
``field`` is the image's index in its well) and ``plate``, ``well``, ``row``, ``column``,
``field`` in its metadata. Listing reads metadata only (an image's, validated with its arrays'
metadata, so a bad image is a listing problem; a plate's and each well's); pixels are read when
the ingest calls an item's ``load``. Needs ``pip install 'archivestore[ome]'``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from archivestore._secrets import redact
from archivestore.errors import BadItem, InvalidInputError
from archivestore.sources._base import ArrayImage, ArrayItem, PlateItem, validate_id
from archivestore.sources.ome_zarr._ngff import EXTRA_HINT, Ngff, join, open_ngff
from archivestore.sources.ome_zarr._ngff_read import check_image, read_image, read_plate

__all__ = ["EXTRA_HINT", "OmeZarrSource", "item_from_origin", "read_ome_zarr", "read_ome_zarr_image"]

PLACEHOLDER_NAMES = frozenset({"", "image"})
"""Multiscales names that name no image (ome-zarr-py writes ``image`` unless told otherwise)."""

_SECRET_OPTION = re.compile(r"(?i)key|secret|token|password|passwd|credential|session|auth|profile")


def _image_group(ngff: Ngff) -> Ngff:
    """The image group of ``ngff``: itself, or a bioformats2raw container's first series."""
    kind = ngff.kind()
    if kind == "bioformats2raw":
        ngff = ngff.child("0")
        kind = ngff.kind()
    if kind == "plate":
        raise InvalidInputError(f"{ngff.where}: an HCS plate, not an image; read its fields "
                                f"(read_ome_zarr_image(url, 'A/1/0')) or ingest it with OmeZarrSource")
    if kind != "image":
        raise InvalidInputError(f"{ngff.where}: an OME-Zarr {kind} group, not an image")
    return ngff


def read_ome_zarr(url: str | os.PathLike[str], *, level: int = 0, storage_options: Mapping[str, Any] | None = None,
                  lazy: bool = False) -> ArrayImage:
    """Read one OME-Zarr image: one resolution level, its physical scale, channels and label images.

    Parameters
    ----------
    url
        A local path or fsspec URL of the image group (``s3://...``, ``https://...``).
    level
        The resolution level (0 is the full resolution).
    storage_options
        fsspec options for the URL (``{"anon": True}``, ``{"endpoint_url": ...}``).
    lazy
        Return dask arrays (read when computed) instead of numpy arrays.

    Returns
    -------
    ArrayImage
        ``attrs`` holds the NGFF metadata (``ngff``), ``version``, ``level`` and the ``url``
        (secrets redacted).

    Raises
    ------
    InvalidInputError
        Not OME-Zarr, an unknown NGFF version, invalid metadata, a missing array, a level the
        image does not have, or an HCS plate (read its fields instead); the message names the URL.
    """
    ngff = _image_group(open_ngff(os.fspath(url), storage_options))
    return read_image(ngff, level=level, lazy=lazy)


def read_ome_zarr_image(url: str, path: str = "", *, level: int = 0,
                        storage_options: Mapping[str, Any] | None = None) -> ArrayImage:
    """Read the image at ``path`` inside the OME-Zarr at ``url`` (numpy arrays): for other sources.

    ``read_ome_zarr_image("s3://idr/zarr/v0.4/idr0001A/2551.zarr", "B/3/0")`` reads field 0 of
    well B3 of a plate; ``read_ome_zarr_image("s3://idr/.../6001240.zarr")`` an image. Picklable as
    ``functools.partial(read_ome_zarr_image, url, path, ...)``, so a source can hand it to an
    :class:`~archivestore.sources.ArrayItem` as its ``load``.
    """
    return read_ome_zarr(join(url, path), level=level, storage_options=storage_options)


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """fsspec options without credentials, for the stored origin."""
    return {str(k): v for k, v in options.items()
            if not _SECRET_OPTION.search(str(k)) and (v is None or isinstance(v, str | int | float | bool))}


def _tail(url: str) -> str:
    """The last path part of a URL without ``.zarr``."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".zarr")] if name.endswith(".zarr") and len(name) > len(".zarr") else name


def _image_id(ngff: Ngff, url: str) -> str:
    """The multiscales name, unless it names nothing; then the last part of ``url`` (the one asked for)."""
    multiscales = ngff.attrs.get("multiscales")
    name = multiscales[0].get("name") if isinstance(multiscales, list) and multiscales and \
        isinstance(multiscales[0], dict) else None
    return str(name) if isinstance(name, str) and name.strip() not in PLACEHOLDER_NAMES else _tail(url)


class OmeZarrSource:
    """OME-Zarr images and HCS plates at paths or fsspec URLs (see the module docstring).

    Parameters
    ----------
    urls
        Image, plate or bioformats2raw groups (local paths, ``s3://``, ``https://``, ...).
    level
        The resolution level to ingest (0: full resolution).
    storage_options
        fsspec options for every URL (credentials are used, never stored or logged).

    Attributes
    ----------
    problems
        A :class:`~archivestore.errors.BadItem` per URL that could not be listed (not OME-Zarr,
        unknown version, missing array, ...) or whose id repeats an earlier one.
    """

    def __init__(self, urls: Iterable[str | os.PathLike[str]], *, level: int = 0,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        self.urls = [os.fspath(u) for u in urls]
        self.level = level
        self.storage_options = dict(storage_options or {})
        self.problems: list[BadItem] = []

    def __iter__(self) -> Iterator[ArrayItem | PlateItem]:
        self.problems = []
        seen: dict[str, str] = {}
        for url in self.urls:
            try:
                items = list(self._items(url))
            except Exception as exc:  # noqa: BLE001 - whatever one URL does (bad metadata, credentials, I/O) is its own
                reason = redact(exc) if isinstance(exc, InvalidInputError) else f"{type(exc).__name__}: {redact(exc)}"
                self.problems.append(BadItem(_tail(url), redact(url), reason.removeprefix(f"{redact(url)}: ")))
                continue
            for item in items:
                if item.id in seen and not isinstance(item, PlateItem):
                    self.problems.append(BadItem(item.id, item.where, f"id already used by {seen[item.id]}"))
                    continue
                seen.setdefault(item.id, item.where)
                yield item

    def _origin(self, url: str) -> dict[str, Any]:
        return {"source": "ome_zarr", "url": redact(url), "level": self.level,
                "storage_options": _public_options(self.storage_options)}

    def _image_item(self, url: str, image_id: str, metadata: dict[str, Any]) -> ArrayItem:
        load = functools.partial(read_ome_zarr_image, url, "", level=self.level, storage_options=self.storage_options)
        return ArrayItem(id=validate_id(image_id, redact(url)), metadata=metadata, load=load, where=redact(url),
                         origin=self._origin(url))

    def _items(self, url: str) -> Iterator[ArrayItem | PlateItem]:
        ngff = open_ngff(url, self.storage_options)
        if ngff.kind() == "plate":
            yield from self._plate(ngff)
            return
        image = _image_group(ngff)
        check_image(image)  # a bad image is a listing problem, before any pixel is read
        metadata = {"url": redact(image.url), "ngff": image.attrs, **({"attributes": image.extra} if image.extra
                                                                       else {})}
        yield self._image_item(image.url, _image_id(image, url), metadata)

    def _plate(self, ngff: Ngff) -> Iterator[ArrayItem | PlateItem]:
        layout = read_plate(ngff)
        plate_id = layout.name or _tail(ngff.url)
        images: dict[tuple[str, str, int], str] = {}
        for row, column, well_path, fields in layout.wells:
            for index, field_path in enumerate(fields):
                image_id = f"{plate_id}_{row}{column}_{index}"
                images[(row, column, index)] = image_id
                metadata = {"url": redact(join(ngff.url, f"{well_path}/{field_path}")), "plate": plate_id,
                            "well": f"{row}{column}", "row": row, "column": column, "field": index}
                yield self._image_item(join(ngff.url, f"{well_path}/{field_path}"), image_id, metadata)
        yield PlateItem(id=validate_id(plate_id, ngff.where), metadata={"url": ngff.where, "ngff": layout.attrs},
                        rows=layout.rows, columns=layout.columns, fields=layout.field_count, images=images,
                        where=ngff.where)


def item_from_origin(image_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> ArrayItem:
    """The item of one image read again from the URL its ingest recorded (for ``verify --repair``).

    Credentials, if the location needs any, come from the environment (``AWS_*`` variables, ...).
    """
    options = dict(origin.get("storage_options") or {})
    load = functools.partial(read_ome_zarr_image, origin["url"], "", level=int(origin.get("level", 0)),
                             storage_options=options)
    return ArrayItem(id=image_id, metadata=metadata, load=load, where=origin["url"], origin=origin)
