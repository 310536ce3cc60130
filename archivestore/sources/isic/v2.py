"""The ISIC Archive's API v2 (``https://api.isic-archive.com/api/v2/``), what the archive serves today, as a source.

Searches, collections, signed file downloads:

>>> api = IsicV2(token=None)                                            # doctest: +SKIP
>>> api.check_token()          # with a token: its user record, or InvalidInputError   # doctest: +SKIP
>>> source = IsicSearchSource(api, 'diagnosis_3:"Melanoma Invasive"', limit=50)  # doctest: +SKIP
>>> archivestore.ingest(store, source)                                  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from archivestore.errors import InvalidInputError, UnreachableError
from archivestore.sources._base import BadItem, Item, validate_id
from archivestore.sources._http import APIError, Client

__all__ = [
    "DEFAULT_V2_URL",
    "TOKEN_ENV",
    "IsicSearchSource",
    "IsicV2",
    "strip_signed_urls",
    "validate_query",
]

DEFAULT_V2_URL = "https://api.isic-archive.com/api/v2/"

TOKEN_ENV = "ISIC_TOKEN"
"""Environment variable read for the OAuth bearer token when none is given."""

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def validate_query(query: str | None) -> str:
    """Check an archive search query for obvious mistakes; return it unchanged.

    The archive's Lucene-like syntax is passed through as is; this catches what
    would otherwise give a confusing answer: single quotes, unbalanced double
    quotes, parentheses or brackets, lower-case ``and``/``or`` between terms (the
    operators are upper-case ``AND``, ``OR``, ``TO``), ``NOT`` (there is none: a term
    is negated as ``-field:value``), and ``field=value`` instead of ``field:value``.
    A query the archive still cannot parse is its 400 answer, whose message is shown.

    Raises
    ------
    ValueError
        With a plain explanation.
    """
    if query is None:
        return ""
    if len(re.findall(r'(?<!\\)"', query)) % 2:
        raise ValueError(f"unbalanced double quotes in query {query!r}")
    outside = _QUOTED.sub('""', query)
    if "'" in outside:
        raise ValueError(f"single quotes in query {query!r}: quote values with double quotes, "
                         'e.g. diagnosis_3:"Melanoma Invasive"')
    for opening, closing in ("()", "[]", "{}"):
        depth = 0
        for ch in outside:
            depth += (ch == opening) - (ch == closing)
            if depth < 0:
                break
        if depth != 0:
            raise ValueError(f"unbalanced {opening}{closing} in query {query!r}")
    lowered = re.search(r"(?<=\s)(and|or)(?=\s)", outside)
    if lowered:
        raise ValueError(f"lower-case {lowered.group(1)!r} in query {query!r}: the operators are AND, OR "
                         "(negate a term with -field:value)")
    if re.search(r"(?<![\w-])NOT(?![\w-])", outside):
        raise ValueError(f"NOT in query {query!r}: the archive's syntax has no NOT; negate a term with -field:value")
    if re.search(r"[A-Za-z0-9_]\s*==?\s*[\w\"]", outside):
        raise ValueError(f"'=' in query {query!r}: write field:value")
    return query


def strip_signed_urls(record: dict) -> dict:
    """A deep copy of a v2 image record without the signed ``files.*.url`` values (sizes kept)."""
    out = copy.deepcopy(record)
    files = out.get("files")
    if isinstance(files, dict):
        for entry in files.values():
            if isinstance(entry, dict):
                entry.pop("url", None)
    return out


class IsicV2:
    """Client of the ISIC Archive API v2.

    Parameters
    ----------
    base_url
        API root.
    token
        OAuth bearer token for non-public images; default: the ``ISIC_TOKEN``
        environment variable; without one, only public images are seen.
    cache_dir, cache_expire
        Cache collection lists on disk; image records are never cached (their
        file URLs are signed).
    retries, backoff_factor, timeout, workers, debug
        See :class:`archivestore.sources._http.Client`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_V2_URL,
        *,
        token: str | None = None,
        cache_dir: str | None = None,
        cache_expire: float = 86400.0,
        retries: int = 5,
        backoff_factor: float = 0.5,
        timeout: tuple[float, float] = (10.0, 60.0),
        workers: int = 8,
        debug: bool = False,
    ) -> None:
        self.workers = max(1, int(workers))
        self.client = Client.for_api(
            base_url, cache_dir=cache_dir, cache_expire=cache_expire, retries=retries,
            backoff_factor=backoff_factor, timeout=timeout, workers=self.workers, debug=debug,
        )
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.has_token = bool(token)
        self._user: dict | None = None
        if token:
            self.client.set_token("Authorization", f"Bearer {token}")

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def check_token(self) -> dict | None:
        """Check the bearer token with ``users/me/`` (once per client); its user record, ``None`` without a token.

        The archive treats an invalid or expired token as **anonymous** on its listing and search
        routes (200, public images only, never 401), so a search alone cannot tell; ``users/me/``
        answers 401 for it. :class:`IsicSearchSource` calls this before it searches.

        Raises
        ------
        InvalidInputError
            The archive rejected the token (one line, the token not in it).
        """
        if not self.has_token:
            return None
        if self._user is None:
            try:
                user = self.client.get_json("users/me/")
            except APIError as exc:
                if exc.status in (401, 403):
                    raise InvalidInputError(
                        f"the ISIC token was rejected ({exc.url} answered HTTP {exc.status}): it is invalid or "
                        f"expired; get a new one, or give none (unset ${TOKEN_ENV}) to see public images only"
                    ) from None
                raise
            self._user = user if isinstance(user, dict) else {}
        return self._user

    def search(self, query: str | None = None, collections: list[int] | str | None = None, *,
               limit: int | None = None) -> Iterator[dict]:
        """Image records matching ``query`` in ``collections`` (cursor paging, up to ``limit``)."""
        params: dict[str, Any] = {"query": validate_query(query)}
        if collections:
            params["collections"] = (collections if isinstance(collections, str)
                                     else ",".join(str(c) for c in collections))
        return self.client.cursor_pages("images/search/", params, limit=limit)

    def images(self, *, limit: int | None = None) -> Iterator[dict]:
        """All visible image records (cursor paging, up to ``limit``)."""
        return self.client.cursor_pages("images/", limit=limit)

    def image(self, isic_id: str) -> dict:
        """A fresh image record (new signed file URLs)."""
        return self.client.get_json(f"images/{isic_id}/", item=isic_id)

    def collections(self, *, limit: int | None = None) -> list[dict]:
        """Collection records (``id, name, public, pinned, doi, ...``)."""
        return list(self.client.cursor_pages("collections/", limit=limit, cache=True))

    def file_bytes(self, record: dict, kind: str = "full") -> bytes:
        """A file of an image (``full`` or ``thumbnail_256``), verified against its recorded size.

        The record's signed URL is used if it has one; if the download answers
        403 (signature expired) or the record has no URL, a fresh record is
        fetched and its URL used.
        """
        isic_id = record["isic_id"]
        url = ((record.get("files") or {}).get(kind) or {}).get("url")
        response = self.client.get(url, item=isic_id, ok=(403,)) if url else None
        if response is None or response.status_code == 403:
            fresh = self.image(isic_id)
            url = ((fresh.get("files") or {}).get(kind) or {}).get("url")
            if not url:
                raise APIError(self.client.url(f"images/{isic_id}/"), f"record has no {kind} file", item=isic_id)
            record = fresh
            response = self.client.get(url, item=isic_id)
        body = response.content
        size = ((record.get("files") or {}).get(kind) or {}).get("size")
        if isinstance(size, int) and size != len(body):
            raise APIError(str(url), f"file has {len(body)} bytes, the record says {size}", item=isic_id)
        return body


class IsicSearchSource:
    """A v2 search as a source.

    Parameters
    ----------
    api
        An :class:`IsicV2` client.
    query, collections, limit
        As :meth:`IsicV2.search`.
    file
        Which file becomes the image: ``"full"`` (default) or ``"thumbnail_256"``
        (the 256-pixel thumbnails, for a small preview store; the metadata's
        ``pixels_x``/``pixels_y`` then describe the full image, not the stored one).

    Notes
    -----
    Item id = ``isic_id``; metadata = the record without its signed file URLs
    (``files.*.size`` kept). With a token, :meth:`IsicV2.check_token` runs before the search:
    a rejected token raises before any record is fetched. The image loader downloads ``files.full`` and
    fetches a fresh record when the signature has expired. v2 has no
    superpixels, masks or study annotations.
    """

    def __init__(
        self,
        api: IsicV2,
        query: str | None = None,
        collections: list[int] | str | None = None,
        *,
        limit: int | None = None,
        file: str = "full",
    ) -> None:
        if file not in ("full", "thumbnail_256"):
            raise ValueError(f"file must be 'full' or 'thumbnail_256', not {file!r}")
        self.file = file
        self.api = api
        self.query = validate_query(query)
        self.collections = collections
        self.limit = limit
        self.problems: list[BadItem] = []

    def __iter__(self) -> Iterator[Item]:
        api = self.api
        api.check_token()
        for record in api.search(self.query, self.collections, limit=self.limit):
            where = api.client.url(f"images/{record.get('isic_id')}/")
            try:
                item_id = validate_id(record.get("isic_id", ""), where)
            except BadItem as exc:
                self.problems.append(exc)
                continue
            yield Item(id=item_id, metadata=strip_signed_urls(record),
                       image=_file_loader(api, record, item_id, self.file),
                       where=where, origin={"source": "isic_v2", "api": api.base_url, "isic_id": item_id,
                                            "file": self.file})


def _file_loader(api: IsicV2, record: dict, item_id: str, kind: str) -> Callable[[], bytes]:
    def load() -> bytes:
        try:
            return api.file_bytes(record, kind)
        except UnreachableError:
            raise  # the archive is out of reach, not this image
        except APIError as exc:
            raise BadItem(item_id, exc.url, exc.reason) from None

    return load


def item_from_origin(item_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> Item:
    """The item of one image fetched again from the v2 API an ingest recorded (token from ``ISIC_TOKEN``)."""
    api = IsicV2(origin["api"])

    def load() -> bytes:
        try:
            api.check_token()
            return api.file_bytes(api.image(origin["isic_id"]), origin.get("file", "full"))
        except UnreachableError:
            raise
        except APIError as exc:
            raise BadItem(item_id, exc.url, exc.reason) from None
        except InvalidInputError as exc:
            raise BadItem(item_id, api.client.url("users/me/"), str(exc)) from None

    return Item(id=item_id, metadata=metadata, image=load, where=api.client.url(f"images/{item_id}/"), origin=origin)
