"""``archivestore info`` and ``archivestore verify``: what is in a store, and whether it is intact."""

from __future__ import annotations

import argparse
import json
from typing import Any

from archivestore.cli._common import add_store_options, command, open_store, print_report

__all__ = ["add_store_commands", "format_info"]


def add_store_commands(subparsers: Any) -> None:
    """Add ``verify`` and ``info``."""
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


@command
def _verify(args: argparse.Namespace) -> int:
    from archivestore.verify import verify

    store = open_store(args, mode="a" if args.repair else "r")
    report = verify(store, repair=args.repair, workers=args.workers, progress=not args.no_progress)
    lines = [*(("PROBLEM", p) for p in report.problems), *(("NOT REPAIRED", p) for p in report.unrepaired)]
    return print_report(report.summary(), report.ok, lines)


@command
def _info(args: argparse.Namespace) -> int:
    store = open_store(args, mode="r")
    info = store.info()
    if args.sizes:
        info["bytes"] = store.disk_usage()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
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
