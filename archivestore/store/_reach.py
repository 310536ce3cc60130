"""A bucket endpoint that cannot be reached at all is said at once, not after minutes of retries.

botocore retries a refused connection like a ``503 SlowDown`` (up to 10 attempts with backoff in
:data:`~archivestore.store._store.BUCKET_DEFAULTS`, which a busy bucket needs), so a store on an
endpoint that is down took over a minute and a half to fail. Before the first request, one TCP
connection to the endpoint the options name (``endpoint_url``, or ``AWS_ENDPOINT_URL(_S3)``) tells
a refused connection, a name that does not resolve or a host that does not answer within
:data:`CONNECT_SECONDS` apart. AWS's own endpoints (no endpoint given) and connections through a
proxy are not probed.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Mapping
from typing import Any

from archivestore.errors import UnreachableError

__all__ = ["CONNECT_SECONDS", "check_endpoint"]

CONNECT_SECONDS = 10.0
"""How long the probe waits for the endpoint to accept a connection."""

_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _endpoint(options: Mapping[str, Any]) -> str | None:
    client = options.get("client_kwargs") or {}
    return (options.get("endpoint_url") or client.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL") or None)


def check_endpoint(url: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`UnreachableError` if the S3 endpoint of the store at ``url`` takes no connection.

    Raises
    ------
    UnreachableError
        Connection refused, the host name does not resolve, or no answer within :data:`CONNECT_SECONDS`.
    """
    if url.split("://")[0] not in ("s3", "s3a") or any(os.environ.get(p) for p in _PROXIES):
        return
    endpoint = _endpoint(options)
    if not endpoint:
        return
    parts = urllib.parse.urlsplit(str(endpoint))
    if not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UnreachableError(str(endpoint), f"cannot reach the bucket endpoint {parts.hostname}:{port} "
                               f"({reason})") from None
