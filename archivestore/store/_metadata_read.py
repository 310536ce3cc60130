"""Reading a metadata table back: as a pandas DataFrame, or as the records' exact leaf values.

The other half of :mod:`archivestore.store._metadata` (which writes the tables).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from archivestore.store._metadata import ABSENT, NULL, PRESENT, Path, _decode

__all__ = ["read_frame", "read_records"]


def _read_columns(ds: xr.Dataset) -> tuple[list[str], np.ndarray]:
    fields = [str(v) for v in ds["field"].values]
    return fields, np.asarray(ds["field_state"].values)


def read_frame(ds: xr.Dataset) -> pd.DataFrame:
    """The table as a DataFrame: index image id, columns the original dotted key paths.

    Dtypes are pandas' nullable ones (``Int64``, ``Float64``, ``boolean``, ``string``)
    and missing values (absent or ``null``) are ``<NA>``.
    """
    fields, states = _read_columns(ds)
    data: dict[str, Any] = {}
    for j, name in enumerate(fields):
        var = ds[name]
        kind = var.attrs["value_type"]
        present = states[:, j] == PRESENT
        values = np.asarray(var.values)
        label = ".".join(var.attrs["path"])
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
    row = str(ds["field_state"].dims[0])
    index = pd.Index([str(v) for v in ds[row].values], name=row)
    return pd.DataFrame(data, index=index)


def read_records(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """The leaf values of every row, re-nested as the original records had them.

    Together with ``field_state`` this is exact: absent keys stay absent, ``null``
    stays ``None``, ints, floats, bools, strings, lists and empty objects come back
    as they were (an int in a column that also held floats comes back as a float).
    """
    ids = [str(v) for v in ds[str(ds["field_state"].dims[0])].values]
    fields, states = _read_columns(ds)
    out: dict[str, dict[str, Any]] = {i: {} for i in ids}
    for j, name in enumerate(fields):
        var = ds[name]
        kind, path = var.attrs["value_type"], tuple(var.attrs["path"])
        values = np.asarray(var.values)
        for r in np.flatnonzero(states[:, j] != ABSENT):
            value = None if states[r, j] == NULL else _decode(kind, values[r])
            _put(out[ids[r]], path, value)
    return out


def _put(record: dict[str, Any], path: Path, value: Any) -> None:
    if not path:
        return
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
