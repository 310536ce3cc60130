"""The IDR's OMERO.web as a client of queries (:class:`Idr`) and where IDR publishes its OME-Zarr.

**Queries** (:meth:`Idr.projects`, :meth:`~Idr.datasets`, :meth:`~Idr.screens`, :meth:`~Idr.plates`,
:meth:`~Idr.wells`, :meth:`~Idr.images`, :meth:`~Idr.annotations`) come back as pandas DataFrames:
the JSON API's records flattened into dotted columns (``Pixels.SizeX``, ``Pixels.PhysicalSizeX.Value``),
``@id`` as ``id``, without the owner/permission details and the server's links; projects and screens
also get ``study``, the folder IDR publishes their OME-Zarr images in (see
:mod:`archivestore.sources.idr._items`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archivestore.errors import InvalidInputError
from archivestore.sources.idr._items import study_folder
from archivestore.sources.idr._omero import MAP_KINDS, OmeroWeb, clean_record

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_IDR_URL", "IDR_FALLBACK_STORAGE_OPTIONS", "IDR_OLD_S3_ENDPOINT", "IDR_S3_ENDPOINT",
    "IDR_STORAGE_OPTIONS", "IDR_ZARR_URL", "Idr", "PlateLayout", "ref", "study_folder",
]

DEFAULT_IDR_URL = "https://idr.openmicroscopy.org/"
"""The IDR's OMERO.web."""

IDR_S3_ENDPOINT = "https://livingobjects.ebi.ac.uk"
"""The S3 endpoint of IDR's public OME-Zarr bucket (``idr``), read anonymously (since 2026; IDR's catalogue
https://github.com/IDR/ome-ngff-samples lists every image there)."""

IDR_OLD_S3_ENDPOINT = "https://uk1s3.embassy.ebi.ac.uk"
"""Where IDR's OME-Zarr was before: the same keys, being decommissioned; some images were never migrated."""

IDR_ZARR_URL = "s3://idr/zarr/v0.4/{study}/{image_id}.zarr"
"""IDR's OME-NGFF 0.4 publication of an image (a plate: ``{study}/{plate_id}.zarr``)."""

IDR_STORAGE_OPTIONS: dict[str, Any] = {"anon": True, "endpoint_url": IDR_S3_ENDPOINT}
"""fsspec options that read :data:`IDR_ZARR_URL`."""

IDR_FALLBACK_STORAGE_OPTIONS: tuple[dict[str, Any], ...] = ({"anon": True, "endpoint_url": IDR_OLD_S3_ENDPOINT},)
"""Tried, in order, for an image :data:`IDR_STORAGE_OPTIONS` does not find, while IDR migrates (see
:class:`~archivestore.sources.idr._items.ImageLoader`)."""


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


def as_id(value: Any, what: str) -> int:
    """``value`` as an OMERO object id (a non-negative integer), else :class:`InvalidInputError` naming ``what``."""
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
        if project is None:
            return _table(self.pages("api/v0/m/datasets/"))
        path = f"api/v0/m/projects/{as_id(project, 'project')}/datasets/"
        return _table(self.pages(path, item=f"project {project}"))

    def screens(self) -> pd.DataFrame:
        """Every screen (``id``, ``Name``, ``Description``, ``study``)."""
        return _table(self.pages("api/v0/m/screens/"), study=True)

    def plates(self, screen: int | None = None) -> pd.DataFrame:
        """The plates of a screen (every plate without one): ``Rows``, ``Columns``, ..., and ``runs`` for a screen.

        ``runs`` is the number of plate acquisitions the webclient's plate list gives.
        """
        if screen is None:
            return _table(self.pages("api/v0/m/plates/"))
        sid = as_id(screen, "screen")
        table = _table(self.pages(f"api/v0/m/screens/{sid}/plates/", item=f"screen {sid}"))
        runs = {p.get("id"): p.get("childCount") for p in self.screen_plates(sid)}
        if not table.empty:
            table["runs"] = [runs.get(i) for i in table["id"]]
        return table

    def wells(self, plate: int) -> pd.DataFrame:
        """One row per field of every well of a plate: ``well_id``, ``well``, ``row``, ``column``, ``field``,
        ``image_id``, ``image_name`` (a well without images: one row without image)."""
        import pandas as pd

        pid = as_id(plate, "plate")
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
            did = as_id(dataset, "dataset")
            return _table(self.pages(f"api/v0/m/datasets/{did}/images/", item=f"dataset {did}"))
        layout = self.plate_layout(as_id(plate, "plate"))
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
        oid = as_id(object_id, kind)
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
            grid = self.plate_grid(plate, field)
            rows, columns = [str(r) for r in grid.get("rowlabels", [])], [str(c) for c in grid.get("collabels", [])]
            for r, line in enumerate(grid["grid"]):
                for c, cell in enumerate(line or ()):
                    if cell and "id" in cell and r < len(rows) and c < len(columns):
                        positions[int(cell["id"])] = (rows[r], columns[c], field, int(cell.get("wellId") or -1))
        return PlateLayout(rows, columns, fields, positions, records)
