"""The Image Data Resource (IDR, ``https://idr.openmicroscopy.org``) via OMERO.web, as a source of microscopy images.

>>> idr = Idr()                                                                  # doctest: +SKIP
>>> idr.screens().head()                                                         # doctest: +SKIP
>>> idr.annotations("well", 590000)                                              # doctest: +SKIP
>>> source = IdrSource(idr, plate=2551, zarr_url=IDR_ZARR_URL, storage_options=IDR_STORAGE_OPTIONS)  # doctest: +SKIP
>>> archivestore.ingest(store, source)                                           # doctest: +SKIP

**Queries** (:meth:`Idr.projects`, :meth:`~Idr.datasets`, :meth:`~Idr.screens`, :meth:`~Idr.plates`,
:meth:`~Idr.wells`, :meth:`~Idr.images`, :meth:`~Idr.annotations`) come back as pandas DataFrames:
the JSON API's records flattened into dotted columns (``Pixels.SizeX``, ``Pixels.PhysicalSizeX.Value``),
``@id`` as ``id``, without the owner/permission details and the server's links; projects and screens
also get ``study``, the folder IDR publishes their OME-Zarr images in (see
:mod:`archivestore.sources.idr._items`).

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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archivestore.errors import APIError, BadItem, InvalidInputError
from archivestore.sources._base import ArrayItem, PlateItem
from archivestore.sources.idr._items import ImageLoader, ZarrUrls, item_from_origin, study_folder
from archivestore.sources.idr._omero import MAP_KINDS, OmeroWeb, clean_record

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_IDR_URL", "IDR_S3_ENDPOINT", "IDR_STORAGE_OPTIONS", "IDR_ZARR_URL", "Idr", "IdrSource", "PlateLayout",
    "item_from_origin", "ref", "study_folder",
]

DEFAULT_IDR_URL = "https://idr.openmicroscopy.org/"
"""The IDR's OMERO.web."""

IDR_S3_ENDPOINT = "https://uk1s3.embassy.ebi.ac.uk"
"""The S3 endpoint of IDR's public OME-Zarr bucket (``idr``), read anonymously."""

IDR_ZARR_URL = "s3://idr/zarr/v0.4/{study}/{image_id}.zarr"
"""IDR's OME-NGFF 0.4 publication of an image (a plate: ``{study}/{plate_id}.zarr``)."""

IDR_STORAGE_OPTIONS: dict[str, Any] = {"anon": True, "endpoint_url": IDR_S3_ENDPOINT}
"""fsspec options that read :data:`IDR_ZARR_URL`."""


def _table(records: Iterable[dict[str, Any]], *, study: bool = False) -> pd.DataFrame:
    """JSON API records as a flat DataFrame (see the module docstring)."""
    import pandas as pd

    rows = []
    for record in records:
        row = _untyped(clean_record(record))
        row["id"] = row.pop("@id", None)
        if study:
            folder = study_folder(row.get("Name"))
            row["study"] = folder[0] if folder else None
        rows.append(row)
    table = pd.json_normalize(rows) if rows else pd.DataFrame()
    first = [c for c in ("id", "Name") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def _untyped(record: Any) -> Any:
    """A record without its ``@type`` schema tags (at any depth), for tables."""
    if isinstance(record, dict):
        return {k: _untyped(v) for k, v in record.items() if k != "@type"}
    return record


def ref(record: dict[str, Any]) -> dict[str, Any]:
    """``{"id", "name"}`` of a JSON API record (how an image's metadata names its project, dataset, screen)."""
    return {"id": record.get("@id"), "name": record.get("Name")}


def _id(value: Any, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInputError(f"{what} ids are integers, got {value!r}") from None
    if number < 0:
        raise InvalidInputError(f"{what} ids are not negative, got {value!r}")
    return number


@dataclass
class PlateLayout:
    """A plate's wells: grid labels, fields, and per image its position and records."""

    rows: list[str]
    columns: list[str]
    fields: int
    positions: dict[int, tuple[str, str, int, int]]
    """``{image id: (row label, column label, field, well id)}``, in grid order."""
    records: dict[int, tuple[dict[str, Any], dict[str, Any]]]
    """``{image id: (image record, well sample record without the image)}`` from the wells listing."""


class Idr(OmeroWeb):
    """Client of the IDR (or any OMERO.web), anonymous; see :class:`~archivestore.sources.idr._omero.OmeroWeb`.

    Parameters
    ----------
    base_url
        OMERO.web's root: :data:`DEFAULT_IDR_URL` (default), another OMERO.web, or a local stand-in
        (:class:`archivestore.testing.omero.OmeroWebServer`).
    **options
        ``retries``, ``backoff_factor``, ``timeout``, ``workers``, ``debug``, ``page_size``, ``annotation_page``.
    """

    def __init__(self, base_url: str = DEFAULT_IDR_URL, **options: Any) -> None:
        super().__init__(base_url, **options)

    # -- queries ------------------------------------------------------------------------------
    def projects(self) -> pd.DataFrame:
        """Every project (``id``, ``Name``, ``Description``, ``study``)."""
        return _table(self.pages("api/v0/m/projects/"), study=True)

    def datasets(self, project: int | None = None) -> pd.DataFrame:
        """The datasets of a project (every dataset without one)."""
        path = f"api/v0/m/projects/{_id(project, 'project')}/datasets/" if project is not None else "api/v0/m/datasets/"
        return _table(self.pages(path, item=f"project {project}" if project is not None else None))

    def screens(self) -> pd.DataFrame:
        """Every screen (``id``, ``Name``, ``Description``, ``study``)."""
        return _table(self.pages("api/v0/m/screens/"), study=True)

    def plates(self, screen: int | None = None) -> pd.DataFrame:
        """The plates of a screen (every plate without one): ``Rows``, ``Columns``, ..., and ``runs`` for a screen.

        ``runs`` is the number of plate acquisitions the webclient's plate list gives.
        """
        if screen is None:
            return _table(self.pages("api/v0/m/plates/"))
        sid = _id(screen, "screen")
        table = _table(self.pages(f"api/v0/m/screens/{sid}/plates/", item=f"screen {sid}"))
        runs = {p.get("id"): p.get("childCount") for p in self.screen_plates(sid)}
        if not table.empty:
            table["runs"] = [runs.get(i) for i in table["id"]]
        return table

    def wells(self, plate: int) -> pd.DataFrame:
        """One row per field of every well of a plate: ``well_id``, ``well``, ``row``, ``column``, ``field``,
        ``image_id``, ``image_name`` (a well without images: one row without image)."""
        import pandas as pd

        pid = _id(plate, "plate")
        grid = self.plate_grid(pid, 0)
        rows, columns = [str(r) for r in grid.get("rowlabels", [])], [str(c) for c in grid.get("collabels", [])]
        out = []
        for well in self.pages(f"api/v0/m/plates/{pid}/wells/", item=f"plate {pid}"):
            r, c = int(well.get("Row", 0)), int(well.get("Column", 0))
            label = (rows[r] if r < len(rows) else str(r), columns[c] if c < len(columns) else str(c))
            base = {"well_id": well.get("@id"), "well": "".join(label), "row": label[0], "column": label[1],
                    "row_index": r, "column_index": c}
            samples = well.get("WellSamples") or []
            for field, sample in enumerate(samples):
                image = sample.get("Image") or {}
                out.append({**base, "field": field, "image_id": image.get("@id"), "image_name": image.get("Name")})
            if not samples:
                out.append({**base, "field": None, "image_id": None, "image_name": None})
        return pd.DataFrame(out)

    def images(self, dataset: int | None = None, *, plate: int | None = None) -> pd.DataFrame:
        """The images of a dataset (with their ``Pixels``), or of a plate (``well``, ``row``, ``column``, ``field``)."""
        if (dataset is None) == (plate is None):
            raise InvalidInputError("give a dataset or a plate")
        if dataset is not None:
            did = _id(dataset, "dataset")
            return _table(self.pages(f"api/v0/m/datasets/{did}/images/", item=f"dataset {did}"))
        layout = self.plate_layout(_id(plate, "plate"))
        records = []
        for image_id, (row, column, field, well_id) in layout.positions.items():
            record = dict(layout.records.get(image_id, ({"@id": image_id}, {}))[0])
            record.update(well=f"{row}{column}", row=row, column=column, field=field, well_id=well_id)
            records.append(record)
        return _table(records)

    def annotations(self, kind: str, object_id: int) -> pd.DataFrame:
        """The map annotations of one object, one row per key-value pair: ``annotation_id``, ``ns``, ``key``, ``value``.

        ``kind`` is one of ``project``, ``dataset``, ``image``, ``screen``, ``plate``, ``well``;
        a repeated key gives one row per value.
        """
        import pandas as pd

        if kind not in MAP_KINDS:
            raise InvalidInputError(f"annotations of {kind!r}: expected one of {', '.join(MAP_KINDS)}")
        oid = _id(object_id, kind)
        rows = [{"annotation_id": a.get("id"), "ns": a.get("ns"), "key": pair[0], "value": pair[1]}
                for a in self.map_annotations(kind, [oid])[oid] for pair in a.get("values") or ()]
        return pd.DataFrame(rows, columns=["annotation_id", "ns", "key", "value"])

    # -- records the source needs -------------------------------------------------------------
    def plate_layout(self, plate: int) -> PlateLayout:
        """A plate's wells from the wells listing and the well grid of every field (``layout=trim``: no padding)."""
        wells = list(self.pages(f"api/v0/m/plates/{plate}/wells/", item=f"plate {plate}"))
        fields = max((len(w.get("WellSamples") or []) for w in wells), default=0)
        records: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        for well in wells:
            for sample in well.get("WellSamples") or []:
                image = sample.get("Image") or {}
                if "@id" in image:
                    records[int(image["@id"])] = (image, {k: v for k, v in sample.items() if k != "Image"})
        positions: dict[int, tuple[str, str, int, int]] = {}
        rows: list[str] = []
        columns: list[str] = []
        for field in range(max(1, fields)):
            grid = self.json(f"webgateway/plate/{plate}/{field}/", {"layout": "trim"}, item=f"plate {plate}")
            if not isinstance(grid, dict) or not isinstance(grid.get("grid"), list):
                raise APIError(self.client.url(f"webgateway/plate/{plate}/{field}/"), "expected a plate grid",
                               item=f"plate {plate}")
            rows, columns = [str(r) for r in grid.get("rowlabels", [])], [str(c) for c in grid.get("collabels", [])]
            for r, line in enumerate(grid["grid"]):
                for c, cell in enumerate(line or ()):
                    if cell and "id" in cell and r < len(rows) and c < len(columns):
                        positions[int(cell["id"])] = (rows[r], columns[c], field, int(cell.get("wellId") or -1))
        return PlateLayout(rows, columns, fields, positions, records)


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
        Template of an image's OME-Zarr URL (e.g. :data:`IDR_ZARR_URL`): pixels are read from there
        when the image is published, raw; see :class:`~archivestore.sources.idr._items.ZarrUrls`.
    plate_zarr_url
        Template of a plate's OME-Zarr URL (default: ``zarr_url`` with ``{plate_id}`` for ``{image_id}``).
    rendered
        Take OMERO.web's rendered 8-bit planes even when an OME-Zarr exists (marked ``rendered``).
    thumbnails
        Take each image's thumbnail (the default rendering, RGB, scaled; marked ``rendered``): a quick preview.
    storage_options
        fsspec options for the OME-Zarr URLs (e.g. :data:`IDR_STORAGE_OPTIONS`).
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
                 thumbnails: bool = False, storage_options: dict[str, Any] | None = None, level: int = 0) -> None:
        self.containers = [(kind, _id(value, kind)) for kind, value in
                           (("project", project), ("dataset", dataset), ("screen", screen), ("plate", plate))
                           if value is not None]
        self.images = [_id(i, "image") for i in dict.fromkeys(images or ())]
        if not (self.containers or self.images):
            raise InvalidInputError("give a project, dataset, screen, plate or image ids")
        self.idr = idr
        self.urls = ZarrUrls(zarr_url, plate_zarr_url or "") if zarr_url else None
        self.rendered, self.thumbnails = bool(rendered), bool(thumbnails)
        self.storage_options = dict(storage_options or {}) or None
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
        from archivestore.sources.idr._walk import Walker

        walker = Walker(self)
        for kind, oid in self.containers:
            yield from walker.container(kind, oid)
        for image in self.images:
            yield from walker.image(image)

    def loader(self, image: int, zarr_url: str | None, size: tuple[int, int] | None) -> ImageLoader:
        """The pixel loader of one image with this source's options."""
        return ImageLoader(self.idr, image, zarr_url, size, self.rendered, self.thumbnails,
                           self.storage_options, self.level)

    def problem(self, item: str, where: str, reason: str) -> None:
        """Record an item that cannot be yielded."""
        self.problems.append(BadItem(item, where, reason))

