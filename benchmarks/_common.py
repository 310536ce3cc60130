"""Shared helpers of the store benchmarks: synthetic ISIC-like files, timing, request counting.

Nothing here is part of archivestore; the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zarr.storage
from PIL import Image

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


# -- synthetic images --------------------------------------------------------------------
def superpixels(rng: np.random.Generator, h: int, w: int, step: int = 100, strip: int = 512) -> np.ndarray:
    """Jittered-grid Voronoi cells numbered 0..N-1, like ``archivestore.demo._superpixels``.

    Same construction (one seed per ``step`` cell, nearest of the nine neighbouring
    seeds), computed in row strips so a 6000x4000 index needs little memory.
    """
    gh, gw = -(-h // step), -(-w // step)
    cy, cx = np.mgrid[0:gh, 0:gw]
    seed_y = (cy + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    seed_x = (cx + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    label = np.empty((h, w), dtype=np.uint32)
    xx = np.arange(w)[None, :]
    px = xx // step
    for y0 in range(0, h, strip):
        yy = np.arange(y0, min(h, y0 + strip))[:, None]
        py = yy // step
        best = np.full((yy.shape[0], w), np.inf)
        lab = np.zeros((yy.shape[0], w), dtype=np.uint32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = np.clip(py + dy, 0, gh - 1), np.clip(px + dx, 0, gw - 1)
                d = (yy - seed_y[ny, nx]) ** 2 + (xx - seed_x[ny, nx]) ** 2
                closer = d < best
                best[closer] = d[closer]
                lab[closer] = (ny * gw + nx)[closer]
        label[y0:y0 + yy.shape[0]] = lab
    counts = np.bincount(label.ravel(), minlength=gh * gw)
    if (counts == 0).any():  # renumber densely (rare: a seed cell won by its neighbours)
        lut = np.cumsum(counts > 0, dtype=np.int64) - 1
        label = lut[label].astype(np.uint32)
    return label


def lesion(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like RGB image (skin, dark irregular lesion, sensor noise) and its 0/1 mask."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.18, 0.3), w * rng.uniform(0.18, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.06 * np.sin(7 * angle)
    r = (np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / wobble).astype(np.float32)
    mask = (r < 1).astype(np.uint8)
    shade = np.clip(1.2 - r, 0, 1)[..., None]
    skin = np.array([226, 180, 160], np.float32)
    dark = np.array([110, 70, 50], np.float32) - 40 * np.clip(1 - r, 0, 1)[..., None]
    rgb = skin * (1 - shade) + dark * shade
    # smooth large-scale illumination and fine noise, as in a dermoscopy photograph
    gy = rng.normal(0, 1, (h // 64 + 2, w // 64 + 2, 1)).astype(np.float32)
    illum = np.asarray(Image.fromarray((gy[..., 0] * 20 + 128).clip(0, 255).astype(np.uint8))
                       .resize((w, h), Image.BICUBIC), np.float32)[..., None] - 128
    rgb += illum * 0.4
    rgb += rng.normal(0, 5, (h, w, 3)).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# -- request counting --------------------------------------------------------------------
class CountingStore(zarr.storage.WrapperStore):
    """Counts the store operations made through it (as tests/test_requests.py does)."""

    def __init__(self, store):
        super().__init__(store)
        self.counts: Counter = Counter()

    async def get(self, key, prototype, byte_range=None):
        self.counts["get"] += 1
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        self.counts["get"] += len(key_ranges)
        return await self._store.get_partial_values(prototype, key_ranges)

    async def exists(self, key):
        self.counts["exists"] += 1
        return await self._store.exists(key)

    def list(self):
        self.counts["list"] += 1
        return self._store.list()

    def list_prefix(self, prefix):
        self.counts["list"] += 1
        return self._store.list_prefix(prefix)

    def list_dir(self, prefix):
        self.counts["list"] += 1
        return self._store.list_dir(prefix)

    def total(self) -> int:
        return sum(self.counts.values())
