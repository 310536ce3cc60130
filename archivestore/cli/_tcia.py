"""``archivestore tcia QUERY``: The Cancer Imaging Archive's NBIA REST API v4 queries as tables.

``collections``, ``modalities``, ``body-parts``, ``manufacturers``, ``patients``, ``studies`` and
``series`` take the filters their NBIA query takes; ``series-size``, ``instances`` and ``metadata``
take SeriesInstanceUIDs. A table is printed, or written as CSV with ``--csv FILE`` (``-``: standard
output). The library behind it is :class:`archivestore.sources.tcia.Tcia`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from archivestore.cli._common import command, show_table

if TYPE_CHECKING:

    from archivestore.sources.tcia import Tcia

__all__ = ["DEFAULT_NBIA_URL", "NLST_URL", "add_tcia_commands"]

DEFAULT_NBIA_URL = "https://nbia.cancerimagingarchive.net/nbia-api/services/v4/"
NLST_URL = "https://nlst.cancerimagingarchive.net/nbia-api/services/v4/"
"""Named in the help text only (``archivestore.sources.tcia`` has the same; a test keeps them equal)."""

_FILTERS = {
    "collection": ("--collection", "collection name (Collection)"),
    "patient": ("--patient", "patient id (PatientID)"),
    "study": ("--study", "StudyInstanceUID"),
    "modality": ("--modality", "modality, e.g. CT, MR, SEG (Modality)"),
    "body_part": ("--body-part", "body part examined, e.g. CHEST (BodyPartExamined)"),
    "manufacturer": ("--manufacturer", "Manufacturer"),
    "manufacturer_model": ("--manufacturer-model", "ManufacturerModelName"),
    "series": ("--series", "SeriesInstanceUID"),
}

_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "collections": ("collection names (getCollectionValues)", ()),
    "modalities": ("modalities (getModalityValues)", ("collection", "body_part")),
    "body-parts": ("body parts examined (getBodyPartValues)", ("collection", "modality")),
    "manufacturers": ("manufacturers (getManufacturerValues)", ("collection", "modality", "body_part")),
    "patients": ("patients (getPatient)", ("collection",)),
    "studies": ("studies (getPatientStudy)", ("collection", "patient", "study")),
    "series": ("series (getSeries), with any of its filters", tuple(_FILTERS)),
}
"""Queries that take filters: help text and the filters (keyword arguments of the :class:`Tcia` method)."""

_BY_SERIES = {
    "series-size": ("total bytes and file count of a series (getSeriesSize)", "series_size"),
    "instances": ("SOPInstanceUIDs of a series (getSOPInstanceUIDs)", "sop_instance_uids"),
    "metadata": ("series records of many series (getSeriesMetadata, CSV)", "series_metadata"),
}
"""Queries by SeriesInstanceUID: help text and the :class:`Tcia` method."""


def add_tcia_commands(subparsers: Any) -> None:
    """Add ``tcia`` with one sub-command per query."""
    p = subparsers.add_parser(
        "tcia", help="query The Cancer Imaging Archive (NBIA REST API v4, no login)",
        description=f"Query TCIA's NBIA REST API v4 (default {DEFAULT_NBIA_URL}; the National Lung Screening "
        f"Trial is at {NLST_URL}). Numbers come as numbers, UIDs as text.",
    )
    queries = p.add_subparsers(dest="query", required=True, metavar="QUERY")
    for name, (text, filters) in _QUERIES.items():
        q = queries.add_parser(name, help=text, description=text)
        for key in filters:
            flag, what = _FILTERS[key]
            q.add_argument(flag, dest=key, default=None, help=what)
        _common_options(q)
        q.set_defaults(func=_query, method=name.replace("-", "_"), filters=filters)
    for name, (text, method) in _BY_SERIES.items():
        q = queries.add_parser(name, help=text, description=text)
        q.add_argument("uids", nargs="+" if name == "metadata" else 1, metavar="SERIES_UID")
        _common_options(q)
        q.set_defaults(func=_by_series, method=method)


def _common_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--base-url", default=DEFAULT_NBIA_URL, help="API root (default: TCIA's public collections)")
    q.add_argument("--csv", default=None, metavar="FILE", help="write CSV here ('-': standard output)")
    q.add_argument("--retries", type=int, default=5, help="tries again after 429/5xx/broken transfers (default 5)")
    q.add_argument("--backoff", type=float, default=0.5, help="exponential backoff factor in seconds (default 0.5)")
    q.add_argument("--debug", action="store_true", help="print every request")
    q.set_defaults(cache_dir=None, cache_expire=0.0, workers=None)  # what _client_options reads; NBIA has no cache


def _client(args: argparse.Namespace) -> Tcia:
    from archivestore.cli._ingest import _client_options
    from archivestore.sources.tcia import Tcia

    options = {k: v for k, v in _client_options(args).items() if k not in ("cache_dir", "cache_expire")}
    return Tcia(args.base_url, progress=False, **options)


@command
def _query(args: argparse.Namespace) -> int:
    tcia = _client(args)
    filters = {key: getattr(args, key) for key in args.filters}
    return show_table(getattr(tcia, args.method)(**filters), args.csv)


@command
def _by_series(args: argparse.Namespace) -> int:
    tcia = _client(args)
    uids = args.uids if args.method == "series_metadata" else args.uids[0]
    return show_table(getattr(tcia, args.method)(uids), args.csv)
