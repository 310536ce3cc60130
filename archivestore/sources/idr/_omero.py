"""OMERO.web as an HTTP API: the anonymous session, the JSON API's paging, map annotations, pixels routes.

:class:`OmeroWeb` speaks to any OMERO.web (the Image Data Resource's among them) through the shared
:class:`~archivestore.sources._http.Client` (retries of 429/5xx and broken transfers, timeouts,
verified bodies, redacted logs, errors naming the object). The routes, as omero-web 5.x serves them:

- ``webclient/?experimenter=-1`` opens the anonymous (public user) session; its ``sessionid`` cookie
  is kept by the HTTP session and sent with every later request. OMERO.web answers 403 when a session
  is missing or expired, and also for an object the public user cannot see; a 403 re-opens the
  session once and asks again, so a second 403 means the object is not there.
- ``api/v0/m/<kind>s/`` (omero-marshal JSON: ``{"data": [...], "meta": {"totalCount", "limit",
  "offset", "maxLimit"}}``) is read ``limit``/``offset`` page by page up to the first page's
  ``meta.totalCount`` (a page shorter than asked, the server's ``maxLimit``, just moves the offset on;
  an empty page ends the listing), so a listing always ends.
- ``webclient/api/annotations/?type=map&<kind>=<id>...`` gives map annotations (``values`` are
  ``[key, value]`` pairs; a key may repeat) with the object each is linked to; many ids go in one
  request and the answer is read ``page`` by ``page``.
- ``webclient/api/plates/?id=<screen>`` (the plates of a screen, paged by ``page``),
  ``webgateway/plate/<id>/<field>/`` (the well grid of one field), ``webclient/imgData/<id>/``
  (sizes, pixel sizes in µm that may be ``null``, channels with colours and windows),
  ``webgateway/render_image/<id>/<z>/<t>/`` (a rendered 8-bit JPEG plane) and
  ``webgateway/render_thumbnail/<id>/[<size>/]``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import requests

from archivestore.errors import APIError
from archivestore.sources._http import Client

__all__ = ["MAP_KINDS", "OmeroWeb", "clean_record", "map_values"]

MAP_KINDS = ("project", "dataset", "image", "screen", "plate", "well")
"""Objects whose map annotations ``webclient/api/annotations/`` gives (its query parameter names)."""

LINEAR_MAPS = json.dumps([{"inverted": {"enabled": False}, "quantization": {"family": "linear", "coefficient": 1}}])
"""``maps=`` of a render request: no inversion, a linear quantization (omero-web applies it for the request only)."""


def clean_record(record: Any) -> Any:
    """An omero-marshal record without ``omero:details`` (owner, group, permissions) and ``url:*`` links, at any depth.

    What is left is the object's own data: ``@id``, ``@type``, ``Name``, ``Pixels``, ... (JSON-compatible).
    """
    if isinstance(record, dict):
        return {k: clean_record(v) for k, v in record.items()
                if k != "omero:details" and not str(k).startswith("url:")}
    if isinstance(record, list):
        return [clean_record(v) for v in record]
    return record


def map_values(annotations: Iterable[Mapping[str, Any]]) -> dict[str, str | list[str]]:
    """The key-value pairs of map annotations: a key seen once maps to its value, a repeated key to all its values.

    Values keep the order in which the annotations list them. Every pair of one annotation is kept;
    a pair (same key, same value) that an earlier annotation already gave is not repeated (an image
    and its well may both say ``Gene Symbol: CDC20``).
    """
    values: dict[str, list[str]] = {}
    earlier: set[tuple[str, str]] = set()
    for annotation in annotations:
        pairs = [(str(p[0]), "" if p[1] is None else str(p[1])) for p in annotation.get("values") or ()
                 if isinstance(p, (list, tuple)) and len(p) == 2]
        for key, value in pairs:
            if (key, value) not in earlier:
                values.setdefault(key, []).append(value)
        earlier.update(pairs)
    return {key: found[0] if len(found) == 1 else found for key, found in values.items()}


class OmeroWeb:
    """Client of one OMERO.web server, anonymous (see the module docstring).

    Parameters
    ----------
    base_url
        The server's root, e.g. ``https://idr.openmicroscopy.org/``.
    retries, backoff_factor, timeout, workers, debug
        See :class:`archivestore.sources._http.Client`; ``workers`` is also how many planes
        are fetched at once.
    page_size
        Records asked for per JSON API page (IDR's ``maxLimit`` is 500).
    annotation_page
        Annotations asked for per ``webclient/api/annotations/`` request (OMERO.web's default page
        holds 20,000). Their order is not unique, so an offset walk past one page could skip or
        repeat annotations: a full page is asked again as two requests of half the objects each.

    Notes
    -----
    Pickles as its options; the session is opened again where it is unpickled.
    """

    def __init__(self, base_url: str, *, retries: int = 5, backoff_factor: float = 0.5,
                 timeout: tuple[float, float] = (10.0, 120.0), workers: int = 8, debug: bool = False,
                 page_size: int = 500, annotation_page: int = 20_000) -> None:
        self._options: dict[str, Any] = dict(retries=retries, backoff_factor=backoff_factor, timeout=timeout,
                                             workers=workers, debug=debug, page_size=page_size,
                                             annotation_page=annotation_page)
        self.workers = max(1, int(workers))
        self.page_size = max(1, int(page_size))
        self.annotation_page = max(1, int(annotation_page))
        # connections: planes are fetched ``workers`` at a time inside each of the ingest's worker threads
        self.client = Client.for_api(base_url, cache_dir=None, cache_expire=0.0, retries=retries,
                                     backoff_factor=backoff_factor, timeout=timeout, workers=4 * self.workers,
                                     debug=debug)
        self._lock = threading.Lock()
        self._session = 0  # how many sessions were opened; 0: none yet

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (type(self), self.base_url, self._options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    @property
    def base_url(self) -> str:
        """The server's root (ends with ``/``)."""
        return self.client.base_url

    # -- the session ------------------------------------------------------------------------
    def open_session(self, replacing: int | None = None) -> None:
        """Open the anonymous session (``webclient/?experimenter=-1``), dropping the old cookies.

        ``replacing`` is the session a caller saw fail: when another thread has opened a newer one
        meanwhile, nothing is done.
        """
        with self._lock:
            if replacing is not None and replacing != self._session:
                return
            self.client.session.cookies.clear()
            self.client.get("webclient/", {"experimenter": -1}, item="the anonymous OMERO.web session")
            self._session += 1

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, item: str | None = None) -> requests.Response:
        """GET ``path`` in the session (opened first if needed; re-opened once on a 403).

        Raises
        ------
        APIError
            An error answer (a 403 after the session was re-opened: the object is not visible to
            the public user, or does not exist), or retries exhausted.
        """
        if self._session == 0:
            self.open_session(replacing=0)
        session = self._session
        response = self.client.get(path, params, item=item, ok=(403,))
        if response.status_code != 403:
            return response
        self.open_session(replacing=session)
        response = self.client.get(path, params, item=item, ok=(403,))
        if response.status_code == 403:
            raise APIError(self.client.url(path), "HTTP 403 Forbidden: not visible to the public user "
                           "(no such object, or not public)", status=403, item=item)
        return response

    def json(self, path: str, params: Mapping[str, Any] | None = None, *, item: str | None = None) -> Any:
        """The JSON body of :meth:`get`."""
        response = self.get(path, params, item=item)
        try:
            return response.json()
        except ValueError:
            raise APIError(self.client.url(path), "answer is not JSON", status=response.status_code,
                           item=item) from None

    # -- the JSON API -----------------------------------------------------------------------
    def object(self, kind: str, object_id: int) -> dict[str, Any]:
        """One object of the JSON API (``api/v0/m/<kind>s/<id>/``'s ``data``), e.g. ``object("image", 1)``.

        Raises
        ------
        APIError
            Status 404 when there is no such object.
        """
        data = self.json(f"api/v0/m/{kind}s/{int(object_id)}/", item=f"{kind} {object_id}").get("data")
        if not isinstance(data, dict):
            raise APIError(self.client.url(f"api/v0/m/{kind}s/{object_id}/"), "expected {'data': {...}}",
                           item=f"{kind} {object_id}")
        return data

    def pages(self, path: str, params: Mapping[str, Any] | None = None, *,
              item: str | None = None) -> Iterator[dict[str, Any]]:
        """The records of a JSON API listing, page by page up to the first page's ``meta.totalCount``."""
        offset = 0
        total: int | None = None
        while True:
            page = self.json(path, {**(params or {}), "limit": self.page_size, "offset": offset}, item=item)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise APIError(self.client.url(path), "expected {'data': [...], 'meta': {...}}", item=item)
            if total is None:
                meta = page.get("meta") or {}
                total = int(meta.get("totalCount", len(data)))
            yield from data
            offset += len(data)
            if not data or offset >= total:
                return

    # -- the webclient API ------------------------------------------------------------------
    def map_annotations(self, kind: str, ids: Sequence[int], *, batch: int = 100) -> dict[int, list[dict[str, Any]]]:
        """Map annotations of many objects of one kind: ``{id: [annotation, ...]}`` (every id present).

        Parameters
        ----------
        kind
            One of :data:`MAP_KINDS`.
        ids
            The objects' ids; ``batch`` of them go in one request.
        """
        if kind not in MAP_KINDS:
            raise ValueError(f"map annotations of {kind!r}: expected one of {', '.join(MAP_KINDS)}")
        found: dict[int, list[dict[str, Any]]] = {int(i): [] for i in ids}
        wanted = list(found)
        parent_class = f"{kind.capitalize()}I"
        for start in range(0, len(wanted), max(1, batch)):
            for annotation in self._annotations_of(kind, wanted[start:start + batch]):
                parent = (annotation.get("link") or {}).get("parent") or {}
                if parent.get("class") == parent_class and parent.get("id") in found:
                    found[parent["id"]].append(annotation)
        return found

    def _annotations_of(self, kind: str, ids: list[int]) -> Iterator[dict[str, Any]]:
        """Every map annotation of ``ids``, each request one page (see ``annotation_page``): none skipped."""
        item = f"{kind} {ids[0]}"
        page = 1
        seen: set[tuple[Any, Any]] = set()
        while True:
            annotations = self._annotation_page({"type": "map", kind: ids}, page, item)
            if len(annotations) < self.annotation_page:  # the whole answer fitted in one page
                yield from (a for a in annotations if _link_key(a) not in seen)
                return
            if len(ids) > 1:  # a full page: the rest is in no stable order; ask for half the objects at a time
                half = len(ids) // 2
                yield from self._annotations_of(kind, ids[:half])
                yield from self._annotations_of(kind, ids[half:])
                return
            # one object with a full page of its own: pages are all there is (repeats are dropped)
            new = [a for a in annotations if _link_key(a) not in seen]
            seen.update(_link_key(a) for a in annotations)
            yield from new
            if not new:
                return
            page += 1

    def _annotation_page(self, params: Mapping[str, Any], page: int, item: str) -> list[dict[str, Any]]:
        answer = self.json("webclient/api/annotations/", {**params, "page": page, "limit": self.annotation_page},
                           item=item)
        annotations = answer.get("annotations") if isinstance(answer, dict) else None
        if not isinstance(annotations, list):
            raise APIError(self.client.url("webclient/api/annotations/"), "expected {'annotations': [...]}", item=item)
        return annotations

    def screen_plates(self, screen: int) -> list[dict[str, Any]]:
        """The plates of a screen as the webclient lists them (``id``, ``name``, ``childCount``, ...)."""
        plates: list[dict[str, Any]] = []
        seen: set[Any] = set()
        page = 1
        while True:
            answer = self.json("webclient/api/plates/", {"id": int(screen), "page": page, "limit": self.page_size},
                               item=f"screen {screen}")
            batch = answer.get("plates") if isinstance(answer, dict) else None
            if not isinstance(batch, list):
                raise APIError(self.client.url("webclient/api/plates/"), "expected {'plates': [...]}",
                               item=f"screen {screen}")
            new = [p for p in batch if p.get("id") not in seen]
            seen.update(p.get("id") for p in batch)
            plates.extend(new)
            if len(batch) < self.page_size or not new:
                return plates
            page += 1

    def plate_grid(self, plate: int, field: int = 0) -> dict[str, Any]:
        """The well grid of one field (``rowlabels``, ``collabels``, ``grid`` of cells or ``None``).

        Asked with ``layout=trim`` (the server's default ``expand`` pads the grid to a standard plate).
        """
        grid = self.json(f"webgateway/plate/{int(plate)}/{int(field)}/", {"layout": "trim"}, item=f"plate {plate}")
        if not isinstance(grid, dict) or not isinstance(grid.get("grid"), list):
            raise APIError(self.client.url(f"webgateway/plate/{plate}/{field}/"), "expected a plate grid",
                           item=f"plate {plate}")
        return grid

    def image_data(self, image: int) -> dict[str, Any]:
        """``webclient/imgData/<id>/``: sizes, pixel sizes (µm, may be ``null``), channels, rendering defaults."""
        info = self.json(f"webclient/imgData/{int(image)}/", item=str(image))
        if not isinstance(info, dict) or not isinstance(info.get("size"), dict):
            reason = "no pixel data" if isinstance(info, dict) else "expected an imgData record"
            raise APIError(self.client.url(f"webclient/imgData/{image}/"), reason, item=str(image))
        return info

    # -- pixels -----------------------------------------------------------------------------
    def render_url(self, image: int, z: int, t: int) -> str:
        """The ``render_image`` URL of one plane (without the rendering parameters)."""
        return self.client.url(f"webgateway/render_image/{int(image)}/{int(z)}/{int(t)}/")

    def render_plane(self, image: int, z: int, t: int, channel: int, window: tuple[float, float]) -> bytes:
        """One plane of one channel rendered alone in greyscale, linearly from ``window`` to 0..255, as a JPEG.

        ``channel`` is 0-based; the request activates only that channel (``c=<n>|<start>:<end>$FFFFFF``),
        with the greyscale model (``m=g``), a linear map without inversion (``maps=``) and the best
        JPEG quality (``q=1``).
        """
        start, end = (_number(w) for w in window)
        params = {"c": f"{int(channel) + 1}|{start}:{end}$FFFFFF", "m": "g", "q": "1.0", "maps": LINEAR_MAPS}
        return self.get(self.render_url(image, z, t), params, item=str(image)).content

    def thumbnail(self, image: int, size: int | None = None) -> bytes:
        """The image's thumbnail (its default rendering, longest side ``size``, OMERO.web's default 96) as a JPEG."""
        path = f"webgateway/render_thumbnail/{int(image)}/" + (f"{int(size)}/" if size else "")
        return self.get(path, item=str(image)).content


def _link_key(annotation: dict[str, Any]) -> tuple[Any, Any]:
    """An annotation's identity in a listing: the annotation and its link (one per object it is on)."""
    return annotation.get("id"), (annotation.get("link") or {}).get("id")


def _number(value: Any) -> str:
    """A window bound as omero-web parses it: an integer when integral, else a plain decimal."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _rebuild(cls: type[OmeroWeb], base_url: str, options: dict[str, Any]) -> OmeroWeb:
    return cls(base_url, **options)
