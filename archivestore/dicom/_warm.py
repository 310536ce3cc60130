"""Readers whose first call runs alone.

highdicom reads its tables of the DICOM standard (module and attribute maps, several MB of JSON) on
first use and keeps them in :func:`functools.lru_cache`, which does not lock: eight ingest workers
that meet their first SEG at once each parse the tables again. Eight SEGs read on eight threads
cost 2.9 s CPU that way, against 0.44 s once the tables are loaded (plus 0.45 s for the one load).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["first_call_alone"]

P = ParamSpec("P")
T = TypeVar("T")


def first_call_alone(func: Callable[P, T]) -> Callable[P, T]:
    """``func``, its calls made one at a time until one has returned (then freely in parallel)."""
    lock = threading.Lock()
    warm = threading.Event()

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if warm.is_set():
            return func(*args, **kwargs)
        with lock:
            result = func(*args, **kwargs)
        warm.set()
        return result

    return wrapper
