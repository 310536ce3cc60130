"""Ingest wall time against the pure decode time of the same files divided by the cores.

Two archives in the ISIC 2017 challenge layout, photo-like images (smooth skin and an
irregular dark lesion, soft illumination and sensor noise, JPEG quality 92) with
RGB-encoded superpixel PNGs (~1000 superpixels) and lesion masks:

* ``images``: ``--n`` images (default 48) of mixed sizes, 1024x768 to 3000x2000
  (``ISIC-2017_Training_Data/``, ``ISIC-2017_Training_Part1_GroundTruth/``, a ground-truth CSV);
* ``part2``: ``--n-part2`` images (default 120) of 1024x768 that also have 2017 Part 2
  features (``ISIC-2017_Training_Part2_GroundTruth/ISIC_nnnnnnn_features.json``: five
  features, a 0/1 value per superpixel), which ingest turns into the study
  ``studies/ISIC-2017_Training_Part2_GroundTruth`` (per-superpixel areas from the superpixels
  and the mask, values per feature and rater).

For each it measures:

* baseline: reading and decoding every file serially (``decode_image`` +
  ``decode_superpixels`` + ``decode_mask``, ``json.loads`` of the features), divided by
  ``os.cpu_count()`` — the wall time a perfectly parallel ingest that only decodes would need;
  for reference, Pillow's own decoding of the image files (no conversion to arrays) and the
  archivestore decoding on a thread pool of ``os.cpu_count()`` threads;
* contender: ``ingest(open_store(tmp, mode="a"), ChallengeSource([dirs]), progress=False)``
  into a fresh store, wall time (median of ``--repeat``), the process CPU time it used, and
  the store's size on disk by part.

Printed: ratio = ingest wall time / baseline. With ``--profile`` it runs one more ingest
with every worker thread under cProfile (thread CPU time) and prints where the CPU goes,
by ingest stage and by function, and a serial cost model of each step.

Run::

    .venv/bin/python benchmarks/bench_ingest.py [--quick] [--case images|part2] [--n 48] [--n-part2 120]
        [--repeat 3] [--profile] [--zarr threading.max_workers=2] [--compare threading.max_workers=1 ...]

Goal (issue 11): ingest wall time at most 1.5x the decode time / cores for both archives,
with the store no more than 10 % larger than before.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.imaging import decode_image, decode_mask, decode_superpixels, encode_superpixels_rgb  # noqa: E402
from archivestore.sources import ChallengeSource  # noqa: E402
from archivestore.testing.sample import jpeg, lesion_image, png, voronoi_superpixels  # noqa: E402

GOAL = 1.5
TRAIN = "ISIC-2017_Training_Data"
MASKS = "ISIC-2017_Training_Part1_GroundTruth"
PART2 = "ISIC-2017_Training_Part2_GroundTruth"
FEATURES = ["globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks"]
MIXED = [(768, 1024), (768, 1024), (1536, 2048), (2000, 3000)]  # (rows, cols), cycled
SP_PER_IMAGE = 1000


def _write_one(args) -> int:
    k, h, w, root, part2 = args
    rng = np.random.default_rng(1000 + k)
    image_id = f"ISIC_{k:07d}"
    rgb, mask = lesion_image(rng, h, w)
    step = max(8, int(round((h * w / SP_PER_IMAGE) ** 0.5)))
    sp = voronoi_superpixels(rng, h, w, step)
    root = Path(root)
    (root / TRAIN / f"{image_id}.jpg").write_bytes(jpeg(rgb))
    (root / TRAIN / f"{image_id}_superpixels.png").write_bytes(encode_superpixels_rgb(sp))
    (root / MASKS / f"{image_id}_segmentation.png").write_bytes(png(mask * 255))
    if part2:  # the real files' form: {feature: [0 or 1 per superpixel]}, marked only inside the lesion
        n = int(sp.max()) + 1
        inside = np.bincount(sp.ravel(), weights=mask.ravel(), minlength=n) > 0
        values = {f: ((rng.random(n) < p) & inside).astype(int).tolist()
                  for f, p in zip(FEATURES, (0.2, 0.05, 0.05, 0.4, 0.1), strict=True)}
        (root / PART2 / f"{image_id}_features.json").write_text(json.dumps(values))
    return h * w


def write_archive(root: Path, sizes: list[tuple[int, int]], part2: bool) -> list[Path]:
    dirs = [root / TRAIN, root / MASKS] + ([root / PART2] if part2 else [])
    for d in dirs:
        d.mkdir(parents=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_one, [(k, h, w, str(root), part2) for k, (h, w) in enumerate(sizes)]))
    with open(root / TRAIN / "ISIC-2017_Training_Part3_GroundTruth.csv", "w", newline="") as fh:
        rows = [["image_id", "melanoma", "seborrheic_keratosis"]]
        rows += [[f"ISIC_{k:07d}", float(k % 3 == 0), float(k % 5 == 0)] for k in range(len(sizes))]
        csv.writer(fh).writerows(rows)
    return dirs


def reuse_archive(root: Path, sizes: list[tuple[int, int]], part2: bool) -> list[Path]:
    """The archive drawn under ``root`` earlier, drawn now if it is not there."""
    done = root / "complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        write_archive(root, sizes, part2)
        done.touch()
    return [root / TRAIN, root / MASKS] + ([root / PART2] if part2 else [])


def decode_json(data: bytes) -> object:
    return json.loads(data)


def pillow_only(data: bytes) -> object:
    """Pillow's decoding of the file into its own image memory (no array)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def archive_files(dirs: list[Path], n: int, part2: bool) -> list[tuple[Path, object]]:
    files = []
    for k in range(n):
        image_id = f"ISIC_{k:07d}"
        files += [(dirs[0] / f"{image_id}.jpg", decode_image),
                  (dirs[0] / f"{image_id}_superpixels.png", decode_superpixels),
                  (dirs[1] / f"{image_id}_segmentation.png", decode_mask)]
        if part2:
            files.append((dirs[2] / f"{image_id}_features.json", decode_json))
    return files


def _median(values: object) -> float:
    return float(statistics.median(values))  # type: ignore[arg-type]


def cpu_time(fn: object) -> float:
    """Process CPU seconds of one call."""
    t = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - t


def decode_all(files: list[tuple[Path, object]]) -> None:
    for path, decoder in files:
        decoder(path.read_bytes())


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


WORKERS: int | None = None  # ingest's default (the number of CPUs) unless --workers


def run_ingest(dirs: list[Path], store_path: Path):
    if store_path.exists():
        shutil.rmtree(store_path)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    report = ingest(open_store(store_path, mode="a"), ChallengeSource(dirs), progress=False, workers=WORKERS)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    assert report.ok and report.failed == [], report.failed
    return wall, cpu, report


def fresh_zarr_pool() -> None:
    """Give zarr's event loop a new codec thread pool made under the current ``threading.max_workers``.

    zarr makes its pool once per process; without this a later run would keep the first run's.
    (zarr's private ``zarr.core.sync`` module: a benchmark's liberty.)
    """
    import zarr.core.sync as zsync

    old = zsync._executor
    pool = ThreadPoolExecutor(max_workers=zarr.config.get("threading.max_workers", None),
                              thread_name_prefix="zarr_pool")
    zsync._get_loop().set_default_executor(pool)
    zsync._executor = pool
    if old is not None:
        old.shutdown(wait=False)


def store_sizes(store_path: Path) -> dict[str, int]:
    """Bytes on disk by part: each array of the image groups, the studies, everything else."""
    out: dict[str, int] = defaultdict(int)
    for path in store_path.rglob("*"):
        if not path.is_file():
            continue
        parts = path.relative_to(store_path).parts
        if parts[0] == "images" and len(parts) > 3:
            key = f"images/*/{parts[2]}"
        elif parts[0] == "studies":
            key = "studies"
        else:
            key = "metadata documents, tables, other"
        out[key] += path.stat().st_size
    return dict(sorted(out.items()))


def measure_case(name: str, dirs: list[Path], files: list[tuple[Path, object]], n: int, mpx: float,
                 repeat: int, tmp: Path, variants: list[dict[str, object]]) -> float:
    """Baseline and ingest of one archive; prints the figures and returns the wall-time ratio.

    Each ``variants`` entry (zarr config settings) is ingested in turn with the plain run
    within each repeat, so load changes fall on all alike.
    """
    cores = os.cpu_count() or 1
    decode_all(files)  # warm the page cache
    by_kind = {}
    for kind, decoder in (("image", decode_image), ("superpixels", decode_superpixels), ("mask", decode_mask),
                          ("features", decode_json)):
        part = [f for f in files if f[1] is decoder]
        if part:
            by_kind[kind] = cpu_time(lambda p=part: decode_all(p))
    images = [(p, pillow_only) for p, d in files if d is not decode_json]
    pillow = cpu_time(lambda: decode_all(images))
    with ThreadPoolExecutor(cores) as pool:
        def threaded():
            list(pool.map(lambda f: f[1](f[0].read_bytes()), files))
        threaded_t = c.median_time(threaded, repeat)

    # the baseline and the ingests in turn within each repeat, so load changes fall on all alike
    store_path = tmp / f"store-{name}.zarr"
    decodes, runs, variant_runs = [], [], defaultdict(list)
    for _ in range(repeat):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        decode_all(files)
        decodes.append((time.perf_counter() - t0, cpu_seconds() - cpu0))
        fresh_zarr_pool()
        runs.append(run_ingest(dirs, store_path))
        for k, settings in enumerate(variants):
            with zarr.config.set(settings):
                fresh_zarr_pool()
                variant_runs[k].append(run_ingest(dirs, store_path))
    serial, serial_cpu = (_median(d[i] for d in decodes) for i in (0, 1))
    wall, cpu = (_median(r[i] for r in runs) for i in (0, 1))
    baseline = serial / cores
    print(f"serial decode of all {len(files)} files (median of {repeat}): {serial:.3f} s wall, {serial_cpu:.3f} s "
          "CPU  (CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in by_kind.items())
          + f"; Pillow's own decoding of the image files, no arrays: {pillow:.2f})")
    print(f"baseline = serial decode / {cores} cores:       {baseline:.3f} s")
    print(f"(reference: decode on {cores} threads:          {threaded_t:.3f} s = "
          f"{threaded_t / baseline:.2f}x baseline)")
    ratio = wall / baseline
    print(f"ingest wall time (median of {repeat}):        {wall:.3f} s  "
          f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; decodes: {', '.join(f'{d[0]:.2f}' for d in decodes)}; "
          f"{n / wall:.1f} images/s, {mpx / wall:.1f} Mpx/s)")
    print(f"ingest process CPU time:                  {cpu:.3f} s = {cpu / serial_cpu:.2f}x the serial "
          f"decode CPU; {cpu / wall:.2f} of {cores} cores busy")
    sizes = store_sizes(store_path)
    print(f"store on disk: {sum(sizes.values()) / 1e6:.2f} MB ("
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()) + ")")
    for k, settings in enumerate(variants):
        v_wall, v_cpu = (_median(r[i] for r in variant_runs[k]) for i in (0, 1))
        print(f"  with zarr config {settings}: wall {v_wall:.3f} s ({v_wall / wall:.2f}x the plain run; "
              f"ratio {v_wall / baseline:.2f}x), CPU {v_cpu:.3f} s ({v_cpu / cpu:.2f}x)")
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"\n[{name}] ratio ingest / (decode / cores) = {ratio:.2f}x: {verdict} the goal of <= {GOAL}x; "
          f"CPU-time ratio ingest CPU / decode CPU = {cpu / serial_cpu:.2f}x")
    return ratio


def _settings(pairs: list[str]) -> dict[str, object]:
    """``["threading.max_workers=2"]`` as zarr config settings (values parsed as JSON)."""
    return {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in pairs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 (part2: 16) images of 1024x768, one ingest")
    ap.add_argument("--case", choices=["images", "part2"], action="append", help="default: both")
    ap.add_argument("--n", type=int, default=48, help="images of the 'images' archive (default 48)")
    ap.add_argument("--n-part2", type=int, default=120, help="images of the 'part2' archive (default 120)")
    ap.add_argument("--sizes", choices=["mixed", "1024x768"], default="mixed", help="of the 'images' archive")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--zarr", action="append", default=[], metavar="KEY=VALUE",
                    help="a zarr.config setting for the run, e.g. threading.max_workers=2 (repeatable)")
    ap.add_argument("--workers", type=int, help="ingest worker threads (default: ingest's, the number of CPUs)")
    ap.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="zarr config settings ingested in turn with the plain run (repeatable: one per variant)")
    ap.add_argument("--profile", action="store_true", help="also profile one ingest of each archive")
    ap.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--archives", type=Path, help="a folder to keep the drawn archives in and reuse them from "
                    "(runs of other checkouts then ingest the same files)")
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    global WORKERS
    WORKERS = args.workers
    settings = _settings(args.zarr)
    variants = [_settings(v.split(",")) for v in args.compare]
    zarr.config.set(settings)
    print(f"machine: {c.machine()}")
    print(c.load_note() + (f"; zarr config {settings}" if settings else "")
          + (f"; {args.workers} ingest workers" if args.workers else ""))
    cases = args.case or ["images", "part2"]
    with c.workdir("ingest-", keep=args.keep) as tmp:
        for name in cases:
            part2 = name == "part2"
            n = (16 if part2 else 8) if args.quick else (args.n_part2 if part2 else args.n)
            mixed = not part2 and not args.quick and args.sizes == "mixed"
            shapes = [MIXED[k % len(MIXED)] if mixed else (768, 1024) for k in range(n)]
            t0 = time.perf_counter()
            dirs = write_archive(tmp / name, shapes, part2) if args.archives is None \
                else reuse_archive(args.archives / f"{name}-{n}-{'mixed' if mixed else '1024x768'}", shapes, part2)
            mpx = sum(h * w for h, w in shapes) / 1e6
            nbytes = sum(p.stat().st_size for d in dirs for p in d.iterdir())
            print(f"\n== {name}: {n} images ({'mixed' if mixed else '1024x768'}, {mpx:.1f} megapixels), superpixels"
                  f" + masks{' + Part 2 features' if part2 else ''}, {nbytes / 1e6:.1f} MB on disk "
                  f"(made in {time.perf_counter() - t0:.1f} s)")
            files = archive_files(dirs, n, part2)
            measure_case(name, dirs, files, n, mpx, repeat, tmp, variants)
            if args.profile:
                import _ingest_profile as prof  # the current store API; a plain run also works on older trees

                prof.cost_model(files, tmp)
                prof.profile_ingest(lambda d=dirs: run_ingest(d, tmp / "profiled.zarr"), args.top)
        print(c.load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
