"""A local OMERO.web stand-in (the Image Data Resource's routes) on 127.0.0.1, port 0, offline.

>>> with OmeroWebServer() as server:                                              # doctest: +SKIP
...     project = server.add_project("idr0062-blin-nuclearsegmentation/experimentA")
...     dataset = server.add_dataset("Dataset 1", project=project)
...     image = server.add_image(pixels, dataset=dataset)                           # (t, c, z, y, x)
...     server.annotate("image", image, [("Gene Symbol", "CDC20"), ("Gene Symbol", "CDC21")])
...     idr = Idr(server.url)

Routes, with the answer shapes of omero-web 5.x (:mod:`archivestore.testing._omero_data`):

- ``/webclient/?experimenter=-1`` opens an anonymous session (``Set-Cookie: sessionid=...``); every other
  route answers 403 without a valid ``sessionid`` (:meth:`OmeroWebServer.expire_sessions` ends them all).
- ``/api/v0/m/{projects,datasets,images,screens,plates,wells}/`` listings (``limit``/``offset``, capped at
  ``max_limit``; ``meta.totalCount``; filters ``?dataset=``, ``?project=``, ``?plate=``, ``?screen=``,
  ``?well=``, ``?image=``), single objects ``.../<id>/`` (404 ``{"message": "Image 9 not found"}``), and
  ``projects/<id>/datasets/``, ``datasets/<id>/images/``, ``screens/<id>/plates/``, ``plates/<id>/wells/``
  (filtered listings: empty, not 404, under an id that does not exist).
- ``/webclient/api/annotations/?type=map&<kind>=<id>&...`` (repeatable ids, ``page``/``limit``; the
  default page holds 20,000, and, as the real server's, the order is not unique: annotations of one
  namespace come in a different order on every request, so an offset walk past one page can skip
  or repeat some), ``/webclient/api/plates/?id=<screen>`` (``page``/``limit``),
  ``/webgateway/plate/<id>/<field>/`` (``layout=shrink|trim|expand``, default ``expand``: the grid
  padded to the next standard plate size, 6/24/96/384/1536 wells; ``trim``: the plate's own rows and
  columns).
- The wells listing (``plates/<id>/wells/``) carries each well sample's Image without ``Pixels``,
  as the real server loads them.
- ``/webclient/imgData/<id>/`` (403 for an image that does not exist, as the public user gets),
  ``/webgateway/render_image/<id>/<z>/<t>/`` (a JPEG: ``c=<n>|<start>:<end>$RRGGBB,...``, ``m=g`` greyscale,
  ``q`` quality; linear maps), ``/webgateway/render_thumbnail/<id>/[<size>/]`` and the webclient's twins.

HTTP faults of :class:`~archivestore.testing.faults.Faults` apply to every route.
"""

from __future__ import annotations

import io
import itertools
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from http.cookies import SimpleCookie
from typing import Any

import numpy as np

from archivestore.testing._omero_data import (
    EXPERIMENTER,
    Container,
    FakeImage,
    FakePlate,
    FakeWell,
    MapAnnotation,
    labels,
    render,
)
from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, FakeServer, Request, json_answer

__all__ = ["DEFAULT_CHANNELS", "OmeroWebServer", "render"]

DEFAULT_CHANNELS = (("DAPI", "0000FF"), ("GFP", "00FF00"), ("mCherry", "FF0000"), ("Cy5", "FF00FF"))

_KINDS = ("project", "dataset", "image", "screen", "plate", "well")


def _not_found(kind: str, oid: Any) -> Answer:
    return json_answer({"message": f"{kind.capitalize()} {oid} not found"}, 404)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


_STANDARD_PLATES = ((2, 3), (4, 6), (8, 12), (16, 24), (32, 48))
"""Rows and columns of the standard plates (6, 24, 96, 384, 1536 wells) a grid is expanded to."""

class OmeroWebServer(FakeServer):
    """The OMERO.web routes of the IDR on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    faults
        HTTP faults on every route.
    max_limit
        The JSON API's ``maxLimit`` (a bigger ``limit`` is capped); small values exercise paging.
    default_limit
        ``limit`` when none is asked.

    Attributes
    ----------
    containers, images, plates, wells, annotations
        What is served, by id.
    sessions
        The valid session ids; ``session_opens`` counts the sessions opened.
    """

    def __init__(self, faults: Faults | None = None, *, max_limit: int = 500, default_limit: int = 200) -> None:
        super().__init__(faults)
        self.max_limit = max_limit
        self.default_limit = default_limit
        self.containers: dict[tuple[str, int], Container] = {}
        self.images: dict[int, FakeImage] = {}
        self.plates: dict[int, FakePlate] = {}
        self.wells: dict[int, FakeWell] = {}
        self.annotations: list[MapAnnotation] = []
        self.sessions: set[str] = set()
        self._orders = 0  # counted under FakeServer's lock
        self.session_opens = 0
        self._sessions_lock = threading.Lock()
        self._ids = {kind: itertools.count(base) for kind, base in
                     zip((*_KINDS, "annotation"), (101, 201, 1001, 301, 401, 5001, 9001), strict=True)}

    # -- building the archive --------------------------------------------------------------
    def add_project(self, name: str, description: str = "") -> int:
        """A project; returns its id."""
        return self._container("project", name, description, None)

    def add_dataset(self, name: str, project: int | None = None, description: str = "") -> int:
        """A dataset (in ``project``); returns its id."""
        return self._container("dataset", name, description, project)

    def add_screen(self, name: str, description: str = "") -> int:
        """A screen; returns its id."""
        return self._container("screen", name, description, None)

    def _container(self, kind: str, name: str, description: str, parent: int | None) -> int:
        oid = next(self._ids[kind])
        self.containers[(kind, oid)] = Container(oid, kind, name, description, parent)
        return oid

    def add_image(self, pixels: np.ndarray, *, name: str | None = None, dataset: int | None = None,
                  pixel_size: tuple[float | None, float | None, float | None] = (0.5, 0.5, 2.0),
                  channels: Sequence[tuple[str, str]] | None = None, well: int | None = None) -> int:
        """An image with ``pixels`` ``(t, c, z, y, x)``; pixel sizes (x, y, z) in µm, ``None`` unknown."""
        if pixels.ndim != 5:
            raise ValueError("pixels are (t, c, z, y, x)")
        oid = next(self._ids["image"])
        names = list(channels or [DEFAULT_CHANNELS[i % len(DEFAULT_CHANNELS)] for i in range(pixels.shape[1])])
        self.images[oid] = FakeImage(oid, name or f"image {oid}.tif", np.asarray(pixels), pixel_size, names,
                                     dataset=dataset, well=well)
        return oid

    def add_plate(self, name: str, screen: int | None = None, rows: int = 8, columns: int = 12, *,
                  row_naming: str = "letter", column_naming: str = "number") -> int:
        """A plate (in ``screen``); returns its id."""
        oid = next(self._ids["plate"])
        self.plates[oid] = FakePlate(oid, name, rows, columns, screen, row_naming, column_naming)
        return oid

    def add_well(self, plate: int, row: int, column: int, fields: Sequence[np.ndarray] = (), **image: Any) -> int:
        """A well at (``row``, ``column``) (0-based) with one image per field; returns the well id."""
        oid = next(self._ids["well"])
        well = self.wells[oid] = FakeWell(oid, plate, row, column)
        for pixels in fields:
            well.images.append(self.add_image(pixels, well=oid, **image))
        return oid

    def annotate(self, kind: str, oid: int, values: Sequence[tuple[str, str]], ns: str | None = None) -> int:
        """A map annotation on an object (``image``, ``well``, ...); keys may repeat. Returns its id."""
        ann = MapAnnotation(next(self._ids["annotation"]), kind, oid, list(values))
        if ns:
            ann.ns = ns
        self.annotations.append(ann)
        return ann.id

    def expire_sessions(self) -> None:
        """End every session (the next request of a client answers 403)."""
        with self._sessions_lock:
            self.sessions.clear()

    # -- routes ---------------------------------------------------------------------------
    def route(self, request: Request) -> Answer:
        """The answer to one request (403 without a session, 404 for an unknown route)."""
        parts = request.parts
        if parts == ["webclient"]:
            return self._open_session(request)
        cookie = SimpleCookie(request.headers.get("Cookie") or "").get("sessionid")
        with self._sessions_lock:
            valid = cookie is not None and cookie.value in self.sessions
        if not valid:
            return Answer(403, b"<h1>403 Forbidden</h1>", "text/html")
        routes: dict[tuple[str, ...], Callable[[Request, list[str]], Answer]] = {
            ("api", "v0", "m"): self._api,
            ("webclient", "api", "annotations"): self._annotations,
            ("webclient", "api", "plates"): self._screen_plates,
            ("webgateway", "plate"): self._grid,
            ("webclient", "imgData"): self._image_data,
            ("webgateway", "imgData"): self._image_data,
            ("webgateway", "render_image"): self._render,
            ("webclient", "render_image"): self._render,
            ("webgateway", "render_thumbnail"): self._thumbnail,
            ("webclient", "render_thumbnail"): self._thumbnail,
        }
        for prefix, handler in routes.items():
            if tuple(parts[:len(prefix)]) == prefix:
                return handler(request, parts[len(prefix):])
        return Answer(404, b"<h1>Not Found</h1>", "text/html")

    def _open_session(self, request: Request) -> Answer:
        session = uuid.uuid4().hex
        with self._sessions_lock:
            self.sessions.add(session)
            self.session_opens += 1
        return Answer(200, b"<html><body>OMERO.web</body></html>", "text/html",
                      {"Set-Cookie": f"sessionid={session}; HttpOnly; Path=/; SameSite=Lax"})

    # -- the JSON API -----------------------------------------------------------------------
    def _api(self, request: Request, rest: list[str]) -> Answer:
        if not rest or not rest[0].endswith("s") or rest[0][:-1] not in _KINDS:
            return json_answer({"message": "not found"}, 404)
        kind = rest[0][:-1]
        if len(rest) == 1:
            return self._listing(kind, request.query)
        oid = _int(rest[1])
        if oid is None or (len(rest) == 2 and not self._exists(kind, oid)):
            return _not_found(kind, rest[1])
        if len(rest) == 2:
            return json_answer({"data": self._marshal(kind, oid, single=True)})
        child = rest[2][:-1] if rest[2].endswith("s") else ""
        if child not in _KINDS:
            return json_answer({"message": "not found"}, 404)
        return self._listing(child, {**request.query, kind: str(oid)})

    def _exists(self, kind: str, oid: int) -> bool:
        if kind == "image":
            return oid in self.images
        if kind in ("plate", "well"):
            return oid in (self.plates if kind == "plate" else self.wells)
        return (kind, oid) in self.containers

    def _marshal(self, kind: str, oid: int, single: bool = False) -> dict[str, Any]:
        if kind == "image":
            return self.images[oid].marshal(self.origin, channels=single)
        if kind == "plate":
            fields = max((len(w.images) for w in self.wells.values() if w.plate == oid), default=0)
            return self.plates[oid].marshal(self.origin, fields if single else None)
        if kind == "well":
            return self.wells[oid].marshal(self.origin, self.images)
        return self.containers[(kind, oid)].marshal(self.origin)

    def _ids_of(self, kind: str, query: dict[str, str]) -> list[int]:
        """Ids of ``kind`` matching the filters in ``query``, in omero-web's order."""
        get = {k: _int(query.get(k)) for k in _KINDS}
        if kind == "image":
            ids = [i for i, im in self.images.items() if get["dataset"] in (None, im.dataset)]
            return sorted(ids, key=lambda i: (self.images[i].name.lower(), i))
        if kind == "plate":
            holder = self.wells[get["well"]].plate if get["well"] in self.wells else None
            ids = [p for p, plate in self.plates.items()
                   if get["screen"] in (None, plate.screen) and (get["well"] is None or holder == p)]
            return sorted(ids, key=lambda p: (self.plates[p].name.lower(), p))
        if kind == "well":
            ids = [w for w, well in self.wells.items() if get["plate"] in (None, well.plate)]
            return sorted(ids, key=lambda w: (self.wells[w].column, self.wells[w].row))
        wanted = {  # the parent (or child) filter of each container kind: the id it must match
            "dataset": ("project", lambda c: c.parent),
            "project": ("dataset", lambda c: {d.parent for (k, _), d in self.containers.items()
                                             if k == "dataset" and d.id == get["dataset"]}),
            "screen": ("plate", lambda c: {p.screen for p in self.plates.values() if p.id == get["plate"]}),
        }
        found = []
        for (k, oid), container in self.containers.items():
            if k != kind:
                continue
            by, value = wanted[kind]
            match = value(container)
            if get[by] is not None and not (match == get[by] if kind == "dataset" else oid in match):
                continue
            if kind == "dataset" and get["image"] is not None and self.images.get(get["image"] or -1) is not None \
                    and self.images[get["image"] or -1].dataset != oid:
                continue
            found.append(oid)
        return sorted(found, key=lambda i: (self.containers[(kind, i)].name.lower(), i))

    def _listing(self, kind: str, query: dict[str, str]) -> Answer:
        try:
            offset = int(query.get("offset") or 0)
            limit = int(query.get("limit") or self.default_limit)
        except ValueError as exc:
            return json_answer({"message": str(exc)}, 400)
        limit = min(limit, self.max_limit)
        ids = self._ids_of(kind, query)
        data = [self._marshal(kind, i) for i in ids[offset:offset + limit]]
        meta = {"totalCount": len(ids), "maxLimit": self.max_limit, "limit": limit, "offset": offset}
        return json_answer({"data": data, "meta": meta})

    # -- the webclient and webgateway -----------------------------------------------------
    def _parent_name(self, kind: str, oid: int) -> str | None:
        if kind == "image":
            return self.images[oid].name if oid in self.images else None
        if kind == "well" and oid in self.wells:
            well = self.wells[oid]
            plate = self.plates[well.plate]
            row, column = labels(plate.rows, plate.row_naming), labels(plate.columns, plate.column_naming)
            return row[well.row] + column[well.column]
        if kind == "plate":
            return self.plates[oid].name if oid in self.plates else None
        container = self.containers.get((kind, oid))
        return container.name if container else None

    def _annotations(self, request: Request, rest: list[str]) -> Answer:
        page, limit = _int(request.query.get("page")) or 1, _int(request.query.get("limit")) or 20_000
        found: list[dict[str, Any]] = []
        for kind in _KINDS:
            ids = {_int(v) for v in request.query_lists.get(kind, []) if v != ""}
            if not ids:
                continue
            links = [a for a in self.annotations if a.kind == kind and a.parent in ids
                     and request.query.get("type") in (None, "map")]
            with self._lock:
                self._orders += 1
                shuffle = random.Random(self._orders)  # the real order is by namespace only: ties move
            shuffle.shuffle(links)
            links.sort(key=lambda a: a.ns or "")
            found += [a.marshal(self._parent_name(kind, a.parent)) for a in links[(page - 1) * limit:page * limit]]
        return json_answer({"annotations": found, "experimenters": [EXPERIMENTER] if found else []})

    def _screen_plates(self, request: Request, rest: list[str]) -> Answer:
        page, limit = _int(request.query.get("page")) or 1, _int(request.query.get("limit")) or 200
        ids = self._ids_of("plate", {"screen": request.query.get("id", "")})
        plates = [{"id": p, "name": self.plates[p].name, "ownerId": 2, "childCount": 0, "permsCss": ""}
                  for p in ids[(page - 1) * limit:page * limit]]
        return json_answer({"plates": plates})

    def _grid(self, request: Request, rest: list[str]) -> Answer:
        pid = _int(rest[0]) if rest else None
        if pid is None or pid not in self.plates:
            return Answer(404, b"<h1>Not Found</h1>", "text/html")
        field = _int(rest[1]) if len(rest) > 1 else 0
        plate = self.plates[pid]
        rows, columns = plate.rows, plate.columns
        if request.query.get("layout", "expand") == "expand":  # padded to a standard plate
            rows, columns = next(((r, c) for r, c in _STANDARD_PLATES if r >= plate.rows and c >= plate.columns),
                                 (rows, columns))
        grid: list[list[dict[str, Any] | None]] = [[None] * columns for _ in range(rows)]
        first = None
        for well in (w for w in self.wells.values() if w.plate == pid and len(w.images) > (field or 0)):
            image = self.images[well.images[field or 0]]
            first = first or image
            grid[well.row][well.column] = {
                "type": "Image", "id": image.id, "name": image.name, "description": image.description,
                "author": "Public User", "date": image.acquired // 1000, "wellId": well.id, "field": field or 0,
                "thumb_url": f"/webgateway/render_thumbnail/{image.id}/"}
        sizes = [{"x": first.sizes["SizeX"], "y": first.sizes["SizeY"], "image_id": first.id}] if first else []
        return json_answer({"grid": grid, "collabels": labels(columns, plate.column_naming),
                            "rowlabels": labels(rows, plate.row_naming), "image_sizes": sizes})

    def _image_data(self, request: Request, rest: list[str]) -> Answer:
        oid = _int(rest[0]) if rest else None
        if oid is None or oid not in self.images:
            return Answer(403, b"", "text/html")  # what the public user gets for an image it cannot see
        image = self.images[oid]
        dataset = self.containers.get(("dataset", image.dataset or -1))
        project = self.containers.get(("project", dataset.parent or -1)) if dataset else None
        return json_answer(image.image_data(project=project, dataset=dataset, well=image.well))

    def _plane(self, rest: list[str], z: int, t: int) -> FakeImage | None:
        oid = _int(rest[0]) if rest else None
        image = self.images.get(oid or -1)
        if image is None or not (0 <= z < image.pixels.shape[2] and 0 <= t < image.pixels.shape[0]):
            return None
        return image

    def _render(self, request: Request, rest: list[str]) -> Answer:
        z = _int(rest[1]) if len(rest) > 1 else None
        t = _int(rest[2]) if len(rest) > 2 else 0
        image = self._plane(rest, 0 if z is None else z, t or 0)
        if image is None:
            return Answer(404, b"<h1>Not Found</h1>", "text/html")
        z = image.pixels.shape[2] // 2 if z is None else z
        return Answer(200, render(image, z, t or 0, request.query), "image/jpeg")

    def _thumbnail(self, request: Request, rest: list[str]) -> Answer:
        from PIL import Image

        image = self._plane(rest, 0, 0)
        if image is None:
            return Answer(404, b"<h1>Not Found</h1>", "text/html")
        size = (_int(rest[1]) if len(rest) > 1 else None) or 96
        rendered = Image.open(io.BytesIO(render(image, image.pixels.shape[2] // 2, 0, {})))
        scale = size / max(rendered.size)  # the longest side becomes ``size``, small images grow too
        picture = rendered.resize((max(1, round(rendered.width * scale)), max(1, round(rendered.height * scale))))
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=90)
        return Answer(200, out.getvalue(), "image/jpeg")
