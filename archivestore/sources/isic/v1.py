"""The ISIC Archive's Girder API v1 (an institution's own deployment) as a source.

The public v1 (``https://isic-archive.com/api/v1``) was retired in 2022: the live archive serves only
API v2 (:mod:`archivestore.sources.isic.v2`), and the v1 studies survive as the challenges' files
(:mod:`archivestore.sources.isic.challenge`). There is no default base URL; the retired one is refused
at once (:data:`V1_RETIRED`) instead of failing on every call.

Studies, annotations, superpixels and masks:

>>> api = IsicV1("https://isic.example.org/api/v1/", username="me")  # doctest: +SKIP
>>> source = IsicStudySource(api, "ISIC Annotation Study")            # doctest: +SKIP
>>> archivestore.ingest(store, source)                                 # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import quote

from archivestore.errors import InvalidInputError, UnreachableError
from archivestore.sources._base import Annotation, BadItem, Item, validate_id
from archivestore.sources._http import APIError, Client, bounded_map, find_password

__all__ = ["RETIRED_V1_URL", "SKILL_RANK", "V1_RETIRED", "IsicStudySource", "IsicV1", "best_segmentation"]

RETIRED_V1_URL = "https://isic-archive.com/api/v1/"
"""The ISIC Archive's public API v1, retired in 2022 (the live server answers only ``api/v2/``)."""

V1_RETIRED = ("the ISIC Archive's public API v1 was retired in 2022; give --base-url of a v1 deployment, "
              "or use 'ingest challenge' for the challenges' study files (the v1 studies' images, masks and "
              "superpixels) or 'ingest isic' for today's archive (API v2)")
"""What a v1 client without a deployment's URL (or with the retired one) says."""


def _retired(base_url: str) -> bool:
    """Whether ``base_url`` is the retired public v1 (any scheme, ``www.``, trailing slash)."""
    bare = re.sub(r"^[a-z]+://(www\.)?", "", base_url.strip().lower()).rstrip("/")
    return bare == "isic-archive.com/api/v1"

SKILL_RANK = {"none": 0, "novice": 1, "expert": 2}
"""Review skills in increasing order (an approved expert review beats a novice one)."""

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def best_segmentation(segmentations: list[dict]) -> dict | None:
    """The segmentation the archive's rule picks: approved, with the highest review skill.

    Parameters
    ----------
    segmentations
        Full segmentation records (``segmentation/{id}``, with ``reviews``), in
        the API's listing order (newest first).

    Returns
    -------
    The non-failed segmentation whose highest *approved* review skill is highest
    (none < novice < expert), ties going to the first listed (the newest);
    ``None`` if no segmentation has an approved review.
    """
    best, best_rank = None, -1
    for seg in segmentations:
        if seg.get("failed"):
            continue
        ranks = [SKILL_RANK.get(r.get("skill"), 0) for r in seg.get("reviews", []) if r.get("approved")]
        if not ranks:
            continue
        if max(ranks) > best_rank:
            best, best_rank = seg, max(ranks)
    return best


class IsicV1:
    """Client of the ISIC Archive API v1 (Girder), the parts ``isicarchive.IsicApi`` offered.

    Parameters
    ----------
    base_url
        API root of a deployment of the archive's Girder plugin (no default: the public v1 was
        retired in 2022; :data:`RETIRED_V1_URL` is refused with :data:`V1_RETIRED`).
    username, password
        Log in (``user/authentication`` with HTTP Basic, answered by a
        ``Girder-Token``). The password comes from the argument, else
        ``~/.netrc`` for the host, else a prompt (``prompt=True``). Never logged.
    cache_dir, cache_expire
        Cache metadata (image, segmentation, study records and lists) on disk
        for ``cache_expire`` seconds; logged-in and anonymous entries are kept apart.
    retries, backoff_factor, timeout, workers, debug
        See :class:`archivestore.sources._http.Client`; ``workers`` bounds the
        threads that fetch records.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        prompt: bool = True,
        cache_dir: str | None = None,
        cache_expire: float = 86400.0,
        retries: int = 5,
        backoff_factor: float = 0.5,
        timeout: tuple[float, float] = (10.0, 60.0),
        workers: int = 8,
        debug: bool = False,
    ) -> None:
        if not base_url or _retired(base_url):
            raise InvalidInputError(V1_RETIRED)
        self.workers = max(1, int(workers))
        self.client = Client.for_api(
            base_url, cache_dir=cache_dir, cache_expire=cache_expire, retries=retries,
            backoff_factor=backoff_factor, timeout=timeout, workers=self.workers, debug=debug,
        )
        if username is not None or password is not None:
            self.login(username, password, prompt=prompt)

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def login(self, username: str | None = None, password: str | None = None, *, prompt: bool = True) -> None:
        """Log in and send the ``Girder-Token`` with every later request."""
        username, password = find_password(self.base_url, username, password, prompt=prompt)
        answer = self.client.get("user/authentication", auth=(username, password)).json()
        try:
            token = answer["authToken"]["token"]
        except (KeyError, TypeError):
            raise APIError(self.client.url("user/authentication"), "login answer has no authToken") from None
        self.client.set_token("Girder-Token", token, user=username)

    # -- images ---------------------------------------------------------------------
    def images(self, *, detail: bool = True, page_size: int = 500, limit: int | None = None,
               cache: bool = True) -> Iterator[dict]:
        """All image records (Girder paging; ``page_size=0`` fetches all at once)."""
        params = {"detail": "true" if detail else "false", "sort": "name", "sortdir": 1}
        return self.client.girder_pages("image", params, page_size=page_size, limit=limit, cache=cache)

    def image(self, image_id: str, *, item: str | None = None) -> dict:
        """One image record (``image/{id}``, id = the 24-hex ``_id``)."""
        return self.client.get_json(f"image/{image_id}", item=item or image_id, cache=True)

    def image_bytes(self, image_id: str, *, item: str | None = None) -> bytes:
        """The original image file (``image/{id}/download``)."""
        return self.client.get_bytes(f"image/{image_id}/download", item=item or image_id)

    def superpixels_bytes(self, image_id: str, *, item: str | None = None) -> bytes:
        """The RGB-encoded superpixel PNG (``image/{id}/superpixels``)."""
        return self.client.get_bytes(f"image/{image_id}/superpixels", item=item or image_id)

    # -- datasets -------------------------------------------------------------------
    def datasets(self, *, page_size: int = 0) -> list[dict]:
        """All dataset records."""
        return list(self.client.girder_pages("dataset", page_size=page_size, cache=True))

    def dataset(self, dataset_id: str) -> dict:
        """One dataset record."""
        return self.client.get_json(f"dataset/{dataset_id}", cache=True)

    # -- studies --------------------------------------------------------------------
    def studies(self) -> list[dict]:
        """Study summaries (``_id, name, description, updated``)."""
        return list(self.client.girder_pages("study", {"detail": "false"}, page_size=0, cache=True))

    def study(self, name_or_id: str) -> dict:
        """A study's detail record, by name or by ``_id``.

        The API has no name lookup: the study list is matched by name.

        Raises
        ------
        KeyError
            No such study; the message lists the closest names.
        """
        summaries = self.studies()
        for s in summaries:
            if s.get("name") == name_or_id or s.get("_id") == name_or_id:
                return self.client.get_json(f"study/{s['_id']}", cache=True)
        names = [s.get("name", "") for s in summaries]
        close = difflib.get_close_matches(name_or_id, names, n=5, cutoff=0.4)
        if not close:
            close = [n for n in names if name_or_id.lower() in n.lower()][:5]
        hint = f"; closest: {', '.join(repr(n) for n in close)}" if close else f" ({len(names)} studies visible)"
        raise KeyError(f"no study named {name_or_id!r}{hint}")

    def annotations(self, study_id: str) -> list[dict]:
        """The study's annotation records (``annotation?studyId=...&detail=true``)."""
        return self.client.get_json("annotation", {"studyId": study_id, "detail": "true"}, cache=True)

    def annotation_values(self, annotation_id: str, feature: str, *, item: str | None = None) -> list[float]:
        """One feature's per-superpixel values (0 absent, 0.5 possible, 1 definite) of an annotation."""
        path = f"annotation/{annotation_id}/markup/{quote(feature, safe='')}/superpixels"
        values = self.client.get_json(path, item=item)
        if not isinstance(values, list):
            raise APIError(self.client.url(path), "expected a list of superpixel values", item=item)
        return values

    # -- segmentations --------------------------------------------------------------
    def segmentations(self, image_id: str) -> list[dict]:
        """Segmentation summaries of an image, newest first."""
        return list(self.client.girder_pages("segmentation", {"imageId": image_id}, page_size=0, cache=True))

    def segmentation(self, segmentation_id: str) -> dict:
        """One full segmentation record (with ``reviews``)."""
        return self.client.get_json(f"segmentation/{segmentation_id}", cache=True)

    def best_segmentation(self, image_id: str) -> dict | None:
        """The approved segmentation of highest review skill of an image (see :func:`best_segmentation`)."""
        summaries = [s for s in self.segmentations(image_id) if not s.get("failed")]
        return best_segmentation([self.segmentation(s["_id"]) for s in summaries])

    def mask_bytes(self, segmentation_id: str, *, item: str | None = None) -> bytes:
        """A segmentation's 0/255 mask PNG (``segmentation/{id}/mask``)."""
        return self.client.get_bytes(f"segmentation/{segmentation_id}/mask", item=item or segmentation_id)


def _loader(func: Callable[[], Any], item_id: str) -> Callable[[], Any]:
    """Wrap a fetch so failures come out as :class:`BadItem` naming the item."""

    def load() -> Any:
        try:
            return func()
        except UnreachableError:
            raise  # the archive is out of reach, not this item
        except APIError as exc:
            raise BadItem(item_id, exc.url, exc.reason) from None

    return load


class IsicStudySource:
    """A v1 study as a source: its images, superpixels, best masks and every annotator's values.

    Parameters
    ----------
    api
        An :class:`IsicV1` client.
    study
        Study name or ``_id``.
    names
        Only these image names (default: all images of the study).
    masks, superpixels
        Whether to fetch the best segmentation mask / superpixels of each image.

    Notes
    -----
    Item id = the image name (``ISIC_0000000``); metadata = the full v1 image
    record; one :class:`Annotation` per annotator with a complete annotation of
    the image (``rater`` = the annotator's name, else ``_id``), holding every
    study feature (unmarked features are all 0, as the API answers).
    Records are fetched on ``workers`` threads; an image whose record cannot be
    fetched is reported in :attr:`problems`.
    """

    def __init__(self, api: IsicV1, study: str, *, names: list[str] | None = None, masks: bool = True,
                 superpixels: bool = True) -> None:
        self.api = api
        self.study_name = study
        self.names = None if names is None else set(names)
        self.masks = masks
        self.superpixels = superpixels
        self.problems: list[BadItem] = []

    def __iter__(self) -> Iterator[Item]:
        api = self.api
        study = api.study(self.study_name)
        study_name = study["name"]
        features = [f["id"] if isinstance(f, dict) else str(f) for f in study.get("features", [])]
        by_image: dict[str, dict[str, dict]] = {}
        for ann in api.annotations(study["_id"]):
            if ann.get("state") != "complete":
                continue
            user = ann.get("user") or {}
            rater = user.get("name") or user.get("_id") or ann.get("userId")
            image_id = (ann.get("image") or {}).get("_id") or ann.get("imageId")
            if not rater or not image_id:  # cannot be placed in the study
                continue
            previous = by_image.setdefault(image_id, {}).get(rater)
            if previous is None or str(ann.get("stopTime", "")) > str(previous.get("stopTime", "")):
                by_image[image_id][rater] = ann
        images = [im for im in study.get("images", []) if self.names is None or im.get("name") in self.names]
        if self.names is not None:
            for name in sorted(self.names - {im.get("name") for im in images}):
                where = api.client.url(f"study/{study['_id']}")
                self.problems.append(BadItem(name, where, f"not an image of study {study_name!r}"))

        def fetch(summary: dict) -> tuple[dict, Any]:
            name = summary.get("name") or summary["_id"]
            try:
                record = api.image(summary["_id"], item=name)
                seg = api.best_segmentation(summary["_id"]) if self.masks else None
                return summary, (record, seg)
            except UnreachableError:
                raise
            except APIError as exc:
                return summary, BadItem(name, exc.url, exc.reason)

        for summary, result in bounded_map(fetch, images, api.workers):
            if isinstance(result, BadItem):
                self.problems.append(result)
                continue
            record, seg = result
            image_id = summary["_id"]
            try:
                item_id = validate_id(record.get("name", ""), api.client.url(f"image/{image_id}"))
            except BadItem as exc:
                self.problems.append(exc)
                continue
            annotations = [
                Annotation(
                    study=study_name,
                    rater=rater,
                    values=_loader(self._values(ann["_id"], features, item_id), item_id),
                    where=api.client.url(f"annotation/{ann['_id']}"),
                )
                for rater, ann in sorted(by_image.get(image_id, {}).items())
            ]
            yield Item(
                id=item_id,
                metadata=record,
                image=_loader(partial(api.image_bytes, image_id, item=item_id), item_id),
                superpixels=(_loader(partial(api.superpixels_bytes, image_id, item=item_id), item_id)
                             if self.superpixels else None),
                mask=_loader(partial(api.mask_bytes, seg["_id"], item=item_id), item_id) if seg else None,
                annotations=annotations,
                where=api.client.url(f"image/{image_id}"),
                origin={"source": "isic_v1", "api": api.base_url, "image_id": image_id,
                        "segmentation_id": seg["_id"] if seg else None, "superpixels": self.superpixels},
            )

    def _values(self, annotation_id: str, features: list[str], item_id: str) -> Callable[[], dict[str, list[float]]]:
        def load() -> dict[str, list[float]]:
            return {f: self.api.annotation_values(annotation_id, f, item=item_id) for f in features}

        return load


def item_from_origin(item_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> Item:
    """The item of one image fetched again from the v1 API an ingest recorded (anonymously)."""
    api = IsicV1(origin["api"], prompt=False)
    image_id, seg = origin["image_id"], origin.get("segmentation_id")
    return Item(
        id=item_id,
        metadata=metadata,
        image=_loader(lambda: api.image_bytes(image_id, item=item_id), item_id),
        superpixels=_loader(lambda: api.superpixels_bytes(image_id, item=item_id), item_id)
        if origin.get("superpixels", True) else None,
        mask=_loader(lambda: api.mask_bytes(seg, item=item_id), item_id) if seg else None,
        where=api.client.url(f"image/{image_id}"),
        origin=origin,
    )
