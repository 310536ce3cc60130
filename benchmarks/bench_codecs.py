"""Size and speed of the codecs Zarr v3 reads without plugins, per kind of array the store holds.

Every array kind ingest writes is drawn at a real shape and compressed the way zarr does it:
chunk by chunk (the layout's 1024x1024 tiles, edge tiles padded with the fill value 0, as
zarr's regular chunk grid stores them), one chunk per call, on one thread. The kinds:

* ``image``: a JPEG-decoded dermoscopy-like photograph (``archivestore.testing.sample``'s
  lesion image at JPEG quality 92, decoded by ``decode_image``), ``(y, x, channel)`` uint8;
* ``photo (real)``: real photographs for comparison, when scikit-image (an ``ome`` extra's
  dependency) is installed: its ``retina.jpg`` (a fundus photograph, a real JPEG) decoded, and its
  ``astronaut.png`` encoded as JPEG quality 92 and decoded;
* ``superpixels (16-bit)``: ~1000 SLIC-like superpixels as the store keeps them (uint16), and
  the archive's real ``ISIC_0000000_superpixels.png`` from ``../shared/fixtures`` when present;
* ``superpixels (24-bit)``: ~190,000 superpixels of a 4000x3000 image (uint32, values < 2**24);
* ``mask (0/1)``: a lesion mask as the store keeps it, and the same as 0/255 (the PNG's values);
* ``feature masks``: four 2018-style attribute masks painted from superpixel features,
  ``(feature, y, x)`` uint8 0/1 in ``(1, 1024, 1024)`` chunks (mostly empty).

Codecs: Zstd levels 1/2/3/5/9 (zarr's ``ZstdCodec``) and Blosc (``BloscCodec``) with lz4, lz4hc,
zstd and blosclz at levels 1 and 5, each with no shuffle, byte shuffle and bit shuffle, plus Blosc
with ``typesize=3`` byte shuffle on the RGB image (its R, G and B bytes apart). Speeds are thread
CPU time (MB of raw array per CPU second: robust to other processes on the machine); the ratio is
raw bytes / compressed bytes; every chunk is checked to round-trip. A last table shows Blosc's own
threads (``numcodecs.blosc.use_threads``) — which zarr never uses, because it calls codecs from
worker threads, where Blosc runs single-threaded.

Run::

    .venv/bin/python benchmarks/bench_codecs.py [--quick] [--kind image ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numcodecs
import numcodecs.blosc
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from archivestore.imaging import decode_image, decode_superpixels  # noqa: E402
from archivestore.layout import tile_chunks  # noqa: E402
from archivestore.testing.sample import jpeg, lesion_image, voronoi_superpixels  # noqa: E402

FIXTURE = c.HERE.parent.parent / "shared" / "fixtures" / "isic-v1" / "ISIC_0000000_superpixels.png"
SHUFFLES = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
            "bitshuffle": numcodecs.Blosc.BITSHUFFLE}


@dataclass(frozen=True)
class Codec:
    """One codec configuration, as zarr writes it into an array's metadata."""

    name: str  # "zstd" or "blosc"
    level: int
    cname: str = ""
    shuffle: str = ""
    typesize: int | None = None  # Blosc's typesize when not the dtype's item size

    @property
    def label(self) -> str:
        if self.name == "zstd":
            return f"zstd {self.level}"
        extra = f", typesize {self.typesize}" if self.typesize else ""
        return f"blosc {self.cname} {self.level} {self.shuffle}{extra}"

    def numcodec(self, itemsize: int) -> numcodecs.abc.Codec:
        """The numcodecs codec zarr's ``ZstdCodec``/``BloscCodec`` delegates to, configured as zarr does."""
        if self.name == "zstd":
            return numcodecs.Zstd(level=self.level)
        return numcodecs.Blosc(cname=self.cname, clevel=self.level, shuffle=SHUFFLES[self.shuffle],
                               blocksize=0, typesize=self.typesize or itemsize)


def codecs_for(kind: str) -> list[Codec]:
    out = [Codec("zstd", level) for level in (1, 2, 3, 5, 9)]
    for cname in ("lz4", "lz4hc", "zstd", "blosclz"):
        for level in (1, 5):
            out += [Codec("blosc", level, cname, shuffle) for shuffle in SHUFFLES]
    if kind.startswith(("image", "photo")):
        out += [Codec("blosc", level, cname, "shuffle", 3) for cname in ("lz4", "zstd") for level in (1, 3, 5)]
    return out


# -- the data ---------------------------------------------------------------------------------
@dataclass
class Kind:
    name: str
    data: np.ndarray
    dims: tuple[str, ...]
    note: str


def _superpixel_step(h: int, w: int, n: int) -> int:
    return max(4, int(round((h * w / n) ** 0.5)))


def make_kinds(quick: bool) -> list[Kind]:
    """The arrays to compress, drawn from fixed seeds."""
    rng = np.random.default_rng(2017)
    h, w = (768, 1024) if quick else (1536, 2048)
    rgb, mask = lesion_image(rng, h, w)
    photo = decode_image(jpeg(rgb))
    sp16 = voronoi_superpixels(rng, h, w, _superpixel_step(h, w, 1000)).astype(np.uint16)
    bh, bw = (1500, 2000) if quick else (3000, 4000)
    sp24 = voronoi_superpixels(rng, bh, bw, 8)
    n = int(sp16.max()) + 1
    inside = np.bincount(sp16.ravel(), weights=mask.ravel(), minlength=n) > 0
    features = np.stack([((rng.random(n) < p) & inside)[sp16] for p in (0.4, 0.25, 0.1, 0.05)]).astype(np.uint8)
    kinds = [
        Kind("image", photo, ("y", "x", "channel"), f"{w}x{h} RGB, JPEG q92 decoded"),
        Kind("superpixels (16-bit)", sp16, ("y", "x"), f"{w}x{h}, {n} superpixels, uint16"),
        Kind("superpixels (24-bit)", sp24, ("y", "x"), f"{bw}x{bh}, {int(sp24.max()) + 1} superpixels, uint32"),
        Kind("mask (0/1)", mask, ("y", "x"), f"{w}x{h} lesion mask, {mask.mean():.0%} inside"),
        Kind("mask (0/255)", mask * np.uint8(255), ("y", "x"), "the same mask as the PNG holds it"),
        Kind("feature masks", features, ("feature", "y", "x"), f"4 features x {w}x{h}, {features.mean():.1%} set"),
    ]
    kinds[1:1] = real_photos()
    if FIXTURE.exists():
        real = decode_superpixels(FIXTURE.read_bytes())
        kinds.insert(2, Kind("superpixels (real, 16-bit)", real, ("y", "x"),
                             f"ISIC_0000000, {real.shape[1]}x{real.shape[0]}, {int(real.max()) + 1} superpixels"))
    return kinds


def real_photos() -> list[Kind]:
    """scikit-image's real photographs as JPEG-decoded RGB arrays (none without scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "data"
    retina = decode_image((folder / "retina.jpg").read_bytes())
    with Image.open(folder / "astronaut.png") as im:
        astronaut = decode_image(jpeg(np.asarray(im.convert("RGB"))))
    return [Kind("photo (real): retina", retina, ("y", "x", "channel"),
                 f"scikit-image's retina.jpg, {retina.shape[1]}x{retina.shape[0]}, decoded"),
            Kind("photo (real): astronaut", astronaut, ("y", "x", "channel"),
                 f"scikit-image's astronaut.png, {astronaut.shape[1]}x{astronaut.shape[0]}, JPEG q92 decoded")]


def chunks_of(data: np.ndarray, dims: tuple[str, ...]) -> Iterator[np.ndarray]:
    """The chunks zarr compresses for ``data``: the layout's tiles, edge tiles padded with 0."""
    shape = tile_chunks(data.shape, dims)
    grid = [range(0, n, s) for n, s in zip(data.shape, shape, strict=True)]
    for origin in np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, data.ndim):
        part = data[tuple(slice(o, o + s) for o, s in zip(origin, shape, strict=True))]
        if part.shape == shape:
            yield np.ascontiguousarray(part)
        else:
            chunk = np.zeros(shape, data.dtype)
            chunk[tuple(slice(0, n) for n in part.shape)] = part
            yield chunk


# -- measuring --------------------------------------------------------------------------------
def cpu_time(fn: Callable[[], object], repeat: int) -> float:
    """Least thread CPU time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return max(best, 1e-9)


@dataclass
class Row:
    codec: Codec
    ratio: float
    compress: float  # MB/s of raw data per CPU second
    decompress: float


def measure(chunks: list[np.ndarray], codec: Codec, repeat: int) -> Row:
    codec_obj = codec.numcodec(chunks[0].dtype.itemsize)
    encoded = [codec_obj.encode(chunk) for chunk in chunks]
    for chunk, enc in zip(chunks, encoded, strict=True):
        back = np.frombuffer(codec_obj.decode(enc), chunk.dtype).reshape(chunk.shape)
        assert np.array_equal(back, chunk), codec.label
    raw = sum(chunk.nbytes for chunk in chunks)
    t_enc = cpu_time(lambda: [codec_obj.encode(chunk) for chunk in chunks], repeat)
    t_dec = cpu_time(lambda: [codec_obj.decode(enc) for enc in encoded], repeat)
    return Row(codec, raw / sum(len(e) for e in encoded), raw / t_enc / 1e6, raw / t_dec / 1e6)


def print_table(kind: Kind, rows: list[Row], raw_mb: float) -> None:
    ref = next(r for r in rows if r.codec == Codec("zstd", 3))
    print(f"\n#### {kind.name}: {kind.note} ({raw_mb:.1f} MB in chunks)\n")
    print("| codec | ratio | size vs zstd 3 | compress MB/s | decompress MB/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        size = ref.ratio / r.ratio
        print(f"| {r.codec.label} | {r.ratio:.2f} | {size:.2f}x | {r.compress:.0f} | {r.decompress:.0f} |")


def blosc_threads(chunks: list[np.ndarray], codec: Codec, repeat: int) -> tuple[float, float]:
    """Wall seconds to compress ``chunks`` from the main thread with Blosc's own 1 and 2 threads."""
    out = []
    old = numcodecs.blosc.use_threads
    numcodecs.blosc.use_threads = True
    try:
        for threads in (1, 2):
            numcodecs.blosc.set_nthreads(threads)
            obj = codec.numcodec(chunks[0].dtype.itemsize)
            out.append(c.median_time(lambda o=obj: [o.encode(chunk) for chunk in chunks], repeat, warmup=1))
    finally:
        numcodecs.blosc.use_threads = old
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="half-size arrays, one repeat")
    ap.add_argument("--kind", action="append", help="only kinds whose name starts with this (repeatable)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    print(f"machine: {c.machine()}")
    print(c.load_note())
    kinds = [k for k in make_kinds(args.quick) if not args.kind or any(k.name.startswith(p) for p in args.kind)]
    threads_rows = []
    for kind in kinds:
        chunks = list(chunks_of(kind.data, kind.dims))
        rows = [measure(chunks, codec, repeat) for codec in codecs_for(kind.name)]
        print_table(kind, rows, sum(ch.nbytes for ch in chunks) / 1e6)
        probe = Codec("blosc", 1, "zstd", "bitshuffle" if kind.data.dtype.itemsize == 1 else "shuffle")
        threads_rows.append((kind.name, probe, *blosc_threads(chunks, probe, repeat)))
    print("\n#### Blosc's own threads (wall time from the main thread; zarr calls codecs from worker threads)\n")
    print("| kind | codec | 1 thread | 2 threads | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, codec, one, two in threads_rows:
        print(f"| {name} | {codec.label} | {one * 1e3:.1f} ms | {two * 1e3:.1f} ms | {one / two:.2f}x |")
    print()
    print(c.load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
