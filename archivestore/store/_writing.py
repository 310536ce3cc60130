"""What writers (ingest, verify --repair, analyses) may do to a store, as :class:`~archivestore.Store` methods.

- Item groups (``images/<id>``, ``masks/<rater>/<id>``) are created through
  :meth:`StoreWriting.item_group` and finished with :meth:`GroupWriter.finish`
  (completion marker last), under :meth:`StoreWriting.lease` of that group.
- The shared arrays (the metadata table, the studies) change only through
  :meth:`StoreWriting.append_tables`: under the ``tables`` lease, an append cut short
  is first trimmed back to the coordinates, then the new rows go in, coordinates last.
  Ingest and ``verify --repair`` both append this one way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import zarr
from zarr.core.sync import sync

from archivestore.errors import LeaseTimeout
from archivestore.layout import GROUND_TRUTH, STATE_KEY
from archivestore.store import _metadata
from archivestore.store._groups import GroupWriter, read_group_doc, read_state
from archivestore.store._lock import LEASE_SECONDS, Lease, acquire, holder, is_stale
from archivestore.store._studies import StudyRow, annotated_pairs, append_study
from archivestore.store._swap import copy_group, swap_group

if TYPE_CHECKING:
    from archivestore.layout import Layout

__all__ = ["GroupTaken", "StoreWriting"]


class GroupTaken(Exception):
    """The group a writer meant to claim exists already (see :meth:`StoreWriting.claim_group`)."""


class StoreWriting:
    """The writing half of :class:`~archivestore.Store` (a mixin; the store must be opened with ``mode="a"``)."""

    zstore: Any
    root: zarr.Group
    layout: Layout

    def group_state(self, path: str) -> dict[str, Any] | None:
        """The ``_archivestore`` attribute of the group at ``path`` (one GET); None if there is no group."""
        return read_state(self.zstore, path)

    def ensure_group(self, path: str, name: str | None = None) -> zarr.Group:
        """The group at ``path``, created if missing (safe when other writers create it at the same time).

        ``name``, the archive name the path was made from, is kept in a new group's attributes.
        """
        try:
            return self.root[path]  # type: ignore[return-value]
        except KeyError:
            pass
        try:
            return self.root.create_group(path, attributes={STATE_KEY: {"name": name}} if name else None)
        except zarr.errors.ContainsGroupError:
            return self.root[path]  # type: ignore[return-value]

    def lease(self, name: str, *, lease_seconds: float = LEASE_SECONDS) -> Lease:
        """Take the lease ``name`` (a group path, or ``tables``); use as a context manager."""
        return acquire(self.zstore, name, lease_seconds=lease_seconds)

    def item_group(self, image_id: str, rater: str = GROUND_TRUTH, *, replace: bool | None,
                   attributes: Mapping[str, Any] | None = None) -> GroupWriter:
        """A writer for an item group: the image group, or a rater's mask group of an image.

        ``replace=None`` opens the existing group to add arrays; ``False`` creates it
        (there was none); ``True`` drops an interrupted one and creates it anew.
        """
        path = self.layout.masks(image_id, rater)
        if replace is None:
            return self._extend(path)
        if rater != GROUND_TRUTH:
            self.ensure_group(self.layout.rater(rater), rater)
        return self.new_group(path, replace=replace, attributes=attributes)

    def new_group(self, path: str, *, replace: bool, attributes: Mapping[str, Any] | None = None) -> GroupWriter:
        """A writer for a new item group at ``path`` (from :attr:`layout`: a series, segmentation or plate).

        The group's document goes in at once, marked incomplete; ``replace=True`` drops an
        interrupted group first.
        """
        if replace:
            sync(self.zstore.delete_dir(path))
        writer = GroupWriter(self.zstore, path, dict(attributes or {}), arrays={})
        writer.start({})
        return writer

    def claim_group(self, path: str, attributes: Mapping[str, Any] | None = None) -> GroupWriter:
        """A writer for a new group at ``path``, claimed by creating its document exclusively.

        The claim takes the place of a lease for a group that does not exist yet (one
        request instead of three): the document, marked incomplete, names this writer until
        :meth:`GroupWriter.finish`, and :meth:`item_lease` waits while such a claim is live.

        Raises
        ------
        GroupTaken
            If the group's document is already there (another writer was first).
        """
        writer = GroupWriter(self.zstore, path, dict(attributes or {}), arrays={})
        if not writer.start({"writer": holder(LEASE_SECONDS)}, exclusive=True):
            raise GroupTaken(path)
        return writer

    def item_lease(self, path: str, *, wait_seconds: float = 600.0, poll: float = 0.05) -> Lease:
        """The lease of the item group at ``path``, taken once no claimed write of it is under way.

        Raises
        ------
        LeaseTimeout
            If the lease, or a live claim of the group, outlasts ``wait_seconds``.
        """
        deadline = time.monotonic() + wait_seconds
        lease = self.lease(path)
        while True:
            claim = (self.group_state(path) or {}).get("writer")
            if not claim or is_stale(claim):
                return lease
            if time.monotonic() + poll > deadline:
                lease.release()
                raise LeaseTimeout(f"{path} is being written by {claim.get('host')}:{claim.get('pid')}")
            time.sleep(poll)
            poll = min(poll * 1.5, 2.0)

    def _extend(self, path: str) -> GroupWriter:
        """A writer adding arrays to the existing group at ``path`` (its attributes and arrays kept)."""
        doc = read_group_doc(self.zstore, path) or {}
        attributes = {k: v for k, v in doc.get("attributes", {}).items() if k != STATE_KEY}
        consolidated = doc.get("consolidated_metadata") or {}
        return GroupWriter(self.zstore, path, attributes, arrays=consolidated.get("metadata"))

    def swap_group(self, fresh: StoreWriting, path: str) -> None:
        """Put the complete group at ``path`` of the store ``fresh`` in place of this store's, under its lease.

        Its arrays go first and its document last (see :mod:`archivestore.store._swap`): until the swap the
        old group stays as it was, so ``verify --repair`` never leaves less than it found.
        """
        state = fresh.group_state(path) or {}
        if not state.get("complete"):
            raise ValueError(f"the fresh copy of {path} is not complete")
        with self.item_lease(path):
            swap_group(fresh.zstore, self.zstore, path)

    def copy_group_to(self, other: StoreWriting, path: str) -> None:
        """Copy the group at ``path`` (every object, the document last) into the store ``other``."""
        copy_group(self.zstore, other.zstore, path)

    def stored_image_ids(self) -> list[str]:
        """Every image group, complete or not, by its archive id (lists the ``images`` group: costly)."""
        images = self.root[self.layout.IMAGES]
        return sorted(self.layout.name(node) for node, _ in images.groups())  # type: ignore[union-attr]

    def annotated_pairs(self, study: str) -> set[tuple[str, str]]:
        """The (image, rater) pairs whose values ``studies/<study>`` already holds."""
        try:
            group = self.root[self.layout.study(study)]
        except KeyError:
            return set()
        return annotated_pairs(group)  # type: ignore[arg-type]

    def append_tables(self, records: Mapping[str, Mapping[str, Any]] | None = None,
                      study_rows: Mapping[str, list[StudyRow]] | None = None,
                      index: _metadata.TableIndex | None = None, *,
                      series_records: Mapping[str, Mapping[str, Any]] | None = None,
                      series_index: _metadata.TableIndex | None = None) -> int:
        """Append rows to the shared tables under the ``tables`` lease.

        ``records`` (``{image_id: record}``) go to ``metadata``, ``study_rows``
        (``{study: rows}``) to the studies, ``series_records`` (``{series id: record}``)
        to ``series_metadata``. Each table is first trimmed back to its coordinates (an
        append cut short), and ids already in a table are skipped, so an append can be
        repeated. Returns the number of rows added to the tables. Pass the same indexes
        (:meth:`table_index`) to successive calls to spare re-reading the ids.
        """
        added = 0
        with self.lease("tables"):
            for study, rows in (study_rows or {}).items():
                if rows:
                    append_study(self.ensure_group(self.layout.study(study), study), rows)
            for path, table_rows, table_index, row in (
                    (self.layout.METADATA, records, index, "image"),
                    (self.layout.SERIES_METADATA, series_records, series_index, "series")):
                if table_rows:
                    table = self.ensure_group(path)
                    members = _metadata.repair(table)
                    added += _metadata.append_rows(table, table_rows, table_index, row=row, members=members,
                                                      layout=self.layout.version)
        return added

    def table_index(self, table: str = "metadata") -> _metadata.TableIndex:
        """The ids of a table's rows (``metadata`` or ``series_metadata``), to pass to :meth:`append_tables`."""
        return _metadata.TableIndex().refresh(self.ensure_group(table))
