"""Splits kept in the store: ``splits/<name>``, one row per item, and the command that made it.

The group holds ``split`` (item) — the item's part, ``""`` for an item left out —, ``group``
(item) — the key of the group it was placed with — and ``note`` (item) — why an item was left
out —, along the coordinate ``item`` (image ids, or series ids for ``table="series"``), and in
its ``split`` attribute how it was made (``by``, ``fractions``, ``parts``, ``seed``, ``where``,
``stratify``, ``table``, ``command``, ``created``). It opens with plain xarray
(``xr.open_zarr(store, group="splits/v1")``). A split, once written, is never replaced: a
new assignment takes a new name, so "which images were in my test set" keeps one answer. The
completion marker goes in last; an interrupted write is replaced by the next one of that name.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml._assign import Assignment, assign, default_parts

if TYPE_CHECKING:
    import pandas as pd

    from archivestore.store import Store

__all__ = ["SplitReport", "list_splits", "make_split", "read_split"]


@dataclass
class SplitReport:
    """What :func:`make_split` wrote: per part its items and groups, and the items it could not place."""

    name: str
    path: str
    parts: tuple[str, ...]
    items: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    unplaced: dict[str, str] = field(default_factory=dict)
    mixed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: each part's items and groups, and how many items were left out."""
        total = sum(self.items.values()) or 1
        parts = ", ".join(f"{p} {self.items[p]} items ({self.items[p] / total:.1%}, {self.groups[p]} groups)"
                          for p in self.parts)
        return f"split {self.name!r} in {self.path}: {parts}; {len(self.unplaced)} left out"


def _command(by: Sequence[str], fractions: Sequence[float], seed: int, name: str, where: Sequence[str],
             stratify: str | None, parts: Sequence[str] | None, table: str) -> str:
    args = [f"by={list(by)!r}", f"fractions={list(fractions)!r}", f"seed={seed}", f"name={name!r}"]
    args += [f"where={list(where)!r}"] * bool(where) + [f"stratify={stratify!r}"] * bool(stratify)
    args += [f"parts={list(parts or ())!r}"] * bool(parts) + [f"table={table!r}"] * (table != "images")
    return f"archivestore.ml.make_split(store, {', '.join(args)})"


def make_split(store: Store, by: str | Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), *,
               seed: int = 0, name: str = "v1", where: Sequence[str] = (), stratify: str | None = None,
               parts: Sequence[str] | None = None, table: str = "images", command: str | None = None) -> SplitReport:
    """Assign whole groups of items to train/validation/test and write ``splits/<name>``.

    Parameters
    ----------
    store
        A store opened with ``mode="a"``.
    by
        Grouping field(s), dotted paths of the table (``metadata.clinical.patient_id``,
        ``metadata.clinical.lesion_id``, ``dicom.PatientID``, ``Collection``): items sharing a
        value of any of them land in the same part.
    fractions
        Each part's share of the items (positive, summing to 1).
    seed
        The seed of the shuffle: the same store, arguments and seed give the same split.
    name
        The split's name (``splits/<name>``); an existing complete split is never replaced.
    where
        Criteria (see :func:`archivestore.select.select`): split only the items passing all.
    stratify
        A field (e.g. ``metadata.clinical.diagnosis_1``) each part should hold in proportion.
    parts
        The parts' names (default ``train``/``validation``/``test`` for three fractions,
        ``train``/``test`` for two).
    table
        ``images`` (the ``metadata`` table) or ``series`` (``series_metadata``: volumes).
    command
        The command line to record (the CLI passes its own); default the Python call.

    Returns
    -------
    SplitReport
        Items and groups per part, and the items left out with the reason.

    Raises
    ------
    InvalidInputError
        Bad fractions or names, or a complete split of that name exists.
    NotFoundError
        A field is not in the table.
    """
    from archivestore.select import select

    by = [by] if isinstance(by, str) else list(by)
    names = tuple(parts) if parts is not None else default_parts(len(fractions))
    frame = store.metadata_frame(table)
    if where:
        frame = frame.loc[select(store, *where, table=table).ids]
    result = assign(frame, by, fractions, seed=seed, stratify=stratify, parts=names)
    path = store.layout.split(name)
    record = {
        "by": by, "fractions": [float(f) for f in fractions], "parts": list(names), "seed": int(seed),
        "where": [str(w) for w in where], "stratify": stratify, "table": table,
        "command": command or _command(by, fractions, seed, name, where, stratify, parts, table),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    store.ensure_group(store.layout.SPLITS)
    with store.lease(path):
        state = store.group_state(path)
        if state is not None and state.get("complete"):
            made = _record(store, path).get("command", "?")
            raise InvalidInputError(f"split {name!r} exists (made by: {made}); give the new one another name")
        _write(store, path, name, [str(i) for i in frame.index], result, record, replace=state is not None)
    report = SplitReport(name, path, names, unplaced=result.unplaced, mixed=result.mixed)
    for p in names:
        members = [i for i, q in result.part.items() if q == p]
        report.items[p] = len(members)
        report.groups[p] = len({result.group[i] for i in members})
    return report


def _write(store: Store, path: str, name: str, ids: list[str], result: Assignment, record: dict[str, Any],
           *, replace: bool) -> None:
    writer = store.new_group(path, replace=replace, attributes={"split": record})
    writer.put_coord("item", ids)
    writer.put_text("split", np.array([result.part.get(i, "") for i in ids], dtype=str), ("item",))
    writer.put_text("group", np.array([result.group.get(i, "") for i in ids], dtype=str), ("item",))
    writer.put_text("note", np.array([result.unplaced.get(i, "") for i in ids], dtype=str), ("item",),
                    mixed=result.mixed)
    writer.finish({"complete": True, "name": name})


def _record(store: Store, path: str) -> dict[str, Any]:
    """How the split at ``path`` was made (its ``split`` attribute)."""
    record = store.root[path].attrs.get("split")
    return dict(record) if isinstance(record, dict) else {}


def list_splits(store: Store) -> list[str]:
    """The names of the complete splits in the store."""
    try:
        group = store.root[store.layout.SPLITS]
    except KeyError:
        return []
    names = [store.layout.name(node) for node, _ in group.groups()]  # type: ignore[union-attr]
    return sorted(n for n in names if (store.group_state(store.layout.split(n)) or {}).get("complete"))


def read_split(store: Store, name: str) -> pd.DataFrame:
    """``splits/<name>`` as a DataFrame: index ``item``, columns ``split``, ``group``, ``note``;
    ``.attrs["split"]`` says how it was made.

    Raises
    ------
    NotFoundError
        No complete split of that name (the message lists the splits there are).
    """
    import pandas as pd

    path = store.layout.split(name)
    if not (store.group_state(path) or {}).get("complete"):
        raise NotFoundError(f"no split {name!r} in {store.url}; splits: {', '.join(list_splits(store)) or 'none'}")
    columns = {c: [str(v) for v in store.read_array(path, c).tolist()] for c in ("split", "group", "note")}
    items = [str(v) for v in store.read_array(path, "item").tolist()]
    frame = pd.DataFrame(columns, index=pd.Index(items, name="item"), dtype=object)
    frame.attrs["split"] = _record(store, path)
    return frame
