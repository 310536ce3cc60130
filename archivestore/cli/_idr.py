"""``archivestore idr QUERY``: the Image Data Resource's (any OMERO.web's) containers, wells, annotations as tables.

``projects`` and ``screens`` (with ``study``, the folder IDR publishes their OME-Zarr in), ``datasets``
(``--project``), ``plates`` (``--screen``), ``wells`` (``--plate``: one row per field), ``images``
(``--dataset`` or ``--plate``) and ``annotations KIND ID`` (map annotations, one row per key and value).
A table is printed (a few columns; ``--all-columns`` for every one), or written whole as CSV with
``--csv FILE`` (``-``: standard output). The library behind it is :class:`archivestore.sources.idr.Idr`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from archivestore.cli._common import command, show_table

if TYPE_CHECKING:
    import pandas as pd

    from archivestore.sources.idr import Idr

__all__ = ["DEFAULT_IDR_URL", "SHOWN_COLUMNS", "add_idr_commands"]

DEFAULT_IDR_URL = "https://idr.openmicroscopy.org/"
"""Named in the help text only (``archivestore.sources.idr`` has the same; a test keeps them equal)."""

KINDS = ("project", "dataset", "image", "screen", "plate", "well")
"""Objects that carry map annotations (``archivestore.sources.idr._omero.MAP_KINDS``)."""

SHOWN_COLUMNS = {
    "projects": ("id", "Name", "study"),
    "screens": ("id", "Name", "study"),
    "datasets": ("id", "Name", "Description"),
    "plates": ("id", "Name", "Rows", "Columns", "runs"),
    "images": ("id", "Name", "well", "field", "Pixels.SizeX", "Pixels.SizeY", "Pixels.SizeZ", "Pixels.SizeC",
               "Pixels.SizeT", "Pixels.Type.value", "Pixels.PhysicalSizeX.Value"),
}
"""The columns a printed table shows (when it has them); ``--csv`` and ``--all-columns`` give every column."""

_QUERIES: dict[str, tuple[str, tuple[tuple[str, str, bool], ...]]] = {
    "projects": ("every project", ()),
    "datasets": ("the datasets of a project (every dataset without --project)", (("project", "project id", False),)),
    "screens": ("every screen", ()),
    "plates": ("the plates of a screen (every plate without --screen)", (("screen", "screen id", False),)),
    "wells": ("the wells of a plate, one row per field, with their image ids", (("plate", "plate id", True),)),
}
"""Queries with id options: help text and (option, help, required)."""


def add_idr_commands(subparsers: Any) -> None:
    """Add ``idr`` with one sub-command per query."""
    p = subparsers.add_parser(
        "idr", help="query the Image Data Resource (OMERO.web, anonymous)",
        description=f"Query the Image Data Resource's OMERO.web (default {DEFAULT_IDR_URL}; --base-url for any "
        "OMERO.web): projects, datasets, screens, plates, wells, images and map annotations.",
    )
    queries = p.add_subparsers(dest="query", required=True, metavar="QUERY")
    for name, (text, options) in _QUERIES.items():
        q = queries.add_parser(name, help=text, description=text)
        for option, what, required in options:
            q.add_argument(f"--{option}", type=int, required=required, default=None, metavar="ID", help=what)
        _common_options(q)
        q.set_defaults(func=_query, method=name, options=[o for o, _, _ in options])
    q = queries.add_parser("images", help="the images of a dataset or a plate",
                           description="The images of a dataset (with their pixel sizes) or of a plate "
                           "(with their well and field).")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", type=int, metavar="ID", help="dataset id")
    which.add_argument("--plate", type=int, metavar="ID", help="plate id")
    _common_options(q)
    q.set_defaults(func=_images, method="images")
    q = queries.add_parser("annotations", help="the map annotations of one object (key, value per row)",
                           description="The map annotations of one object, one row per key and value "
                           "(a repeated key gives one row per value).")
    q.add_argument("kind", choices=KINDS, help="what the id is")
    q.add_argument("id", type=int, help="its id")
    _common_options(q)
    q.set_defaults(func=_annotations, method="annotations")


def _common_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--base-url", default=DEFAULT_IDR_URL, help="OMERO.web root (default: the IDR)")
    q.add_argument("--csv", default=None, metavar="FILE", help="write every column as CSV here ('-': standard output)")
    q.add_argument("--all-columns", action="store_true", help="print every column (default: a few)")
    q.add_argument("--retries", type=int, default=5, help="tries again after 429/5xx/broken transfers (default 5)")
    q.add_argument("--backoff", type=float, default=0.5, help="exponential backoff factor in seconds (default 0.5)")
    q.add_argument("--debug", action="store_true", help="print every request")
    q.set_defaults(cache_dir=None, cache_expire=0.0, workers=None)  # what _client_options reads; no cache here


def _client(args: argparse.Namespace) -> Idr:
    from archivestore.cli._ingest import _client_options
    from archivestore.sources.idr import Idr

    options = {k: v for k, v in _client_options(args).items() if k not in ("cache_dir", "cache_expire")}
    return Idr(args.base_url, **options)


def _show(table: pd.DataFrame, args: argparse.Namespace) -> int:
    shown = SHOWN_COLUMNS.get(args.method)
    if args.csv is None and not args.all_columns and shown and not table.empty:
        table = table[[c for c in shown if c in table.columns]]
    return show_table(table, args.csv)


@command
def _query(args: argparse.Namespace) -> int:
    idr = _client(args)
    return _show(getattr(idr, args.method)(*(getattr(args, o) for o in args.options)), args)


@command
def _images(args: argparse.Namespace) -> int:
    return _show(_client(args).images(args.dataset, plate=args.plate), args)


@command
def _annotations(args: argparse.Namespace) -> int:
    return _show(_client(args).annotations(args.kind, args.id), args)
