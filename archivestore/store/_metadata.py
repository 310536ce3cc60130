"""The ``metadata`` table: one row per image, one variable per leaf field of the records.

Records are nested JSON objects with ragged fields. :func:`flatten` turns a record
into ``{key path: leaf value}``; :func:`append_rows` adds rows to the Zarr group,
creating variables for new fields and promoting a variable's type when new values
need it (``_metadata_read.py`` gives the table back as a DataFrame and as the exact leaf
values). The README's "store layout" section is the contract.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from archivestore.layout import LAYOUT_VERSION, ROW_CHUNK, compressors
from archivestore.layout import variable_name as _layout3_name
from archivestore.store._groups import array

__all__ = ["append_rows", "flatten", "repair", "table_ids", "variable_name"]

PRESENT, ABSENT, NULL = 0, 1, 2
_MAX_EXACT_INT = 2**53

Path = tuple[str, ...]


def _escape(key: str) -> str:
    if key == "":
        return "%00"
    out = key.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")
    if out.startswith("__"):
        out = "%5F" + out[1:]
    return out


def variable_name(path: Path, version: int = LAYOUT_VERSION, reserved: tuple[str, ...] = ()) -> str:
    """The variable name of a key path in a table of layout ``version``, never one of ``reserved``.

    Layout 3: :func:`archivestore.layout.variable_name` (only ``A-Z a-z 0-9 - _ .``; a
    one-key path named like a coordinate is escaped). Layouts 1 and 2: keys joined by
    ``.`` with ``%``, ``.``, ``/`` written ``%25``, ``%2E``, ``%2F``, and a ``%`` appended
    while the name is taken (how those stores named a record key ``field``: ``field%``).
    """
    if version >= 3:
        return _layout3_name(path, reserved)
    name = ".".join(_escape(k) for k in path)
    while name in reserved:
        name += "%"
    return name


def flatten(record: Mapping[str, Any]) -> dict[Path, Any]:
    """Leaf values of a record by key path; a leaf is anything but a non-empty object."""
    out: dict[Path, Any] = {}

    def walk(obj: Any, prefix: Path) -> None:
        if isinstance(obj, Mapping) and obj:
            for k, v in obj.items():
                walk(v, prefix + (str(k),))
        elif prefix:
            out[prefix] = obj

    walk(record, ())
    return out


def _kind(value: Any) -> str:
    """The value type a single value asks for."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if abs(value) <= _MAX_EXACT_INT else "json"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else "json"
    if isinstance(value, str):
        return "str"
    return "json"


def _merge(a: str, b: str) -> str:
    """The value type that holds values of both types exactly (ints widen to float)."""
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    return "json"


def _numeric(kind: str) -> bool:
    return kind in ("int", "float", "bool", "null")


def _encode(kind: str, values: list[Any], states: np.ndarray) -> np.ndarray:
    """Values of one column as the stored array (NaN/"" where not present)."""
    if _numeric(kind):
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if states[i] == PRESENT:
                out[i] = float(v)
        return out
    out = np.full(len(values), "", dtype=object)
    for i, v in enumerate(values):
        if states[i] == PRESENT:
            out[i] = v if kind == "str" else json.dumps(v, ensure_ascii=False, sort_keys=False)
    return out.astype(str) if len(values) else np.array([], dtype=str)


def _decode(kind: str, stored: Any) -> Any:
    if kind == "int":
        return int(stored)
    if kind == "bool":
        return bool(stored)
    if kind == "float":
        return float(stored)
    if kind == "json":
        return json.loads(stored)
    return str(stored)


def _create_column(group: zarr.Group, name: str, kind: str, path: Path, n: int) -> zarr.Array:
    numeric = _numeric(kind)
    arr = group.create_array(
        name,
        shape=(n,),
        chunks=(ROW_CHUNK,),
        dtype="float64" if numeric else str,
        fill_value=np.nan if numeric else "",
        compressors=compressors(),
        dimension_names=(_row(group),),
        attributes={"path": list(path), "value_type": kind},
        overwrite=True,
    )
    return arr


def _row(group: zarr.Group) -> str:
    """The table's row dimension (``image`` for ``metadata``, ``series`` for ``series_metadata``)."""
    return str(group.attrs.get("row_dimension", "image"))


def _ensure_table(group: zarr.Group, row: str) -> None:
    if row != "image" and "row_dimension" not in group.attrs:
        group.attrs["row_dimension"] = row
    if _row(group) in group:
        return
    group.create_array(
        row, shape=(0,), chunks=(ROW_CHUNK,), dtype=str, fill_value="",
        compressors=compressors(), dimension_names=(row,),
    )
    group.create_array(
        "field", shape=(0,), chunks=(4096,), dtype=str, fill_value="",
        compressors=compressors(), dimension_names=("field",),
    )
    group.create_array(
        "field_state", shape=(0, 0), chunks=(ROW_CHUNK, 64), dtype="uint8", fill_value=ABSENT,
        compressors=compressors(), dimension_names=(row, "field"),
        attributes={
            "flag_values": [PRESENT, ABSENT, NULL],
            "flag_meanings": "present absent null",
            "long_name": "whether the record has the field, and whether its value is JSON null",
        },
    )


def table_ids(group: zarr.Group) -> list[str]:
    """Image ids of the rows of a metadata group (empty if it has no table yet)."""
    row = _row(group)
    if row not in group:
        return []
    return [str(v) for v in np.asarray(array(group, row)[:])]


class TableIndex:
    """The ids of a table's rows, kept up to date by reading only rows added since.

    An ingest appends many batches; re-reading the whole ``image`` column for each
    would make a long ingest quadratic. :meth:`refresh` reads just the rows other
    writers appended since the last look (all of them if the table shrank: a repair).
    """

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.n = 0

    def refresh(self, group: zarr.Group, members: Mapping[str, zarr.Array] | None = None) -> TableIndex:
        row = _row(group)
        ids = members.get(row) if members is not None else (array(group, row) if row in group else None)
        n = ids.shape[0] if ids is not None else 0
        if n < self.n:
            self.ids, self.n = set(), 0
        if ids is not None and n > self.n:
            self.ids.update(str(v) for v in np.asarray(ids[self.n:n]))
            self.n = n
        return self

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.ids


class _Columns:
    """The table's columns by name, their key paths, and the fields a batch of rows adds."""

    def __init__(self, group: zarr.Group, row_dim: str, members: Mapping[str, zarr.Array], version: int) -> None:
        self.group = group
        self.version = version
        self.reserved = (row_dim, "field", "field_state")
        self.fields = [str(v) for v in np.asarray(members["field"][:])]
        self.arrays = {name: members[name] for name in self.fields}
        self.paths = {name: _path_of(arr) for name, arr in self.arrays.items()}
        self.by_path = {p: n for n, p in self.paths.items()}
        self.new_fields: list[str] = []

    @property
    def all_fields(self) -> list[str]:
        return self.fields + self.new_fields

    def make_room(self, flat: list[dict[Path, Any]], n_old: int) -> None:
        """Create the columns new fields need and widen those whose type cannot hold the new values."""
        needed: dict[Path, str] = {}
        for leaves in flat:
            for path, value in leaves.items():
                needed[path] = _merge(needed.get(path, "null"), _kind(value))
        for path, kind in needed.items():
            name = self.by_path.get(path)
            if name is None:
                self._add(path, kind, n_old)
                continue
            old_kind = _kind_of(self.arrays[name])
            wide = _merge(old_kind, kind)
            if wide != old_kind:
                self.arrays[name] = _promote(self.group, name, self.arrays[name], old_kind, wide, path)

    def _add(self, path: Path, kind: str, n_old: int) -> None:
        name = variable_name(path, self.version, self.reserved)
        if name in self.arrays:  # one-to-one: only a table whose variables were renamed by hand gets here
            raise ValueError(f"{self.group.path}: variable {name!r} of {path} is taken by {self.paths[name]}")
        self.arrays[name] = _create_column(self.group, name, kind, path, n_old)
        self.paths[name] = path
        self.by_path[path] = name
        self.new_fields.append(name)

    def states(self, flat: list[dict[Path, Any]]) -> np.ndarray:
        """``field_state`` of the new rows: (row, field) present / absent / null."""
        index = {n: j for j, n in enumerate(self.all_fields)}
        states = np.full((len(flat), len(index)), ABSENT, dtype=np.uint8)
        for r, leaves in enumerate(flat):
            for path, value in leaves.items():
                states[r, index[self.by_path[path]]] = NULL if value is None else PRESENT
        return states


def append_rows(group: zarr.Group, records: Mapping[str, Mapping[str, Any]], index: TableIndex | None = None,
                *, row: str = "image", members: Mapping[str, zarr.Array] | None = None,
                layout: int = LAYOUT_VERSION) -> int:
    """Append one row per ``{id: record}`` not yet in the table; return rows added.

    New fields become new variables (absent in earlier rows); a variable whose type
    cannot hold a new value exactly is rewritten as the wider type (``int`` → ``float``,
    anything mixed → ``json``). The row coordinate (``row``, the dimension a new
    table gets) is written last, so a reader never sees rows whose values are not
    written yet. Pass the same ``index`` to successive calls to spare re-reading the
    ids (it is refreshed here), and the table's arrays as :func:`repair` returns them
    to spare reading their metadata again. New variables are named as the store's
    ``layout`` (version) names them (:func:`variable_name`).
    """
    _ensure_table(group, row)
    row_dim = _row(group)
    if members is None or row_dim not in members:
        members = dict(group.arrays())  # every column's metadata, fetched concurrently, once
    index = (index or TableIndex()).refresh(group, members)
    records = {k: v for k, v in records.items() if k not in index}
    if not records:
        return 0
    ids = list(records)
    flat = [flatten(records[i]) for i in ids]
    ids_arr = members[row_dim]
    n_old = ids_arr.shape[0]
    columns = _Columns(group, row_dim, members, layout)
    columns.make_room(flat, n_old)
    _write_rows(members, columns, flat, n_old)
    ids_arr.resize((n_old + len(ids),))  # the row coordinate last
    ids_arr[n_old:] = np.array(ids, dtype=str)
    index.ids.update(ids)
    index.n = n_old + len(ids)
    return len(ids)


def _write_rows(members: Mapping[str, zarr.Array], columns: _Columns, flat: list[dict[Path, Any]],
                n_old: int) -> None:
    """Grow ``field_state`` and every column and write the new rows' values (not the row coordinate).

    The columns are independent arrays, so they are grown and written all at once: an
    append costs a few rounds of requests however many fields the records have.
    """
    n_new = n_old + len(flat)
    states = columns.states(flat)
    writes: list[tuple[zarr.Array, tuple[int, ...], Any, np.ndarray | None]] = [
        (members["field_state"], (n_new, len(columns.all_fields)), np.s_[n_old:n_new, :], states)]
    for j, name in enumerate(columns.all_fields):
        arr = columns.arrays[name]
        # an all-absent column only grows: the fill value already says "missing" (see repair)
        values = None if (states[:, j] == ABSENT).all() else _encode(
            _kind_of(arr), [leaves.get(columns.paths[name]) for leaves in flat], states[:, j])
        writes.append((arr, (n_new,), np.s_[n_old:n_new], values))
    sync(_grow_and_write_all(writes))
    if columns.new_fields:
        field_arr = members["field"]
        field_arr.resize((len(columns.all_fields),))
        field_arr[len(columns.fields):] = np.array(columns.new_fields, dtype=str)


async def _grow_and_write_all(writes: list[tuple[zarr.Array, tuple[int, ...], Any, np.ndarray | None]]) -> None:
    await asyncio.gather(*(_grow_and_write(arr, shape, where, values) for arr, shape, where, values in writes))


async def _grow_and_write(arr: zarr.Array, shape: tuple[int, ...], where: Any, values: np.ndarray | None) -> None:
    await arr.async_array.resize(shape)
    if values is not None:
        await arr.async_array.setitem(where, values)


def _promote(group: zarr.Group, name: str, arr: zarr.Array, old: str, new: str, path: Path) -> zarr.Array:
    """Rewrite a column as a wider type, converting its stored values exactly."""
    stored = np.asarray(arr[:])
    if _numeric(new):  # int → float: same float64 storage, only the type changes
        arr.attrs["value_type"] = new
        return arr
    n = stored.shape[0]
    fields = [str(v) for v in np.asarray(array(group, "field")[:])]
    j = fields.index(name)
    st = np.asarray(array(group, "field_state")[:n, j]) if n else np.zeros(0, np.uint8)
    values = [_decode(old, v) if st[i] == PRESENT else None for i, v in enumerate(stored)]
    fresh = _create_column(group, name, new, path, n)
    if n:
        fresh[:] = _encode(new, values, st)
    return fresh


def _path_of(arr: zarr.Array) -> Path:
    path = arr.attrs["path"]
    assert isinstance(path, list)
    return tuple(str(k) for k in path)


def _kind_of(arr: zarr.Array) -> str:
    return str(arr.attrs["value_type"])


def repair(group: zarr.Group) -> dict[str, zarr.Array]:
    """Cut every variable back to the ``image``/``field`` coordinates after an interrupted append.

    Rows past the ``image`` coordinate and variables not listed in ``field`` are the
    remains of an append that stopped half-way; they are dropped (the rerun adds them).
    Dropped rows are first overwritten with the fill value: zarr keeps the data of a
    chunk that a shrink cuts through, and a later append that grows the array again
    must find "missing" there, not the old values (appends skip untouched variables).
    Returns the table's arrays as they are after the repair.
    """
    row = _row(group)
    members = dict(group.arrays())
    if row not in members:
        return members
    n = members[row].shape[0]
    fields = set(str(v) for v in np.asarray(members["field"][:]))
    for name, arr in list(members.items()):
        if name in (row, "field"):
            continue
        want: tuple[int, ...]
        if name == "field_state":
            want = (n, len(fields))
        elif name not in fields:
            del group[name]
            del members[name]
            continue
        else:
            want = (n,)
        if arr.shape != want:
            if arr.shape[0] > want[0]:
                arr[want[0]:] = arr.fill_value
            if len(want) == 2 and arr.shape[1] > want[-1]:
                arr[:, want[-1]:] = arr.fill_value
            arr.resize(want)
    return members
