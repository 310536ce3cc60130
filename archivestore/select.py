"""Selection of images by their metadata, with isicarchive's operators on dotted paths.

>>> from archivestore.select import select
>>> sel = select(store, "meta.clinical.diagnosis != nevus")  # doctest: +SKIP
>>> sel.refine("meta.clinical.age_approx >= 60").ids          # doctest: +SKIP

Parsing criteria needs only the standard library (the command line lists :data:`OPERATORS`
in its help without loading pandas); numpy and pandas are imported when a table is filtered.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xarray as xr

__all__ = ["OPERATORS", "Criterion", "Selection", "select"]

OPERATORS = (
    "==", "!=", "<", "<=", ">", ">=", "in", "not in", "ni", "not ni",
    "match", "~", "not match", "!~", "is", "not is", "is None", "not is None",
)
"""Operators of isicarchive's ``select_from``: ``ni`` is "value in a list field"."""

_UNARY = ("is None", "not is None")
_OP_RE = re.compile(
    r"\s+(not is None|is None|not match|not ni|not in|not is|match|ni|in|is|==|!=|<=|>=|<|>|!~|~)(?:\s+(.*))?$",
    re.DOTALL,
)


def _parse_value(text: str, op: str) -> Any:
    text = text.strip()
    if op in ("match", "~", "not match", "!~"):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        return text
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if op in ("in", "not in") and "," in text:
        return [_parse_value(part, "==") for part in text.split(",")]
    return text


@dataclass(frozen=True)
class Criterion:
    """One test on one field: ``path op value`` (``value`` unused by ``is None``/``not is None``).

    ``path`` is a column of :meth:`Store.metadata_frame`, the record's keys
    joined by ``.`` (``meta.clinical.diagnosis``).
    """

    path: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}; operators: {', '.join(OPERATORS)}")
        if self.op in ("match", "~", "not match", "!~"):
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str | Sequence | Criterion) -> Criterion:
        """A criterion from ``"path op value"`` text, a ``(path, op, value)`` triple, or a criterion.

        In text, a path with spaces is written in double quotes; the value is read
        as JSON (``55``, ``"a b"``, ``true``, ``null``, ``["x", "y"]``), else as a
        Python literal (``None``, ``'a'``), else taken as the bare text;
        ``in``/``not in`` also accept ``a,b,c``; a regex is taken as written.
        """
        if isinstance(text, Criterion):
            return text
        if not isinstance(text, str):
            items = list(text)
            if len(items) == 2 and items[1] in _UNARY:
                return cls(str(items[0]), items[1])
            if len(items) != 3:
                raise ValueError(f"a criterion is (path, operator, value), got {text!r}")
            return cls(str(items[0]), str(items[1]), items[2])
        s = text.strip()
        if s.startswith('"'):
            end = s.find('"', 1)
            if end < 0:
                raise ValueError(f"unclosed quote in criterion {text!r}")
            path, rest = s[1:end], " " + s[end + 1 :].lstrip()
        else:
            path, _, rest = s.partition(" ")
            rest = " " + rest.lstrip()
        m = _OP_RE.match(rest)
        if not path or not m:
            raise ValueError(f"cannot read criterion {text!r}; write 'path op value' with op one of "
                             f"{', '.join(OPERATORS)}")
        op, value = m.group(1), m.group(2)
        if op in _UNARY:
            if value:
                raise ValueError(f"{op!r} takes no value in {text!r}")
            return cls(path, op)
        if value is None:
            raise ValueError(f"no value after {op!r} in {text!r}")
        return cls(path, op, _parse_value(value, op))

    def test(self, value: Any) -> bool:
        """Whether one field value passes (``None`` = missing); errors count as not passing.

        The rules are isicarchive's: ``!=``, ``not in``, ``not is`` pass a missing
        value; ``ni`` tests ``self.value in value`` (a list field, or a substring).
        """
        op, c = self.op, self.value
        try:
            if op == "==":
                return _same(value, c)
            if op == "!=":
                return not _same(value, c)
            if op == "<":
                return bool(value < c)
            if op == "<=":
                return bool(value <= c)
            if op == ">":
                return bool(value > c)
            if op == ">=":
                return bool(value >= c)
            if op == "in":
                return any(_same(value, x) for x in c)
            if op == "not in":
                return not any(_same(value, x) for x in c)
            if op == "ni":
                return c in value
            if op == "not ni":
                return c not in value
            if op in ("match", "~"):
                return re.search(c, value) is not None
            if op in ("not match", "!~"):
                return re.search(c, value) is None
            if op == "is":
                return _identical(value, c)
            if op == "not is":
                return not _identical(value, c)
            if op == "is None":
                return value is None
            return value is not None  # "not is None"
        except Exception:  # isicarchive: an error means "not selected"
            return False

    def __str__(self) -> str:
        path = f'"{self.path}"' if " " in self.path else self.path
        if self.op in _UNARY:
            return f"{path} {self.op}"
        value = self.value if self.op in ("match", "~", "not match", "!~") else json.dumps(self.value)
        return f"{path} {self.op} {value}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _identical(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and a == b


def _python_values(column: pd.Series, json_text: bool) -> list[Any]:
    values = column.astype(object).where(column.notna(), None).tolist()
    if json_text:
        return [json.loads(v) if isinstance(v, str) and v != "" else None for v in values]
    return values


class Selection:
    """A set of images of a metadata table, in table order.

    Made by :func:`select`; :meth:`refine`, :meth:`add` and :meth:`remove` make
    new selections. ``ids`` are the image ids; :attr:`frame` the selected rows
    (pandas); :meth:`dataset` the selected rows of the store's ``metadata`` (xarray).
    """

    def __init__(self, table: pd.DataFrame, ids: Iterable[str], *, json_columns: Iterable[str] = (),
                 store: Any = None, table_name: str = "images") -> None:
        self.table = table
        self.table_name = table_name
        self._json = frozenset(json_columns)
        self.store = store
        wanted = set(ids)
        self.ids: list[str] = [i for i in table.index if i in wanted]

    # -- set algebra ------------------------------------------------------------------
    def _mask(self, criteria: Sequence[Any]) -> np.ndarray:
        import numpy as np

        keep = np.ones(len(self.table), dtype=bool)
        for crit in (Criterion.parse(c) for c in criteria):
            if crit.path not in self.table.columns:
                close = difflib.get_close_matches(crit.path, [str(c) for c in self.table.columns], n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise KeyError(f"no metadata field {crit.path!r}{hint}")
            values = _python_values(self.table[crit.path], crit.path in self._json)
            keep &= np.fromiter((crit.test(v) for v in values), dtype=bool, count=len(values))
        return keep

    def _matching(self, criteria: Sequence[Any]) -> set[str]:
        return set(self.table.index[self._mask(criteria)])

    def _new(self, ids: Iterable[str]) -> Selection:
        return Selection(self.table, ids, json_columns=self._json, store=self.store, table_name=self.table_name)

    def refine(self, *criteria: Any) -> Selection:
        """The images of this selection that pass every criterion."""
        return self._new(set(self.ids) & self._matching(criteria))

    def add(self, *criteria: Any) -> Selection:
        """This selection plus every image of the table that passes every criterion."""
        return self._new(set(self.ids) | self._matching(criteria))

    def remove(self, *criteria: Any) -> Selection:
        """This selection minus the images that pass every criterion."""
        return self._new(set(self.ids) - self._matching(criteria))

    # -- views --------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """The selected rows of the metadata table (pandas)."""
        return self.table.loc[self.ids]

    def dataset(self) -> xr.Dataset:
        """The selected rows of the store's ``metadata`` group (xarray)."""
        if self.store is None:
            raise ValueError("this selection was made from a DataFrame, not a store")
        row = "image" if self.table_name == "images" else "series"
        return self.store.metadata(self.table_name).sel({row: self.ids})

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in set(self.ids)

    def __repr__(self) -> str:
        return f"<Selection of {len(self.ids)} of {len(self.table)} images>"


def _json_columns(store: Any, table: str = "images") -> set[str]:
    ds = store.metadata(table)
    return {".".join(v.attrs["path"]) for v in ds.data_vars.values()
            if v.attrs.get("value_type") == "json" and "path" in v.attrs}


def select(source: Any, *criteria: Any, json_columns: Iterable[str] | None = None,
           table: str = "images") -> Selection:
    """Images (or series) whose metadata passes every criterion.

    Parameters
    ----------
    source
        A :class:`~archivestore.Store` (its :meth:`metadata_frame`) or a DataFrame
        shaped like one (index image id, columns dotted key paths).
    criteria
        ``"path op value"`` strings or ``(path, op, value)`` triples, see
        :class:`Criterion`; none selects every image.
    json_columns
        Columns holding JSON text (list fields); read from the store's
        ``value_type`` attributes when ``source`` is a store.
    table
        ``"images"`` (the ``metadata`` table) or ``"series"`` (``series_metadata``:
        volumes and segmentations), when ``source`` is a store.

    Returns
    -------
    Selection

    Examples
    --------
    >>> sel = select(store, "meta.clinical.diagnosis != nevus", "meta.clinical.age_approx >= 50")  # doctest: +SKIP
    >>> sel = sel.add("notes.tags ni 'ISBI 2016: Training'").remove("meta.clinical.sex is None")   # doctest: +SKIP
    >>> sel.ids, sel.frame, sel.dataset()                                                          # doctest: +SKIP
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame, store = source, None
        json_cols = set(json_columns or ())
    else:
        frame, store = source.metadata_frame(table), source
        json_cols = set(json_columns) if json_columns is not None else (
            _json_columns(source, table) if len(frame) else set())
    everything = Selection(frame, frame.index, json_columns=json_cols, store=store, table_name=table)
    return everything.refine(*criteria) if criteria else everything
