"""Leases: exclusive claims on a name, kept in the store itself so every writer sees them.

A lease is the object ``_locks/<name>/zarr.json`` — a valid, empty Zarr group whose
attributes say who holds it and until when — created with an *exclusive* write:
``open(..., "xb")`` on a local disk, a conditional PUT (``If-None-Match: *``) on S3.
Whoever creates it holds it; releasing deletes it. A lease whose holder is gone — past
its expiry, or held by a process of this host that no longer runs (``kill -9``) — is
broken by the next writer that wants it.

On stores with no exclusive write (``memory://``, other fsspec filesystems) the create
is check-then-write, which is safe within one process only; the README says so.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import zarr.storage
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from archivestore.errors import LeaseTimeout
from archivestore.layout import LAYOUT

__all__ = ["LEASE_SECONDS", "Lease", "LeaseTimeout", "acquire", "create_exclusive", "holder", "is_stale", "parse_doc",
           "read_doc"]

LEASE_SECONDS = 300.0
"""How long a writer's claim on an item (or on the shared tables) lasts if it dies."""

HOST = socket.gethostname()


@dataclass
class Lease:
    zstore: Any
    key: str
    token: str

    def release(self) -> None:
        """Give the lease up (only if we still hold it)."""
        doc = read_doc(self.zstore, self.key)
        if doc is not None and doc.get("attributes", {}).get("token") == self.token:
            sync(self.zstore.delete(self.key))

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(lease_seconds: float, token: str | None = None) -> dict[str, Any]:
    """Who holds a claim, and until when: this process, for ``lease_seconds`` from now."""
    return {"token": token or uuid.uuid4().hex, "host": HOST, "pid": os.getpid(),
            "expires": time.time() + lease_seconds}


def _doc(token: str, lease_seconds: float) -> bytes:
    attrs = holder(lease_seconds, token)
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}).encode()


def parse_doc(buf: Any) -> dict[str, Any] | None:
    """A JSON document (a ``zarr.json``) from the bytes a store returned: None if absent, ``{}`` if unreadable."""
    if buf is None:
        return None
    try:
        doc = json.loads(buf.to_bytes())
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def read_doc(zstore: Any, key: str) -> dict[str, Any] | None:
    """The JSON document at ``key`` (one GET); see :func:`parse_doc`."""
    return parse_doc(sync(zstore.get(key, prototype=default_buffer_prototype())))


def create_exclusive(zstore: Any, key: str, data: bytes) -> bool:
    """Write ``key`` only if it does not exist; True if this call created it."""
    if isinstance(zstore, zarr.storage.LocalStore):
        path = os.path.join(str(zstore.root), key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            return False
        return True
    if isinstance(zstore, zarr.storage.FsspecStore) and "s3" in zstore.fs.protocol:
        try:
            sync(zstore.fs._pipe_file(f"{zstore.path}/{key}", data, mode="create"))
        except FileExistsError:
            return False
        return True
    if sync(zstore.exists(key)):
        return False
    buf = default_buffer_prototype().buffer.from_bytes(data)
    sync(zstore.set(key, buf))
    return read_doc(zstore, key) == json.loads(data)


def is_stale(attrs: dict[str, Any]) -> bool:
    """Whether a holder's claim (see :func:`holder`) has expired or its process on this host is gone."""
    if not attrs or attrs.get("expires", 0) < time.time():
        return True
    if attrs.get("host") == HOST and attrs.get("pid") != os.getpid():
        try:
            os.kill(int(attrs["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, TypeError):
            return False
    return False


def acquire(zstore: Any, name: str, *, lease_seconds: float = LEASE_SECONDS, wait_seconds: float = 600.0,
            poll: float = 0.05) -> Lease:
    """Take the lease ``name``, waiting (bounded) while another live writer holds it.

    Raises
    ------
    LeaseTimeout
        If it is still held by a live writer after ``wait_seconds``.
    """
    key = LAYOUT.lock(name)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    delay = poll
    while True:
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"could not take {name} within {wait_seconds:.0f} s")
        if create_exclusive(zstore, key, _doc(token, lease_seconds)):
            return Lease(zstore, key, token)
        doc = read_doc(zstore, key)
        if doc is None:
            continue  # released between our create and our read: try again at once
        attrs = doc.get("attributes", {})
        if is_stale(attrs):
            again = read_doc(zstore, key)
            if again == doc:  # still the same stale holder: break it
                sync(zstore.delete(key))
            continue
        if time.monotonic() + delay > deadline:
            raise LeaseTimeout(f"{name} is held by {attrs.get('host')}:{attrs.get('pid')} "
                               f"for another {attrs.get('expires', 0) - time.time():.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
