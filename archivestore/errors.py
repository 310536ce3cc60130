"""archivestore's errors: one base class, each error also the builtin a caller would catch.

>>> try:
...     store.image("ISIC_9999999")          # doctest: +SKIP
... except KeyError:                         # or archivestore.errors.NotFoundError
...     ...

This module imports nothing from archivestore but the stdlib-only ``_secrets`` (every layer may import it).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "ArchivestoreError",
    "BadItem",
    "InvalidInputError",
    "LeaseTimeout",
    "NotAStoreError",
    "NotFoundError",
    "StoreNotFoundError",
    "StoreWriteError",
    "UnreachableError",
]


class ArchivestoreError(Exception):
    """Base class of every error archivestore raises on purpose."""


class NotFoundError(ArchivestoreError, KeyError):
    """Something asked for by name (an image, a study, a rater, an archive id) is not there.

    Also a :class:`KeyError`; its message prints as written, without ``KeyError``'s quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreNotFoundError(NotFoundError, FileNotFoundError):
    """No store at the given location (also a :class:`FileNotFoundError`)."""

    def __str__(self) -> str:
        return NotFoundError.__str__(self)


class InvalidInputError(ArchivestoreError, ValueError):
    """Input that cannot be used: a bad argument, file, query or record (also a :class:`ValueError`)."""


class NotAStoreError(InvalidInputError):
    """A location that holds something other than an archivestore store (a Zarr hierarchy without the
    ``archivestore`` root attribute, a non-empty directory, a file); nothing is written to it."""


class BadItem(InvalidInputError):
    """One item that cannot be ingested; the message names the item, where it came from, and why."""

    def __init__(self, item_id: str, where: str, reason: str) -> None:
        self.item_id = item_id
        self.where = where
        self.reason = reason
        super().__init__(f"{item_id}: {where}: {reason}")

    def __reduce__(self) -> tuple[type[BadItem], tuple[str, str, str]]:
        return type(self), (self.item_id, self.where, self.reason)


class APIError(ArchivestoreError, OSError):
    """A request that failed for good: an HTTP error answer, or retries exhausted (also an :class:`OSError`).

    Attributes
    ----------
    status
        The HTTP status, or ``None`` when no answer came (connection errors).
    url
        The request URL with secrets redacted.
    item
        The item the request was for, if any.
    reason
        A plain reason, secrets redacted.
    """

    def __init__(self, url: str, reason: str, *, status: int | None = None, item: str | None = None,
                 method: str = "GET") -> None:
        from archivestore._secrets import redact

        self.status = status
        self.url = redact(url)
        self.item = item
        self.reason = redact(reason)
        prefix = f"{item}: " if item else ""
        super().__init__(f"{prefix}{method} {self.url}: {self.reason}")

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _api_error, (type(self), self.url, self.reason, self.status, self.item)


def _api_error(cls: type[APIError], url: str, reason: str, status: int | None, item: str | None) -> APIError:
    return cls(url, reason, status=status, item=item)


class UnreachableError(APIError):
    """An endpoint that cannot be reached at all: connection refused, DNS or TLS failure (no HTTP answer).

    Unlike an HTTP error answer, this says nothing about the item: the archive or bucket itself is out of
    reach, so an ingest stops submitting after a few of these in a row instead of failing every item.
    """


class StoreWriteError(ArchivestoreError, OSError):
    """The store refused a write: no space left, a read-only filesystem, no permission, a bucket refusing writes.

    Unlike an item's own failure this concerns every item, so an ingest stops submitting at the
    first one (also an :class:`OSError`).
    """


class LeaseTimeout(ArchivestoreError, TimeoutError):
    """A store lease stayed held by another live writer for longer than we would wait."""
