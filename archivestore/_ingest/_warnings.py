"""The warnings one item's reading raises, as notes of that item.

:func:`warnings.catch_warnings` swaps process-wide state: two worker threads that each catch their own
item's warnings at once lose them or swap them (two RTSTRUCTs ingested side by side each got the other's
skipped-contour WARNING). So the reads that report through warnings are caught one thread at a time; they
hold the GIL for most of their time anyway (pydicom's parsing), so little parallelism is lost.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

__all__ = ["with_notes"]

T = TypeVar("T")

_CATCHING = threading.Lock()


def with_notes(item_id: str, read: Callable[[], T]) -> tuple[T, list[str]]:
    """Run ``read()`` and return its result with each warning it raised as ``"<item_id>: <message>"``."""
    with _CATCHING, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read()
    return result, [f"{item_id}: {w.message}" for w in caught]
