"""``ingest idc`` states what it will fetch before it starts, and refuses more than a local store's free space."""

from __future__ import annotations

import argparse
from typing import Any

from archivestore.cli._common import error

__all__ = ["check_room"]


def check_room(args: argparse.Namespace, source: Any) -> int | None:
    """Print the selection's size; the exit code of a refusal (no ``--yes`` and not enough room), else None."""
    from archivestore.cli._common import open_store
    from archivestore.errors import StoreNotFoundError
    from archivestore.sources._idc_size import format_bytes, free_bytes, selection_bytes

    try:
        stored = open_store(args, mode="r").series_ids()
    except StoreNotFoundError:
        stored = []
    series, size, done = selection_bytes(source, stored)
    already = f" ({done} already in the store)" if done else ""
    print(f"ingest idc: {series} series, {format_bytes(size)} to fetch{already}", flush=True)
    free = free_bytes(args.store)
    if free is not None and size > free and not args.yes:
        return error(f"the selection is {format_bytes(size)}, more than the {format_bytes(free)} free where "
                     f"{args.store} is; free space, narrow the selection, or --yes to ingest anyway")
    return None
