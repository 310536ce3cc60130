"""OME-Zarr export and import against ome-zarr-py used directly on the same arrays.

Export (``archivestore.ome.export_ome_zarr``: ome-zarr-py's ``OMEZarrMultiscale`` with
``compute=False``, every image and label pyramid of a batch in one dask compute) is timed on

* an ISIC-sized store: ``--n`` images of 768x1024 to 2000x3000 (bench_ingest's photo-like images,
  superpixels and lesion masks, cycled), ingested with the real ingest;
* a 512x512x``--slices`` CT volume (bench_dicom_ingest's phantom), ingested from DICOM files;

against the baseline a user of ome-zarr-py writes today: read each array from the store (numpy),
then ``ome_zarr.writer.write_image`` (and ``write_labels`` for mask and superpixels) per image,
given the best inputs: dask arrays chunked as the export chunks them, the same Zstd codec and the
same pyramid levels. Two baselines: ``write_image`` with its default downsampling (``resize``: a
Gaussian, then bilinear), and with ``method=local_mean``, the export's default (the mean of 2x2
blocks), which writes the same bytes as the export (checked). Wall and process CPU time (all
threads) are reported; CPU ÷ wall shows how much of the 2 cores each keeps busy.

Import (``read_ome_zarr``, numpy arrays of the image and its labels) is timed on an image written by
ome-zarr-py (c=2, z=``--z``, 1024x1024 uint16 with a (z, y, x) int32 label image, NGFF 0.5 and 0.4)
against ome-zarr-py's ``Reader`` (``parse_url``, the nodes, ``data[0].compute()`` of the image and
the label), each checked equal.

Run::

    .venv/bin/python benchmarks/bench_ome.py [--n 30] [--slices 300] [--z 40] [--repeat 3]

Goal (issue 10): export no slower than ``write_image`` on the same arrays, and parallel.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_dicom_ingest import items, write_series  # noqa: E402
from bench_ingest import MIXED, write_archive  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.layout import array_chunks, compressors, volume_chunks  # noqa: E402
from archivestore.ome import export_ome_zarr, pyramid_factors  # noqa: E402
from archivestore.sources import ChallengeSource  # noqa: E402
from archivestore.sources.ome_zarr import read_ome_zarr  # noqa: E402
from archivestore.testing.ome import write_ome_image  # noqa: E402

GOAL = 1.0


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - cpu0


def median_runs(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = [timed_cpu(fn) for _ in range(repeat)]
    walls, cpus = zip(*runs, strict=True)
    return float(np.median(walls)), float(np.median(cpus))


# -- the stores ----------------------------------------------------------------------------
def isic_store(root: Path, n: int) -> Any:
    sizes = [MIXED[k % len(MIXED)] for k in range(n)]
    dirs = write_archive(root / "archive", sizes)
    store = open_store(root / "isic.zarr", mode="a")
    assert ingest(store, ChallengeSource(dirs), progress=False).ok
    print(f"ISIC store: {n} images, {sum(h * w for h, w in sizes) / 1e6:.1f} megapixels")
    return store


def ct_store(root: Path, slices: int) -> tuple[Any, str]:
    uid, paths = write_series(root / "ct", 0, slices)
    store = open_store(root / "ct.zarr", mode="a")
    assert ingest(store, items({uid: paths}), progress=False).ok
    return store, uid


# -- the baselines: ome-zarr-py's functions on the store's arrays -------------------------------
def _write(data: np.ndarray, group: zarr.Group, axes: str, factors: tuple[int, ...], method: str,
           **kwargs: Any) -> None:
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    dims = tuple("channel" if a == "c" else a for a in axes)
    chunks = volume_chunks(data.shape, dims) if axes == "zyx" else array_chunks(data.shape, dims)
    write_image(da.from_array(data, chunks=chunks), group, axes=axes, scale_factors=factors,
                storage_options={"compressors": compressors()}, method=Methods(method), **kwargs)


def _label(data: np.ndarray, group: zarr.Group, name: str, factors: tuple[int, ...]) -> None:
    from ome_zarr.writer import write_labels

    write_labels(da.from_array(data, chunks=array_chunks(data.shape, ("y", "x"))), group, name=name, axes="yx",
                 scaler=None, scale_factors=factors, storage_options={"compressors": compressors()})


def baseline_isic(store: Any, out: Path, method: str) -> None:
    for image_id in store.image_ids():
        rgb = np.moveaxis(store.read(image_id, "image"), -1, 0)
        group = zarr.open_group(out / f"{image_id}.zarr", mode="w", zarr_format=3)
        factors = pyramid_factors({"y": rgb.shape[1], "x": rgb.shape[2]})
        _write(rgb, group, "cyx", factors, method, name=image_id)
        for name in ("mask", "superpixels"):
            _label(store.read(image_id, name), group, name, factors)


def baseline_ct(store: Any, uid: str, out: Path, method: str) -> None:
    volume = store.read_array(store.layout.series(uid), "volume")
    spacing = store.volume(uid).attrs["spacing"]
    group = zarr.open_group(out / f"{uid}.zarr", mode="w", zarr_format=3)
    _write(volume, group, "zyx", pyramid_factors({"y": volume.shape[1], "x": volume.shape[2]}), method, name=uid,
           scale=dict(zip("zyx", spacing, strict=True)), axes_units=dict.fromkeys("zyx", "millimeter"))


def same_levels(ours: Path, theirs: Path) -> None:
    """Every level of the image (and labels) the export wrote equals the baseline's."""
    a, b = zarr.open_group(ours, mode="r"), zarr.open_group(theirs, mode="r")
    for name, array in a.arrays():
        np.testing.assert_array_equal(array[...], b[name][...])
    if "labels" in b:
        for label in ("mask", "superpixels"):
            for name, array in a[f"labels/{label}"].arrays():
                np.testing.assert_array_equal(array[...], b[f"labels/{label}/{name}"][...])


def report(title: str, rows: dict[str, tuple[float, float]]) -> None:
    print(f"\n{title}")
    for label, (wall, cpu) in rows.items():
        print(f"  {label:34s} wall {c.fmt_s(wall)}  CPU {c.fmt_s(cpu)}  CPU/wall {cpu / wall:.2f}")
    ours = rows["export_ome_zarr"][0]
    for label, (wall, _) in rows.items():
        if label != "export_ome_zarr":
            verdict = "met" if wall / ours >= GOAL else "missed"
            print(f"  speed-up vs {label}: {wall / ours:.2f}x -> goal (no slower) {verdict}")


def compare(title: str, ours: Callable[[Path], object], theirs: Callable[[Path, str], object], work: Path,
            name: str, repeat: int) -> None:
    """Time the export and both baselines (each into a fresh directory), after checking equal bytes."""
    def run(fn: Callable[[Path], object], out: Path) -> Callable[[], object]:
        def again() -> object:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            return fn(out)
        return again

    runs = {"export_ome_zarr": run(ours, work / "ours"),
            "write_image (method=resize)": run(lambda out: theirs(out, "resize"), work / "resize"),
            "write_image (method=local_mean)": run(lambda out: theirs(out, "local_mean"), work / "mean")}
    for fn in runs.values():
        fn()
    same_levels(work / "ours" / f"{name}.zarr", work / "mean" / f"{name}.zarr")
    report(title, {label: median_runs(fn, repeat) for label, fn in runs.items()})


def bench_export(work: Path, n: int, slices: int, repeat: int) -> None:
    store = isic_store(work, n)
    compare(f"Export of {n} ISIC images (image + mask + superpixels), median of {repeat}",
            lambda out: export_ome_zarr(store, out), lambda out, m: baseline_isic(store, out, m), work,
            store.image_ids()[0], repeat)
    ct, uid = ct_store(work, slices)
    compare(f"Export of a 512x512x{slices} CT volume, median of {repeat}",
            lambda out: export_ome_zarr(ct, out, series=[uid]), lambda out, m: baseline_ct(ct, uid, out, m), work,
            uid, repeat)


def bench_import(work: Path, z: int, repeat: int) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for version in ("0.5", "0.4"):
        url = str(work / f"import-{version}.zarr")
        fixture = write_ome_image(url, version=version, axes="czyx", shape=(2, z, 1024, 1024), labels=("cells",))

        def ours() -> list[np.ndarray]:
            image = read_ome_zarr(url)
            return [image.data, *image.labels.values()]

        def theirs() -> list[np.ndarray]:
            nodes = list(Reader(parse_url(url))())
            return [n.data[0].compute() for n in nodes if n.data]

        a, b = ours(), theirs()
        assert len(a) == len(b) == 2 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        np.testing.assert_array_equal(a[0], fixture.data)
        mb = sum(x.nbytes for x in a) / 1e6
        t_theirs, t_ours = median_runs(theirs, repeat), median_runs(ours, repeat)
        print(f"\nImport of an NGFF {version} image (2, {z}, 1024, 1024) uint16 + label int32 ({mb:.0f} MB), "
              f"median of {repeat}")
        print(f"  ome-zarr-py Reader      wall {c.fmt_s(t_theirs[0])}  CPU {c.fmt_s(t_theirs[1])}")
        print(f"  read_ome_zarr           wall {c.fmt_s(t_ours[0])}  CPU {c.fmt_s(t_ours[1])}  "
              f"ratio {t_theirs[0] / t_ours[0]:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30, help="ISIC images")
    parser.add_argument("--slices", type=int, default=300, help="CT slices")
    parser.add_argument("--z", type=int, default=40, help="z planes of the imported image")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(c.machine())
    print(c.load_note())
    with c.workdir("ome-") as work:
        bench_export(work, args.n, args.slices, args.repeat)
        bench_import(work, args.z, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
