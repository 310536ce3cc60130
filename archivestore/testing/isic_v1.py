"""A local stand-in for the ISIC Archive's Girder API v1 (127.0.0.1, port 0, stdlib + numpy/Pillow).

:class:`V1Server` reproduces the v1 routes the sources use and serves the *real*
recorded image and segmentation records of ``../shared/fixtures/isic-v1`` (see
:func:`load_v1_fixtures`). What the records do not hold is synthesized
deterministically from ids: image pixels, superpixel grids (except the archive's
real superpixel PNG of ISIC_0000000), segmentation masks, and studies with their
annotations (:func:`synthetic_study`; the fixtures have no studies).

The fixtures folder is ``$ARCHIVESTORE_FIXTURES`` when set, else ``shared/fixtures``
next to the repository; pass another folder to :func:`load_v1_fixtures` and
:class:`V1Server` to serve records from elsewhere.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from archivestore.imaging import encode_superpixels_rgb
from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, FakeServer, Request, error_answer, json_answer
from archivestore.testing.sample import png, seed_of, synthetic_image, synthetic_mask, synthetic_superpixels

__all__ = [
    "FIXTURES",
    "V1_FIXTURES",
    "Study",
    "V1Server",
    "load_v1_fixtures",
    "synthetic_size",
    "synthetic_study",
    "v1_superpixels",
]

FIXTURES = Path(os.environ.get("ARCHIVESTORE_FIXTURES") or Path(__file__).resolve().parents[3] / "shared" / "fixtures")
V1_FIXTURES = FIXTURES / "isic-v1"
_REAL_SUPERPIXELS = "ISIC_0000000_superpixels.png"

Record = dict[str, Any]
Study = tuple[Record, list[Record], dict[str, dict[str, list[float]]]]
"""``(study record, annotation records, {annotation id: {feature: values}})``."""


@functools.lru_cache(maxsize=2)
def load_v1_fixtures(folder: Path = V1_FIXTURES) -> tuple[dict[str, Record], dict[str, Record]]:
    """The real recorded v1 ``(images, segmentations)`` records keyed by ``_id``.

    Read once per process and shared: do not modify them (copy first).
    """
    with gzip.open(folder / "images_v1.json.gz", "rt", encoding="utf-8") as f:
        images = json.load(f)
    with gzip.open(folder / "segmentations_v1.json.gz", "rt", encoding="utf-8") as f:
        segmentations = json.load(f)
    return images, segmentations


def synthetic_size(record: Record, folder: Path = V1_FIXTURES) -> tuple[int, int]:
    """``(height, width)`` of the synthesized image of a v1 record: 1/32 of the real size."""
    if record.get("name") == "ISIC_0000000" and (folder / _REAL_SUPERPIXELS).exists():
        return 480, 640  # the real superpixel image's size
    acq = record.get("meta", {}).get("acquisition", {})
    return max(8, int(acq.get("pixelsY", 256)) // 32), max(8, int(acq.get("pixelsX", 256)) // 32)


def v1_superpixels(name: str, shape: tuple[int, int], folder: Path = V1_FIXTURES) -> np.ndarray:
    """The superpixel index image served for ``name``: the real one for ISIC_0000000, else a 4x4-pixel grid."""
    real = folder / _REAL_SUPERPIXELS
    if name == "ISIC_0000000" and real.exists():
        rgb = np.asarray(Image.open(real).convert("RGB")).astype(np.uint32)
        return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
    return synthetic_superpixels(shape)


def _object_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def synthetic_study(
    name: str,
    images: Sequence[Record],
    *,
    annotators: tuple[str, ...] = ("User AAAA", "User BBBB"),
    features: tuple[str, ...] = ("Globules / Clods : Dots", "Network : Reticular"),
    incomplete: tuple[tuple[str, str], ...] = (),
) -> Study:
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
    by_name = sorted(images, key=lambda r: r["name"])
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
        "images": [{"_id": r["_id"], "name": r["name"], "updated": r["updated"]} for r in by_name],
        "questions": [],
        "features": [{"id": f} for f in features],
        "userCompletion": {},
        "participationRequests": [],
    }
    annotations, values = [], {}
    for user in users:
        for record in images:
            annotation = _annotation(study_id, user, record, complete=(user["name"], record["name"]) not in incomplete)
            if annotation["state"] == "complete":
                feats = _feature_values(annotation["_id"], record, features, last_user=user is users[-1])
                values[annotation["_id"]] = feats
                annotation["markups"] = {f: any(v > 0 for v in vals) for f, vals in feats.items()}
            annotations.append(annotation)
    return study, annotations, values


def _annotation(study_id: str, user: dict[str, str], record: Record, complete: bool) -> Record:
    annotation: Record = {
        "_id": _object_id("annotation", study_id, user["_id"], record["_id"]),
        "_modelType": "annotation",
        "studyId": study_id,
        "image": {"_id": record["_id"], "name": record["name"], "updated": record["updated"]},
        "user": user,
        "state": "complete" if complete else "active",
    }
    if complete:
        annotation.update(
            status="ok",
            startTime="2019-01-03T00:00:00+00:00",
            stopTime="2019-01-03T00:05:00+00:00",
            responses={},
            log=[],
        )
    return annotation


def _feature_values(
    annotation_id: str, record: Record, features: tuple[str, ...], last_user: bool
) -> dict[str, list[float]]:
    """Per-superpixel values of one annotation; the last user leaves the last feature unmarked (zeros)."""
    n = int(v1_superpixels(record["name"], synthetic_size(record)).max()) + 1
    rng = np.random.default_rng(seed_of("values", annotation_id))
    feats = {}
    for i, feature in enumerate(features):
        if i == len(features) - 1 and last_user:
            feats[feature] = [0.0] * n  # not marked: the API answers zeros
        else:
            feats[feature] = rng.choice([0.0, 0.5, 1.0], size=n, p=[0.8, 0.1, 0.1]).tolist()
    return feats


def _paged(records: list[Any], query: dict[str, str]) -> list[Any]:
    """Girder paging: ``limit`` (default 50; 0 = all) and ``offset``."""
    limit = int(query.get("limit", 50))
    offset = int(query.get("offset", 0))
    return records[offset:] if limit == 0 else records[offset : offset + limit]


_NO_ROUTE = error_answer(404, "no such route")


class V1Server(FakeServer):
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
        Fault injection, see :class:`~archivestore.testing.faults.Faults`.
    fixtures
        The folder of the real superpixel PNG of ISIC_0000000 (default :data:`V1_FIXTURES`).

    Examples
    --------
    >>> images, segmentations = load_v1_fixtures()  # doctest: +SKIP
    >>> with V1Server(images, segmentations) as server:  # doctest: +SKIP
    ...     IsicV1(server.url)
    """

    prefix = "/api/v1/"

    def __init__(
        self,
        images: dict[str, Record],
        segmentations: dict[str, Record],
        *,
        studies: Sequence[Study] = (),
        users: dict[str, str] | None = None,
        require_login: bool = False,
        faults: Faults | None = None,
        fixtures: Path = V1_FIXTURES,
    ) -> None:
        super().__init__(faults)
        self.images = images
        self.by_name = {r["name"]: r for r in images.values()}
        self.sorted_images = sorted(images.values(), key=lambda r: r["name"])
        self.segmentations = segmentations
        self.segs_by_image: dict[str, list[Record]] = {}
        for seg in segmentations.values():
            self.segs_by_image.setdefault(seg["imageId"], []).append(seg)
        self.studies = {s["_id"]: s for s, _, _ in studies}
        self.annotations = {a["_id"]: a for _, anns, _ in studies for a in anns}
        self.values = {k: v for _, _, vals in studies for k, v in vals.items()}
        self.users = users or {}
        self.tokens: dict[str, str] = {}
        self.require_login = require_login
        self.fixtures = fixtures

    def route(self, request: Request) -> Answer:
        """Authenticate, then answer by the first path segment after ``/api/v1/``."""
        if not request.path.startswith(self.prefix):
            return _NO_ROUTE
        parts = request.parts[len([p for p in self.prefix.split("/") if p]) :]
        if parts == ["user", "authentication"]:
            return self._login(request)
        token = request.headers.get("Girder-Token")
        if token is not None and token not in self.tokens:
            return error_answer(401, "invalid token")
        if self.require_login and token is None:
            return error_answer(401, "you must be logged in")
        routes = {
            "image": self._image,
            "dataset": self._dataset,
            "study": self._study,
            "segmentation": self._segmentation,
            "annotation": self._annotation,
        }
        handler = routes.get(parts[0]) if parts else None
        return handler(parts[1:], request.query) if handler else _NO_ROUTE

    def _image(self, rest: list[str], q: dict[str, str]) -> Answer:
        if not rest:
            records = self.sorted_images[::-1] if q.get("sortdir") == "-1" else self.sorted_images
            page = _paged(records, q)
            if q.get("detail", "false") != "true":
                page = [{"_id": r["_id"], "name": r["name"], "updated": r["updated"]} for r in page]
            return json_answer(page)
        record = self.images.get(rest[0])
        if record is None:
            return error_answer(404, f"image {rest[0]} not found")
        shape = synthetic_size(record, self.fixtures)
        if len(rest) == 1:
            return json_answer(record)
        if rest[1:] == ["download"]:
            return Answer(body=synthetic_image(record["name"], shape), content_type="image/png")
        if rest[1:] == ["superpixels"]:
            index = v1_superpixels(record["name"], shape, self.fixtures)
            return Answer(body=encode_superpixels_rgb(index), content_type="image/png")
        return _NO_ROUTE

    def _dataset(self, rest: list[str], q: dict[str, str]) -> Answer:
        datasets = {r["dataset"]["_id"]: r["dataset"] for r in self.sorted_images if "dataset" in r}
        if not rest:
            return json_answer(_paged(sorted(datasets.values(), key=lambda d: d["name"]), q))
        if len(rest) == 1 and rest[0] in datasets:
            return json_answer(datasets[rest[0]])
        return error_answer(404, "dataset not found")

    def _study(self, rest: list[str], q: dict[str, str]) -> Answer:
        if not rest:
            studies = sorted(self.studies.values(), key=lambda s: s["name"])
            if q.get("detail", "false") != "true":
                studies = [{k: s[k] for k in ("_id", "name", "description", "updated")} for s in studies]
            return json_answer(_paged(studies, q))
        if len(rest) != 1:
            return _NO_ROUTE
        study = self.studies.get(rest[0])
        return json_answer(study) if study else error_answer(400, f"Invalid study id ({rest[0]}).")

    def _segmentation(self, rest: list[str], q: dict[str, str]) -> Answer:
        if not rest:
            return self._segmentations_of(q)
        seg = self.segmentations.get(rest[0])
        if seg is None:
            return error_answer(400, "Invalid segmentation id.")
        if len(rest) == 1:
            return json_answer(seg)
        if rest[1:] == ["mask"]:
            if seg["failed"]:
                return error_answer(400, "This segmentation is failed, and thus has no mask.")
            shape = synthetic_size(self.images[seg["imageId"]], self.fixtures)
            return Answer(body=png(synthetic_mask(seg["_id"], shape), "L"), content_type="image/png")
        return _NO_ROUTE

    def _segmentations_of(self, q: dict[str, str]) -> Answer:
        if "imageId" not in q:
            return error_answer(400, 'Parameter "imageId" is required.')
        if q["imageId"] not in self.images:
            return error_answer(400, "Invalid image id.")
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
        return json_answer(_paged(summaries, q))

    def _annotation(self, rest: list[str], q: dict[str, str]) -> Answer:
        if not rest:
            if "studyId" not in q:
                return error_answer(400, 'Parameter "studyId" is required.')
            anns = [a for a in self.annotations.values() if a["studyId"] == q["studyId"]]
            if q.get("detail", "false") != "true":
                anns = [
                    {
                        "_id": a["_id"],
                        "studyId": a["studyId"],
                        "userId": a["user"]["_id"],
                        "imageId": a["image"]["_id"],
                        "state": a["state"],
                    }
                    for a in anns
                ]
            return json_answer(anns)
        ann = self.annotations.get(rest[0])
        if ann is None:
            return error_answer(400, "Invalid annotation id.")
        if len(rest) == 2:
            feature = rest[1]
        elif len(rest) == 4 and rest[1] == "markup" and rest[3] == "superpixels":
            feature = rest[2]
        else:
            return _NO_ROUTE
        if ann["state"] != "complete":
            return error_answer(400, "Annotation is incomplete.")
        feats = self.values[ann["_id"]]
        if feature not in feats:
            return error_answer(400, "That featureId is not present in the study.")
        return json_answer(feats[feature])

    def _login(self, request: Request) -> Answer:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return error_answer(401, "no credentials")
        login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if self.users.get(login) != password:
            return error_answer(401, "Login failed.")
        token = hashlib.sha256(f"{login}:{len(self.tokens)}".encode()).hexdigest()
        self.tokens[token] = login
        auth = {"token": token, "expires": "2099-01-01T00:00:00+00:00", "scope": ["core.user_auth"]}
        return json_answer({"authToken": auth, "user": {"login": login}})
