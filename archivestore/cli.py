"""The ``archivestore`` command (also ``python -m archivestore``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from archivestore._export import add_export_command
from archivestore._select import add_select_command
from archivestore.analysis import add_heatmap_command, add_overlap_command, add_score_command
from archivestore.sources._isic_cli import add_ingest_isic_commands

__all__ = ["main", "storage_options"]


def storage_options(pairs: Sequence[str] | None) -> dict:
    """``["key=value", ...]`` → dict; values that parse as JSON (true, 3) are converted."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--storage-option wants key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--storage-option key=value`` (repeatable), for any command that opens a store."""
    parser.add_argument("--storage-option", "-O", action="append", metavar="KEY=VALUE", dest="storage_option",
                        help="fsspec storage option for the store URL (repeatable), e.g. anon=true")


def _print_report(report, source=None) -> int:
    for bad in report.failed:
        print(f"FAILED {bad}", file=sys.stderr)
    extra = ""
    if source is not None and getattr(source, "csv_only", None):
        extra = f"; {len(source.csv_only)} CSV rows without an image file"
    print(f"{report.summary()}{extra}")
    return 0 if report.ok else 1


def _cmd_demo(args) -> int:
    from archivestore.demo import run_demo
    return run_demo(args.store, progress=not args.no_progress)


def _cmd_ingest_challenge(args) -> int:
    from archivestore import ingest, open_store
    from archivestore.sources import ChallengeSource

    source = ChallengeSource(args.dirs, study=args.study, rater=args.rater)
    store = open_store(args.store, mode="a", storage_options=storage_options(args.storage_option))
    report = ingest(store, source, workers=args.workers, client=args.scheduler, progress=not args.no_progress)
    return _print_report(report, source)


def _cmd_verify(args) -> int:
    from archivestore import open_store
    from archivestore.verify import verify

    store = open_store(args.store, mode="a" if args.repair else "r",
                       storage_options=storage_options(args.storage_option))
    report = verify(store, repair=args.repair, workers=args.workers, progress=not args.no_progress)
    for problem in report.problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    for problem in report.unrepaired:
        print(f"NOT REPAIRED {problem}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_info(args) -> int:
    from archivestore import open_store

    store = open_store(args.store, mode="r", storage_options=storage_options(args.storage_option))
    info = store.info()
    if args.sizes:
        info["bytes"] = store.disk_usage()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"store {info['url']}")
    print(f"  images: {info['images']}")
    print(f"  metadata fields: {info['metadata_fields']}")
    print(f"  mask raters (besides ground_truth): {', '.join(info['mask_raters']) or '-'}")
    for name, s in info["studies"].items():
        print(f"  study {name}: {s['images']} images, {len(s['features'])} features, {len(s['raters'])} raters,"
              f" up to {s['max_superpixels']} superpixels")
        print(f"    features: {', '.join(s['features'])}")
        print(f"    raters: {', '.join(s['raters'])}")
    if args.sizes:
        total = sum(info["bytes"].values())
        print(f"  size: {total / 1e6:,.1f} MB (" + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in info["bytes"].items())
              + ")")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archivestore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="build the embedded sample archive into a store and show it")
    p.add_argument("store", nargs="?", default="archivestore-demo.zarr")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("ingest", help="fill a store from a source")
    ingest_sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    c = ingest_sub.add_parser("challenge", help="ISIC challenge files on disk (2016/2017/2018 layouts)")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument("--store", required=True)
    c.add_argument("--study", help="study for *_features.json (default: the directory's name)")
    c.add_argument("--rater", default="ground_truth", help="whose masks/features these are (default ground_truth)")
    c.add_argument("--workers", type=int, default=None, help="worker threads (default: CPUs)")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--scheduler", metavar="ADDRESS", help="run on a dask.distributed cluster (scheduler address)")
    add_store_options(c)
    c.set_defaults(func=_cmd_ingest_challenge)
    add_ingest_isic_commands(ingest_sub)

    p = sub.add_parser("verify", help="check every image against its ingest checksums (--repair to fix)")
    p.add_argument("store")
    p.add_argument("--repair", action="store_true", help="re-ingest damaged or missing images from their origin")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    add_store_options(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("info", help="what is in a store")
    p.add_argument("store")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sizes", action="store_true", help="also the bytes stored per group (lists every object)")
    add_store_options(p)
    p.set_defaults(func=_cmd_info)

    add_overlap_command(sub)            # has its own --scheduler
    for add in (add_score_command, add_heatmap_command):
        _on_cluster(add(sub))
    add_select_command(sub)
    add_export_command(sub)
    return parser


def _on_cluster(parser: argparse.ArgumentParser) -> None:
    """Give an analysis command ``--scheduler ADDRESS``: its dask work then runs on that cluster."""
    parser.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler address (default: threads)")
    run = parser.get_default("func")

    def func(args) -> int:
        if not args.scheduler:
            return run(args)
        from distributed import Client

        with Client(args.scheduler):
            return run(args)

    parser.set_defaults(func=func)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"archivestore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
