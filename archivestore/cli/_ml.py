"""``archivestore split`` (leak-free splits kept in the store) and ``archivestore export hf`` (Hugging Face)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from archivestore.cli._common import STORE_HELP, add_store_options, command, open_store, print_report

__all__ = ["add_hf_export", "add_split_command"]


def add_split_command(subparsers: Any) -> None:
    """Add ``split``."""
    p = subparsers.add_parser(
        "split", help="assign whole patients/lesions/studies to train/validation/test, kept in the store",
        description="Assign whole groups of items (all items sharing a value of any --by field) to the parts "
        "of a split, deterministically for --seed, and write the assignment to splits/NAME (one row per item, "
        "plus this command). Items without a --by value are reported and left out. With --show NAME, print a "
        "stored split; with --list, the stored splits.")
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("--by", nargs="+", metavar="FIELD",
                   help="grouping field(s), e.g. metadata.clinical.patient_id (dotted paths of the table)")
    p.add_argument("--fractions", nargs="+", type=float, default=[0.8, 0.1, 0.1], metavar="F",
                   help="each part's share of the items (default 0.8 0.1 0.1)")
    p.add_argument("--parts", nargs="+", default=None, metavar="NAME",
                   help="the parts' names (default train validation test; train test for two fractions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default 0)")
    p.add_argument("--name", default="v1", help="the split's name: splits/NAME (default v1; never replaced)")
    p.add_argument("--stratify", default=None, metavar="FIELD", help="keep this field's classes in proportion")
    p.add_argument("--where", action="append", default=[], metavar="CRITERION",
                   help="split only the items passing this (repeatable; see 'select')")
    p.add_argument("--table", choices=("images", "series"), default="images",
                   help="split images (metadata) or volumes (series_metadata)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any item is left out")
    p.add_argument("--show", default=None, metavar="NAME", help="print the stored split NAME as CSV")
    p.add_argument("--list", action="store_true", help="list the stored splits")
    add_store_options(p)
    p.set_defaults(func=_split)


@command
def _split(args: argparse.Namespace) -> int:
    from archivestore.errors import InvalidInputError
    from archivestore.ml import list_splits, make_split, read_split

    if args.list:
        for name in list_splits(open_store(args)):
            print(name)
        return 0
    if args.show:
        table = read_split(open_store(args), args.show)
        print(f"# {table.attrs['split'].get('command', '')}", file=sys.stderr)
        table.to_csv(sys.stdout, lineterminator="\n")
        return 0
    if not args.by:
        raise InvalidInputError("split needs --by FIELD (or --show NAME, --list)")
    line = "archivestore split " + shlex.join(_argv(args))
    report = make_split(open_store(args, "a"), args.by, args.fractions, seed=args.seed, name=args.name,
                        where=args.where, stratify=args.stratify, parts=args.parts, table=args.table, command=line)
    lines = [("LEFT OUT", f"{i}: {why}") for i, why in report.unplaced.items()]
    lines += [("MIXED", f"{g}: {why}") for g, why in report.mixed.items()]
    return print_report(report.summary(), not (args.strict and report.unplaced), lines)


def _argv(args: argparse.Namespace) -> list[str]:
    """The arguments of this ``split`` run, every choice spelled out (storage options left out: they may hold
    secrets)."""
    out = [args.store, "--by", *args.by, "--fractions", *map(str, args.fractions), "--seed", str(args.seed),
           "--name", args.name]
    out += ["--stratify", args.stratify] if args.stratify else []
    out += ["--parts", *args.parts] if args.parts else []
    out += [x for w in args.where for x in ("--where", w)]
    return out + (["--table", args.table] if args.table != "images" else [])


def add_hf_export(formats: Any) -> None:
    """Add the ``hf`` format to ``export``."""
    q = formats.add_parser(
        "hf", help="a Hugging Face dataset (datasets.load_from_disk): lossless PNG images, licence per image",
        description="Write the images (and masks) with their metadata as columns, licence and attribution per "
        "image, as Arrow files that datasets.load_from_disk opens; with --split NAME, the stored split's parts "
        "are the dataset's splits. Needs the hf extra (pip install 'archivestore[hf]').")
    q.add_argument("store", help=STORE_HELP)
    q.add_argument("out", help="output folder (written beside, then moved into place)")
    q.add_argument("--where", action="append", default=[], metavar="CRITERION",
                   help="export only images passing this (repeatable; see 'select')")
    q.add_argument("--split", default=None, metavar="NAME", help="the stored split whose parts become the splits")
    q.add_argument("--arrays", nargs="+", default=["image", "mask"], metavar="ARRAY",
                   help="image arrays to export as PNG (default image mask; also superpixels)")
    q.add_argument("--fields", nargs="+", default=None, metavar="FIELD",
                   help="metadata fields to keep as columns (default all)")
    add_store_options(q)
    q.set_defaults(func=_export_hf)


@command
def _export_hf(args: argparse.Namespace) -> int:
    from archivestore.ml import export_hf

    report = export_hf(open_store(args), args.out, where=args.where, split=args.split, arrays=args.arrays,
                       fields=args.fields)
    lines = [("FAILED", f"{i}: {why}") for i, why in report.failed.items()]
    return print_report(report.summary(), not report.failed, lines)
