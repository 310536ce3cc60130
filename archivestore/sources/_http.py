"""Shared HTTP behaviour of the API sources (the listing cache and logins are in ``_logins.py``).

One :class:`Client` per API base URL: a ``requests.Session`` whose adapter retries
429 and 5xx answers and broken connections with urllib3's ``Retry`` (honouring
``Retry-After``; a connection that cannot be made at all only a couple of times, then
:class:`~archivestore.errors.UnreachableError` naming the endpoint), connect/read timeouts,
verification of ``Content-Length`` (a truncated body is fetched again, never returned), clear errors for 401/403/404
naming the item, Girder/cursor paging, an optional on-disk cache of metadata
listings, and a debug log of every request with secrets redacted.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from archivestore._secrets import SECRET_KEY_RE, redact
from archivestore.errors import APIError, UnreachableError
from archivestore.sources._logins import ListingCache, find_password, identity_of
from archivestore.sources._reach import CONNECT_RETRIES, unreachable

__all__ = [
    "APIError",
    "Client",
    "ListingCache",
    "bounded_map",
    "find_password",
    "identity_of",
    "redact",
]

log = logging.getLogger("archivestore.http")

RETRY_STATUSES = (429, 500, 502, 503, 504)
"""Answers that are retried: too many requests and server errors."""

def _redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "REDACTED" if SECRET_KEY_RE.fullmatch(str(k)) else v for k, v in params.items()}


class _RedactFilter(logging.Filter):
    """Redacts secrets in urllib3's own log records (they carry full URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: leave it to logging
            return True
        record.msg = redact(message)
        record.args = ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.response"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactFilter) for f in _logger.filters):
        _logger.addFilter(_RedactFilter())


_STATUS_HINTS = {
    401: "not authenticated (log in or pass a token)",
    403: "access denied (not public, or the signed URL expired)",
    404: "not found (wrong id, or not visible without logging in)",
}


class _HeaderAuth(requests.auth.AuthBase):
    """Adds one header, only to requests for the API's own origin.

    Signed file URLs live on other hosts (a bucket) and must not receive the
    API's token.
    """

    def __init__(self, origin: str, header: str, value: str) -> None:
        self.origin = origin
        self.header = header
        self.value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(request.url or "") == self.origin:
            request.headers[self.header] = self.value
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.header}: REDACTED>"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Client:
    """HTTP client of one API base URL.

    Parameters
    ----------
    base_url
        The API root, e.g. ``https://isic-archive.com/api/v1/``; relative paths
        are resolved against it.
    retries
        How often a failed request (429/5xx answer, broken connection, truncated
        body) is tried again.
    backoff_factor
        urllib3 exponential backoff factor (seconds); ``Retry-After`` wins when sent.
    backoff_max
        Longest wait between tries, in seconds.
    timeout
        ``(connect, read)`` timeouts in seconds.
    pool_size
        Connections kept per host; match the number of download threads.
    debug
        Log every request (method, URL, parameters; secrets redacted) at INFO level
        on the ``archivestore.http`` logger, instead of DEBUG.
    cache
        Optional :class:`ListingCache` for :meth:`get_json` calls made with ``cache=True``.
    """

    @classmethod
    def for_api(cls, base_url: str, *, cache_dir: str | None, cache_expire: float, retries: int,
                backoff_factor: float, timeout: tuple[float, float], workers: int, debug: bool) -> Client:
        """The client an API source builds from its options (one listing cache when ``cache_dir``)."""
        cache = ListingCache(cache_dir, cache_expire) if cache_dir else None
        return cls(base_url, retries=retries, backoff_factor=backoff_factor, timeout=timeout,
                   pool_size=max(1, int(workers)), debug=debug, cache=cache)

    def __init__(
        self,
        base_url: str,
        *,
        retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        pool_size: int = 8,
        debug: bool = False,
        cache: ListingCache | None = None,
        user_agent: str = "archivestore",
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.timeout = timeout
        self.debug = debug
        self.cache = cache
        self.identity = "anonymous"
        self.retry = Retry(
            total=retries,
            connect=min(retries, CONNECT_RETRIES),  # an endpoint that takes no connection: seconds, not minutes
            read=retries,
            status=retries,
            other=retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD", "POST"}),  # POST: only read-only queries (:meth:`post`)
            respect_retry_after_header=True,
            raise_on_status=False,
            redirect=5,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=self.retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": user_agent})

    # -- authentication -------------------------------------------------------------
    def set_token(self, header: str, value: str, *, user: str | None = None) -> None:
        """Send ``header: value`` on every request to the API's origin (not to file hosts).

        The cache identity changes with it, so cached anonymous listings are not reused.
        """
        self.session.auth = _HeaderAuth(_origin(self.base_url), header, value)
        self.identity = identity_of(value, user)

    # -- requests ------------------------------------------------------------------
    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (absolute URLs pass through)."""
        return urljoin(self.base_url, path)

    def _log(self, url: str, params: Mapping[str, Any] | None, method: str = "GET") -> None:
        level = logging.INFO if self.debug else logging.DEBUG
        if log.isEnabledFor(level):
            shown = "" if not params else " " + redact(json.dumps(_redact_params(params), default=str))
            log.log(level, "%s %s%s", method, redact(url), shown)

    def post(self, path: str, data: Mapping[str, Any], *, item: str | None = None) -> requests.Response:
        """POST a form to a read-only query endpoint (e.g. NBIA's ``getSeriesMetadata``), retried like a GET.

        Only for endpoints that change nothing, since a failed request is sent again.
        """
        return self.get(path, item=item, form=data)

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        item: str | None = None,
        auth: tuple[str, str] | None = None,
        ok: Iterable[int] = (),
        form: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """GET with retries; the body is fully read and its length verified.

        Parameters
        ----------
        path
            Path relative to the base URL, or an absolute URL.
        params
            Query parameters.
        item
            The item this request is for (named in errors).
        auth
            HTTP Basic credentials for this request only.
        ok
            Error statuses to return instead of raising (e.g. ``(403,)``).
        form
            Form fields: the request becomes a POST (see :meth:`post`).

        Raises
        ------
        UnreachableError
            No connection could be made at all (refused, DNS, TLS; after :data:`CONNECT_RETRIES` more
            tries, backoff included): the message names the endpoint.
        APIError
            An error answer (after retries for 429/5xx), or retries exhausted.
        """
        url = self.url(path)
        method = "GET" if form is None else "POST"
        self._log(url, params if form is None else form, method)
        retry = self.retry.new()
        while True:
            try:
                response = self.session.request(method, url, params=params, data=form, timeout=self.timeout, auth=auth)
                body = response.content  # read fully: urllib3 enforces Content-Length
                self._check_length(response, body)
            except requests.exceptions.ConnectionError as exc:
                cannot = unreachable(exc)
                if cannot is not None:
                    raise UnreachableError(url, f"cannot reach {_origin(url)}: {cannot}", item=item,
                                           method=method) from None
                if exc.args and isinstance(exc.args[0], MaxRetryError):
                    raise APIError(url, f"gave up after retries: {_reason(exc)}", item=item) from None
                retry = self._again(retry, url, exc, item)
                continue
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                    _Truncated) as exc:
                retry = self._again(retry, url, exc, item)
                continue
            except requests.exceptions.Timeout as exc:
                retry = self._again(retry, url, exc, item)
                continue
            except requests.exceptions.RequestException as exc:
                raise APIError(url, _reason(exc), item=item) from None
            break
        status = response.status_code
        if status >= 400 and status not in set(ok):
            hint = _STATUS_HINTS.get(status, "")
            if status in RETRY_STATUSES:
                hint = "gave up after retries"
            reason = f"HTTP {status} {response.reason or ''}".strip() + (f": {hint}" if hint else "")
            said = _server_message(response)
            if said:
                reason += f" (the server says: {said})"
            raise APIError(url, reason, status=status, item=item, method=method)
        return response

    @staticmethod
    def _check_length(response: requests.Response, body: bytes) -> None:
        expected = response.headers.get("Content-Length")
        if expected is None or response.headers.get("Content-Encoding") or response.request.method == "HEAD":
            return
        try:
            n = int(expected)
        except ValueError:
            return
        if len(body) != n:
            raise _Truncated(f"body has {len(body)} bytes, Content-Length says {n}")

    def _again(self, retry: Retry, url: str, exc: Exception, item: str | None) -> Retry:
        """Count one more try of a body/connection failure, sleep the backoff, or give up."""
        try:
            retry = retry.increment(method="GET", url=redact(url), error=ProtocolError(_reason(exc)))
        except (MaxRetryError, ProtocolError):
            raise APIError(url, f"gave up after retries: {_reason(exc)}", item=item) from None
        log.debug("retrying %s after %s", redact(url), _reason(exc))
        retry.sleep()
        return retry

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None, *, item: str | None = None) -> bytes:
        """The verified body of a GET."""
        return self.get(path, params, item=item).content

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        item: str | None = None,
        cache: bool = False,
    ) -> Any:
        """The JSON body of a GET; with ``cache=True`` served from the listing cache when fresh."""
        key = None
        if cache and self.cache is not None:
            key = self.cache.key(self.url(path), sorted((params or {}).items()), self.identity)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        response = self.get(path, params, item=item)
        try:
            data = response.json()
        except ValueError:
            raise APIError(self.url(path), "answer is not JSON", status=response.status_code, item=item) from None
        if key is not None and self.cache is not None:
            self.cache.put(key, data)
        return data

    # -- paging -------------------------------------------------------------------
    def girder_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 500,
        limit: int | None = None,
        cache: bool = False,
    ) -> Iterator[Any]:
        """Records of a Girder list, fetched ``page_size`` at a time with ``limit``/``offset``.

        ``page_size=0`` asks for everything at once (Girder's ``limit=0``).
        """
        offset = 0
        n = 0
        while True:
            query = dict(params or {})
            query.update(limit=page_size, offset=offset)
            page = self.get_json(path, query, cache=cache)
            if not isinstance(page, list):
                raise APIError(self.url(path), "expected a JSON list")
            for record in page:
                if limit is not None and n >= limit:
                    return
                yield record
                n += 1
            if page_size == 0 or len(page) < page_size:
                return
            offset += len(page)

    def cursor_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        page_size: int = 100,
        cache: bool = False,
    ) -> Iterator[Any]:
        """Records of a cursor-paged list (``{"count", "next", "results"}``), following ``next``.

        ``count`` may come on the first page only; ``page_size`` is capped at 100.
        ``cache=True`` serves pages from the listing cache (never for records with signed URLs).
        """
        query: dict[str, Any] | None = {
            **(params or {}), "limit": max(1, min(int(page_size), 100, limit if limit else 100)),
        }
        url: str | None = self.url(path)
        n = 0
        while url:
            page = self.get_json(url, query, cache=cache)
            query = None  # ``next`` carries every parameter
            for record in page.get("results", []):
                if limit is not None and n >= limit:
                    return
                yield record
                n += 1
            if limit is not None and n >= limit:
                return
            url = page.get("next")


class _Truncated(IOError):
    pass


def _server_message(response: requests.Response) -> str | None:
    """The ``message`` (or ``detail``) of a JSON error answer, e.g. ISIC's ``Could not parse search query.``."""
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    said = body.get("message") or body.get("detail") if isinstance(body, dict) else None
    return " ".join(said.split())[:300] if isinstance(said, str) and said.strip() else None


def _reason(exc: BaseException) -> str:
    """A short reason for an exception, secrets redacted."""
    inner = exc
    while isinstance(inner, (requests.exceptions.RequestException, MaxRetryError)) and inner.args:
        nxt = getattr(inner, "reason", None) or inner.args[0]
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    return redact(f"{type(inner).__name__}: {inner}")


def bounded_map(func: Callable[[Any], Any], items: Iterable[Any], workers: int = 8) -> Iterator[Any]:
    """``func`` over ``items`` on a pool of ``workers`` threads, results in order.

    At most ``2 * workers`` calls are in flight, so long inputs are not read
    ahead without bound. An exception is raised when its result is reached.
    """
    workers = max(1, int(workers))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
