"""``archivestore info``, ``verify`` and ``upgrade``: what is in a store, whether it is intact, its layout."""

from __future__ import annotations

import argparse
import json
from typing import Any

from archivestore.cli._common import add_store_options, command, open_store, print_report

__all__ = ["add_store_commands", "format_info"]


def add_store_commands(subparsers: Any) -> None:
    """Add ``verify``, ``info`` and ``upgrade``."""
    p = subparsers.add_parser("verify", help="check every image against its ingest checksums (--repair to fix)")
    p.add_argument("store")
    p.add_argument("--repair", action="store_true", help="re-ingest damaged or missing images from their origin")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    add_store_options(p)
    p.set_defaults(func=_verify)

    p = subparsers.add_parser("info", help="what is in a store")
    p.add_argument("store")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sizes", action="store_true", help="also the bytes stored per group (lists every object)")
    add_store_options(p)
    p.set_defaults(func=_info)

    p = subparsers.add_parser(
        "upgrade", help="move a layout-1 or layout-2 store to layout 3's node names (served by any HTTP server)",
        description="Move every group whose name was escaped the old way to its layout-3 name: a rename on a "
        "local disk (no chunk copied), server-side copies then deletes on a bucket. Needs the store to itself "
        "(refused while a writer holds a lease); a run cut short is finished by running it again.")
    p.add_argument("store")
    add_store_options(p)
    p.set_defaults(func=_upgrade)


@command
def _verify(args: argparse.Namespace) -> int:
    from archivestore.verify import verify

    store = open_store(args, mode="a" if args.repair else "r")
    report = verify(store, repair=args.repair, workers=args.workers, progress=not args.no_progress)
    lines = [*(("PROBLEM", p) for p in report.problems), *(("NOT REPAIRED", p) for p in report.unrepaired),
             *(("UNREACHABLE", p) for p in report.unreachable)]
    return print_report(report.summary(), report.ok, lines)


@command
def _info(args: argparse.Namespace) -> int:
    store = open_store(args, mode="r")
    info = store.info()
    if args.sizes:
        info["bytes"] = store.disk_usage()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


@command
def _upgrade(args: argparse.Namespace) -> int:
    from archivestore.store import upgrade

    report = upgrade(args.store, dict(args.storage_option))
    for old, new in report.moved + report.renamed:
        print(f"MOVED {old} -> {new}")
    print(report.summary())
    return 0


def format_info(info: dict[str, Any]) -> str:
    """``Store.info()`` (with ``bytes`` when sizes were asked for) as the lines ``archivestore info`` prints."""
    lines = [
        f"store {info['url']}",
        f"  images: {info['images']}",
        f"  metadata fields: {info['metadata_fields']}",
        f"  mask raters (besides ground_truth): {', '.join(info['mask_raters']) or '-'}",
        f"  series (volumes and segmentations): {info.get('series', 0)}",
        f"  plates: {', '.join(info.get('plates', [])) or '-'}",
        f"  slides: {', '.join(info.get('slides', [])) or '-'}",
    ]
    for name, s in info["studies"].items():
        lines += [
            f"  study {name}: {s['images']} images, {len(s['features'])} features, {len(s['raters'])} raters,"
            f" up to {s['max_superpixels']} superpixels",
            f"    features: {', '.join(s['features'])}",
            f"    raters: {', '.join(s['raters'])}",
        ]
    if "bytes" in info:
        sizes = info["bytes"]
        parts = ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in sizes.items())
        lines.append(f"  size: {sum(sizes.values()) / 1e6:,.1f} MB ({parts})")
    return "\n".join(lines)
