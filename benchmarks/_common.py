"""Shared helpers of the store benchmarks: working directories, machine notes, timing.

The synthetic images and the request-counting store come from :mod:`archivestore.testing`;
nothing here is part of archivestore, the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import zarr

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"  # gitignored


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh directory under ``benchmarks/_work/``, removed afterwards unless ``keep``."""
    WORK.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=WORK))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()  # only if nothing else is in it


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, zarr {zarr.__version__}; load average {load}")


def load_note() -> str:
    """A warning when other processes keep the CPUs busy (wall times are then inflated)."""
    one = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if one > 0.5 * cores:
        return (f"note: 1-minute load average {one:.1f} on {cores} CPUs: other processes compete for "
                f"the CPUs, wall-time figures are inflated; the CPU-time figures are less affected")
    return f"1-minute load average {one:.1f} on {cores} CPUs"


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 0) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeat))


def fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.3f} s "
