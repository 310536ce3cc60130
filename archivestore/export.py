"""CSV export of the metadata table with isic-cli's ``metadata.csv`` columns, and license summaries.

>>> from archivestore.export import export_csv, licenses_summary
>>> export_csv(store, "metadata.csv")                       # doctest: +SKIP
>>> print(licenses_summary(store, select(store, "...").ids))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import pandas as pd

__all__ = [
    "BASE_COLUMNS",
    "attributions",
    "export_csv",
    "export_series_csv",
    "licenses_summary",
    "metadata_table",
    "read_keys",
]

BASE_COLUMNS = ("isic_id", "attribution", "copyright_license")
"""The first columns of isic-cli's ``metadata.csv``."""

_GROUPS = ("metadata.clinical.", "metadata.acquisition.", "meta.clinical.", "meta.acquisition.")
"""Groups whose leaves become bare-keyed columns, in order of precedence (isic-cli lets
clinical override acquisition; v2 paths come before the v1 ones)."""

_FALLBACKS = {
    "isic_id": ("isic_id", "name"),
    "attribution": ("attribution", "dataset.attribution"),
    "copyright_license": ("copyright_license", "dataset.license"),
}


def _frame(source: Any, ids: Iterable[str] | None) -> pd.DataFrame:
    frame = source if isinstance(source, pd.DataFrame) else source.metadata_frame()
    if ids is not None:
        ids = list(ids)
        missing = [i for i in ids if i not in frame.index]
        if missing:
            raise KeyError(f"not in the metadata table: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        frame = frame.loc[ids]
    return frame


def _base(frame: pd.DataFrame) -> dict[str, pd.Series]:
    out = {}
    for column, candidates in _FALLBACKS.items():
        series = pd.Series(pd.NA, index=frame.index, dtype="object")
        for name in candidates:
            if name in frame.columns:
                series = series.where(series.notna(), frame[name].astype(object))
        if column == "isic_id":
            series = series.where(series.notna(), pd.Series(frame.index, index=frame.index, dtype=object))
        out[column] = series
    return out


def _grouped(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Leaves of the clinical/acquisition groups by bare key, first group winning per row."""
    out: dict[str, pd.Series] = {}
    for group in _GROUPS:
        for name in frame.columns:
            if not name.startswith(group):
                continue
            key = name[len(group) :]
            column = frame[name].astype(object)
            out[key] = column if key not in out else out[key].where(out[key].notna(), column)
    return out


def _beyond_isic_cli(frame: pd.DataFrame) -> set[str]:
    """Fields of records that are not ISIC API records (challenge CSVs, other archives): every
    field with a value in a row without the API's ``metadata``/``meta`` object.

    isic-cli's ``metadata.csv`` describes API records only (their clinical and acquisition
    leaves); a challenge record's ``clinical.*`` and ``ground_truth.*`` would otherwise be lost.
    """
    api = [name for name in frame.columns if name.startswith(("metadata.", "meta."))]
    others = ~frame[api].notna().any(axis=1) if api else pd.Series(True, index=frame.index)
    if not others.any():
        return set()
    present = frame.loc[others].notna().any(axis=0)
    return {str(name) for name, has in present.items() if has}


def metadata_table(
    source: Any,
    ids: Iterable[str] | None = None,
    *,
    keys: Sequence[tuple[str, str]] | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """The flat per-image table that :func:`export_csv` writes.

    Parameters
    ----------
    source
        A :class:`~archivestore.Store` or a DataFrame shaped like its
        :meth:`metadata_frame`.
    ids
        Only these images, in this order (default: all, in table order).
    keys
        ``(output name, archive name)`` pairs: the table has exactly these
        columns, renamed. An archive name is a column of the default table
        (``isic_id``, ``age_approx``, ...) or a dotted metadata path.
    all_fields
        Append every other leaf of API records too, by its dotted path.

    Returns
    -------
    DataFrame of objects; missing values are ``""``. Without ``keys`` the columns
    are isic-cli's: ``isic_id, attribution, copyright_license``, then the sorted
    union of the clinical and acquisition leaf keys (``metadata.clinical.*`` of
    v2 records, ``meta.clinical.*`` of v1), then every leaf of the records that
    are not API records by its dotted path (a challenge store's ``clinical.sex``,
    ``ground_truth.melanoma``, ...: isic-cli has no columns for them). ``isic_id``
    falls back to the v1 ``name`` and the image id, ``copyright_license`` to
    ``dataset.license``.
    """
    frame = _frame(source, ids)
    base = _base(frame)
    grouped = _grouped(frame)
    columns: dict[str, pd.Series] = dict(base)
    for key in sorted(grouped):
        if key not in columns:
            columns[key] = grouped[key]
    if keys is not None:
        chosen = {}
        unknown = []
        for out_name, archive_name in keys:
            if archive_name in columns:
                chosen[out_name] = columns[archive_name]
            elif archive_name in frame.columns:
                chosen[out_name] = frame[archive_name].astype(object)
            else:
                unknown.append(archive_name)
        if unknown:
            raise KeyError(f"unknown archive keys: {', '.join(map(repr, unknown))}")
        columns = chosen
    else:
        used = {name for name in frame.columns if name.startswith(_GROUPS)}
        used |= {c for cands in _FALLBACKS.values() for c in cands}
        own = _beyond_isic_cli(frame)
        for name in frame.columns:
            if name not in used and name not in columns and (all_fields or name in own):
                columns[name] = frame[name].astype(object)
    table = pd.DataFrame(columns, index=frame.index)
    return table.astype(object).where(table.notna(), "")


def read_keys(path: str | os.PathLike) -> list[tuple[str, str]]:
    """A two-column mapping file: ``internal name, archive name`` per line.

    Blank lines and lines starting with ``#`` are skipped; a first line
    ``internal name,archive name`` (any case, ``_`` or space) is a header.
    """
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f)):
            row = [cell.strip() for cell in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) != 2 or not all(row):
                raise ValueError(f"{path}: line {n + 1}: expected 'internal name,archive name', got {row!r}")
            if n == 0 and [c.lower().replace("_", " ") for c in row] == ["internal name", "archive name"]:
                continue
            out.append((row[0], row[1]))
    return out


def export_series_csv(source: Any, out: Any, ids: Iterable[str] | None = None) -> int:
    """Write the ``series_metadata`` table (volumes and segmentations) as CSV; return the number of rows.

    ``source`` is a store or a DataFrame like its ``metadata_frame("series")``; the
    first column is the series id, then every field by its dotted path.
    """
    frame = source if isinstance(source, pd.DataFrame) else source.metadata_frame("series")
    if ids is not None:
        frame = frame.loc[list(ids)]
    frame.to_csv(out, index_label="series", lineterminator="\n")
    return len(frame)


def export_csv(
    source: Any,
    out: str | os.PathLike | TextIO,
    ids: Iterable[str] | None = None,
    *,
    keys: Sequence[tuple[str, str]] | str | os.PathLike | None = None,
    all_fields: bool = False,
) -> int:
    """Write the flat per-image CSV (see :func:`metadata_table`) to a path or text file; return the number of rows.

    ``keys`` may be a mapping file path (see :func:`read_keys`).
    """
    pairs = read_keys(keys) if isinstance(keys, (str, os.PathLike)) else keys
    table = metadata_table(source, ids, keys=pairs, all_fields=all_fields)
    table.to_csv(out, index=False, lineterminator="\n")
    return len(table)


def attributions(source: Any, ids: Iterable[str] | None = None) -> list[str]:
    """Distinct attributions, most images first, then by name; ``Anonymous`` last (as isic-cli)."""
    column = _base(_frame(source, ids))["attribution"]
    counts = Counter(str(v) for v in column if v is not None and v is not pd.NA and str(v) != "")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ordered = sorted(ordered, key=lambda kv: kv[0] == "Anonymous")
    return [name for name, _ in ordered]


def licenses_summary(source: Any, ids: Iterable[str] | None = None) -> str:
    """A ``LICENSES`` text for a selection: images per license, then the attributions."""
    frame = _frame(source, ids)
    base = _base(frame)
    licenses = Counter("unknown" if v is None or v is pd.NA or str(v) == "" else str(v)
                       for v in base["copyright_license"])
    lines = [f"Licenses of {len(base['isic_id'])} images", ""]
    for name, count in sorted(licenses.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"{name}: {count} image{'s' if count != 1 else ''}")
    names = attributions(frame)
    if names:
        lines += ["", "Attribution", ""] + names
    return "\n".join(lines) + "\n"
