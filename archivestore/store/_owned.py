"""Only our own stores: where :func:`~archivestore.open_store` may create or write one, and what it may read.

A store is a Zarr v3 group whose root attributes hold ``archivestore`` (the layout marker).
``open_store(mode="a")`` creates one only where nothing is, or in an empty directory (or bucket
prefix), by creating the root ``zarr.json`` *with* the marker in one exclusive write (see
:func:`~archivestore.store._lock.create_exclusive`), so a store is never seen without it and two
writers creating one store at once agree. Anything else — a Zarr v3 hierarchy without the marker
(an OME-Zarr image, another tool's store), a Zarr v2 one, an array, a non-empty directory that is
not a store (the source folder itself), a file — is refused before a byte is written.
"""

from __future__ import annotations

import json
import os
from typing import Any

import zarr.storage
from zarr.core.sync import sync

from archivestore.errors import NotAStoreError
from archivestore.layout import LAYOUT_VERSION
from archivestore.store._lock import create_exclusive, read_doc

__all__ = ["MARKER", "check_readable", "check_root", "claim_root", "foreign_kind"]

MARKER = "archivestore"
"""The root attribute that makes a Zarr group an archivestore store: ``{"layout": <version>}``."""

_V2_KEYS = (".zgroup", ".zarray", ".zattrs")


def _refuse(url: str, what: str, *, writing: bool = True) -> NotAStoreError:
    text = f"{url} is not an archivestore store ({what})"
    return NotAStoreError(f"{text}; nothing was written to it: create a store at a new or empty location"
                          if writing else text)


def foreign_kind(zstore: Any) -> str | None:
    """What Zarr v2 metadata sits at the root (a v2 group or array), or None."""
    for key in _V2_KEYS:
        if sync(zstore.exists(key)):
            return "a Zarr v2 array" if key == ".zarray" else "a Zarr v2 hierarchy"
    return None


def check_root(url: str, doc: dict[str, Any], *, writing: bool = True) -> None:
    """Refuse a root ``zarr.json`` that is not an archivestore store's (no marker, an array, unreadable)."""
    if doc.get("node_type") == "array":
        raise _refuse(url, "a Zarr array", writing=writing)
    if doc.get("node_type") != "group" or doc.get("zarr_format") != 3:
        raise _refuse(url, "its zarr.json is not a Zarr v3 group", writing=writing)
    attrs = doc.get("attributes") or {}
    if MARKER not in attrs:
        kind = "an OME-Zarr image or plate" if "ome" in attrs or "multiscales" in attrs else "a Zarr v3 hierarchy"
        raise _refuse(url, f"{kind} without the '{MARKER}' root attribute", writing=writing)


def _entries(zstore: Any, limit: int = 3) -> list[str]:
    """Up to ``limit`` names at the root of the location (none if it does not exist)."""
    async def first() -> list[str]:
        out: list[str] = []
        try:
            async for key in zstore.list_dir(""):
                out.append(key)
                if len(out) >= limit:
                    break
        except (FileNotFoundError, NotADirectoryError):
            pass
        return out

    return sync(first())


def claim_root(zstore: Any, url: str) -> None:
    """Make sure ``url`` is an archivestore store, creating it if nothing (or an empty directory) is there.

    Raises
    ------
    NotAStoreError
        If something else is there (see the module docstring); nothing is written then.
    """
    if isinstance(zstore, zarr.storage.LocalStore) and os.path.isfile(str(zstore.root)):
        raise _refuse(url, "a file")
    doc = read_doc(zstore, "zarr.json")
    if doc is None:
        kind = foreign_kind(zstore)
        if kind:
            raise _refuse(url, kind)
        entries = _entries(zstore)
        if not entries:
            body = {"zarr_format": 3, "node_type": "group", "attributes": {MARKER: {"layout": LAYOUT_VERSION}}}
            if create_exclusive(zstore, "zarr.json", json.dumps(body).encode()):
                return
        doc = read_doc(zstore, "zarr.json")  # another writer may be creating the store right now
        if doc is None:
            raise _refuse(url, f"a directory that is not empty: {', '.join(sorted(entries))}, ...")
    check_root(url, doc)


def check_readable(zstore: Any, url: str) -> bool:
    """Whether there is a root document to read; a foreign one (v2, no marker, an array) is refused."""
    doc = read_doc(zstore, "zarr.json")
    if doc is None:
        kind = foreign_kind(zstore)
        if kind:
            raise _refuse(url, kind, writing=False)
        return False
    check_root(url, doc, writing=False)
    return True
