"""The items of the IDR source: an image's metadata record, its picklable pixel loader, the OME-Zarr URL rule.

**Where an image's pixels come from** (:class:`ImageLoader`):

1. ``thumbnails``: IDR's thumbnail (default rendering, RGB, scaled), marked rendered.
2. ``rendered`` (or no OME-Zarr URL at all): the rendered 8-bit planes
   (:func:`archivestore.sources.idr._omero_pixels.rendered_image`), marked ``rendered=True``.
3. Otherwise the image's OME-Zarr publication, read at full resolution (``level``) by
   :func:`archivestore.sources.ome_zarr.read_ome_zarr`, raw values: at the URL with ``storage_options``,
   else with each of ``fallback_options`` in turn (IDR's old host while it migrates). An image is
   "published" where its group exists (``zarr.json``, or ``.zattrs``/``.zgroup`` for NGFF 0.4). One
   found nowhere is a :class:`~archivestore.errors.BadItem` ``no OME-Zarr at <every URL tried>``,
   **never silently replaced** by rendered planes; one that exists but cannot be read, or whose size
   is not the size IDR gives, is a :class:`~archivestore.errors.BadItem` too. An endpoint that cannot
   be reached at all raises :class:`~archivestore.errors.UnreachableError` (a fallback that cannot be
   reached only counts as not having the image).

**IDR's OME-Zarr folders.** IDR publishes each study's images on its public S3 endpoint
(``https://livingobjects.ebi.ac.uk``, bucket ``idr``, anonymous; formerly ``https://uk1s3.embassy.ebi.ac.uk``,
same keys) as ``zarr/v0.4/<study>/<image id>.zarr``
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

from archivestore.errors import APIError, BadItem, InvalidInputError, UnreachableError
from archivestore.sources._base import ArrayImage, ArrayItem
from archivestore.sources.idr._omero import OmeroWeb
from archivestore.sources.idr._omero_pixels import rendered_image, thumbnail_image

__all__ = ["PLACEHOLDERS", "ImageLoader", "ZarrUrls", "image_item", "study_folder"]

PLACEHOLDERS = ("study", "idr", "image_id", "plate_id")
"""The names an OME-Zarr URL template may use."""

_STUDY = re.compile(r"^(?P<idr>idr\d{4})(?:[^/]*/(?:screen|experiment)(?P<letter>[A-Za-z])\b)?", re.IGNORECASE)

_DEAD_FALLBACKS: dict[str, str] = {}
"""Fallback endpoints found unreachable in this process (IDR's old host once it is gone), with the reason."""

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


def shown_url(url: str, storage_options: dict[str, Any] | None) -> str:
    """``url`` as a user would open it: an ``s3://`` URL on another endpoint as ``<endpoint>/<bucket>/<key>``."""
    endpoint = (storage_options or {}).get("endpoint_url")
    if endpoint and url.startswith("s3://"):
        return f"{str(endpoint).rstrip('/')}/{url[len('s3://'):]}"
    return url


def _published(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether an OME-Zarr group exists at ``url`` (Zarr v3 ``zarr.json``, or v2 ``.zattrs``/``.zgroup``).

    Raises
    ------
    UnreachableError
        The endpoint cannot be reached at all (connection refused, DNS or TLS failure).
    """
    import fsspec

    from archivestore.sources._reach import CONNECT_RETRIES, CONNECT_TIMEOUT, unreachable

    options = dict(storage_options or {})
    if url.startswith("s3://") and "config_kwargs" not in options:  # a dead endpoint: seconds, not a minute
        options["config_kwargs"] = {"connect_timeout": CONNECT_TIMEOUT, "retries": {"max_attempts": CONNECT_RETRIES}}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
        path = path.rstrip("/")
        return any(fs.exists(f"{path}/{name}") for name in ("zarr.json", ".zattrs", ".zgroup"))
    except Exception as exc:
        reason = unreachable(exc)
        if reason is None:
            raise
        raise UnreachableError(shown_url(url, storage_options), reason) from None


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
        ``(SizeX, SizeY)`` IDR gives for the image, checked against the OME-Zarr (``None``: not in the
        record, e.g. a plate field, since the wells listing carries no Pixels: then read from ``imgData``).
    rendered, thumbnails
        Take the rendered planes, or the thumbnail, whatever else there is.
    storage_options
        fsspec options for ``zarr_url`` (e.g. ``{"anon": True, "endpoint_url": ...}``).
    level
        The OME-Zarr resolution level (0: full resolution).
    fallback_options
        Other fsspec options (e.g. another endpoint) under which ``zarr_url`` is tried, in order, when
        ``storage_options`` finds nothing.
    """

    idr: OmeroWeb
    image: int
    zarr_url: str | None = None
    size: tuple[int, int] | None = None
    rendered: bool = False
    thumbnails: bool = False
    storage_options: dict[str, Any] | None = None
    level: int = 0
    fallback_options: tuple[dict[str, Any], ...] = ()

    @property
    def raw(self) -> bool:
        """Whether the pixels are to come from the OME-Zarr (not rendered planes, not a thumbnail)."""
        return bool(self.zarr_url) and not (self.rendered or self.thumbnails)

    @property
    def where(self) -> str:
        """Where the pixels come from, for errors."""
        if self.raw and self.zarr_url:
            return shown_url(self.zarr_url, self.storage_options)
        return self.idr.client.url(f"webclient/imgData/{self.image}/")

    def __call__(self) -> ArrayImage:
        item = str(self.image)
        try:
            if self.thumbnails:
                return thumbnail_image(self.idr, self.image)
            if self.raw:
                return self._from_zarr(self._find())
            return rendered_image(self.idr, self.image)
        except (UnreachableError, BadItem):
            raise
        except APIError as exc:
            raise BadItem(item, exc.url, exc.reason) from None
        except (OSError, ValueError) as exc:
            raise BadItem(item, self.where, str(exc) or type(exc).__name__) from None

    def _find(self) -> dict[str, Any] | None:
        """The storage options under which the image's OME-Zarr exists (see the module docstring)."""
        assert self.zarr_url is not None
        tried = []
        for n, options in enumerate((self.storage_options, *self.fallback_options)):
            shown = shown_url(self.zarr_url, options)
            endpoint = str((options or {}).get("endpoint_url"))
            if n and endpoint in _DEAD_FALLBACKS:
                tried.append(f"{shown} (unreachable: {_DEAD_FALLBACKS[endpoint]})")
                continue
            try:
                if _published(self.zarr_url, options):
                    return options
            except UnreachableError as exc:
                if n == 0:
                    raise UnreachableError(exc.url, exc.reason, item=str(self.image)) from None
                _DEAD_FALLBACKS[endpoint] = exc.reason  # not asked again by this process
                shown += f" (unreachable: {exc.reason})"
            tried.append(shown)
        raise BadItem(str(self.image), self.idr.client.url(f"webclient/?show=image-{self.image}"),
                      f"no OME-Zarr at {', '.join(tried)} (rendered=True / --rendered takes OMERO.web's 8-bit "
                      "rendered planes instead)")

    def _from_zarr(self, options: dict[str, Any] | None) -> ArrayImage:
        from archivestore.sources.ome_zarr import read_ome_zarr

        assert self.zarr_url is not None
        image = read_ome_zarr(self.zarr_url, level=self.level, storage_options=options)
        if self.level == 0:  # the full resolution has IDR's size
            size = self.size
            if size is None:  # a plate field: its size is not in the wells listing
                known = self.idr.image_data(self.image)["size"]
                size = (int(known["width"]), int(known["height"]))
            shape = dict(zip(image.axes, getattr(image.data, "shape", ()), strict=False))
            found = (shape.get("x"), shape.get("y"))
            if found != size:
                raise ValueError(f"the OME-Zarr image is {found[0]}x{found[1]} pixels, IDR says image "
                                 f"{self.image} is {size[0]}x{size[1]} (a wrong URL template?)")
        image.attrs.setdefault("ome_zarr", {"url": shown_url(self.zarr_url, options), "found": True,
                                            "level": self.level})
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
    if loader.fallback_options:
        origin["fallback_options"] = [origin_options(o) for o in loader.fallback_options]
    return ArrayItem(id=str(loader.image), metadata=metadata, load=loader,
                     where=idr.client.url(f"webclient/?show=image-{loader.image}"), origin=origin)

