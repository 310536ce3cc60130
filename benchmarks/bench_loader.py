"""Training-loader throughput: archivestore.ml datasets against what users do today, through the same DataLoader.

Images: ISIC-size RGB photographs (half 1024 x 768, half 2000 x 1500) with lesion masks, read by a
``torch.utils.data.DataLoader`` (2 workers, batch 1, no resize) from

- the archive's original files (JPEG images, PNG masks) decoded with Pillow, as an ``ImageFolder``-style
  loader does (the baseline);
- ``ImageDataset`` on a local store (goal: >= 2x the baseline's images/s);
- ``ImageDataset`` on a local S3 server (moto on 127.0.0.1) behind a proxy that adds ``--latency``
  (default 20 ms) to every request (goal: >= 0.5x the local store's rate).

Volumes: random 64 x 128 x 128 patches of a 512 x 512 CT with its DICOM SEG, through the same
DataLoader, from ``VolumeDataset`` against loading the whole series from its DICOM files with pydicom
(and the SEG's frames) and cropping, as a MONAI-style pipeline without a cache does (goal: >= 10x).

Each worker reports its peak unique memory (psutil USS: what the worker holds beyond what it shares
with the main process). Every figure is printed with the load average; ratios come from one run.

    python benchmarks/bench_loader.py [--images 12] [--slices 128] [--patches 16] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from _common import load_note, machine, workdir  # noqa: E402

_PEAK: dict[str, int] = {}


def peak_memory(item: Any) -> Any:
    """A transform run in the worker: note the worker's unique memory (USS) so far, in the item."""
    import psutil

    uss = psutil.Process().memory_full_info().uss
    _PEAK["uss"] = max(_PEAK.get("uss", 0), uss)
    item["uss"] = _PEAK["uss"]
    return item


class PillowFiles:
    """The baseline: the archive's original files, decoded with Pillow per item."""

    def __init__(self, files: list[tuple[str, Path, Path]], transform: Any = None) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, k: int) -> dict[str, Any]:
        from PIL import Image

        image_id, image, mask = self.files[k]
        with Image.open(image) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(mask) as im:
            lesion = (np.asarray(im) > 128).astype(np.uint8)
        item = {"id": image_id, "image": rgb, "mask": lesion}
        return self.transform(item) if self.transform else item


class DicomCrops:
    """The baseline: every item loads the whole series (and SEG) with pydicom, then crops a random patch."""

    def __init__(self, ct: list[Path], seg: Path, patch: tuple[int, int, int], n: int, transform: Any = None) -> None:
        self.ct, self.seg, self.patch, self.n, self.transform = ct, seg, patch, n, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> dict[str, Any]:
        import pydicom

        slices = [pydicom.dcmread(p) for p in self.ct]
        slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        volume = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
        labels = pydicom.dcmread(self.seg).pixel_array  # (frames, y, x): the SEG's frames
        rng = np.random.default_rng(k)
        start = [int(rng.integers(n - p + 1)) for n, p in zip(volume.shape, self.patch, strict=True)]
        box = tuple(slice(s, s + p) for s, p in zip(start, self.patch, strict=True))
        item = {"volume": volume[box].astype(np.int16), "labels": labels[:, box[1], box[2]][: self.patch[0]],
                "start": np.asarray(start)}
        return self.transform(item) if self.transform else item


def rate(dataset: Any, label: str, epochs: int = 2) -> tuple[float, int]:
    """Items per second through a DataLoader (2 workers, batch 1) after a warm-up pass; peak worker USS.

    The memory pass comes first, on its own (reading a worker's USS costs milliseconds); the timed
    epochs run without it, through workers that have already started and opened the store.
    """
    from torch.utils.data import DataLoader

    dataset.transform = peak_memory
    peak = max(int(batch["uss"][0]) for batch in DataLoader(dataset, batch_size=1, num_workers=2))
    dataset.transform = None
    loader = DataLoader(dataset, batch_size=1, num_workers=2, persistent_workers=True)
    for _ in loader:  # warm-up: the workers start, open the store, fill the page cache
        pass
    t0 = time.perf_counter()
    n = sum(1 for _ in range(epochs) for _ in loader)
    seconds = time.perf_counter() - t0
    print(f"  {label:<44} {n / seconds:7.2f} items/s   peak worker USS {peak / 2**20:6.0f} MB   "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return n / seconds, peak


def write_images(folder: Path, n: int) -> list[tuple[str, Path, Path, dict[str, Any]]]:
    from PIL import Image

    from archivestore.testing.sample import lesion_image

    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        h, w = (768, 1024) if k % 2 == 0 else (1500, 2000)
        rgb, mask = lesion_image(rng, h, w)
        image, mask_file = folder / f"ISIC_{k:07d}.jpg", folder / f"ISIC_{k:07d}_segmentation.png"
        Image.fromarray(rgb).save(image, quality=92)
        Image.fromarray(mask * 255).save(mask_file)
        record = {"isic_id": f"ISIC_{k:07d}", "copyright_license": "CC-0", "attribution": "Anonymous"}
        out.append((f"ISIC_{k:07d}", image, mask_file, record))
    return out


def ingest_images(url: str, files: list[tuple[str, Path, Path, dict[str, Any]]], **options: Any) -> None:
    import archivestore
    from archivestore.sources import Item

    items = [Item(id=i, metadata=r, image=lambda p=p: p.read_bytes(), mask=lambda m=m: m.read_bytes())
             for i, p, m, r in files]
    report = archivestore.ingest(archivestore.open_store(url, "a", options or None), items, progress=False)
    assert report.ok, report.failed


def bench_images(args: argparse.Namespace, work: Path) -> None:
    from fakes.faulty_proxy import FaultyProxy
    from fakes.s3 import ENV, local_s3_server

    from archivestore.ml import ImageDataset

    print(f"images: {args.images} ISIC-size JPEGs with PNG masks (half 1024x768, half 2000x1500), "
          "DataLoader 2 workers, batch 1")
    files = write_images(work, args.images)
    ingest_images(str(work / "isic.zarr"), files)
    baseline, base_mem = rate(PillowFiles([(i, p, m) for i, p, m, _ in files]), "Pillow on the files")
    local, local_mem = rate(ImageDataset(str(work / "isic.zarr")), "ImageDataset, local")
    print(f"  ImageDataset local / Pillow: {local / baseline:.2f}x (goal >= 2x)")
    os.environ.update(ENV)
    with local_s3_server() as upstream, FaultyProxy(upstream, share=0.0, delay=args.latency) as proxy:
        import s3fs

        options = {"endpoint_url": proxy.url}
        s3fs.S3FileSystem(**options).mkdir("bench")
        ingest_images("s3://bench/isic.zarr", files, **options)
        s3, _ = rate(ImageDataset("s3://bench/isic.zarr", storage_options=options),
                     f"ImageDataset, S3 + {args.latency * 1000:.0f} ms/request")
        print(f"  ImageDataset S3 / local: {s3 / local:.2f}x (goal >= 0.5x)")


def write_ct(folder: Path, slices: int) -> tuple[list[Path], Path]:
    """A 512 x 512 x ``slices`` CT (pydicom's CT_small tiled 4 x 4 per slice) and a one-segment SEG."""
    import copy

    import pydicom

    from archivestore.testing import dicom as fx

    base_files = fx.ct_series(slices, seed="bench-ct", spacing=1.25)
    paths = []
    for name, data in base_files:
        ds = pydicom.dcmread(io.BytesIO(data))
        big = copy.deepcopy(ds)
        big.Rows, big.Columns = 512, 512
        big.PixelData = np.tile(ds.pixel_array, (4, 4)).astype(np.int16).tobytes()
        path = folder / name
        big.save_as(path, enforce_file_format=True)
        paths.append(path)
    ct = [(p.name, p.read_bytes()) for p in paths]
    z, y, x = np.ogrid[:slices, :512, :512]  # an ellipsoid in the middle (blob_masks would need GBs here)
    masks = (((z - slices / 2) / (slices / 3)) ** 2 + ((y - 256) / 120) ** 2 + ((x - 256) / 150) ** 2 <= 1)[None]
    seg = folder / "seg.dcm"
    seg.write_bytes(fx.segmentation(ct, masks, seed="bench-seg")[0][1])
    return paths, seg


def bench_volumes(args: argparse.Namespace, work: Path) -> None:
    import archivestore
    from archivestore.ml import VolumeDataset
    from archivestore.sources import SeriesItem

    patch = (64, 128, 128)
    print(f"volumes: random {patch} patches of a 512x512x{args.slices} CT with a SEG, DataLoader 2 workers, batch 1")
    ct, seg = write_ct(work, args.slices)
    items = []
    for files, modality in (([(p.name, p.read_bytes()) for p in ct], "CT"), ([(seg.name, seg.read_bytes())], "SEG")):
        import pydicom

        uid = str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)
        items.append(SeriesItem(id=uid, metadata={"Modality": modality}, files=lambda f=files: f))
    report = archivestore.ingest(archivestore.open_store(work / "ct.zarr", "a"), items, progress=False)
    assert report.ok, report.failed
    baseline, base_mem = rate(DicomCrops(ct, seg, patch, max(4, args.patches // 4)),
                              "pydicom whole series + SEG, crop")
    ours, our_mem = rate(VolumeDataset(str(work / "ct.zarr"), patch=patch, samples_per_volume=args.patches),
                         "VolumeDataset patches")
    print(f"  VolumeDataset / pydicom: {ours / baseline:.1f}x (goal >= 10x); peak worker USS "
          f"{our_mem / 2**20:.0f} MB vs {base_mem / 2**20:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12, help="images (default 12)")
    parser.add_argument("--slices", type=int, default=128, help="CT slices (default 128)")
    parser.add_argument("--patches", type=int, default=16, help="patches per epoch (default 16)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per S3 request (default 0.02)")
    parser.add_argument("--only", choices=("images", "volumes"), default=None)
    args = parser.parse_args()
    print(machine())
    print(load_note())
    with workdir("loader-") as work:
        if args.only in (None, "images"):
            bench_images(args, work)
        if args.only in (None, "volumes"):
            bench_volumes(args, work)


if __name__ == "__main__":
    main()
