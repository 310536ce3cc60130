"""RTSTRUCT rasterisation: archivestore's ``read_rtstruct`` vs rt-utils' mask creation on the same files.

A ``--slices``-slice CT (default 100; pydicom's ``CT_small`` 128x128 copied along z, 2.5 mm apart; ``--size
512`` repeats its pixels to a CT-sized 512x512 grid) and
one structure set contouring every slice: ``Body`` (one 160-point outline), ``GTV`` (a ring: an outer
and an inner contour per slice) and ``Nodules`` (two islands per slice) -- 400 closed contours. Both
read the same files from disk. Measured in one run, best of ``--repeat``:

- **masks**: every ROI's mask from a structure set already parsed with its series' geometry:
  ``read_rtstruct(rt_file, volume)`` (which also parses the RTSTRUCT file) vs rt-utils'
  ``get_roi_mask_by_name`` for each ROI of an ``RTStruct`` loaded before the clock starts.
- **from files**: the series and the structure set from disk to every ROI's mask:
  ``read_series(ct paths)`` + ``read_rtstruct`` vs ``RTStructBuilder.create_from`` + the masks (both
  decode the CT's pixels: archivestore for the volume, rt-utils when it checks ``pixel_array``).

rt-utils 1.2.7 runs in its own environment (``benchmarks/rtutils_env.py``: OpenCV headless,
pydicom 2). The masks are compared too: Dice per ROI between the two (rt-utils rounds the vertices to
whole pixels and fills with OpenCV's ``fillPoly``; archivestore fills by pixel centre, even-odd).

Run::

    .venv/bin/python benchmarks/bench_rtstruct.py [--slices 100] [--repeat 3] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, workdir  # noqa: E402
from rtutils_env import ensure_env, run_json  # noqa: E402

from archivestore.dicom import read_rtstruct, read_series  # noqa: E402
from archivestore.testing import dicom, rtstruct  # noqa: E402

RT_UTILS_CODE = r"""
import json, sys, time
import numpy as np
from rt_utils import RTStructBuilder
args = json.load(sys.stdin)
best_files = best_masks = float("inf")
for _ in range(args["repeat"]):
    t0 = time.perf_counter()
    rt = RTStructBuilder.create_from(args["ct"], args["rt"])
    t1 = time.perf_counter()
    masks = {name: rt.get_roi_mask_by_name(name) for name in rt.get_roi_names()}
    t2 = time.perf_counter()
    best_files, best_masks = min(best_files, t2 - t0), min(best_masks, t2 - t1)
order = [str(ds.SOPInstanceUID) for ds in rt.series_data]
out = {name: np.moveaxis(m, 2, 0).astype(np.uint8) for name, m in masks.items()}
np.savez(args["out"], **out)
print(json.dumps({"files": best_files, "masks": best_masks, "order": order}))
"""


def structure(shape: tuple[int, int, int]) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Body, GTV (ring) and Nodules (two islands) on every slice."""
    nz, ny, nx = shape
    rois = {"Body": [], "GTV": [], "Nodules": []}
    angles = np.linspace(0, 2 * np.pi, 160, endpoint=False)
    for k in range(nz):
        wobble = 1 + 0.05 * np.sin(5 * angles + k / 7)
        rois["Body"].append((k, np.column_stack([ny / 2 + ny * 0.44 * wobble * np.sin(angles),
                                                 nx / 2 + nx * 0.46 * wobble * np.cos(angles)])))
    small = rtstruct.observer_rois((nz * 3, ny, nx))  # its middle third has every ROI on every slice
    for name in ("GTV", "Nodules"):
        rois[name] = [(k - nz, p) for k, p in small[name] if nz <= k < 2 * nz]
    return rois


def upscaled(files: list[tuple[str, bytes]], factor: int) -> list[tuple[str, bytes]]:
    """The series with each pixel repeated ``factor`` x ``factor`` times (128 -> 512 for a CT-sized grid)."""
    import io

    import pydicom

    out = []
    for name, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = np.kron(ds.pixel_array, np.ones((factor, factor), dtype=ds.pixel_array.dtype))
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [float(v) / factor for v in ds.PixelSpacing]
        ds.PixelData = pixels.tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out.append((name, buffer.getvalue()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=128, choices=(128, 256, 512),
                        help="rows and columns of the CT (CT_small's 128, or its pixels repeated)")
    args = parser.parse_args()
    python = ensure_env()
    print(machine())
    with workdir("rtstruct-") as work:
        ct = dicom.ct_series(args.slices, seed="bench-rt", spacing=2.5)
        if args.size != 128:
            ct = upscaled(ct, args.size // 128)
        (work / "ct").mkdir()
        for name, data in ct:
            (work / "ct" / name).write_bytes(data)
        paths = sorted(str(p) for p in (work / "ct").iterdir())
        volume = read_series(paths)[0]
        rois = structure(volume.array.shape)
        rt = rtstruct.structure_set(ct, rois, seed="bench-rt-set")
        rt_path = work / "rtstruct.dcm"
        rt_path.write_bytes(rt[0][1])
        contours = sum(len(v) for v in rois.values())
        print(f"CT {volume.array.shape[0]} x {volume.array.shape[1]} x {volume.array.shape[2]}, "
              f"{len(rois)} ROIs, {contours} closed contours, structure set {rt_path.stat().st_size / 1e6:.2f} MB")

        best_masks = best_files = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ours = read_rtstruct([str(rt_path)], volume)
            best_masks = min(best_masks, time.perf_counter() - t0)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            labels = read_rtstruct([str(rt_path)], read_series(paths)[0])
            best_files = min(best_files, time.perf_counter() - t0)
        np.testing.assert_array_equal(labels.labels, ours.labels)
        load = os.getloadavg()
        peer = run_json(RT_UTILS_CODE, {"ct": str(work / "ct"), "rt": str(rt_path), "repeat": args.repeat,
                                        "out": str(work / "rtutils.npz")}, python=python)
        load_peer = os.getloadavg()
        theirs = np.load(work / "rtutils.npz")
        assert peer["order"] == list(volume.sop_instance_uids), "rt-utils orders the slices otherwise"
        print(f"{'':28}{'archivestore':>14}{'rt-utils':>12}{'ratio':>9}")
        for what, a, b in (("masks (parsed set)", best_masks, peer["masks"]),
                           ("from files (CT + set)", best_files, peer["files"])):
            print(f"{what:28}{a * 1e3:>11.1f} ms{b * 1e3:>9.1f} ms{b / a:>8.1f}x")
        print(f"load average {load[0]:.2f} (archivestore), {load_peer[0]:.2f} (rt-utils)")
        for k, name in enumerate(ours.segment_label):
            a, b = ours.labels[k].astype(bool), theirs[name].astype(bool)
            dice = 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))
            print(f"Dice archivestore vs rt-utils, {name}: {dice:.4f} ({np.count_nonzero(a ^ b)} of "
                  f"{np.count_nonzero(a | b)} voxels differ)")


if __name__ == "__main__":
    main()
