"""The one small interface every source implements: an iterable of :class:`Item`.

A source knows where an archive keeps its images (a directory, an HTTP API, ...).
It yields one :class:`Item` per image, carrying the image id, its full metadata
record, and *lazy* loaders for the encoded bytes of the image and of its optional
superpixel image, lesion mask, per-feature attribute masks and study annotations.
Nothing is fetched or decoded until the ingestor calls a loader, so listing a
source is cheap and a failure in one item's bytes is reported against that item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from archivestore.errors import BadItem
from archivestore.layout import escape_name

__all__ = [
    "Annotation", "ArrayImage", "ArrayItem", "BadItem", "Item", "PlateItem", "SeriesItem", "Source", "validate_id",
]

Loader = Callable[[], bytes]

def validate_id(image_id: str, where: str = "") -> str:
    """Return ``image_id`` if it can name a group, else raise :class:`BadItem`.

    Any non-empty string without control characters is an id: the store escapes it
    into a node name (:func:`archivestore.layout.escape_name`), so ``/``, ``..``,
    spaces and Unicode are kept, never turned into paths. The escaped name must fit
    in 255 bytes (a file name on common filesystems).
    """
    if not isinstance(image_id, str) or not image_id or any(ord(c) < 32 or ord(c) == 127 for c in image_id):
        raise BadItem(str(image_id), where or repr(image_id), "unusable id (empty, or with control characters)")
    if len(escape_name(image_id).encode()) > 255:
        raise BadItem(image_id, where or image_id, "id too long (over 255 bytes once escaped)")
    return image_id


@dataclass
class Annotation:
    """One rater's per-superpixel feature values for one image in a study.

    ``values`` loads ``{feature: [value per superpixel]}`` with values
    0 (absent), 0.5 (possible) or 1 (definite).
    """

    study: str
    rater: str
    values: Callable[[], Mapping[str, Any]]
    where: str = ""


@dataclass
class Item:
    """One image of a source, with lazy loaders for its encoded bytes.

    Parameters
    ----------
    id
        Image id, used as the group name ``images/<id>``.
    metadata
        The image's full original metadata record (JSON-compatible).
    image, superpixels, mask
        Loaders returning encoded bytes (JPEG/PNG), or ``None`` if absent.
    attributes
        ``{feature: loader}`` of per-feature 0/255 attribute mask PNGs.
    annotations
        Study annotations attached to this image.
    where
        Human-readable origin (file path or URL without secrets) for errors.
    rater
        Whose masks ``mask``/``attributes`` are (default ``ground_truth``).
    origin
        How to fetch the item again (see :mod:`archivestore.repair`).
    """

    id: str
    metadata: dict[str, Any]
    image: Loader | None = None
    superpixels: Loader | None = None
    mask: Loader | None = None
    attributes: dict[str, Loader] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    where: str = ""
    rater: str = "ground_truth"
    """Whose ``mask`` and ``attributes`` these are; other raters' masks go to ``masks/<rater>/<id>``."""
    origin: dict[str, Any] | None = None
    """JSON description of where the bytes came from, kept in the store so that
    ``archivestore verify --repair`` can fetch them again (no secrets, no signed URLs)."""


FilesLoader = Callable[[], "Iterable[tuple[str, bytes]]"]


@dataclass
class SeriesItem:
    """One DICOM series of a source (image series or segmentation), with a lazy loader for its files.

    Parameters
    ----------
    id
        The SeriesInstanceUID (the group name ``series/<uid>`` or ``segmentations/<uid>``).
    metadata
        The archive's own record of the series (NBIA ``getSeries`` row, IDC index row), JSON-compatible.
    files
        Returns ``(name, bytes)`` of every DICOM instance of the series (names are for error
        messages only and never become paths). Called by the ingestor on a worker.
    where
        Human-readable origin (URL without secrets) for errors.
    origin
        JSON description of how to fetch the series again (for ``verify --repair``).
    """

    id: str
    metadata: dict[str, Any]
    files: FilesLoader
    where: str = ""
    origin: dict[str, Any] | None = None


AXES = ("t", "channel", "z", "y", "x")
"""The axes an :class:`ArrayImage` may have, in this order (microscopy images: OME-NGFF's t, c, z, y, x)."""


@dataclass
class ArrayImage:
    """An n-D image as a microscopy source loads it: raw values with named axes and physical coordinates.

    Parameters
    ----------
    data
        The pixel values (numpy, or any array that ``numpy.asarray`` reads: dask, zarr), raw dtype.
    axes
        The image's axes, a subsequence of :data:`AXES` (``t``, ``channel``, ``z``, ``y``, ``x``).
    coords
        Physical coordinates of the axes that have them (e.g. ``z`` positions), by axis.
    units
        Unit of each axis with coordinates (``micrometer``, ``second``), as OME-NGFF names them.
    channels
        One dict per channel: ``label``, and OMERO's ``color`` (hex RGB), ``window``
        (start/end/min/max), ``active`` where known.
    labels
        Label images (integer arrays over the image's spatial axes) by name.
    rendered
        True when the values are rendered 8-bit planes, not the raw pixels.
    attrs
        Anything else worth keeping (the OME-Zarr metadata it came from, the source's pixel record).
    """

    data: Any
    axes: tuple[str, ...]
    coords: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    channels: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    rendered: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ArrayItem:
    """One microscopy image of a source, with a lazy loader of its pixels.

    Parameters
    ----------
    id
        Image id (the group ``images/<id>``), e.g. the IDR image id as a string.
    metadata
        The source's full record of the image, JSON-compatible; map annotations and plate
        positions go here (``map``, ``plate``, ``well``, ``row``, ``column``, ``field``), so
        they become ``metadata`` table fields.
    load
        Returns the :class:`ArrayImage`; called by the ingestor on a worker.
    where, origin
        As for :class:`Item`.
    """

    id: str
    metadata: dict[str, Any]
    load: Callable[[], ArrayImage]
    where: str = ""
    origin: dict[str, Any] | None = None


@dataclass
class PlateItem:
    """A high-content screening plate's well grid (the group ``plates/<id>``).

    ``images`` maps (row label, column label, field index) to an image id that the same
    source yields as an :class:`ArrayItem`; wells without an image are left out.
    """

    id: str
    metadata: dict[str, Any]
    rows: list[str]
    columns: list[str]
    fields: int
    images: dict[tuple[str, str, int], str]
    where: str = ""


class Source(Protocol):
    """Anything that iterates :class:`Item` objects.

    ``problems`` collects items the source itself found unusable (for example a
    file name with an unsafe id) as :class:`BadItem`; the ingestor reports them.
    """

    problems: list[BadItem]

    def __iter__(self) -> Iterator[Item]: ...
