"""``upgrade``: move a layout-1 or layout-2 store to layout 3's node names, in place.

Layout 3 names every node with ``A-Z a-z 0-9 - _ .`` only (:mod:`archivestore.layout`), so
any static HTTP server or browser reader serves it. Older stores stay readable and
appendable; this moves them over when their owner wants that:

- every child of the named groups (``images``, ``masks`` and ``masks/<rater>``, ``studies``,
  ``series``, ``segmentations``, ``plates``) whose layout-3 name differs is **moved**: on a
  local disk one ``os.rename`` of its directory (no chunk is copied or rewritten); on a
  bucket or any other fsspec filesystem, which has no rename, each of its objects is copied
  *server-side* (S3 ``CopyObject``: the bytes never pass through this machine) and the old
  objects are deleted only once every copy is done. A moved group gets its archive name in
  its ``_archivestore`` attribute (``name``) if it lacked it;
- the metadata tables' variables are renamed the same way (``meta.x.a%2Fb`` →
  ``meta.x._xa_2Fb``, ``field%`` → ``_xfield``), and their ``field`` coordinate rewritten;
- the root's ``archivestore.layout`` becomes 3 last.

An upgrade needs the store to itself: it refuses while a writer holds a live lease
(``_locks/``), and marks the root ``upgrading`` while it runs, so :func:`open_store` refuses
the store until it is finished. It is resumable: a run cut short (Ctrl-C, a crash) is
finished by running it again; each group moves whole or not at all on a disk, and on a
bucket a group whose copy was cut short is copied again before its old objects go.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
import zarr.storage
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from archivestore.errors import InvalidInputError, StoreNotFoundError
from archivestore.layout import ESCAPE_MARK, LAYOUT_VERSION, STATE_KEY, Layout, escape_name, unescape_name
from archivestore.store import _metadata
from archivestore.store._groups import array, read_group_doc
from archivestore.store._lock import is_stale, read_doc

__all__ = ["UpgradeReport", "upgrade"]

MARKER = "archivestore"


@dataclass
class UpgradeReport:
    """What :func:`upgrade` did: the groups it moved and the table variables it renamed (old, new)."""

    url: str
    from_layout: int
    to_layout: int = LAYOUT_VERSION
    moved: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: from which layout, and how much moved."""
        if self.from_layout >= self.to_layout and not self.moved and not self.renamed:
            return f"{self.url} is layout {self.to_layout} already: nothing to do"
        return (f"{self.url}: layout {self.from_layout} -> {self.to_layout}: moved {len(self.moved)} groups, "
                f"renamed {len(self.renamed)} table variables")


def upgrade(url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> UpgradeReport:
    """Move the store at ``url`` to layout 3's node names (see the module docstring).

    Parameters
    ----------
    url
        A local path or fsspec URL of an archivestore store.
    storage_options
        Passed to fsspec.

    Returns
    -------
    UpgradeReport
        The groups moved and variables renamed; nothing when the store is layout 3 already.

    Raises
    ------
    StoreNotFoundError
        If there is no store at ``url``.
    InvalidInputError
        If it is not an archivestore store, a writer holds a live lease on it, it is of a newer layout, or a
        group's layout-3 name is taken by another group (nothing of that group is moved).
    """
    from archivestore.store._store import _zarr_store

    url = os.fspath(url)
    zstore = _zarr_store(url, "a", storage_options)
    try:
        root = zarr.open_group(zstore, mode="r+", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreNotFoundError(f"no archivestore store at {url}") from None
    found = root.attrs.get(MARKER)
    marker: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
    if not marker and not all(name in root for name in (Layout.IMAGES, Layout.METADATA)):
        # layout-1 stores may lack the marker, but they have these groups; anything else is not ours
        raise InvalidInputError(f"{url} is not an archivestore store (no 'archivestore' attribute at its root)")
    version = int(str(marker.get("layout", 1)))
    report = UpgradeReport(url, version)
    if version > LAYOUT_VERSION:
        raise InvalidInputError(f"{url} has store layout {version}; this archivestore knows up to {LAYOUT_VERSION}")
    if version == LAYOUT_VERSION and "upgrading" not in marker:
        return report
    _no_live_leases(zstore, url)
    resuming = "upgrading" in marker
    root.attrs[MARKER] = {**marker, "upgrading": LAYOUT_VERSION}
    old = Layout(version)
    for table, row in ((old.METADATA, "image"), (old.SERIES_METADATA, "series")):
        report.renamed += _upgrade_table(zstore, root, table, row)
    for parent in old.named_groups:
        report.moved += _move_children(zstore, parent, old, resuming)
        if parent == old.MASKS:
            for rater in _children(zstore, parent):
                report.moved += _move_children(zstore, f"{parent}/{rater}", old, resuming)
    marker.pop("upgrading", None)
    root.attrs[MARKER] = {**marker, "layout": LAYOUT_VERSION}
    return report


def _no_live_leases(zstore: Any, url: str) -> None:
    """Refuse while a writer holds a lease; drop the dead leases of crashed writers (their names are old)."""
    keys = sync(_keys(zstore, f"{Layout.LOCKS}/"))
    for key in keys:
        if not key.endswith("zarr.json"):
            continue
        attrs = (read_doc(zstore, key) or {}).get("attributes") or {}
        if "token" not in attrs:
            continue  # a container of leases
        if not is_stale(attrs):
            raise InvalidInputError(f"{url} is being written ({key.rsplit('/', 1)[0]} is held by "
                                    f"{attrs.get('host')}:{attrs.get('pid')}); upgrade it when no one writes")
        sync(zstore.delete(key))


async def _keys(zstore: Any, prefix: str) -> list[str]:
    return [k async for k in zstore.list_prefix(prefix)]


def _children(zstore: Any, path: str) -> list[str]:
    async def listing() -> list[str]:
        return [k async for k in zstore.list_dir(f"{path}/") if k != "zarr.json"]

    return sorted(sync(listing()))


def _move_children(zstore: Any, parent: str, old: Layout, resuming: bool) -> list[tuple[str, str]]:
    """Move each child of ``parent`` whose layout-3 node name differs; return the moves."""
    moved = []
    # old nodes that start with "_x" (plain names in layouts 1 and 2) move first: another name's
    # layout-3 node may be what they are called now
    for node in sorted(_children(zstore, parent), key=lambda n: not n.startswith(ESCAPE_MARK)):
        try:
            name = old.name(node)
        except UnicodeDecodeError:
            name = node  # not a name this layout wrote (a hand-made node): taken as given
        target = escape_name(name)
        if target == node:
            continue
        if node.startswith(ESCAPE_MARK) and _is_layout3(node):
            # a run cut short may have moved it already: the group's own record of its name decides
            recorded = _recorded_name(zstore, f"{parent}/{node}")
            if recorded == unescape_name(node) or (recorded is None and resuming):
                continue
        src, dst = f"{parent}/{node}", f"{parent}/{target}"
        _move(zstore, src, dst, name)
        moved.append((src, dst))
    return moved


def _is_layout3(node: str) -> bool:
    try:
        return escape_name(unescape_name(node)) == node
    except (UnicodeDecodeError, InvalidInputError):
        return False


def _recorded_name(zstore: Any, path: str) -> str | None:
    state = ((read_group_doc(zstore, path) or {}).get("attributes") or {}).get(STATE_KEY) or {}
    name = state.get("name") if isinstance(state, dict) else None
    return name if isinstance(name, str) else None


def _move(zstore: Any, src: str, dst: str, name: str) -> None:
    """Move the group ``src`` to ``dst`` (a rename on disk, server-side copies then deletes elsewhere)."""
    taken = _recorded_name(zstore, dst)
    if taken is not None and taken != name:
        raise InvalidInputError(f"cannot move {src} to {dst}: {dst} is the group of {taken!r}")
    if isinstance(zstore, zarr.storage.LocalStore):
        root = str(zstore.root)
        try:
            os.rename(os.path.join(root, src), os.path.join(root, dst))
        except OSError as exc:
            raise InvalidInputError(f"cannot move {src} to {dst}: {exc.strerror or exc}") from None
    else:
        sync(_copy_all(zstore, src, dst))
        sync(zstore.delete_dir(src))
    _keep_name(zstore, dst, name)


async def _copy_all(zstore: Any, src: str, dst: str, batch: int = 64) -> None:
    """Copy every object under ``src`` to ``dst``: server-side where the filesystem can (fsspec ``cp_file``:
    S3 ``CopyObject``), else through this process (a zarr store without a filesystem)."""
    keys = [k async for k in zstore.list_prefix(f"{src}/")]
    fs = getattr(zstore, "fs", None)
    base = str(getattr(zstore, "path", "")).rstrip("/")

    async def one(key: str) -> None:
        new = dst + key[len(src):]
        if fs is not None and hasattr(fs, "_cp_file"):
            await fs._cp_file(f"{base}/{key}", f"{base}/{new}")
        else:
            buf = await zstore.get(key, prototype=default_buffer_prototype())
            if buf is not None:
                await zstore.set(new, buf)

    for k in range(0, len(keys), batch):
        await asyncio.gather(*(one(key) for key in keys[k:k + batch]))


def _keep_name(zstore: Any, path: str, name: str) -> None:
    """Write the archive name into the moved group's ``_archivestore`` attribute if it lacks it."""
    import json

    doc = read_group_doc(zstore, path)
    if not doc or doc.get("node_type") != "group":
        return
    attrs = doc.setdefault("attributes", {})
    state = attrs.get(STATE_KEY)
    if isinstance(state, dict) and state.get("name") == name:
        return
    attrs[STATE_KEY] = {**(state if isinstance(state, dict) else {}), "name": name}
    buf = default_buffer_prototype().buffer.from_bytes(json.dumps(doc, indent=2).encode())
    sync(zstore.set(f"{path}/zarr.json", buf))


def _upgrade_table(zstore: Any, root: zarr.Group, path: str, row: str) -> list[tuple[str, str]]:
    """Rename a table's variables to layout-3 names (the plan kept in the table's attributes until done)."""
    try:
        group = root[path]
    except KeyError:
        return []
    if not isinstance(group, zarr.Group):
        return []
    found = group.attrs.get(STATE_KEY)
    state: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
    plan: dict[str, str] | None = state.get("renaming")
    if plan is None:
        members = _metadata.repair(group)
        row_dim = str(group.attrs.get("row_dimension", row))
        if row_dim not in members:
            return []
        reserved = (row_dim, "field", "field_state")
        fields = [str(v) for v in np.asarray(members["field"][:])]
        plan = {}
        for name in fields:
            key_path = tuple(str(k) for k in members[name].attrs["path"])  # type: ignore[union-attr]
            new = _metadata.variable_name(key_path, LAYOUT_VERSION, reserved)
            if new != name:
                plan[name] = new
        if not plan:
            return []
        group.attrs[STATE_KEY] = {**state, "renaming": plan}
    existing = set(_children(zstore, path))
    pending = {name: new for name, new in plan.items() if name in existing}
    while pending:  # a variable whose new name another still holds waits for that one to move
        ready = [name for name, new in pending.items() if new not in pending]
        if not ready:
            raise InvalidInputError(f"{path}: the renames {pending} wait on each other")
        for name in ready:
            _move_array(zstore, f"{path}/{name}", f"{path}/{pending.pop(name)}")
    fields_arr = array(group, "field")
    fields = [str(v) for v in np.asarray(fields_arr[:])]
    fields_arr[:] = np.array([plan.get(f, f) for f in fields], dtype=str)
    state.pop("renaming", None)
    if state:
        group.attrs[STATE_KEY] = state
    else:
        del group.attrs[STATE_KEY]
    return [(f"{path}/{name}", f"{path}/{new}") for name, new in plan.items()]


def _move_array(zstore: Any, src: str, dst: str) -> None:
    if isinstance(zstore, zarr.storage.LocalStore):
        root = str(zstore.root)
        os.rename(os.path.join(root, src), os.path.join(root, dst))
    else:
        sync(_copy_all(zstore, src, dst))
        sync(zstore.delete_dir(src))
