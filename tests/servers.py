"""Local fake ISIC Archive API servers for the tests (127.0.0.1, port 0, stdlib only).

:class:`V1Server` reproduces the Girder API v1 routes the sources use and serves
the *real* recorded image and segmentation records of ``../shared/fixtures/isic-v1``;
:class:`V2Server` reproduces API v2 (cursor paging, bearer tokens, signed expiring
file URLs). Both inject faults (429 with Retry-After, 500, connection reset,
truncated bodies) drawn from a seeded RNG with bounded counts, see :class:`Faults`.

What the fixtures do not hold is synthesized deterministically from ids: image
pixels, superpixel grids (except the archive's real superpixel PNG of ISIC_0000000),
segmentation masks, studies and annotations (the fixtures have no studies), and the
v2 records (derived from real v1 records: same ids, clinical fields and licenses).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import hmac
import io
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import numpy as np
from PIL import Image

from archivestore.imaging import encode_superpixels_rgb

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
V1_FIXTURES = FIXTURES / "isic-v1"

__all__ = [
    "FIXTURES",
    "Faults",
    "V1Server",
    "V2Server",
    "load_v1_fixtures",
    "synthetic_image",
    "synthetic_mask",
    "synthetic_study",
    "synthetic_superpixels",
    "synthetic_v2_records",
    "v2_record_from_v1",
]


# -- faults -----------------------------------------------------------------------
@dataclass
class Faults:
    """Fault injection: each request fails with probability ``rate``.

    Parameters
    ----------
    rate
        Probability that a request is answered by a fault.
    kinds
        Fault kinds drawn uniformly: ``"429"`` (with ``Retry-After``), ``"500"``,
        ``"reset"`` (connection closed with RST before an answer), ``"truncate"``
        (a 200 whose ``Content-Length`` is larger than the body sent).
    seed
        Seed of the RNG (runs are reproducible up to thread interleaving).
    max_total
        Bound on the number of faults over the server's life.
    max_per_path
        Bound on the faults of one URL path, so a client with more retries than
        this always gets through.
    retry_after
        Value of the ``Retry-After`` header of 429 answers (seconds).
    """

    rate: float = 0.2
    kinds: tuple[str, ...] = ("429", "500", "reset", "truncate")
    seed: int = 0
    max_total: int = 10_000
    max_per_path: int = 2
    retry_after: str = "0"
    counts: Counter = field(default_factory=Counter)
    per_path: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, path: str) -> str | None:
        """The fault for a request of ``path``, or ``None``."""
        with self._lock:
            if sum(self.counts.values()) >= self.max_total or self.per_path[path] >= self.max_per_path:
                return None
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.counts[kind] += 1
            self.per_path[path] += 1
            return kind

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# -- synthesized content ------------------------------------------------------------
def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "little")


def _png(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def synthetic_size(record: dict) -> tuple[int, int]:
    """``(height, width)`` of the synthesized image of a v1 record: 1/32 of the real size."""
    if record.get("name") == "ISIC_0000000" and (V1_FIXTURES / "ISIC_0000000_superpixels.png").exists():
        return 480, 640  # the real superpixel image's size
    acq = record.get("meta", {}).get("acquisition", {})
    return max(8, int(acq.get("pixelsY", 256)) // 32), max(8, int(acq.get("pixelsX", 256)) // 32)


def synthetic_image(name: str, shape: tuple[int, int]) -> bytes:
    """A deterministic RGB PNG for image ``name`` (smooth, so it compresses)."""
    h, w = shape
    rng = np.random.default_rng(_seed("image", name))
    base = rng.integers(0, 256, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(base[c] + (c + 1) * xx + (3 - c) * yy) % 256 for c in range(3)], axis=-1).astype(np.uint8)
    return _png(rgb, "RGB")


def synthetic_superpixels(name: str, shape: tuple[int, int]) -> np.ndarray:
    """The superpixel index image of ``name``: the real one for ISIC_0000000, else a 4x4-pixel grid."""
    real = V1_FIXTURES / "ISIC_0000000_superpixels.png"
    if name == "ISIC_0000000" and real.exists():
        rgb = np.asarray(Image.open(real).convert("RGB")).astype(np.uint32)
        return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    ncols = -(-w // 4)
    return ((yy // 4) * ncols + xx // 4).astype(np.uint32)


def synthetic_mask(segmentation_id: str, shape: tuple[int, int]) -> np.ndarray:
    """A 0/255 ellipse whose size depends on the segmentation id (so masks differ)."""
    h, w = shape
    r = 0.25 + (_seed("mask", segmentation_id) % 1000) / 4000  # 0.25 .. 0.5
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (r * h)) ** 2 + ((xx - w / 2) / (r * w)) ** 2 <= 1
    return np.where(inside, 255, 0).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def load_v1_fixtures() -> tuple[dict, dict]:
    """The real recorded v1 ``(images, segmentations)`` records keyed by ``_id``.

    Read once per test session and shared: do not modify them (copy first).
    """
    with gzip.open(V1_FIXTURES / "images_v1.json.gz", "rt", encoding="utf-8") as f:
        images = json.load(f)
    with gzip.open(V1_FIXTURES / "segmentations_v1.json.gz", "rt", encoding="utf-8") as f:
        segmentations = json.load(f)
    return images, segmentations


def _object_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def synthetic_study(
    name: str,
    images: list[dict],
    *,
    annotators: tuple[str, ...] = ("User AAAA", "User BBBB"),
    features: tuple[str, ...] = ("Globules / Clods : Dots", "Network : Reticular"),
    incomplete: tuple[tuple[str, str], ...] = (),
) -> tuple[dict, list[dict], dict]:
    """A synthetic v1 study over real image records.

    Returns
    -------
    study
        The ``study/{id}`` detail record.
    annotations
        ``annotation?detail=true`` records (one per annotator and image; those in
        ``incomplete`` as ``(annotator, image name)`` are left ``active``).
    values
        ``{annotation_id: {feature: [value per superpixel]}}`` in 0/0.5/1.
    """
    study_id = _object_id("study", name)
    users = [{"_id": _object_id("user", a), "name": a} for a in annotators]
    study = {
        "_id": study_id,
        "_modelType": "study",
        "name": name,
        "description": f"synthetic study {name}",
        "created": "2019-01-01T00:00:00+00:00",
        "creator": users[0],
        "updated": "2019-01-02T00:00:00+00:00",
        "users": sorted(users, key=lambda u: u["name"]),
        "images": [{"_id": r["_id"], "name": r["name"], "updated": r["updated"]} for r in sorted(images, key=lambda r: r["name"])],
        "questions": [],
        "features": [{"id": f} for f in features],
        "userCompletion": {},
        "participationRequests": [],
    }
    annotations, values = [], {}
    for user in users:
        for record in images:
            annotation_id = _object_id("annotation", study_id, user["_id"], record["_id"])
            complete = (user["name"], record["name"]) not in incomplete
            annotation = {
                "_id": annotation_id,
                "_modelType": "annotation",
                "studyId": study_id,
                "image": {"_id": record["_id"], "name": record["name"], "updated": record["updated"]},
                "user": user,
                "state": "complete" if complete else "active",
            }
            if complete:
                n = int(synthetic_superpixels(record["name"], synthetic_size(record)).max()) + 1
                rng = np.random.default_rng(_seed("values", annotation_id))
                feats = {}
                for i, feature in enumerate(features):
                    if i == len(features) - 1 and user is users[-1]:
                        feats[feature] = [0.0] * n  # not marked: the API answers zeros
                    else:
                        feats[feature] = rng.choice([0.0, 0.5, 1.0], size=n, p=[0.8, 0.1, 0.1]).tolist()
                values[annotation_id] = feats
                annotation.update(
                    status="ok",
                    startTime="2019-01-03T00:00:00+00:00",
                    stopTime="2019-01-03T00:05:00+00:00",
                    responses={},
                    markups={f: any(v > 0 for v in vals) for f, vals in feats.items()},
                    log=[],
                )
            annotations.append(annotation)
    return study, annotations, values


def v2_record_from_v1(record: dict, *, public: bool = True) -> dict:
    """A v2 image record built from a real v1 record (same id, clinical fields, license)."""
    meta = record.get("meta", {})
    clinical = {k: v for k, v in meta.get("clinical", {}).items() if k != "diagnosis"}
    if meta.get("clinical", {}).get("benign_malignant"):
        clinical["diagnosis_1"] = str(meta["clinical"]["benign_malignant"]).capitalize()
    if meta.get("clinical", {}).get("diagnosis"):
        clinical["diagnosis_3"] = str(meta["clinical"]["diagnosis"]).capitalize()
    acq = meta.get("acquisition", {})
    acquisition = {"image_type": acq.get("image_type"), "pixels_x": acq.get("pixelsX"), "pixels_y": acq.get("pixelsY")}
    dataset = record.get("dataset", {})
    return {
        "isic_id": record["name"],
        "public": public,
        "copyright_license": dataset.get("license", "CC-0"),
        "attribution": "Anonymous" if dataset.get("name", "").startswith("UDA") else f"{dataset.get('name', 'ISIC')} contributors",
        "metadata": {"acquisition": acquisition, "clinical": clinical},
        "_collections": [dataset.get("name", "")],
        "_shape": list(synthetic_size(record)),
    }


# -- server machinery -----------------------------------------------------------------
class _Request:
    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        self.path = unquote(parts.path)
        self.raw_path = parts.path
        self.parts = [unquote(p) for p in parts.path.split("/") if p]
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = handler.headers


class _Answer:
    def __init__(self, status: int = 200, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json(data: Any, status: int = 200) -> _Answer:
    return _Answer(status, json.dumps(data).encode())


def _error(status: int, message: str) -> _Answer:
    return _json({"message": message, "type": "rest"}, status)


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; subclasses route."""

    prefix = "/"

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults
        self.log: list[tuple[str, dict, dict]] = []  # (path, query, headers)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                request = _Request(self)
                with server._lock:
                    server.log.append((request.path, dict(request.query), dict(request.headers)))
                fault = server.faults.draw(request.path) if server.faults else None
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.rfile.close()
                    self.connection.close()  # no file refers to it any more: RST now
                    self.wfile = io.BytesIO()  # the handler's final flush goes nowhere
                    return
                if fault in ("429", "500"):
                    body = b'{"message": "injected fault"}'
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", server.faults.retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                try:
                    answer = server.route(request)
                except Exception as exc:  # a bug in the fake server: answer 500 with the reason
                    answer = _error(500, f"server error: {exc!r}")
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(answer.body[: len(answer.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(answer.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The API base URL (ends with ``/``)."""
        return self.origin + self.prefix

    def requests_to(self, path_prefix: str) -> list[tuple[str, dict, dict]]:
        """Logged requests whose path starts with ``prefix + path_prefix``."""
        with self._lock:
            return [entry for entry in self.log if entry[0].startswith(self.prefix + path_prefix)]

    def route(self, request: _Request) -> _Answer:
        raise NotImplementedError

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _paged(records: list, query: dict) -> list:
    """Girder paging: ``limit`` (default 50; 0 = all) and ``offset``."""
    limit = int(query.get("limit", 50))
    offset = int(query.get("offset", 0))
    return records[offset:] if limit == 0 else records[offset : offset + limit]


# -- v1 ---------------------------------------------------------------------------------
class V1Server(_Server):
    """The Girder API v1 of the ISIC Archive, over real image/segmentation records.

    Parameters
    ----------
    images, segmentations
        Records keyed by ``_id`` (see :func:`load_v1_fixtures`).
    studies
        Results of :func:`synthetic_study`.
    users
        ``{login: password}`` accepted by ``user/authentication``.
    require_login
        Answer 401 to every other route without a valid ``Girder-Token``.
    faults
        Fault injection, see :class:`Faults`.
    """

    prefix = "/api/v1/"

    def __init__(
        self,
        images: dict,
        segmentations: dict,
        *,
        studies: list[tuple[dict, list[dict], dict]] = (),
        users: dict[str, str] | None = None,
        require_login: bool = False,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(faults)
        self.images = images
        self.by_name = {r["name"]: r for r in images.values()}
        self.sorted_images = sorted(images.values(), key=lambda r: r["name"])
        self.segmentations = segmentations
        self.segs_by_image: dict[str, list[dict]] = {}
        for seg in segmentations.values():
            self.segs_by_image.setdefault(seg["imageId"], []).append(seg)
        self.studies = {s["_id"]: s for s, _, _ in studies}
        self.annotations = {a["_id"]: a for _, anns, _ in studies for a in anns}
        self.values = {k: v for _, _, vals in studies for k, v in vals.items()}
        self.users = users or {}
        self.tokens: dict[str, str] = {}
        self.require_login = require_login

    def route(self, request: _Request) -> _Answer:
        if not request.path.startswith(self.prefix):
            return _error(404, "no such route")
        parts = request.parts[len([p for p in self.prefix.split("/") if p]) :]
        q = request.query
        if parts == ["user", "authentication"]:
            return self._login(request)
        token = request.headers.get("Girder-Token")
        if token is not None and token not in self.tokens:
            return _error(401, "invalid token")
        if self.require_login and token is None:
            return _error(401, "you must be logged in")
        if parts == ["image"]:
            records = self.sorted_images
            if q.get("sortdir") == "-1":
                records = records[::-1]
            page = _paged(records, q)
            if q.get("detail", "false") != "true":
                page = [{"_id": r["_id"], "name": r["name"], "updated": r["updated"]} for r in page]
            return _json(page)
        if len(parts) >= 2 and parts[0] == "image":
            record = self.images.get(parts[1])
            if record is None:
                return _error(404, f"image {parts[1]} not found")
            shape = synthetic_size(record)
            if len(parts) == 2:
                return _json(record)
            if parts[2:] == ["download"]:
                return _Answer(body=synthetic_image(record["name"], shape), content_type="image/png")
            if parts[2:] == ["superpixels"]:
                return _Answer(body=encode_superpixels_rgb(synthetic_superpixels(record["name"], shape)), content_type="image/png")
        if parts == ["dataset"]:
            datasets = {r["dataset"]["_id"]: r["dataset"] for r in self.sorted_images if "dataset" in r}
            return _json(_paged(sorted(datasets.values(), key=lambda d: d["name"]), q))
        if len(parts) == 2 and parts[0] == "dataset":
            for r in self.sorted_images:
                if r.get("dataset", {}).get("_id") == parts[1]:
                    return _json(r["dataset"])
            return _error(404, "dataset not found")
        if parts == ["study"]:
            studies = sorted(self.studies.values(), key=lambda s: s["name"])
            if q.get("detail", "false") != "true":
                studies = [{k: s[k] for k in ("_id", "name", "description", "updated")} for s in studies]
            return _json(_paged(studies, q))
        if len(parts) == 2 and parts[0] == "study":
            study = self.studies.get(parts[1])
            return _json(study) if study else _error(400, f"Invalid study id ({parts[1]}).")
        if parts == ["segmentation"]:
            if "imageId" not in q:
                return _error(400, 'Parameter "imageId" is required.')
            if q["imageId"] not in self.images:
                return _error(400, "Invalid image id.")
            segs = sorted(self.segs_by_image.get(q["imageId"], []), key=lambda s: s["created"], reverse=True)
            summaries = [
                {
                    "_id": s["_id"],
                    "created": s["created"],
                    "failed": s["failed"],
                    "skill": "expert" if any(r["skill"] == "expert" for r in s["reviews"]) else "novice",
                }
                for s in segs
            ]
            return _json(_paged(summaries, q))
        if len(parts) >= 2 and parts[0] == "segmentation":
            seg = self.segmentations.get(parts[1])
            if seg is None:
                return _error(400, "Invalid segmentation id.")
            if len(parts) == 2:
                return _json(seg)
            if parts[2:] == ["mask"]:
                if seg["failed"]:
                    return _error(400, "This segmentation is failed, and thus has no mask.")
                shape = synthetic_size(self.images[seg["imageId"]])
                return _Answer(body=_png(synthetic_mask(seg["_id"], shape), "L"), content_type="image/png")
        if parts == ["annotation"]:
            if "studyId" not in q:
                return _error(400, 'Parameter "studyId" is required.')
            anns = [a for a in self.annotations.values() if a["studyId"] == q["studyId"]]
            if q.get("detail", "false") != "true":
                anns = [
                    {"_id": a["_id"], "studyId": a["studyId"], "userId": a["user"]["_id"], "imageId": a["image"]["_id"], "state": a["state"]}
                    for a in anns
                ]
            return _json(anns)
        if len(parts) >= 3 and parts[0] == "annotation":
            ann = self.annotations.get(parts[1])
            if ann is None:
                return _error(400, "Invalid annotation id.")
            feature = parts[3] if parts[2] == "markup" and parts[4:] == ["superpixels"] else parts[2] if len(parts) == 3 else None
            if feature is None:
                return _error(404, "no such route")
            if ann["state"] != "complete":
                return _error(400, "Annotation is incomplete.")
            feats = self.values[ann["_id"]]
            if feature not in feats:
                return _error(400, "That featureId is not present in the study.")
            return _json(feats[feature])
        return _error(404, "no such route")

    def _login(self, request: _Request) -> _Answer:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return _error(401, "no credentials")
        login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if self.users.get(login) != password:
            return _error(401, "Login failed.")
        token = hashlib.sha256(f"{login}:{len(self.tokens)}".encode()).hexdigest()
        self.tokens[token] = login
        return _json({"authToken": {"token": token, "expires": "2099-01-01T00:00:00+00:00", "scope": ["core.user_auth"]}, "user": {"login": login}})


# -- v2 ---------------------------------------------------------------------------------
class V2Server(_Server):
    """API v2 of the ISIC Archive.

    Parameters
    ----------
    records
        v2 image records (see :func:`v2_record_from_v1`); ``public: False`` ones are
        visible only with the bearer ``token``. Keys starting with ``_`` are the
        server's bookkeeping (collections, synthesized image shape).
    token
        The OAuth bearer token accepted for non-public images.
    url_ttl
        Lifetime of signed file URLs in seconds; advance :attr:`clock_offset` to expire them.
    """

    prefix = "/api/v2/"

    def __init__(self, records: list[dict], *, token: str | None = None, url_ttl: float = 3600.0, faults: Faults | None = None) -> None:
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
        return time.time() + self.clock_offset

    def sign(self, path: str, expires: int) -> str:
        return hmac.new(self.secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()

    def _public_record(self, record: dict) -> dict:
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        expires = int(self.now() + self.url_ttl)
        files = {}
        for kind in ("full", "thumbnail_256"):
            path = f"/files/{record['isic_id']}/{kind}.png"
            body = self._file(record, kind)
            files[kind] = {"url": f"{self.origin}{path}?{urlencode({'expires': expires, 'signature': self.sign(path, expires)})}", "size": len(body)}
        out["files"] = files
        return out

    def _file(self, record: dict, kind: str) -> bytes:
        h, w = record.get("_shape", (16, 16))
        if kind == "thumbnail_256":
            h, w = max(1, h // 2), max(1, w // 2)
        return synthetic_image(record["isic_id"] + ("" if kind == "full" else "/thumb"), (h, w))

    def _visible(self, request: _Request) -> list[dict] | _Answer:
        auth = request.headers.get("Authorization")
        if auth is None:
            return [r for r in self.records if r.get("public", True)]
        if self.token is None or auth != f"Bearer {self.token}":
            return _json({"detail": "Invalid token."}, 401)
        return self.records

    def _cursor_page(self, request: _Request, items: list, path: str) -> _Answer:
        q = request.query
        limit = max(1, min(int(q.get("limit", 100) or 100), 100))
        cursor = q.get("cursor")
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"] if cursor else 0
        page = items[offset : offset + limit]
        nxt = None
        if offset + limit < len(items):
            params = {k: v for k, v in q.items() if k not in ("cursor", "limit")}
            params.update(limit=limit, cursor=base64.urlsafe_b64encode(json.dumps({"o": offset + limit}).encode()).decode())
            nxt = f"{self.origin}{path}?{urlencode(params)}"
        body: dict[str, Any] = {"next": nxt, "previous": None, "results": page}
        if not cursor:
            body = {"count": len(items), **body}
        return _json(body)

    def route(self, request: _Request) -> _Answer:
        path = request.path
        if path.startswith("/files/"):
            return self._download(request)
        if not path.startswith(self.prefix):
            return _error(404, "no such route")
        parts = request.parts[len([p for p in self.prefix.split("/") if p]) :]
        visible = self._visible(request)
        if isinstance(visible, _Answer):
            return visible
        if parts == ["collections"]:
            return self._cursor_page(request, self.collections, path)
        if parts in (["images"], ["images", "search"]):
            items = visible
            if parts == ["images", "search"]:
                try:
                    items = _search(items, request.query.get("query", ""))
                except ValueError as exc:
                    return _json({"query": [str(exc)]}, 400)
                wanted = request.query.get("collections", "")
                if wanted:
                    ids = {int(x) for x in wanted.split(",")}
                    names = {c["name"] for c in self.collections if c["id"] in ids}
                    items = [r for r in items if names & set(r.get("_collections", []))]
            return self._cursor_page(request, [self._public_record(r) for r in items], path)
        if len(parts) == 2 and parts[0] == "images":
            record = next((r for r in visible if r["isic_id"] == parts[1]), None)
            if record is None:
                return _json({"detail": "Not found."}, 404)
            return _json(self._public_record(record))
        return _error(404, "no such route")

    def _download(self, request: _Request) -> _Answer:
        q = request.query
        denied = _Answer(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", "application/xml")
        try:
            expires = int(q["expires"])
        except (KeyError, ValueError):
            return denied
        if not hmac.compare_digest(q.get("signature", ""), self.sign(request.raw_path, expires)) or expires < self.now():
            return denied
        _, _, isic_id, name = request.raw_path.split("/")
        record = self.by_id.get(isic_id)
        if record is None:
            return _Answer(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return _Answer(body=self._file(record, name.rsplit(".", 1)[0]), content_type="image/png")


def _search(records: list[dict], query: str) -> list[dict]:
    """A small subset of the archive's query syntax: ``key:value`` terms joined by ``AND``."""
    query = query.strip()
    if not query:
        return records
    terms = []
    for term in query.split(" AND "):
        key, sep, value = term.strip().partition(":")
        if not sep:
            raise ValueError(f"cannot parse {term!r}")
        terms.append((key.strip(), value.strip().strip('"')))

    def leaf(record: dict, key: str) -> Any:
        for group in ("clinical", "acquisition"):
            if key in record["metadata"].get(group, {}):
                return record["metadata"][group][key]
        return record.get(key)

    def matches(record: dict) -> bool:
        return all(str(leaf(record, k)).lower() == v.lower() for k, v in terms)

    return [r for r in records if matches(r)]


def quote_feature(feature: str) -> str:
    """A feature id as a URL path segment."""
    return quote(feature, safe="")


def synthetic_v2_records(n: int, *, private_every: int = 0) -> list[dict]:
    """``n`` synthetic v2 records (no fixtures needed), ids ``ISIC_9000000``...

    Every ``private_every``-th record is not public (0: all public).
    """
    sites = ["head/neck", "upper extremity", "posterior torso", None]
    out = []
    for i in range(n):
        out.append(
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
        )
    return out
