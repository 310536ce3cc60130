"""Downloading a zip of DICOM files: streamed to a temporary file, checked, read, removed.

One function, :func:`fetch_dicom_zip`, for any archive that serves a series as a zip
(NBIA's ``getImage``). The body is streamed to a temporary file with a byte progress bar,
the zip is checked whole before any entry is read (:mod:`archivestore.sources._safezip`),
entries are read with CRC checks, and the file is removed whatever happens.

Retries: 429/5xx answers and refused or reset connections are retried by the client's
session adapter (urllib3 ``Retry``, honouring ``Retry-After``). A body cut short, a
connection broken mid-body, or a zip that is truncated or fails a CRC is fetched again
here, counted against the same ``Retry`` budget and with its backoff; so is a well-formed zip
with fewer DICOM files than ``expected`` (NBIA streams the zip after its 200 and, when reading a
file fails mid-way, closes it normally). A zip refused as unsafe is never fetched again.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import IO

import requests
from tqdm.auto import tqdm
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from archivestore._secrets import redact
from archivestore.errors import APIError, UnreachableError
from archivestore.sources._http import RETRY_STATUSES, Client, _reason
from archivestore.sources._reach import unreachable
from archivestore.sources._safezip import ZipLimits, dicom_members

__all__ = ["fetch_dicom_zip"]


class _ShortBodyError(OSError):
    pass


class _ShortZipError(OSError):
    """A well-formed zip with fewer DICOM files than the series has."""


_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.Timeout,
    zipfile.BadZipFile,
    _ShortBodyError,
    _ShortZipError,
)
"""Failures of one download that fetching it again may cure."""


def fetch_dicom_zip(client: Client, url: str, *, item: str, limits: ZipLimits | None = None, progress: bool = True,
                    tmp_dir: str | os.PathLike[str] | None = None,
                    expected: int | None = None) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the DICOM entries of the zip at ``url`` (see the module docstring).

    Parameters
    ----------
    client
        The API's client (its session, timeouts and retry budget are used).
    url
        The zip's URL.
    item
        What the zip is (named in errors), e.g. the SeriesInstanceUID.
    limits
        Caps on what the zip may expand to.
    progress
        Show a byte progress bar on stderr.
    tmp_dir
        Where the zip is spooled (default: the system's temporary directory).
    expected
        How many DICOM files the zip must hold (``None``: any number); fewer is retried, then
        an :class:`APIError` ``... N of M files``.

    Raises
    ------
    UnsafeZipError
        The zip is refused; nothing was read from it.
    APIError
        An error answer, retries exhausted, or a zip without any DICOM file.
    """
    retry = client.retry.new()
    fd, tmp = tempfile.mkstemp(prefix="archivestore-", suffix=".zip", dir=tmp_dir)
    try:
        with os.fdopen(fd, "w+b") as file:
            while True:
                try:
                    file.seek(0)
                    file.truncate()
                    _stream(client, url, item, file, progress)
                    file.seek(0)
                    members = dicom_members(file, limits)
                    if expected is not None and len(members) < expected:
                        raise _ShortZipError(f"the zip holds {len(members)} of {expected} files")
                    break
                except _TRANSIENT as exc:
                    retry = _again(retry, url, exc, item)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if not members:
        raise APIError(url, "the zip holds no DICOM file", item=item)
    return members


def _stream(client: Client, url: str, item: str, file: IO[bytes], progress: bool) -> None:
    """Write the body of ``url`` to ``file``; an error answer (after the adapter's retries) raises."""
    with client.session.get(url, stream=True, timeout=client.timeout) as response:
        status = response.status_code
        if status >= 400:
            hint = ": gave up after retries" if status in RETRY_STATUSES else ""
            raise APIError(url, f"HTTP {status} {response.reason or ''}".strip() + hint, status=status, item=item)
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        written = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False, disable=not progress,
                  desc=item[-16:]) as bar:
            for block in response.iter_content(chunk_size=1 << 20):
                file.write(block)
                written += len(block)
                bar.update(len(block))
        if total is not None and written != total and not response.headers.get("Content-Encoding"):
            raise _ShortBodyError(f"body has {written} bytes, Content-Length says {total}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, zipfile.BadZipFile):
        return redact(f"truncated or corrupt zip: {exc}")
    if isinstance(exc, _ShortZipError):
        return str(exc)
    return _reason(exc)


def _again(retry: Retry, url: str, exc: BaseException, item: str) -> Retry:
    """Count one more try of a download and sleep the backoff; give up when the budget is spent."""
    cannot = unreachable(exc) if isinstance(exc, requests.exceptions.ConnectionError) else None
    if cannot is not None:  # the adapter tried its few connection retries already
        raise UnreachableError(url, f"cannot reach {url.split('/')[2]}: {cannot}", item=item)
    gave_up = isinstance(exc, requests.exceptions.ConnectionError) and bool(exc.args) \
        and isinstance(exc.args[0], MaxRetryError)  # the adapter spent the budget already
    try:
        if gave_up:
            raise MaxRetryError(None, redact(url))  # type: ignore[arg-type]
        retry = retry.increment(method="GET", url=redact(url), error=ProtocolError(_why(exc)))
    except (MaxRetryError, ProtocolError):
        raise APIError(url, f"gave up after retries: {_why(exc)}", item=item) from None
    retry.sleep()
    return retry
