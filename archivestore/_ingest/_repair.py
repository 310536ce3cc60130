"""Repair without destroying: fetch a fresh copy of each damaged group first, swap it in only when complete.

Each item is fetched again from the origin its group recorded and written, by the same task an
ingest runs, into a *scratch* store (a temporary directory), beside copies of the groups it needs
(the image a rater's masks belong to, the volume a segmentation is on). Only a fresh group that is
complete and whose checksums equal the ones recorded at ingest is swapped in for the damaged one
(:meth:`~archivestore.Store.swap_group`, under the group's lease, its document last). Until then the
damaged group — its record, recorded origin and table row — stays as it is; an origin or a store
out of reach is its own outcome and changes nothing.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from archivestore._ingest._loop import AnyItem, _task
from archivestore.errors import APIError, UnreachableError
from archivestore.store import Store, open_store

__all__ = ["Fix", "Outcome", "is_transport_failure", "repair_groups"]

_NOT_TRANSPORT = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_TRANSPORT_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
                               errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE})
_TRANSPORT_MODULES = frozenset({"aiohttp", "botocore", "aiobotocore", "urllib3", "requests", "ssl", "socket"})


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a failure to *reach* a store or an archive, not bad data.

    An endpoint out of reach (:class:`UnreachableError`), an API that answered only 5xx/429 or nothing,
    a refused or reset connection, a timeout, an HTTP client's own error (aiohttp, botocore, urllib3,
    requests). A missing file or key, no permission, or a chunk that does not decode is not one.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, UnreachableError):
            return True
        if isinstance(cur, APIError):
            return cur.status is None or cur.status >= 500 or cur.status == 429
        if isinstance(cur, (TimeoutError, ConnectionError)):
            return True
        if isinstance(cur, _NOT_TRANSPORT):
            return False
        if isinstance(cur, OSError) and cur.errno in _TRANSPORT_ERRNOS:
            return True
        if type(cur).__module__.split(".")[0] in _TRANSPORT_MODULES:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass
class Fix:
    """One damaged group to fetch again: the item its origin rebuilds, and what the fresh copy must match."""

    item: AnyItem
    group: str
    checksums: dict[str, str] = field(default_factory=dict)
    """The checksums recorded at ingest; a fresh copy with other values is not swapped in."""
    needs: list[str] = field(default_factory=list)
    """Groups of the store the fresh copy is written beside (copied into the scratch store first)."""


@dataclass
class Outcome:
    """What happened to one :class:`Fix`: ``repaired``, ``unreachable`` (store or origin) or ``failed``."""

    fix: Fix
    kind: str
    detail: str = ""


def _fetch(scratch: Store, item: AnyItem) -> BaseException | None:
    try:
        _task(item)(scratch, item)
    except Exception as exc:
        return exc
    return None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _swap(store: Store, scratch: Store, fix: Fix) -> Outcome:
    fresh = scratch.group_state(fix.group) or {}
    if not fresh.get("complete"):
        return Outcome(fix, "failed", f"the fresh copy has no complete {fix.group}")
    have = fresh.get("checksums", {})
    differ = sorted(name for name, want in fix.checksums.items() if have.get(name) != want)
    if differ:
        return Outcome(fix, "failed", f"the origin now gives other data for {', '.join(differ)}; left as it is")
    try:
        store.swap_group(scratch, fix.group)
    except Exception as exc:
        if is_transport_failure(exc):
            return Outcome(fix, "unreachable", f"cannot reach the store: {_reason(exc)}")
        raise
    return Outcome(fix, "repaired")


def _key(item: AnyItem) -> tuple[str, str]:
    """One fetch per item and rater (a rater's masks and the image of the same id are fetched apart)."""
    return item.id, str(getattr(item, "rater", ""))


def repair_groups(store: Store, fixes: Iterable[Fix], *, workers: int | None = None,
                  progress: bool = True) -> list[Outcome]:
    """Fetch every fix's item into a scratch store, then swap each complete, matching group in.

    Fixes that need no other group are fetched first; then the others, beside the fresh copies of the
    groups they need (or, for groups that are not being repaired, copies of the store's own).
    Returns one :class:`Outcome` per fix; nothing in ``store`` changes for a fix that is not ``repaired``.
    """
    fixes = list(fixes)
    repairing = {f.group for f in fixes}
    outcomes: list[Outcome] = []
    errors: dict[tuple[str, str], BaseException | None] = {}
    blocked: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="archivestore-repair-") as tmp:
        scratch = open_store(os.path.join(tmp, "fresh.zarr"), mode="a")
        for phase in ([f for f in fixes if not f.needs], [f for f in fixes if f.needs]):
            for need in sorted({n for f in phase for n in f.needs}):
                if need in repairing and scratch.group_state(need) is not None:
                    continue  # its fresh copy is there (fetched in the first phase)
                try:
                    store.copy_group_to(scratch, need)
                except Exception as exc:
                    if not is_transport_failure(exc):
                        raise
                    blocked[need] = f"cannot reach the store: {_reason(exc)}"
            items = {_key(f.item): f.item for f in phase if not any(n in blocked for n in f.needs)}
            with ThreadPoolExecutor(max_workers=workers) as pool:
                errors.update(zip(items, pool.map(lambda i: _fetch(scratch, i), items.values()), strict=True))
        for fix in tqdm(fixes, disable=not progress, desc="repair", unit="group"):
            cut_off = next((blocked[n] for n in fix.needs if n in blocked), None)
            error = errors.get(_key(fix.item))
            if cut_off is not None:
                outcomes.append(Outcome(fix, "unreachable", cut_off))
            elif error is not None:
                kind = "unreachable" if is_transport_failure(error) else "failed"
                prefix = "cannot reach the origin: " if kind == "unreachable" else ""
                outcomes.append(Outcome(fix, kind, prefix + _reason(error)))
            else:
                outcomes.append(_swap(store, scratch, fix))
    return outcomes
