"""Reading a metadata table back: as a pandas DataFrame, or as the records' exact leaf values.

The other half of :mod:`archivestore.store._metadata` (which writes the tables). A table is read
from its zarr group directly (no xarray: half a second less of imports in a fresh process), or from
the Dataset plain xarray opens (``xr.open_zarr(store, group="metadata")``); both give the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import zarr

from archivestore.store._groups import array
from archivestore.store._metadata import ABSENT, NULL, PRESENT, Path, _decode, _row

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["read_frame", "read_records"]


@dataclass(frozen=True)
class _Columns:
    row: str
    ids: list[str]
    fields: list[str]
    states: np.ndarray
    values: Callable[[str], np.ndarray]
    attrs: Callable[[str], Mapping[str, Any]]


def _columns(table: zarr.Group | xr.Dataset) -> _Columns:
    if isinstance(table, zarr.Group):
        row = _row(table)

        def values(name: str) -> np.ndarray:
            return np.asarray(array(table, name)[...])

        return _Columns(row, [str(v) for v in values(row)], [str(v) for v in values("field")],
                        values("field_state"), values, lambda name: array(table, name).attrs)
    row = str(table["field_state"].dims[0])
    return _Columns(row, [str(v) for v in table[row].values], [str(v) for v in table["field"].values],
                    np.asarray(table["field_state"].values), lambda name: np.asarray(table[name].values),
                    lambda name: table[name].attrs)


def read_frame(table: zarr.Group | xr.Dataset) -> pd.DataFrame:
    """The table as a DataFrame: index image id, columns the original dotted key paths.

    Dtypes are pandas' nullable ones (``Int64``, ``Float64``, ``boolean``, ``string``)
    and missing values (absent or ``null``) are ``<NA>``.
    """
    cols = _columns(table)
    data: dict[str, Any] = {}
    for j, name in enumerate(cols.fields):
        attrs = cols.attrs(name)
        kind = attrs["value_type"]
        present = cols.states[:, j] == PRESENT
        values = cols.values(name)
        label = ".".join(attrs["path"])
        col: Any
        if kind == "int":
            col = pd.array(np.where(present, values, 0).astype(np.int64), dtype="Int64")
        elif kind == "bool":
            col = pd.array(np.where(present, values, 0).astype(bool), dtype="boolean")
        elif kind in ("float", "null"):
            col = pd.array(values.astype(np.float64), dtype="Float64")
        else:
            col = pd.array(values.astype(object), dtype="string")
        col[~present] = pd.NA
        data[label] = col
    return pd.DataFrame(data, index=pd.Index(cols.ids, name=cols.row))


def read_records(table: zarr.Group | xr.Dataset) -> dict[str, dict[str, Any]]:
    """The leaf values of every row, re-nested as the original records had them.

    Together with ``field_state`` this is exact: absent keys stay absent, ``null``
    stays ``None``, ints, floats, bools, strings, lists and empty objects come back
    as they were (an int in a column that also held floats comes back as a float).
    """
    cols = _columns(table)
    out: dict[str, dict[str, Any]] = {i: {} for i in cols.ids}
    for j, name in enumerate(cols.fields):
        attrs = cols.attrs(name)
        kind, path = attrs["value_type"], tuple(attrs["path"])
        values = cols.values(name)
        for r in np.flatnonzero(cols.states[:, j] != ABSENT):
            value = None if cols.states[r, j] == NULL else _decode(kind, values[r])
            _put(out[cols.ids[r]], path, value)
    return out


def _put(record: dict[str, Any], path: Path, value: Any) -> None:
    if not path:
        return
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
