"""The IDC series index (``idc-index-data``'s parquet, or a file with its columns) queried with DuckDB.

Public names are re-exported by :mod:`archivestore.sources.idc`. The file is seen as the view ``index``;
queries run in DuckDB (never by loading the parquet into pandas), with ``?`` parameters for every value
that comes from a caller. A filter id that is not in the index (within the filters before it) is a
one-line :class:`~archivestore.errors.NotFoundError` naming the closest valid ids: DuckDB narrows the
column's distinct values by Jaro-Winkler similarity, difflib ranks the few left.
"""

from __future__ import annotations

import datetime
import decimal
import difflib
import importlib
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from archivestore.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXTRA_HINT", "REQUIRED_COLUMNS", "IdcIndex", "as_list", "collection_id", "json_value",
           "packaged_index_path", "require_extra"]

T = TypeVar("T")

EXTRA_HINT = "pip install 'archivestore[idc]'"
REQUIRED_COLUMNS = ("collection_id", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
                    "aws_bucket", "crdc_series_uuid", "instanceCount")
"""Columns an index parquet must have (the packaged one has these and more)."""

_FILTERS = (("collection", "collection_id"), ("patient", "PatientID"),
            ("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"))
_CANDIDATES = 200  # DuckDB narrows a column's distinct values to this many before difflib ranks them


def require_extra(module: str) -> ModuleType:
    """Import an optional dependency of the ``idc`` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModuleNotFoundError(f"IDC support needs {module}: {EXTRA_HINT}", name=module) from exc


def packaged_index_path() -> str:
    """Path of the series index parquet shipped by the installed ``idc-index-data`` package."""
    path = require_extra("idc_index_data").IDC_INDEX_PARQUET_FILEPATH
    if path is None:
        raise NotFoundError(f"idc-index-data ships no idc_index.parquet; {EXTRA_HINT}")
    return str(path)


def collection_id(name: str) -> str:
    """The index's ``collection_id`` for a collection name as the IDC/TCIA portals write it.

    Lower case, runs of ``-`` and white space become ``_``: ``NSCLC-Radiomics`` -> ``nsclc_radiomics``,
    ``QIN LUNG CT`` -> ``qin_lung_ct``. An id is returned unchanged.
    """
    return re.sub(r"[-\s]+", "_", name.strip().lower())


def as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def json_value(value: Any) -> Any:
    """A value of a DuckDB row as JSON: NaN -> None, dates as ISO text, decimals and numpy scalars as numbers."""
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime.date | datetime.datetime | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy/pandas scalars
        return json_value(value.item())
    return value


class IdcIndex:
    """The IDC series index (one row per series), queried with DuckDB SQL.

    Parameters
    ----------
    path
        A parquet file with the columns of ``idc-index-data``'s index (an institution's mirror, a
        test's); default the index the installed ``idc-index-data`` ships.

    Notes
    -----
    Queries see the file as the view ``index``; with the packaged index, the other tables the
    package ships (``collections_index``, ``analysis_results_index``, ``prior_versions_index``) are
    views too. An index pickles as its path.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = packaged_index_path() if path is None else os.fspath(path)
        if not os.path.isfile(self.path):
            raise NotFoundError(f"no IDC index parquet at {self.path}")
        self._con: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IdcIndex({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._con, self._lock = state["path"], None, threading.Lock()

    def _connection(self) -> Any:
        if self._con is None:
            duckdb = require_extra("duckdb")
            con = duckdb.connect()
            try:
                relation = con.read_parquet(self.path)
            except duckdb.Error as exc:
                raise InvalidInputError(f"{self.path} is not a readable parquet file: {exc}") from None
            missing = [c for c in REQUIRED_COLUMNS if c not in relation.columns]
            if missing:
                raise InvalidInputError(f"{self.path} is not an IDC index: no column {', '.join(missing)}")
            relation.create_view("index")
            if self.path == _packaged_or_none():
                for name, meta in require_extra("idc_index_data").INDEX_METADATA.items():
                    if name != "idc_index" and meta.get("parquet_filepath"):
                        con.read_parquet(str(meta["parquet_filepath"])).create_view(name)
            self._con = con
        return self._con

    def _fetch(self, query: str, params: Sequence[Any], take: Callable[[Any], T]) -> T:
        """``take(result)`` of a query on the shared connection; bad SQL -> InvalidInputError (DuckDB's message)."""
        duckdb = require_extra("duckdb")
        with self._lock:
            try:
                return take(self._connection().execute(query, list(params)))
            except duckdb.Error as exc:
                raise InvalidInputError(str(exc)) from None

    def _run(self, query: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows (Python values) of a small query."""
        def take(result: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
            columns = [d[0] for d in result.description or ()]
            return columns, result.fetchall() if columns else []

        return self._fetch(query, params, take)

    @property
    def columns(self) -> list[str]:
        """The index's column names."""
        return self._run("SELECT * FROM index LIMIT 0")[0]

    def sql(self, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The answer of a DuckDB SQL query as a DataFrame (``index`` is the table; ``?`` binds ``params``).

        Raises
        ------
        InvalidInputError
            The query is not valid SQL for this index (DuckDB's message).
        """
        import pandas as pd

        return self._fetch(query, params, lambda result: result.df() if result.description else pd.DataFrame())

    def records(self, query: str, params: Sequence[Any] = (), *, batch: int = 1024) -> Iterator[dict[str, Any]]:
        """Rows of a query as JSON-compatible dicts, streamed from DuckDB ``batch`` rows at a time.

        Runs on a connection of its own, so other queries may run while the rows are read.
        """
        duckdb = require_extra("duckdb")
        with self._lock:
            cursor = self._connection().cursor()
        try:
            result = cursor.execute(query, list(params))
            columns = [d[0] for d in result.description or ()]
            while rows := result.fetchmany(batch):
                for row in rows:
                    yield {c: json_value(v) for c, v in zip(columns, row, strict=True)}
        except duckdb.Error as exc:
            raise InvalidInputError(str(exc)) from None
        finally:
            cursor.close()

    def count(self, query: str, params: Sequence[Any] = ()) -> int:
        """Number of rows a query returns."""
        return int(self._run(f"SELECT count(*) FROM ({query}\n)", params)[1][0][0])

    def collections(self) -> list[str]:
        """The index's ``collection_id`` values, sorted."""
        _, rows = self._run("SELECT DISTINCT collection_id FROM index WHERE collection_id IS NOT NULL ORDER BY 1")
        return [r[0] for r in rows]

    def series(
        self,
        collection: str | Iterable[str] | None = None,
        patient: str | Iterable[str] | None = None,
        study: str | Iterable[str] | None = None,
        series: str | Iterable[str] | None = None,
        modality: str | Iterable[str] | None = None,
        *,
        sql: str | None = None,
    ) -> pd.DataFrame:
        """Index rows of the series matching every given filter (each one value or several).

        Parameters
        ----------
        collection
            Collection ids or portal names (``NSCLC-Radiomics`` is ``nsclc_radiomics``).
        patient, study, series
            PatientID, StudyInstanceUID, SeriesInstanceUID values.
        modality
            DICOM Modality values (``CT``, ``SEG``, ...; case-insensitive).
        sql
            A query returning a ``SeriesInstanceUID`` column: only those series.

        Raises
        ------
        NotFoundError
            An id that is not in the index (within the filters before it), or a modality no series
            has, on one line with the closest valid values.
        InvalidInputError
            Bad ``sql``.
        """
        return self.sql(*self.selection(collection, patient, study, series, modality, sql=sql))

    def selection(self, collection: str | Iterable[str] | None = None, patient: str | Iterable[str] | None = None,
                  study: str | Iterable[str] | None = None, series: str | Iterable[str] | None = None,
                  modality: str | Iterable[str] | None = None, *, sql: str | None = None) -> tuple[str, list[Any]]:
        """The query and parameters selecting the index rows :meth:`series` returns, its filters checked.

        Each filter's ids are checked within the filters before it (collection, patient, study,
        series); the rows come sorted by collection, patient, study and series.
        """
        clauses: list[str] = []
        params: list[Any] = []
        scope: list[str] = []
        for (what, column), given in zip(_FILTERS, (collection, patient, study, series), strict=True):
            values = as_list(given)
            if not values:
                continue
            if what == "collection":
                values = [collection_id(v) for v in values]
            self._check(what, column, values, " AND ".join(clauses), params, scope, raw=as_list(given))
            clauses.append(f'"{column}" IN (SELECT unnest(?::VARCHAR[]))')
            params.append(values)
            scope.append(f"{what} {values[0]}" if len(values) == 1 else f"{what}s {', '.join(values)}")
        modalities = [m.upper() for m in as_list(modality)]
        if modalities:
            self._check("modality", "Modality", modalities, "", [], [], raw=as_list(modality))
            clauses.append('"Modality" IN (SELECT unnest(?::VARCHAR[]))')
            params.append(modalities)
        if sql is not None:
            query = sql.strip().rstrip(";")
            columns = self._run(f"SELECT * FROM ({query}\n) LIMIT 0")[0]
            if "SeriesInstanceUID" not in columns:
                raise InvalidInputError("the query must return a SeriesInstanceUID column; "
                                        f"it returns {', '.join(columns)}")
            clauses.append(f'"SeriesInstanceUID" IN (SELECT "SeriesInstanceUID" FROM ({query}\n))')
        where = " AND ".join(clauses) or "TRUE"
        return (f"SELECT * FROM index WHERE {where} "
                "ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID", params)

    def _check(self, what: str, column: str, values: list[str], where: str, params: list[Any],
               scope: list[str], *, raw: list[str]) -> None:
        """Raise NotFoundError naming the first of ``values`` not in ``column`` (rows matching ``where``)."""
        where = where or "TRUE"
        _, rows = self._run(f'SELECT v FROM unnest(?::VARCHAR[]) AS t(v) WHERE v NOT IN '
                            f'(SELECT "{column}" FROM index WHERE {where} AND "{column}" IS NOT NULL)',
                            [values, *params])
        missing = [r[0] for r in rows]
        if not missing:
            return
        wrong = missing[0]
        _, near = self._run(f'SELECT v FROM (SELECT DISTINCT "{column}" AS v FROM index WHERE {where} '
                            f'AND "{column}" IS NOT NULL) ORDER BY jaro_winkler_similarity(lower(v), lower(?)) DESC, v '
                            "LIMIT ?", [*params, wrong, _CANDIDATES])
        closest = _closest(wrong, [r[0] for r in near])
        asked = raw[values.index(wrong)]
        asked = f" (from {asked!r})" if asked != wrong else ""
        place = f" in {'; '.join(scope)}" if scope else " in the IDC index"
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        suggestion = f"; closest: {', '.join(closest)}" if closest else ""
        raise NotFoundError(f"no {what} {wrong!r}{asked}{place}{more}{suggestion}")


def _closest(value: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The ``n`` candidates most like ``value`` (difflib's ratio; ties in sorted order)."""
    def ratio(candidate: str) -> float:
        return difflib.SequenceMatcher(None, value.lower(), candidate.lower()).ratio()

    return sorted(candidates, key=lambda c: (-ratio(c), c))[:n]


def _packaged_or_none() -> str | None:
    try:
        return packaged_index_path()
    except (ModuleNotFoundError, NotFoundError):
        return None
