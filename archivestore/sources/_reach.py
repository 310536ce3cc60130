"""Telling "the endpoint cannot be reached at all" from every other failure of a request.

Connection refused, a name that does not resolve, a TLS handshake that fails, a connection that
is never accepted: no HTTP answer came, so the failure says nothing about the item asked for,
and every other item of the same endpoint will fail the same way. The sources raise
:class:`~archivestore.errors.UnreachableError` for these (after a short, bounded retry), so that
an ingest can stop instead of failing every item in turn. An HTTP error answer, a connection
broken mid-body or a read timeout are not this: the server is there.

:func:`unreachable` recognises the exceptions of the stacks the sources use (requests/urllib3,
aiohttp under fsspec's HTTP, botocore/aiobotocore under s3fs, the standard library's socket and
ssl) by walking an exception's causes; it imports none of them.
"""

from __future__ import annotations

import socket
import ssl

from archivestore._secrets import redact

__all__ = ["CONNECT_RETRIES", "CONNECT_TIMEOUT", "unreachable"]

CONNECT_RETRIES = 2
"""How often a connection that could not be made is tried again before the endpoint is called unreachable."""

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection (not for an answer): a host that accepts none in this time is unreachable."""

_DNS = {"gaierror", "NameResolutionError", "ClientConnectorDNSError"}
_TLS = {"SSLError", "SSLCertVerificationError", "ClientConnectorCertificateError", "ClientConnectorSSLError",
        "ClientSSLError", "CertificateError"}
_REFUSED = {"ConnectionRefusedError"}
_CONNECT = {"NewConnectionError", "EndpointConnectionError", "ClientConnectorError", "ConnectTimeoutError",
            "ConnectTimeout"}
"""Class names (anywhere in an exception's MRO) of failures to connect whose cause may say more."""


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _inner(exc: BaseException) -> list[BaseException]:
    """What ``exc`` wraps: its cause and context, ``args`` entries, urllib3's ``reason``, aiohttp's ``os_error``."""
    found: list[BaseException] = []
    for candidate in (exc.__cause__, exc.__context__, getattr(exc, "reason", None), getattr(exc, "os_error", None),
                      *getattr(exc, "args", ())):
        if isinstance(candidate, BaseException) and candidate is not exc:
            found.append(candidate)
    return found


def unreachable(exc: BaseException) -> str | None:
    """A short reason (secrets redacted) when ``exc`` means no connection could be made at all, else ``None``.

    >>> unreachable(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    >>> unreachable(TimeoutError("read timed out")) is None
    True
    """
    seen: set[int] = set()
    todo = [exc]
    connect: BaseException | None = None
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        names = _names(current)
        if names & _REFUSED:
            return "connection refused"
        if isinstance(current, socket.gaierror) or names & _DNS:
            return redact(f"the name does not resolve (DNS): {current}")
        if isinstance(current, ssl.SSLError) or names & _TLS:
            return redact(f"TLS failure: {current}")
        if names & _CONNECT and connect is None:
            connect = current
        todo.extend(_inner(current))
    if connect is not None:
        if _names(connect) & {"ConnectTimeoutError", "ConnectTimeout"}:
            return "no connection accepted (connect timed out)"
        return redact(f"cannot connect: {connect}")
    return None
