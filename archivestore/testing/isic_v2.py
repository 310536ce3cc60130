"""A local stand-in for the ISIC Archive's API v2 (127.0.0.1, port 0, stdlib + numpy/Pillow).

:class:`V2Server` reproduces cursor paging, the license files of downloads, bearer tokens as the real
server takes them (an invalid or expired token is anonymous on the listing and search routes; only
``users/me/`` answers 401), the ``key:value AND ...`` subset of the search syntax (with ``-key:value``
negation; a query it cannot parse is the real 400 ``{"message": "Could not parse search query."}``), collections, and
signed file URLs that expire. Records
come from :func:`synthetic_v2_records` (no fixtures needed) or are derived from real
v1 records by :func:`v2_record_from_v1`; pixels are synthesized from the ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, FakeServer, Request, error_answer, json_answer
from archivestore.testing.isic_v1 import Record, synthetic_size
from archivestore.testing.sample import synthetic_image

__all__ = ["V2Server", "search_records", "synthetic_v2_records", "v2_record_from_v1"]

_NO_ROUTE = error_answer(404, "no such route")


def v2_record_from_v1(record: Record, *, public: bool = True) -> Record:
    """A v2 image record built from a real v1 record (same id, clinical fields, license)."""
    meta = record.get("meta", {})
    v1_clinical = meta.get("clinical", {})
    clinical = {k: v for k, v in v1_clinical.items() if k != "diagnosis"}
    if v1_clinical.get("benign_malignant"):
        clinical["diagnosis_1"] = str(v1_clinical["benign_malignant"]).capitalize()
    if v1_clinical.get("diagnosis"):
        clinical["diagnosis_3"] = str(v1_clinical["diagnosis"]).capitalize()
    acq = meta.get("acquisition", {})
    acquisition = {"image_type": acq.get("image_type"), "pixels_x": acq.get("pixelsX"), "pixels_y": acq.get("pixelsY")}
    dataset = record.get("dataset", {})
    return {
        "isic_id": record["name"],
        "public": public,
        "copyright_license": dataset.get("license", "CC-0"),
        "attribution": (
            "Anonymous" if dataset.get("name", "").startswith("UDA") else f"{dataset.get('name', 'ISIC')} contributors"
        ),
        "metadata": {"acquisition": acquisition, "clinical": clinical},
        "_collections": [dataset.get("name", "")],
        "_shape": list(synthetic_size(record)),
    }


def synthetic_v2_records(n: int, *, private_every: int = 0) -> list[Record]:
    """``n`` synthetic v2 records (no fixtures needed), ids ``ISIC_9000000``...

    Every ``private_every``-th record is not public (0: all public).
    """
    sites = ["head/neck", "upper extremity", "posterior torso", None]
    return [
        {
            "isic_id": f"ISIC_{9000000 + i:07d}",
            "public": not (private_every and i % private_every == 0),
            "copyright_license": ["CC-0", "CC-BY", "CC-BY-NC"][i % 3],
            "attribution": ["Anonymous", "Hospital A", "Hospital B"][i % 3],
            "metadata": {
                "acquisition": {"image_type": "dermoscopic", "pixels_x": 24 + i % 5, "pixels_y": 16 + i % 3},
                "clinical": {
                    "age_approx": 20 + 5 * (i % 12),
                    "sex": ["male", "female"][i % 2],
                    "anatom_site_general": sites[i % 4],
                    "diagnosis_1": ["Benign", "Malignant"][int(i % 4 == 1)],
                },
            },
            "_collections": [["Collection A", "Collection B"][i % 2]],
            "_shape": [16 + i % 3, 24 + i % 5],
        }
        for i in range(n)
    ]


def search_records(records: list[Record], query: str) -> list[Record]:
    """A small subset of the archive's query syntax: ``key:value`` (``-key:value``: not) terms joined by ``AND``.

    Raises
    ------
    ValueError
        If a term is not ``key:value``.
    """
    query = query.strip()
    if not query:
        return records
    terms = []
    for term in query.split(" AND "):
        key, sep, value = term.strip().partition(":")
        if not sep or not key.strip("- "):
            raise ValueError(f"cannot parse {term!r}")
        terms.append((key.strip(), value.strip().strip('"')))

    def leaf(record: Record, key: str) -> Any:
        for group in ("clinical", "acquisition"):
            if key in record["metadata"].get(group, {}):
                return record["metadata"][group][key]
        return record.get(key)

    def match(record: Record, key: str, value: str) -> bool:
        negated = key.startswith("-")
        return (str(leaf(record, key.lstrip("-"))).lower() == value.lower()) != negated

    return [r for r in records if all(match(r, k, v) for k, v in terms)]


class V2Server(FakeServer):
    """API v2 of the ISIC Archive.

    Parameters
    ----------
    records
        v2 image records (see :func:`v2_record_from_v1`); ``public: False`` ones are
        visible only with the bearer ``token``. Keys starting with ``_`` are the
        server's bookkeeping (collections, synthesized image shape).
    token
        The OAuth bearer token accepted for non-public images. Any other token is treated as
        anonymous on the listing and search routes (200, public images only), as the real server
        does; ``users/me/`` answers 401 for it.
    url_ttl
        Lifetime of signed file URLs in seconds; advance :attr:`clock_offset` to expire them.
    faults
        Fault injection, see :class:`~archivestore.testing.faults.Faults`.

    Examples
    --------
    >>> with V2Server(synthetic_v2_records(5)) as server:  # doctest: +SKIP
    ...     IsicV2(server.url)
    """

    prefix = "/api/v2/"

    def __init__(
        self,
        records: list[Record],
        *,
        token: str | None = None,
        url_ttl: float = 3600.0,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(faults)
        self.records = sorted(records, key=lambda r: r["isic_id"])
        self.by_id = {r["isic_id"]: r for r in self.records}
        self.token = token
        self.url_ttl = url_ttl
        self.clock_offset = 0.0
        self.secret = b"fake-bucket-signing-key"
        names = sorted({c for r in self.records for c in r.get("_collections", []) if c})
        self.collections = [
            {"id": i + 1, "name": n, "description": "", "public": True, "pinned": True, "locked": True, "doi": None}
            for i, n in enumerate(names)
        ]

    def now(self) -> float:
        """The server's clock: wall time plus :attr:`clock_offset`."""
        return time.time() + self.clock_offset

    def sign(self, path: str, expires: int) -> str:
        """The signature of a file URL."""
        return hmac.new(self.secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()

    def route(self, request: Request) -> Answer:
        """Signed file downloads under ``/files/``, the API under ``/api/v2/``."""
        path = request.path
        if path.startswith("/files/"):
            return self._download(request)
        if not path.startswith(self.prefix):
            return _NO_ROUTE
        parts = request.parts[len([p for p in self.prefix.split("/") if p]) :]
        if parts == ["users", "me"]:
            return self._me(request)
        visible = self._visible(request)
        if parts == ["collections"]:
            return self._cursor_page(request, self.collections, path)
        if len(parts) == 3 and parts[:2] == ["zip-download", "license-file"]:  # isic-cli fetches these
            return Answer(body=f"{parts[2]}\n(license text)\n".encode(), content_type="text/plain")
        if parts in (["images"], ["images", "search"]):
            return self._images(request, visible, search=parts == ["images", "search"])
        if len(parts) == 2 and parts[0] == "images":
            record = next((r for r in visible if r["isic_id"] == parts[1]), None)
            if record is None:
                return json_answer({"detail": "Not found."}, 404)
            return json_answer(self._public_record(record))
        return _NO_ROUTE

    def _images(self, request: Request, items: list[Record], search: bool) -> Answer:
        if search:
            try:
                items = search_records(items, request.query.get("query", ""))
            except ValueError:
                return json_answer({"message": "Could not parse search query."}, 400)
            wanted = request.query.get("collections", "")
            if wanted:
                ids = {int(x) for x in wanted.split(",")}
                names = {c["name"] for c in self.collections if c["id"] in ids}
                items = [r for r in items if names & set(r.get("_collections", []))]
        return self._cursor_page(request, [self._public_record(r) for r in items], request.path)

    def _public_record(self, record: Record) -> Record:
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        expires = int(self.now() + self.url_ttl)
        files = {}
        for kind in ("full", "thumbnail_256"):
            path = f"/files/{record['isic_id']}/{kind}.png"
            query = urlencode({"expires": expires, "signature": self.sign(path, expires)})
            files[kind] = {"url": f"{self.origin}{path}?{query}", "size": len(self._file(record, kind))}
        out["files"] = files
        return out

    def _file(self, record: Record, kind: str) -> bytes:
        h, w = record.get("_shape", (16, 16))
        if kind == "thumbnail_256":
            h, w = max(1, h // 2), max(1, w // 2)
        return synthetic_image(record["isic_id"] + ("" if kind == "full" else "/thumb"), (h, w))

    def _authenticated(self, request: Request) -> bool:
        return self.token is not None and request.headers.get("Authorization") == f"Bearer {self.token}"

    def _visible(self, request: Request) -> list[Record]:
        """Every record with the right token; public ones otherwise (a bad token is anonymous, not 401)."""
        if self._authenticated(request):
            return self.records
        return [r for r in self.records if r.get("public", True)]

    def _me(self, request: Request) -> Answer:
        if not self._authenticated(request):
            return json_answer({"detail": "Unauthorized"}, 401)
        return json_answer({"id": 1, "full_name": "Test User", "email": "user@example.org", "accepted_terms": None})

    def _cursor_page(self, request: Request, items: list[Any], path: str) -> Answer:
        q = request.query
        limit = max(1, min(int(q.get("limit", 100) or 100), 100))
        cursor = q.get("cursor")
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"] if cursor else 0
        page = items[offset : offset + limit]
        nxt = None
        if offset + limit < len(items):
            params: dict[str, Any] = {k: v for k, v in q.items() if k not in ("cursor", "limit")}
            next_cursor = base64.urlsafe_b64encode(json.dumps({"o": offset + limit}).encode()).decode()
            params.update(limit=limit, cursor=next_cursor)
            nxt = f"{self.origin}{path}?{urlencode(params)}"
        body: dict[str, Any] = {"next": nxt, "previous": None, "results": page}
        if not cursor:
            body = {"count": len(items), **body}
        return json_answer(body)

    def _download(self, request: Request) -> Answer:
        q = request.query
        expired = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        denied = Answer(403, expired, "application/xml")
        try:
            expires = int(q["expires"])
        except (KeyError, ValueError):
            return denied
        signed = hmac.compare_digest(q.get("signature", ""), self.sign(request.raw_path, expires))
        if not signed or expires < self.now():
            return denied
        _, _, isic_id, name = request.raw_path.split("/")
        record = self.by_id.get(isic_id)
        if record is None:
            return Answer(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Answer(body=self._file(record, name.rsplit(".", 1)[0]), content_type="image/png")
