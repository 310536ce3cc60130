"""Segmentation overlap across raters: archivestore vs a numpy loop over the decoded masks.

``--series`` series (default 100), each segmented by 2 raters with ``--segments`` segments
(default 10) on a ``--shape`` grid (default 64x128x128, ~1 M voxels): organ-like ellipsoids
of 1-30 % of the volume; the second rater's are the first's moved and resized a little and, in
every other series (``--fractional-every``), FRACTIONAL (float32 k/255), matched by code with the
segments in another order. To bound memory the series draw their segmentation pairs from a pool of ``--pool``
distinct pairs (default 20); one series' masks (30-60 MB) exceed the CPU caches, so the reuse
favours neither side.

Measured in one run, on the same in-memory Datasets:

- **archivestore**: ``segmentation_overlap(groups).compute()`` (dask threads): Dice, Jaccard and
  volumes of every ordered pair and segment of every series.
- **plain numpy loop** (the baseline of the goal): per series, per ordered pair of raters, per
  segment: ``x = a >= 0.5``, ``y = b >= 0.5``, ``np.logical_and(x, y).sum()``, ``x.sum()``,
  ``y.sum()``, then Dice and Jaccard; per rater and segment ``(m >= 0.5).sum()`` for the volume.
- **tuned numpy loop** (for reference): the same loop, one thread, with archivestore's kernel
  per pair (exact integer cut, ``np.count_nonzero`` of ``&``), to separate the algorithm from
  dask's parallelism.
- **one read of every voxel** (for reference): ``np.count_nonzero`` of every labels array once,
  one thread: what reading the masks alone costs, a floor for any exact method.

Every side runs ``--repeat`` times, interleaved round by round, and each is reported by its
median (wall and CPU). All three agree (checked to 1e-9). With ``--from-store`` the same figures are also taken with the
segmentations read from a Zarr store on disk (chunks of the layout: 1 segment x 16 slices),
the baseline reading each segmentation with ``.values`` before its loop.

Run::

    .venv/bin/python benchmarks/bench_segmentation_overlap.py [--series 100] [--from-store]

Goal (issue 9): at least 20x the plain numpy loop.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dask
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note, machine, workdir  # noqa: E402

from archivestore.analysis import segmentation_overlap  # noqa: E402

THRESHOLD = 0.5
SPACING = (2.5, 0.8, 0.8)


def ellipsoid(shape: tuple[int, int, int], centre: np.ndarray, radius: np.ndarray, fractional: bool) -> np.ndarray:
    """0/1 uint8 inside the ellipsoid, or float32 k/255 fading out over its rim."""
    axes = [(np.arange(n) - c) / r for n, c, r in zip(shape, centre, radius, strict=True)]
    d = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    if fractional:
        return (np.round(np.clip(1.5 - d, 0, 1) * 255) / 255).astype(np.float32)
    return (d < 1).astype(np.uint8)


def seg_pair(rng: np.random.Generator, shape: tuple[int, int, int], n_seg: int, fractional: bool,
             series: str, k: int) -> list[xr.Dataset]:
    """Two raters' segmentation Datasets of one series (the layout's ``segmentations/<uid>``)."""
    size = np.array(shape, dtype=np.float64)
    first, second = [], []
    for _ in range(n_seg):
        centre = rng.uniform(0.25, 0.75, 3) * size
        radius = rng.uniform(0.12, 0.35, 3) * size
        first.append(ellipsoid(shape, centre, radius, False))
        second.append(ellipsoid(shape, centre + rng.normal(0, 0.03, 3) * size,
                                radius * rng.uniform(0.85, 1.15, 3), fractional))
    codes = [f"{1000 + s}:SCT" for s in range(n_seg)]
    out = []
    for r, (planes, order) in enumerate(((first, list(range(n_seg))), (second, list(range(n_seg))[::-1]))):
        labels = np.stack([planes[i] for i in order])
        out.append(xr.Dataset(
            {"labels": (("segment", "z", "y", "x"), labels)},
            coords={"segment": np.arange(1, n_seg + 1),
                    "segment_code": ("segment", np.array([codes[i] for i in order], dtype=object)),
                    "segment_label": ("segment", np.array([f"organ {i}" for i in order], dtype=object)),
                    "z": np.arange(shape[0]) * SPACING[0], "y": np.arange(shape[1]) * SPACING[1],
                    "x": np.arange(shape[2]) * SPACING[2]},
            attrs={"rater": f"rater {r}", "source_series": series, "spacing": list(SPACING),
                   "series_instance_uid": f"2.25.{k}.{r}",
                   "segmentation_type": "FRACTIONAL" if labels.dtype == np.float32 else "BINARY"},
        ))
    return out


def make_groups(n_series: int, n_seg: int, shape: tuple[int, int, int], pool: int,
                fractional_every: int) -> dict[str, list[xr.Dataset]]:
    rng = np.random.default_rng(0)
    pairs = [seg_pair(rng, shape, n_seg, fractional_every > 0 and k % fractional_every == fractional_every - 1,
                      f"1.2.826.0.{k}", k) for k in range(min(pool, n_series))]
    return {f"1.2.826.0.{i}": pairs[i % len(pairs)] for i in range(n_series)}


def _decoded(seg: xr.Dataset) -> tuple[str, dict[str, np.ndarray]]:
    labels = seg["labels"].values
    return str(seg.attrs["rater"]), {str(c): labels[i] for i, c in enumerate(seg["segment_code"].values)}


def plain_loop(groups: Mapping[str, Sequence[xr.Dataset]]) -> dict[tuple[str, str, str, str], tuple[float, ...]]:
    """The baseline: per ordered pair and segment, np.logical_and sums of the binarised masks."""
    out: dict[tuple[str, str, str, str], tuple[float, ...]] = {}
    for series, segs in groups.items():
        decoded = [_decoded(seg) for seg in segs]
        voxel_ml = math.prod(SPACING) / 1000
        for (ra, a), (rb, b) in itertools.permutations(decoded, 2):
            for key in a.keys() & b.keys():
                x, y = a[key] >= THRESHOLD, b[key] >= THRESHOLD
                inter, sx, sy = np.logical_and(x, y).sum(), x.sum(), y.sum()
                out[series, key, ra, rb] = (2 * inter / (sx + sy), inter / (sx + sy - inter), sx * voxel_ml)
    return out


def _cut_mask(m: np.ndarray) -> np.ndarray:
    return m >= (np.uint8(math.ceil(THRESHOLD)) if m.dtype == np.uint8 else m.dtype.type(THRESHOLD))


def tuned_loop(groups: Mapping[str, Sequence[xr.Dataset]]) -> dict[tuple[str, str, str, str], tuple[float, ...]]:
    """One thread, archivestore's kernel pair by pair: exact integer cut, count_nonzero of the &."""
    out: dict[tuple[str, str, str, str], tuple[float, ...]] = {}
    for series, segs in groups.items():
        decoded = [_decoded(seg) for seg in segs]
        voxel_ml = math.prod(SPACING) / 1000
        for (ra, a), (rb, b) in itertools.permutations(decoded, 2):
            for key in a.keys() & b.keys():
                x, y = _cut_mask(a[key]), _cut_mask(b[key])
                inter, sx, sy = np.count_nonzero(x & y), np.count_nonzero(x), np.count_nonzero(y)
                out[series, key, ra, rb] = (2 * inter / (sx + sy), inter / (sx + sy - inter), sx * voxel_ml)
    return out


def largest_difference(ours: xr.Dataset, ref: Mapping[tuple[str, str, str, str], tuple[float, ...]]) -> float:
    worst = 0.0
    dice, jaccard, volume = (ours[n].values for n in ("dice", "jaccard", "volume_ml"))
    index = {n: {v: i for i, v in enumerate(ours[n].values)} for n in ("series", "segment", "rater")}
    for (series, key, ra, rb), values in ref.items():
        s, k, a, b = index["series"][series], index["segment"][key], index["rater"][ra], index["rater"][rb]
        got = (dice[s, k, a, b], jaccard[s, k, a, b], volume[s, k, a])
        worst = max(worst, *(abs(float(g) - float(v)) for g, v in zip(got, values, strict=True)))
    if len(ref) != int(np.count_nonzero(~np.isnan(dice))):
        raise SystemExit("archivestore and the loop define different pairs")
    return worst


def clock(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds of one call, and its result."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def measure(label: str, groups: Mapping[str, Sequence[xr.Dataset]], repeat: int) -> float:
    """Each side ``repeat`` times, interleaved (one call of each per round, so a change of load falls on
    all of them alike), reported by the same statistic: the median wall and CPU seconds."""
    sides: dict[str, Callable[[], object]] = {
        "archivestore": lambda: segmentation_overlap(groups, threshold=THRESHOLD).compute(scheduler="threads"),
        "plain": lambda: plain_loop(groups),
        "tuned": lambda: tuned_loop(groups),
        "floor": lambda: [np.count_nonzero(seg["labels"].values) for segs in groups.values() for seg in segs],
    }
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for k, fn in sides.items():
            wall_k, cpu_k, results[k] = clock(fn)
            runs[k].append((wall_k, cpu_k))
    med = {k: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for k, r in runs.items()}
    (wall, cpu), (base_wall, base_cpu) = med["archivestore"], med["plain"]
    (tuned_wall, _), (floor_wall, floor_cpu) = med["tuned"], med["floor"]
    ours, base, tuned = results["archivestore"], results["plain"], results["tuned"]
    assert isinstance(ours, xr.Dataset) and isinstance(base, dict) and isinstance(tuned, dict)
    err = max(largest_difference(ours, base), largest_difference(ours, tuned))
    print(f"[{label}] medians of {repeat} interleaved runs of each; {load_note()}")
    print(f"  plain numpy loop:        {base_wall:7.2f} s wall, {base_cpu:7.2f} s CPU ({len(base)} pair-segments)")
    print(f"  tuned numpy loop:        {tuned_wall:7.2f} s wall")
    print(f"  one read of every voxel: {floor_wall:7.2f} s wall, {floor_cpu:7.2f} s CPU "
          "(np.count_nonzero of each labels array, one thread: the floor of any method)")
    print(f"  archivestore (threads):  {wall:7.2f} s wall, {cpu:7.2f} s CPU")
    print(f"  ratio vs plain loop: {base_wall / wall:.1f}x wall, {base_cpu / cpu:.1f}x CPU (goal >= 20x); "
          f"vs tuned loop: {tuned_wall / wall:.1f}x wall; largest difference {err:.1e}")
    if err > 1e-9:
        raise SystemExit("results differ by more than 1e-9")
    return base_wall / wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X"))
    parser.add_argument("--pool", type=int, default=20, help="distinct segmentation pairs the series draw from")
    parser.add_argument("--fractional-every", type=int, default=2, metavar="N",
                        help="the second rater is FRACTIONAL in every N-th series (0: never; default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, interleaved (medians kept)")
    parser.add_argument("--from-store", action="store_true", help="also time it from a Zarr store on disk")
    args = parser.parse_args(argv)

    print(machine())
    print(load_note())
    shape = tuple(args.shape)
    groups = make_groups(args.series, args.segments, shape, args.pool, args.fractional_every)
    voxels = args.series * 2 * args.segments * math.prod(shape)
    print(f"{args.series} series x 2 raters x {args.segments} segments on {shape[0]}x{shape[1]}x{shape[2]}: "
          f"{voxels / 1e9:.2f} G label voxels; second rater FRACTIONAL in "
          f"{'no series' if args.fractional_every <= 0 else f'every {args.fractional_every}. series'}")
    measure("in memory", groups, args.repeat)
    if args.from_store:
        with workdir("segoverlap-") as tmp:
            store = tmp / "store.zarr"
            for segs in groups.values():
                for seg in segs:
                    group = f"segmentations/{seg.attrs['series_instance_uid']}"
                    if not (store / group).exists():
                        seg.to_zarr(store, group=group, zarr_format=3, consolidated=False,
                                    encoding={"labels": {"chunks": (1, 16, *shape[1:])}})
            with dask.config.set(scheduler="threads"):
                lazy = {s: [xr.open_zarr(store, group=f"segmentations/{seg.attrs['series_instance_uid']}",
                                         consolidated=False) for seg in segs] for s, segs in groups.items()}
                measure("from a Zarr store on disk", lazy, args.repeat)


if __name__ == "__main__":
    main()
