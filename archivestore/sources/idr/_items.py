"""The items of the IDR source: an image's metadata record, its picklable pixel loader, the OME-Zarr URL rule.

**Where an image's pixels come from** (:class:`ImageLoader`):

1. ``thumbnails``: IDR's thumbnail (default rendering, RGB, scaled), marked rendered.
2. Otherwise, when an OME-Zarr URL template is given and not ``rendered``: the image's OME-Zarr
   publication, read at full resolution (``level``) by :func:`archivestore.sources.ome_zarr.read_ome_zarr`,
   raw values. An image is "published" when its group exists there (``zarr.json``, or ``.zattrs``/
   ``.zgroup`` for NGFF 0.4); one that exists but cannot be read, or whose size is not the size IDR
   gives, is a :class:`~archivestore.errors.BadItem`, never silently replaced.
3. Otherwise (no template, no publication, or ``rendered``): the rendered 8-bit planes
   (:func:`archivestore.sources.idr._omero_pixels.rendered_image`), marked ``rendered=True``;
   ``attrs["ome_zarr"]`` says which URL had nothing when one was tried.

**IDR's OME-Zarr folders.** IDR publishes each study's images on its public S3 endpoint
(``https://uk1s3.embassy.ebi.ac.uk``, bucket ``idr``, anonymous) as ``zarr/v0.4/<study>/<image id>.zarr``
and each screen's plates as ``zarr/v0.4/<study>/<plate id>.zarr`` (fields at
``<row>/<column>/<field>``), where ``<study>`` is the IDR accession plus the letter of the
experiment or screen: ``idr0062-blin-nuclearsegmentation/experimentA`` → ``idr0062A``,
``idr0001-graml-sysgro/screenA`` → ``idr0001A``, ``.../screenB`` → ``...B`` (IDR's catalogue of
its OME-NGFF data, https://github.com/IDR/ome-ngff-samples ``_data/table.csv``: ``idr0062A/6001240.zarr``,
``idr0001A/2551.zarr`` — plate 2551 of screen A —, ``idr0072B/9512.zarr``, ``idr0128E/9701.zarr``). A
name without the letter part gives the bare accession. :func:`study_folder` implements this rule;
templates may use ``{study}`` (``idr0062A``), ``{idr}`` (``idr0062``), ``{image_id}`` and ``{plate_id}``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from archivestore.errors import APIError, BadItem, InvalidInputError
from archivestore.sources._base import ArrayImage, ArrayItem
from archivestore.sources.idr._omero import OmeroWeb
from archivestore.sources.idr._omero_pixels import rendered_image, thumbnail_image

__all__ = ["PLACEHOLDERS", "ImageLoader", "ZarrUrls", "image_item", "study_folder"]

PLACEHOLDERS = ("study", "idr", "image_id", "plate_id")
"""The names an OME-Zarr URL template may use."""

_STUDY = re.compile(r"^(?P<idr>idr\d{4})(?:[^/]*/(?:screen|experiment)(?P<letter>[A-Za-z])\b)?", re.IGNORECASE)

ORIGIN_OPTIONS = ("anon", "endpoint_url")
"""The storage options an item's origin keeps (never credentials)."""


def study_folder(name: str | None) -> tuple[str, str] | None:
    """``(study, accession)`` of an IDR project or screen name, e.g. ``("idr0001A", "idr0001")``; ``None`` if not IDR's.

    >>> study_folder("idr0001-graml-sysgro/screenA")
    ('idr0001A', 'idr0001')
    >>> study_folder("idr0062-blin-nuclearsegmentation/experimentA")
    ('idr0062A', 'idr0062')
    """
    match = _STUDY.match(name or "")
    if match is None:
        return None
    accession = match["idr"].lower()
    return accession + (match["letter"].upper() if match["letter"] else ""), accession


def _placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InvalidInputError(f"OME-Zarr URL template {template!r}: {exc}") from None


@dataclass(frozen=True)
class ZarrUrls:
    """Where an image's (and a plate's) OME-Zarr publication is, from URL templates.

    Parameters
    ----------
    image
        Template of an image's URL; must use ``{image_id}`` (e.g. ``s3://idr/zarr/v0.4/{study}/{image_id}.zarr``).
    plate
        Template of a plate's URL (must use ``{plate_id}``); default: ``image`` with ``{image_id}``
        replaced by ``{plate_id}`` (IDR keeps both in the study's folder).
    """

    image: str
    plate: str = ""

    def __post_init__(self) -> None:
        if not self.plate:
            object.__setattr__(self, "plate", self.image.replace("{image_id}", "{plate_id}"))
        for template, needed in ((self.image, "image_id"), (self.plate, "plate_id")):
            names = _placeholders(template)
            unknown = names - set(PLACEHOLDERS)
            if unknown:
                raise InvalidInputError(f"OME-Zarr URL template {template!r}: unknown placeholder(s) "
                                        f"{', '.join(sorted(unknown))} (known: {', '.join(PLACEHOLDERS)})")
            if needed not in names:
                raise InvalidInputError(f"OME-Zarr URL template {template!r} needs {{{needed}}}")

    def _format(self, template: str, container: str | None, **ids: int) -> str | None:
        names = _placeholders(template)
        folder = study_folder(container)
        if folder is None and names & {"study", "idr"}:
            return None
        study, accession = folder or ("", "")
        return template.format(study=study, idr=accession, **{k: str(v) for k, v in ids.items()})

    def image_url(self, image: int, container: str | None) -> str | None:
        """The image's URL; ``None`` when the template needs a study and ``container`` is not an IDR name."""
        return self._format(self.image, container, image_id=image, plate_id=image)

    def field_url(self, plate: int, position: tuple[str, str, int], container: str | None) -> str | None:
        """The URL of one field of a plate: ``<plate URL>/<row>/<column>/<field>``."""
        base = self._format(self.plate, container, plate_id=plate, image_id=plate)
        row, column, field = position
        return None if base is None else f"{base.rstrip('/')}/{row}/{column}/{field}"


def _published(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether an OME-Zarr group exists at ``url`` (Zarr v3 ``zarr.json``, or v2 ``.zattrs``/``.zgroup``)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    path = path.rstrip("/")
    return any(fs.exists(f"{path}/{name}") for name in ("zarr.json", ".zattrs", ".zgroup"))


@dataclass(frozen=True)
class ImageLoader:
    """The picklable loader of one IDR image's pixels (see the module docstring for the order tried).

    Parameters
    ----------
    idr
        The server (an :class:`~archivestore.sources.idr.Idr`).
    image
        The IDR image id.
    zarr_url
        The image's OME-Zarr URL, or ``None``.
    size
        ``(SizeX, SizeY)`` IDR gives for the image, checked against the OME-Zarr (``None``: unknown).
    rendered, thumbnails
        Take the rendered planes, or the thumbnail, whatever else there is.
    storage_options
        fsspec options for ``zarr_url`` (e.g. ``{"anon": True, "endpoint_url": ...}``).
    level
        The OME-Zarr resolution level (0: full resolution).
    """

    idr: OmeroWeb
    image: int
    zarr_url: str | None = None
    size: tuple[int, int] | None = None
    rendered: bool = False
    thumbnails: bool = False
    storage_options: dict[str, Any] | None = None
    level: int = 0

    @property
    def where(self) -> str:
        """Where the pixels come from, for errors."""
        if self.zarr_url and not (self.rendered or self.thumbnails):
            return self.zarr_url
        return self.idr.client.url(f"webclient/imgData/{self.image}/")

    def __call__(self) -> ArrayImage:
        item = str(self.image)
        try:
            if self.thumbnails:
                return thumbnail_image(self.idr, self.image)
            tried = None
            if self.zarr_url and not self.rendered:
                if _published(self.zarr_url, self.storage_options):
                    return self._from_zarr()
                tried = self.zarr_url
            image = rendered_image(self.idr, self.image)
        except APIError as exc:
            raise BadItem(item, exc.url, exc.reason) from None
        except (OSError, ValueError) as exc:
            raise BadItem(item, self.where, str(exc) or type(exc).__name__) from None
        if tried:
            image.attrs["ome_zarr"] = {"url": tried, "found": False}
        return image

    def _from_zarr(self) -> ArrayImage:
        from archivestore.sources.ome_zarr import read_ome_zarr

        assert self.zarr_url is not None
        image = read_ome_zarr(self.zarr_url, level=self.level, storage_options=self.storage_options)
        if self.size is not None:
            shape = dict(zip(image.axes, getattr(image.data, "shape", ()), strict=False))
            found = (shape.get("x"), shape.get("y"))
            if found != self.size:
                raise ValueError(f"the OME-Zarr image is {found[0]}x{found[1]} pixels, IDR says image "
                                 f"{self.image} is {self.size[0]}x{self.size[1]} (a wrong URL template?)")
        image.attrs.setdefault("ome_zarr", {"url": self.zarr_url, "found": True, "level": self.level})
        return image


def origin_options(storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The storage options an origin may keep: :data:`ORIGIN_OPTIONS` only (no keys, no tokens)."""
    return {k: v for k, v in (storage_options or {}).items() if k in ORIGIN_OPTIONS}


def image_item(loader: ImageLoader, metadata: dict[str, Any]) -> ArrayItem:
    """The :class:`ArrayItem` of one image: id = the IDR image id, ``origin`` enough to load it again."""
    idr = loader.idr
    origin = {"source": "idr", "base_url": idr.base_url, "image": loader.image, "zarr_url": loader.zarr_url,
              "size": list(loader.size) if loader.size else None, "rendered": loader.rendered,
              "thumbnails": loader.thumbnails, "storage_options": origin_options(loader.storage_options),
              "level": loader.level}
    return ArrayItem(id=str(loader.image), metadata=metadata, load=loader,
                     where=idr.client.url(f"webclient/?show=image-{loader.image}"), origin=origin)

