"""Leases: exclusive claims on a name, kept in the store itself so every writer sees them.

A lease is held by whoever created the newest *generation* of its name: the object
``_locks/<name>/g<N>/zarr.json`` — a valid, empty Zarr group whose attributes say who holds it
and until when — created with an *exclusive* write (``open(..., "xb")`` on a local disk, a
conditional PUT ``If-None-Match: *`` on S3, a check-then-write under a process-wide lock on
``memory://``). To take a lease a writer lists the generations, and if the newest is released or
stale (expired, or held by a process of this host that no longer runs) it creates the next one;
then it lists again and holds the lease only if its generation is still the newest. Nothing ever
deletes or overwrites another writer's live generation: breaking a stale lease *is* creating the
next generation, which only one writer can do, so two writers that break one stale lease at once
cannot both hold it (the race of "read, read again, delete" is gone). Old generations are deleted by
the holder of a newer one; a late writer that re-creates one of them finds a newer one above it and
steps back. Releasing overwrites the holder's own generation as released.

A holder renews its lease while it works (:class:`_Renewer`, every third of the lease's length), so
a slow writer keeps its lease; a lease whose holder stops (killed, or stalled for longer than the
lease) expires and is broken by the next writer. A holder that finds a newer generation above its
own at a renewal has lost the lease (:attr:`Lease.lost`).

On other fsspec filesystems (no exclusive create) the create is check-then-write, safe between the
threads of one process only; the README says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import zarr.storage
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from archivestore.errors import LeaseTimeout
from archivestore.layout import LAYOUT

__all__ = ["LEASE_SECONDS", "RENEWER", "Lease", "LeaseTimeout", "Renewable", "acquire", "create_exclusive", "holder",
           "is_stale", "parse_doc", "read_doc"]

LEASE_SECONDS = 300.0
"""How long a writer's claim on an item (or on the shared tables) lasts if it dies."""

HOST = socket.gethostname()


@dataclass
class Lease:
    """A lease held by this process: its generation's key and token; renewed in the background until released."""

    zstore: Any
    key: str
    token: str
    lease_seconds: float = LEASE_SECONDS
    lost: bool = False
    """Set when a renewal found a newer generation above this one (the lease had expired and was broken)."""
    renewed: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        """Push the expiry on (one PUT of our own generation), and check that no newer one exists (one LIST)."""
        if self.lost:
            return
        _put(self.zstore, self.key, _doc(self.token, self.lease_seconds))
        self.renewed = time.monotonic()
        prefix, gen = _split(self.key)
        if max(_generations(self.zstore, prefix), default=gen) > gen:
            self.lost = True

    def release(self) -> None:
        """Give the lease up: our own generation is overwritten as released (never another writer's)."""
        RENEWER.drop(self)
        if not self.lost:
            _put(self.zstore, self.key, json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
                "token": self.token, "released": True}}).encode())

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Renewable(Protocol):
    """What the renewer renews: a :class:`Lease`, or a group writer's claim."""

    lease_seconds: float
    renewed: float

    def renew(self) -> None: ...


class _Renewer:
    """One daemon thread per process renewing every held lease (and claim) each third of its length."""

    def __init__(self) -> None:
        self.held: dict[int, Renewable] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.tick = threading.Event()  # waited on, never set: a pause that no patch of time.sleep speeds up

    def add(self, lease: Renewable) -> None:
        with self.lock:
            self.held[id(lease)] = lease
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="archivestore-leases", daemon=True)
                self.thread.start()

    def drop(self, lease: Renewable) -> None:
        with self.lock:
            self.held.pop(id(lease), None)

    def _run(self) -> None:
        while True:
            self.tick.wait(RENEW_POLL)
            with self.lock:
                due = [lease for lease in self.held.values()
                       if time.monotonic() - lease.renewed > lease.lease_seconds / 3]
            for lease in due:
                try:
                    lease.renew()
                except Exception:  # a store out of reach now: try again at the next round
                    pass


RENEWER = _Renewer()
RENEW_POLL = 0.1
"""How often the renewer looks for leases due (it renews each every third of its length)."""


def _pause(step: str) -> None:
    """Between the steps of taking a lease; the tests inject delays here to widen every race."""


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


_CHECK_THEN_WRITE = threading.Lock()
"""Makes the check-then-write create atomic between the threads of this process (``memory://`` lives in one)."""


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
    with _CHECK_THEN_WRITE:
        if sync(zstore.exists(key)):
            return False
        _put(zstore, key, data)
    return read_doc(zstore, key) == json.loads(data)


def _put(zstore: Any, key: str, data: bytes) -> None:
    sync(zstore.set(key, default_buffer_prototype().buffer.from_bytes(data)))


def _split(key: str) -> tuple[str, int]:
    """``_locks/<name>/g<N>/zarr.json`` → (``_locks/<name>``, N)."""
    prefix, gen, _ = key.rsplit("/", 2)
    return prefix, int(gen[1:])


def _generations(zstore: Any, prefix: str) -> list[int]:
    """The generations of a lease that exist now (a fresh listing: one LIST, never a cached one)."""
    if isinstance(zstore, zarr.storage.LocalStore):
        # a directory outlives its deleted document on a disk: a generation is one with its document
        folder = os.path.join(str(zstore.root), prefix)
        try:
            names = [n for n in os.listdir(folder) if os.path.exists(os.path.join(folder, n, "zarr.json"))]
        except (FileNotFoundError, NotADirectoryError):
            names = []
    elif isinstance(zstore, zarr.storage.FsspecStore):
        try:
            paths = sync(zstore.fs._ls(f"{zstore.path}/{prefix}", detail=False, refresh=True))
        except FileNotFoundError:
            paths = []
        names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in paths]
    else:
        names = [n.split("/")[0] for n in _list_dir(zstore, prefix)]
    return [int(n[1:]) for n in names if n[:1] == "g" and n[1:].isdigit()]


def _list_dir(zstore: Any, prefix: str) -> list[str]:
    async def run() -> list[str]:
        return [k async for k in zstore.list_dir(prefix)]
    return sync(run())


def _key(prefix: str, gen: int) -> str:
    return f"{prefix}/g{gen}/zarr.json"


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


def _free(zstore: Any, prefix: str, gen: int) -> bool | None:
    """Whether generation ``gen`` is released or stale (None: it is gone, list again)."""
    doc = read_doc(zstore, _key(prefix, gen))
    if doc is None:
        return None
    attrs = doc.get("attributes", {})
    return bool(attrs.get("released")) or is_stale(attrs)


def _prune(zstore: Any, prefix: str, gens: list[int], mine: int) -> None:
    """Delete the generations below ours (best effort: a leftover is harmless)."""
    for gen in gens:
        if gen < mine:
            try:
                sync(zstore.delete(_key(prefix, gen)))
            except Exception:  # another writer pruned it first, or the store hiccupped
                pass


def acquire(zstore: Any, name: str, *, lease_seconds: float = LEASE_SECONDS, wait_seconds: float = 600.0,
            poll: float = 0.05) -> Lease:
    """Take the lease ``name``, waiting (bounded) while another live writer holds it.

    The lease is renewed in the background until :meth:`Lease.release` (or the ``with`` block ends).

    Raises
    ------
    LeaseTimeout
        If it is still held by a live writer after ``wait_seconds``.
    """
    prefix = LAYOUT.lock(name).rsplit("/", 1)[0]
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    delay = poll
    while True:
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"could not take {name} within {wait_seconds:.0f} s")
        gens = _generations(zstore, prefix)
        newest = max(gens, default=0)
        _pause("listed")
        free = True if not gens else _free(zstore, prefix, newest)
        if free is None:
            continue  # pruned between our listing and our read: list again
        if free:
            _pause("checked")
            mine = newest + 1
            if create_exclusive(zstore, _key(prefix, mine), _doc(token, lease_seconds)):
                _pause("created")
                after = _generations(zstore, prefix)
                if max(after, default=mine) == mine:
                    _prune(zstore, prefix, after, mine)
                    lease = Lease(zstore, _key(prefix, mine), token, lease_seconds)
                    RENEWER.add(lease)
                    return lease
                # a generation we re-created below a newer one (after a delay): step back
                with contextlib.suppress(Exception):
                    sync(zstore.delete(_key(prefix, mine)))
            continue  # another writer took the next generation first: look again
        if time.monotonic() + delay > deadline:
            attrs = (read_doc(zstore, _key(prefix, newest)) or {}).get("attributes", {})
            raise LeaseTimeout(f"{name} is held by {attrs.get('host')}:{attrs.get('pid')} "
                               f"for another {attrs.get('expires', 0) - time.time():.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
