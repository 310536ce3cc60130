"""``archivestore select`` and ``archivestore export-csv``: the metadata table as the index."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from archivestore.cli._common import STORE_HELP, add_store_options, command, open_store
from archivestore.errors import NotFoundError

__all__ = ["add_table_commands"]


def add_table_commands(subparsers: Any) -> None:
    """Add ``select`` and ``export-csv``."""
    from archivestore.select import OPERATORS  # the standard library only

    p = subparsers.add_parser(
        "select",
        help="select images by metadata (isicarchive operators)",
        description="Print the ids of images whose metadata passes every CRITERION, e.g. "
        "\"meta.clinical.diagnosis != nevus\". Operators: " + ", ".join(OPERATORS) + ".",
    )
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("criteria", nargs="*", metavar="CRITERION", help='"path op value"; all must hold')
    p.add_argument("--add", action="append", default=[], metavar="CRITERION",
                   help="also select the images passing this (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="CRITERION",
                   help="then drop the images passing this (repeatable)")
    p.add_argument("--count", action="store_true", help="print only the number of images")
    p.add_argument("--table", choices=("images", "series"), default="images",
                   help="select images (metadata) or DICOM series (series_metadata)")
    p.add_argument("--columns", default=None, help="print CSV of these comma-separated fields instead of ids")
    add_store_options(p)
    p.set_defaults(func=_select)

    p = subparsers.add_parser(
        "export-csv",
        help="write the metadata as a flat CSV (isic-cli's metadata.csv columns)",
        description="Write one row per image: isic_id, attribution, copyright_license, then the sorted "
        "clinical and acquisition keys of ISIC API records, then every field of other records (challenge "
        "CSVs: clinical.*, ground_truth.*) by its dotted path; or the columns a two-column KEYS.csv "
        "(internal name, archive name) chooses and renames.",
    )
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("out", help="output CSV path ('-' for standard output)")
    p.add_argument("--keys", default=None, help="two-column CSV: internal name, archive name")
    p.add_argument("--all-fields", action="store_true", help="append every other field of API records too")
    p.add_argument("--where", action="append", default=[], metavar="CRITERION",
                   help="export only images passing this (repeatable; see 'select')")
    p.add_argument("--licenses", default=None, metavar="PATH", help="also write a licenses/attribution summary here")
    p.add_argument("--table", choices=("images", "series"), default="images",
                   help="export images (metadata) or DICOM series (series_metadata: every field by its path)")
    add_store_options(p)
    p.set_defaults(func=_export)


@command
def _select(args: argparse.Namespace) -> int:
    from archivestore.select import select

    sel = select(open_store(args), *args.criteria, table=args.table)
    for criterion in args.add:
        sel = sel.add(criterion)
    for criterion in args.remove:
        sel = sel.remove(criterion)
    if args.count:
        print(len(sel))
    elif args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        missing = [c for c in columns if c not in sel.table.columns]
        if missing:
            raise NotFoundError(f"no metadata field {', '.join(map(repr, missing))}")
        sel.frame[columns].to_csv(sys.stdout)
    else:
        for image_id in sel.ids:
            print(image_id)
    return 0


@command
def _export(args: argparse.Namespace) -> int:
    from archivestore.export import export_csv, export_series_csv, licenses_summary, read_keys
    from archivestore.select import select

    store = open_store(args)
    ids = select(store, *args.where, table=args.table).ids if args.where else None
    keys = read_keys(args.keys) if args.keys else None
    frame = store.metadata_frame(args.table)
    out = sys.stdout if args.out == "-" else args.out
    if args.table == "series":
        n = export_series_csv(frame, out, ids)
    else:
        n = export_csv(frame, out, ids, keys=keys, all_fields=args.all_fields)
    if args.licenses:
        with open(args.licenses, "w", encoding="utf-8") as f:
            f.write(licenses_summary(frame, ids))
    if args.out != "-":
        print(f"wrote {n} rows to {args.out}", file=sys.stderr)
    return 0
