"""How :class:`~archivestore.sources.idr.IdrSource` walks the IDR: containers to images, with their context.

A project is its datasets' images; a dataset's images come from ``api/v0/m/datasets/<id>/images/``
with their map annotations fetched a hundred images per request. A screen is its plates; a plate is
its wells listing (image records) and well grid of every field (positions), the map annotations of
its images **and wells**, then one :class:`~archivestore.sources.PlateItem`. An image given by id finds
its own context: ``imgData``'s ``wellId`` leads to its well, plate and screen; otherwise its project
and dataset are the ones ``imgData`` names.

A container that does not exist raises :class:`~archivestore.errors.NotFoundError` (nothing to
ingest); an image id that does not exist, and a dataset or plate whose listing fails, become
``problems`` and the walk goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from archivestore.errors import APIError, NotFoundError, UnreachableError
from archivestore.sources._base import ArrayItem, PlateItem
from archivestore.sources.idr._client import Idr, ref
from archivestore.sources.idr._items import ImageLoader, ZarrUrls, image_item, study_folder
from archivestore.sources.idr._omero import clean_record, map_values

__all__ = ["Walked", "Walker"]


class Walked(Protocol):
    """What a walk needs of its source (:class:`~archivestore.sources.idr.IdrSource`)."""

    idr: Idr
    urls: ZarrUrls | None

    def loader(self, image: int, zarr_url: str | None, size: tuple[int, int] | None) -> ImageLoader:
        """The pixel loader of one image."""
        ...

    def problem(self, item: str, where: str, reason: str) -> None:
        """Record an item that cannot be yielded."""
        ...


def _missing(exc: APIError) -> bool:
    """Whether an error answer means there is no such object (404; 403 is what the public user gets)."""
    return exc.status in (403, 404)


def _study(container: dict[str, Any] | None) -> str | None:
    folder = study_folder((container or {}).get("Name"))
    return folder[0] if folder else None


def _size(record: dict[str, Any]) -> tuple[int, int] | None:
    pixels = record.get("Pixels") or {}
    if "SizeX" in pixels and "SizeY" in pixels:
        return int(pixels["SizeX"]), int(pixels["SizeY"])
    return None


class Walker:
    """One walk over the containers and images of a source (caches parents it looked up)."""

    def __init__(self, source: Walked) -> None:
        self.source = source
        self.idr = source.idr
        self.ref = ref
        self._grids: dict[int, dict[str, Any]] = {}

    # -- containers -------------------------------------------------------------------------
    def container(self, kind: str, oid: int) -> Iterator[ArrayItem | PlateItem]:
        """Every item of a project, dataset, screen or plate."""
        try:
            record = self.idr.object(kind, oid)
        except APIError as exc:
            if _missing(exc):
                raise NotFoundError(f"no {kind} {oid} at {self.idr.base_url} ({exc.reason})") from None
            raise
        if kind == "project":
            for dataset in list(self.idr.pages(f"api/v0/m/projects/{oid}/datasets/", item=f"project {oid}")):
                yield from self.dataset(dataset, record)
        elif kind == "dataset":
            yield from self.dataset(record, self._parent("project", "dataset", oid))
        elif kind == "screen":
            for plate in list(self.idr.pages(f"api/v0/m/screens/{oid}/plates/", item=f"screen {oid}")):
                yield from self.plate(plate, record)
        else:
            yield from self.plate(record, self._parent("screen", "plate", oid))

    def _parent(self, kind: str, child: str, oid: int) -> dict[str, Any] | None:
        """The first ``kind`` holding ``child`` ``oid`` (``api/v0/m/<kind>s/?<child>=<id>``), or ``None``."""
        return next(iter(self.idr.pages(f"api/v0/m/{kind}s/", {child: oid}, item=f"{child} {oid}")), None)

    def dataset(self, dataset: dict[str, Any], project: dict[str, Any] | None) -> Iterator[ArrayItem]:
        """The images of one dataset."""
        did = int(dataset["@id"])
        try:
            images = list(self.idr.pages(f"api/v0/m/datasets/{did}/images/", item=f"dataset {did}"))
            maps = self.idr.map_annotations("image", [int(r["@id"]) for r in images])
        except UnreachableError:
            raise  # OMERO.web is out of reach: no walk goes on
        except APIError as exc:
            self.source.problem(f"dataset {did}", exc.url, exc.reason)
            return
        context = {"study": _study(project), "project": self.ref(project) if project else None,
                   "dataset": self.ref(dataset)}
        name = (project or {}).get("Name")
        for record in images:
            image = int(record["@id"])
            url = self.source.urls.image_url(image, name) if self.source.urls else None
            yield self._item(record, maps[image], context, url)

    def plate(self, plate: dict[str, Any], screen: dict[str, Any] | None) -> Iterator[ArrayItem | PlateItem]:
        """The images of one plate, then its :class:`PlateItem`."""
        pid = int(plate["@id"])
        try:
            layout = self.idr.plate_layout(pid)
            image_maps = self.idr.map_annotations("image", list(layout.positions))
            well_ids = sorted({well for *_, well in layout.positions.values() if well >= 0})
            well_maps = self.idr.map_annotations("well", well_ids)
            plate_map = map_values(self.idr.map_annotations("plate", [pid])[pid])
        except UnreachableError:
            raise  # OMERO.web is out of reach: no walk goes on
        except APIError as exc:
            self.source.problem(f"plate {pid}", exc.url, exc.reason)
            return
        study = _study(screen)
        screen_ref = self.ref(screen) if screen else None
        for image, (row, column, field, well) in layout.positions.items():
            record, sample = layout.records.get(image, ({"@id": image}, {}))
            context = {"study": study, "screen": screen_ref, "plate": str(pid), "plate_name": plate.get("Name"),
                       "well": f"{row}{column}", "well_id": well, "row": row, "column": column, "field": field,
                       "well_sample": clean_record(sample)}
            url = (self.source.urls.field_url(pid, (row, column, field), (screen or {}).get("Name"))
                   if self.source.urls else None)
            yield self._item(record, image_maps[image] + well_maps.get(well, []), context, url)
        metadata = {**clean_record(plate), "screen": screen_ref, "study": study}
        if plate_map:
            metadata["map"] = plate_map
        images = {(row, column, field): str(image) for image, (row, column, field, _) in layout.positions.items()}
        yield PlateItem(id=str(pid), metadata=metadata, rows=layout.rows, columns=layout.columns,
                        fields=layout.fields, images=images,
                        where=self.idr.client.url(f"webgateway/plate/{pid}/0/"))

    # -- one image given by id ---------------------------------------------------------------
    def image(self, image: int) -> Iterator[ArrayItem]:
        """One image with its context (plate and well, or project and dataset)."""
        try:
            record = self.idr.object("image", image)
            meta = self.idr.image_data(image).get("meta") or {}
            if meta.get("wellId"):
                context, url, annotations = self._in_well(image, int(meta["wellId"]))
            else:
                context, url, annotations = self._in_dataset(image, meta)
        except UnreachableError:
            raise
        except APIError as exc:
            reason = f"no such image at {self.idr.base_url}" if _missing(exc) else exc.reason
            self.source.problem(str(image), exc.url, reason)
            return
        yield self._item(record, annotations, context, url)

    def _in_dataset(self, image: int, meta: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[Any]]:
        project = {"id": meta["projectId"], "name": meta.get("projectName")} if meta.get("projectId") else None
        dataset = {"id": meta["datasetId"], "name": meta.get("datasetName")} if meta.get("datasetId") else None
        name = project["name"] if project else None
        context = {"study": _study({"Name": name}), "project": project, "dataset": dataset}
        url = self.source.urls.image_url(image, name) if self.source.urls else None
        return context, url, self.idr.map_annotations("image", [image])[image]

    def _in_well(self, image: int, well_id: int) -> tuple[dict[str, Any], str | None, list[Any]]:
        well = self.idr.object("well", well_id)
        plate = self._parent("plate", "well", well_id) or {}
        pid = int(plate.get("@id", -1))
        screen = self._parent("screen", "plate", pid) if pid >= 0 else None
        if pid not in self._grids:
            self._grids[pid] = self.idr.plate_grid(pid, 0)
        rows, columns = self._grids[pid].get("rowlabels", []), self._grids[pid].get("collabels", [])
        r, c = int(well.get("Row", 0)), int(well.get("Column", 0))
        row, column = (str(rows[r]) if r < len(rows) else str(r)), (str(columns[c]) if c < len(columns) else str(c))
        samples = well.get("WellSamples") or []
        field = next((i for i, s in enumerate(samples) if (s.get("Image") or {}).get("@id") == image), 0)
        sample = {k: v for k, v in (samples[field] if field < len(samples) else {}).items() if k != "Image"}
        context = {"study": _study(screen), "screen": self.ref(screen) if screen else None, "plate": str(pid),
                   "plate_name": plate.get("Name"), "well": f"{row}{column}", "well_id": well_id, "row": row,
                   "column": column, "field": field, "well_sample": clean_record(sample)}
        url = (self.source.urls.field_url(pid, (row, column, field), (screen or {}).get("Name"))
               if self.source.urls else None)
        annotations = self.idr.map_annotations("image", [image])[image]
        return context, url, annotations + self.idr.map_annotations("well", [well_id])[well_id]

    # -- the item ---------------------------------------------------------------------------
    def _item(self, record: dict[str, Any], annotations: list[Any], context: dict[str, Any],
              zarr_url: str | None) -> ArrayItem:
        image = int(record["@id"])
        metadata = {**clean_record(record), **{k: v for k, v in context.items() if v is not None}}
        values = map_values(annotations)
        if values:
            metadata["map"] = values
        return image_item(self.source.loader(image, zarr_url, _size(record)), metadata)
