"""``archivestore idc sql|series|collections|viewer-url|instance-url|citations``: the IDC index as tables.

The index is the parquet file the ``idc-index-data`` package ships (the ``idc`` extra), or
``--index FILE`` with the same columns. ``sql`` runs a DuckDB query in which the index is the
table ``index``; ``series`` filters it (collection names as the portal writes them are accepted);
``collections`` counts series, patients and size per collection. A table is printed, or written as
CSV with ``--csv FILE`` (``-``: standard output). A wrong id is one line with the closest ids. The
library behind it is :class:`archivestore.sources.idc.IdcIndex`. ``viewer-url`` and ``instance-url``
print what idc-index's ``get_viewer_URL`` and ``get_instance_file_URL`` give
(:mod:`archivestore.sources.idc._urls`); ``series`` carries the ``viewer_url`` column.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from archivestore.cli._common import command, error, show_table

if TYPE_CHECKING:

    from archivestore.sources.idc import IdcIndex

__all__ = ["SHOWN_COLUMNS", "add_idc_commands"]

SHOWN_COLUMNS = ("collection_id", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
                 "instanceCount", "series_size_MB")
"""The columns ``idc series`` prints by default (``--csv`` writes every column)."""

_FILTERS = {
    "collection": "collection id or portal name (NSCLC-Radiomics = nsclc_radiomics)",
    "patient": "PatientID",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "modality": "Modality, e.g. CT SEG",
}

_COLLECTIONS_SQL = ("SELECT collection_id, count(*) AS series, count(DISTINCT PatientID) AS patients, "
                    "round(sum(series_size_MB) / 1000, 1) AS size_GB FROM index GROUP BY collection_id "
                    "ORDER BY collection_id")


def add_idc_commands(subparsers: Any) -> None:
    """Add ``idc`` with ``sql``, ``series`` and ``collections``."""
    p = subparsers.add_parser(
        "idc", help="query the NCI Imaging Data Commons index (offline, DuckDB SQL)",
        description="Query the IDC series index that idc-index-data ships (pip install 'archivestore[idc]'), "
        "or --index FILE.parquet with the same columns. In SQL the index is the table `index`.",
    )
    queries = p.add_subparsers(dest="query", required=True, metavar="QUERY")
    q = queries.add_parser("sql", help="run a DuckDB SQL query", description="Run a DuckDB SQL query, e.g. "
                           "\"SELECT Modality, count(*) FROM index WHERE collection_id = 'lidc_idri' GROUP BY 1\".")
    q.add_argument("sql", metavar="QUERY")
    _common_options(q)
    q.set_defaults(func=_sql)
    q = queries.add_parser("series", help="index rows of the series matching the filters")
    for key, what in _FILTERS.items():
        q.add_argument(f"--{key}", action="extend", nargs="+", default=None, metavar="VALUE",
                       help=f"{what} (several allowed)")
    q.add_argument("--sql", default=None, help="only the series a query returns (a SeriesInstanceUID column)")
    q.add_argument("--columns", default=",".join(SHOWN_COLUMNS),
                   help="comma-separated columns to show (default: %(default)s); '*' for all")
    _common_options(q)
    q.set_defaults(func=_series)
    q = queries.add_parser("collections", help="series, patients and size per collection")
    _common_options(q)
    q.set_defaults(func=_collections)
    q = queries.add_parser("viewer-url", help="IDC viewer URLs of series or studies (as idc-index gives them)",
                           description="Print the IDC viewer URL of each SeriesInstanceUID or StudyInstanceUID, one "
                           "a line: OHIF v3 for radiology, Slim for studies with slide microscopy (SM), as "
                           "idc-index's get_viewer_URL.")
    q.add_argument("uids", nargs="+", metavar="UID")
    q.add_argument("--viewer", choices=("ohif_v3", "ohif_v2", "slim"), default=None,
                   help="this viewer instead of the default by modality")
    _common_options(q)
    q.set_defaults(func=_viewer_url)
    q = queries.add_parser("instance-url", help="bucket URLs of instance files (as idc-index gives them)",
                           description="Print the bucket URL of each SOPInstanceUID's file, one a line, from an "
                           "instance index (idc-index's sm_instance_index.parquet, or any parquet with "
                           "SOPInstanceUID, SeriesInstanceUID, crdc_instance_uuid); idc-index-data ships none.")
    q.add_argument("uids", nargs="+", metavar="SOP_UID")
    q.add_argument("--instance-index", required=True, metavar="FILE", help="the instance index parquet")
    q.add_argument("--gcs", action="store_true", help="the Google Cloud bucket's URL instead of AWS's")
    _common_options(q)
    q.set_defaults(func=_instance_url)
    _add_citations(queries)


def _add_citations(queries: Any) -> None:
    q = queries.add_parser("citations", help="what to cite for a selection: its DOIs resolved (APA, BibTeX, CSL JSON)",
                           description="Resolve the source_DOI values of the selected series by DOI content "
                           "negotiation (deduplicated, with IDC's own paper as idc-index adds it), cached on disk.")
    for key, what in _FILTERS.items():
        q.add_argument(f"--{key}", action="extend", nargs="+", default=None, metavar="VALUE",
                       help=f"{what} (several allowed)")
    q.add_argument("--sql", default=None, help="the series a query returns (a SeriesInstanceUID column)")
    q.add_argument("--format", choices=("apa", "bibtex", "json"), default="apa", help="default: %(default)s")
    q.add_argument("--doi-resolver", default="https://doi.org/", metavar="URL",
                   help="the DOI resolver (a mirror); default: %(default)s")
    q.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where citations are kept (default: ~/.cache/archivestore/citations)")
    q.add_argument("--without-idc", action="store_true", help="leave out IDC's own paper (10.1148/rg.230180)")
    q.add_argument("--index", default=None, metavar="FILE", help="index parquet (default: idc-index-data's)")
    q.set_defaults(func=_citations)


def _common_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--index", default=None, metavar="FILE", help="index parquet (default: idc-index-data's)")
    q.add_argument("--csv", default=None, metavar="FILE", help="write CSV here ('-': standard output)")


def _extra_missing(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A missing optional dependency (the ``idc`` extra) is one error line, not a traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ModuleNotFoundError as exc:
            return error(exc)

    return run


def _index(args: argparse.Namespace) -> IdcIndex:
    from archivestore.sources.idc import IdcIndex

    return IdcIndex(args.index)


@command
@_extra_missing
def _sql(args: argparse.Namespace) -> int:
    return show_table(_index(args).sql(args.sql), args.csv)


@command
@_extra_missing
def _series(args: argparse.Namespace) -> int:
    from archivestore.sources.idc._urls import with_viewer_urls

    index = _index(args)
    table = with_viewer_urls(index, index.series(**{key: getattr(args, key) for key in _FILTERS}, sql=args.sql))
    if args.csv is None and args.columns.strip() != "*":
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in table.columns]
        if unknown:
            return error(f"no column {', '.join(unknown)} in the index; it has {', '.join(table.columns)}")
        table = table[wanted]
    return show_table(table, args.csv)


@command
@_extra_missing
def _collections(args: argparse.Namespace) -> int:
    return show_table(_index(args).sql(_COLLECTIONS_SQL), args.csv)


def _lines(table: Any, column: str, csv: str | None) -> int:
    if csv is not None:
        return show_table(table, csv)
    for value in table[column]:
        print(value)
    return 0


@command
@_extra_missing
def _viewer_url(args: argparse.Namespace) -> int:
    from archivestore.sources.idc._urls import viewer_urls

    return _lines(viewer_urls(_index(args), args.uids, viewer=args.viewer), "viewer_url", args.csv)


@command
@_extra_missing
def _instance_url(args: argparse.Namespace) -> int:
    from archivestore.sources.idc._urls import instance_urls

    return _lines(instance_urls(_index(args), args.uids, args.instance_index, gcs=args.gcs), "url", args.csv)


@command
@_extra_missing
def _citations(args: argparse.Namespace) -> int:
    import sys

    from archivestore.sources.idc._citations import citations, selection_dois

    selection = {key: getattr(args, key) for key in _FILTERS}
    if not any(selection.values()) and args.sql is None:
        return error("say which series: --collection, --patient, --study, --series, --modality or --sql")
    dois = selection_dois(_index(args), include_idc=not args.without_idc, sql=args.sql, **selection)
    result = citations(dois, args.format, resolver=args.doi_resolver, cache_dir=args.cache_dir)
    if result.citations:
        print(result.render(args.format))
    for bad in result.failed:
        print(f"FAILED {bad}", file=sys.stderr)
    print(f"{len(result.citations)} citations of {len(dois)} DOIs ({result.cached} from the cache)"
          + (f", {len(result.failed)} failed" if result.failed else ""), file=sys.stderr)
    return 1 if result.failed else 0
