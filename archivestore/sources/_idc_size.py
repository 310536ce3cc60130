"""How much an IDC selection weighs, and whether a local store has room for it (``ingest idc`` asks first).

- :func:`selection_bytes`: the selection's series and bytes from the index's ``series_size_MB``
  (decimal megabytes, as IDC computes it: the sum of the instance files), leaving out the series
  already complete in the store (a rerun fetches only the rest).
- :func:`free_bytes`: the free space of the file system a local store is (or will be) on, from its
  nearest existing folder; ``None`` for a remote store (an fsspec URL), which has no such limit here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection

from archivestore.sources.idc import IdcSource

__all__ = ["free_bytes", "format_bytes", "selection_bytes"]


def selection_bytes(source: IdcSource, stored: Collection[str] = ()) -> tuple[int, int, int]:
    """``(series to fetch, their bytes, series already stored)`` of a source's selection.

    ``stored``: ids of complete series in the store (``store.series_ids()``; ``<uid>_part<k>`` count
    for ``<uid>``).
    """
    done = {s.rsplit("_part", 1)[0] for s in stored} | set(stored)
    table = source.index.sql(f'SELECT "SeriesInstanceUID" AS uid, coalesce("series_size_MB", 0) AS mb '
                             f"FROM ({source.query}\n)", source.params)
    left = table[~table["uid"].isin(done)]
    return len(left), int(round(float(left["mb"].sum()) * 1e6)), len(table) - len(left)


def free_bytes(url: str) -> int | None:
    """Free bytes where a local store lives (its nearest existing parent folder); None for remote URLs."""
    if "://" in url and not url.startswith("file://"):
        return None
    path = os.path.abspath(url.removeprefix("file://"))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return int(shutil.disk_usage(path).free)


def format_bytes(n: int) -> str:
    """``1.23 GB`` (decimal units, as IDC states sizes)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} TB"
