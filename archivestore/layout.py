"""The store layout as code: group paths, name mapping, chunk shapes, codecs, versions.

This is the README's "store layout" contract. No other module spells a store path:
they ask a :class:`Layout` (``store.layout``) for it.

**Names from archives become node names one documented way** (layout 3). A study,
rater, image id, collection or series name may hold ``/``, ``..``, spaces, ``%`` and any
Unicode, but a node name holds only ``A-Z a-z 0-9 - _ .`` — the characters Zarr v3
recommends, the ones every HTTP server, bucket and browser reader serves as they are.
A name made only of those characters, not only of periods, and not starting with
``__`` (reserved by Zarr) or ``_x`` (the mark of an escaped name) is its own node name:
``ISIC_0000000``, DICOM UIDs, ``ISIC-2017_Part2``, ``model_v2.0``. Every other name is
``_x`` followed by its UTF-8 bytes, ``A-Z a-z 0-9 - .`` as they are and every other byte
as ``_`` and two upper-case hex digits (percent-encoding with ``_`` for ``%``)::

    Hidden Study: Globules & Network / Agreement -> _xHidden_20Study_3A_20Globules_20_26_20Network_20_2F_20Agreement
    model v2.0 -> _xmodel_20v2.0        ..  -> _x..        _x1 -> _x_5Fx1

The mapping is one-to-one (an escaped node always starts with ``_x``, a plain one never
does) and its inverse is ``unquote(node[2:].replace("_", "%"))`` for nodes starting with
``_x``, the node itself otherwise (:func:`unescape_name`). Each group keeps the original
name in its ``_archivestore`` attribute (``name``).

Older layouts are read and appended with their own naming: layout 2 percent-encoded
(``Hidden%20Study%3A...``: HTTP servers and browser readers decode the ``%`` and miss the
group), layout 1 used names as given. ``archivestore upgrade`` moves them to layout 3.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from archivestore.errors import InvalidInputError

if TYPE_CHECKING:
    from zarr.abc.codec import BytesBytesCodec

__all__ = [
    "GROUND_TRUTH",
    "array_chunks",
    "LAYOUT",
    "LAYOUT_VERSION",
    "ROW_CHUNK",
    "STATE_KEY",
    "STUDY_CHUNKS",
    "ARRAY_CHUNKS",
    "TILE",
    "VOLUME_CHUNKS",
    "Layout",
    "compressors",
    "escape_name",
    "escape_key",
    "ESCAPE_MARK",
    "percent_name",
    "study_compressors",
    "tile_chunks",
    "tile_shards",
    "unescape_key",
    "unescape_name",
    "variable_name",
    "volume_chunks",
    "volume_compressors",
]

LAYOUT_VERSION = 3
"""The layout this version writes into new stores (root attribute ``archivestore.layout``)."""

GROUND_TRUTH = "ground_truth"
"""The rater whose masks live in the image group itself; other raters' under ``masks/<rater>``."""

STATE_KEY = "_archivestore"
"""The group attribute holding archivestore's own state (completion marker, checksums, name)."""

TILE = 1024
"""Pixel arrays are chunked in TILE x TILE tiles (1-4 MB objects: good on a bucket)."""

ROW_CHUNK = 65536
"""Rows per chunk of the metadata table's columns."""

STUDY_CHUNKS = {"image": 64, "feature": 4, "rater": 4, "superpixel": 1024}
"""Chunk length of each dimension of a study's arrays (new studies; a study keeps the chunks it was
created with). Overlap reads a block of images with all their features, raters and superpixels: a
4-feature x 10-rater x ~1000-superpixel study is 1.26x padding in 4 MB chunks, where the older
(16, 8, 8, 2048) was 6.6x (``benchmarks/README.md``, study overlap)."""

VOLUME_CHUNKS = {"segment": 1, "z": 16, "y": 512, "x": 512}
"""Chunks of volumes and label volumes: 16 slices of up to 512x512 (8 MB of int16 before
compression) — an axial slice reads one object, a coronal or sagittal one a column of them."""

ZSTD_LEVEL = 3
"""Zstd level of arrays without a kind of their own (tables, studies, microscopy images)."""

ZSTD_LEVELS = {"image": 2, "superpixels": 1, "mask": 1}
"""Zstd level of each kind of array an image group holds (``compressors(kind)``).

Measured with ``benchmarks/bench_codecs.py`` on JPEG-decoded photographs, superpixel index
images and masks (``benchmarks/README.md``): level 2 compresses photographs 1.3-1.7x faster
than level 3 for 2-8 % more bytes; on superpixels and masks level 1 is as small as level 3
(sparse feature masks 18 % smaller) and about as fast. Blosc (lz4 or zstd, any shuffle) is
faster on photographs only at 17-79 % more bytes, and 1.1-6x larger on superpixels and masks.
"""

_UNRESERVED = re.compile(r"^[A-Za-z0-9_.\-]+$")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")

ESCAPE_MARK = "_x"
"""The prefix of every escaped node name (layout 3); no plain node name starts with it."""


def compressors(kind: str | None = None) -> tuple[BytesBytesCodec, ...]:
    """The codecs an array of ``kind`` is compressed with: lossless Zstd (see :data:`ZSTD_LEVELS`).

    ``kind`` is one of ``image`` (photographs), ``superpixels`` (index images) and ``mask``
    (lesion and attribute masks); None for every other array (level :data:`ZSTD_LEVEL`).
    The codec is recorded with each array, so arrays written with other levels stay readable.
    """
    from zarr.codecs import ZstdCodec

    if kind is not None and kind not in ZSTD_LEVELS:
        raise InvalidInputError(f"no codec for array kind {kind!r}; kinds: {', '.join(ZSTD_LEVELS)}")
    return (ZstdCodec(level=ZSTD_LEVELS[kind] if kind is not None else ZSTD_LEVEL),)


def volume_compressors() -> tuple[BytesBytesCodec, ...]:
    """The codec of volumes and label volumes: Blosc with zstd level 1 and byte shuffle.

    Measured on a 512x512x300 CT (``benchmarks/bench_volume_read.py --codecs``): 20 % smaller
    than Zstd level 3, 2.8x less CPU to write and about 1.7x faster to read. Zarr v3 reads it
    without plugins (the codec is recorded with each array, so older arrays stay readable).
    """
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),)


def study_compressors() -> tuple[BytesBytesCodec, ...]:
    """The codec of a study's ``annotation``: Blosc with LZ4 and bit shuffle.

    Its float32 values 0 / 0.5 / 1 / NaN differ in a few bits, which bit shuffle lines up: read
    1.1-1.7x faster than Zstd level 3 across runs (what overlap pays for every study read), 26 %
    larger (``benchmarks/README.md``, study overlap). Zarr v3 reads it without plugins; studies
    written with Zstd keep it.
    """
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),)


def _hex(name: str, keep: bytes) -> str:
    """``_x`` and the UTF-8 bytes of ``name``: letters, digits and ``keep`` as they are, others ``_XX``."""
    return ESCAPE_MARK + "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() or b in keep else f"_{b:02X}"
                                 for b in name.encode("utf-8", errors="strict"))


def _unhex(node: str) -> str:
    """The inverse of :func:`_hex` (``node`` starts with ``_x``)."""
    return unquote(node[len(ESCAPE_MARK):].replace("_", "%"), encoding="utf-8", errors="strict")


def escape_name(name: str) -> str:
    """The node name of an archive name (layout 3, see the module docstring).

    >>> escape_name("ISIC_0000000"), escape_name("1.2.840.10008.5.1.4")
    ('ISIC_0000000', '1.2.840.10008.5.1.4')
    >>> escape_name("Hidden Study: Globules & Network / Agreement")
    '_xHidden_20Study_3A_20Globules_20_26_20Network_20_2F_20Agreement'
    >>> escape_name("model v2.0"), escape_name(".."), escape_name("Ω")
    ('_xmodel_20v2.0', '_x..', '_x_CE_A9')

    Raises
    ------
    InvalidInputError
        If ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a name must be a non-empty string, not {name!r}")
    if _UNRESERVED.match(name) and name.strip(".") and not name.startswith(("__", ESCAPE_MARK)):
        return name
    return _hex(name, b"-.")


def unescape_name(node: str) -> str:
    """The archive name of a layout-3 node name (inverse of :func:`escape_name`)."""
    return _unhex(node) if node.startswith(ESCAPE_MARK) else node


def escape_key(key: str) -> str:
    """One key of a metadata field's key path as part of its variable name (layout 3).

    Like :func:`escape_name`, with ``.`` escaped too (it joins the keys of a path) and the
    empty key allowed (``_x``): ``clinical`` stays, ``diagnosis/impression`` becomes
    ``_xdiagnosis_2Fimpression``, ``a.b`` becomes ``_xa_2Eb``.
    """
    if _KEY.match(key) and not key.startswith(("__", ESCAPE_MARK)):
        return key
    return _hex(key, b"-")


def unescape_key(part: str) -> str:
    """The key of one part of a layout-3 variable name (inverse of :func:`escape_key`)."""
    return _unhex(part) if part.startswith(ESCAPE_MARK) else part


def variable_name(path: tuple[str, ...], reserved: tuple[str, ...] = ()) -> str:
    """The variable name of a metadata field's key path in a layout-3 table: its keys by
    :func:`escape_key`, joined by ``.``.

    A one-key path whose name would be one of the table's own arrays (``reserved``:
    ``image``, ``field``, ``field_state``) is written escaped (``field`` -> ``_xfield``),
    so a record key never collides with a coordinate. One-to-one: splitting at ``.`` and
    :func:`unescape_key` give the path back.

    >>> variable_name(("meta", "clinical", "diagnosis")), variable_name(("field",), ("image", "field"))
    ('meta.clinical.diagnosis', '_xfield')
    """
    if not path:
        raise InvalidInputError("a metadata field needs a key path")
    name = ".".join(escape_key(k) for k in path)
    return _hex(path[0], b"-") if name in reserved else name


def percent_name(name: str) -> str:
    """The node name of an archive name in a layout-2 store: UTF-8 percent-encoding (RFC 3986) of every
    character but ``A-Z a-z 0-9 - _ .``, ``%2E`` for names of periods only, ``%5F_`` for a leading ``__``."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a name must be a non-empty string, not {name!r}")
    if _UNRESERVED.match(name) and name.strip(".") and not name.startswith("__"):
        return name
    out = quote(name, safe="", encoding="utf-8", errors="strict").replace("~", "%7E")
    if not out.strip("."):
        out = out.replace(".", "%2E")
    if out.startswith("__"):
        out = "%5F" + out[1:]
    return out


def _raw_name(name: str) -> str:
    """Layout 1: names as given, refused where they would not be one node."""
    if not isinstance(name, str) or not name or "/" in name or not name.strip(".") or name.startswith("__"):
        raise InvalidInputError(f"{name!r} cannot be a group name in a layout-1 store (it would not be one node)")
    return name


def tile_chunks(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    """Chunks of a pixel array: TILE along ``y``/``x``, 1 along ``feature``/``segment``, whole otherwise."""
    out = []
    for n, d in zip(shape, dims, strict=True):
        if d in ("y", "x"):
            out.append(max(1, min(n, TILE)))
        elif d in ("feature", "segment"):
            out.append(1)
        else:
            out.append(max(n, 1))
    return tuple(out)


def tile_shards(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...] | None:
    """Shards of a pixel array chunked by :func:`tile_chunks`: every feature (or segment) of a tile in
    one object; None for arrays without such a dimension, or with one entry along it.

    Attribute masks are read one feature at a time but written, listed and fetched whole, so
    each tile of all features is one object on a bucket (a zarr v3 shard of one-feature
    chunks). Image, superpixel and mask tiles are not sharded: zarr 3.1 reads a sharded
    multi-tile image 1.3-1.9x slower than the same tiles as objects of their own
    (``benchmarks/README.md``), and those arrays are read far more often than written.
    """
    chunks = tile_chunks(shape, dims)
    if not any(d in ("feature", "segment") and n > 1 for n, d in zip(shape, dims, strict=True)):
        return None
    return tuple(n if d in ("feature", "segment") else c for n, c, d in zip(shape, chunks, dims, strict=True))


ARRAY_CHUNKS = {"t": 1, "channel": 1, "z": 1, "y": TILE, "x": TILE}
"""Chunks of microscopy images (and their label images): one channel and time point per 1024² tile, as
OME-NGFF viewers read them; planes smaller than a tile are stacked along ``z`` up to a tile's pixels
(:func:`array_chunks`)."""


def _chunks(shape: tuple[int, ...], dims: tuple[str, ...], lengths: dict[str, int]) -> tuple[int, ...]:
    """Each dimension's chunk length from ``lengths`` (whole along dimensions it does not name)."""
    return tuple(max(1, min(n, lengths.get(d, n))) for n, d in zip(shape, dims, strict=True))


def array_chunks(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    """Chunks of a microscopy image or label image (see :data:`ARRAY_CHUNKS`).

    A 1024² plane or larger is a chunk per tile; smaller planes go ``TILE² // (y·x)`` to a chunk along
    ``z`` (256² planes: 16), so that a z-stack of small planes is not hundreds of tiny objects (each
    costs a write and a request: 600 planes of 256² took 1.5 s of zarr's per-chunk work alone).
    """
    chunks = list(_chunks(shape, dims, ARRAY_CHUNKS))
    if "z" in dims:
        plane = math.prod(c for c, d in zip(chunks, dims, strict=True) if d in ("y", "x"))
        k = dims.index("z")
        chunks[k] = max(1, min(shape[k], TILE * TILE // max(plane, 1)))
    return tuple(chunks)


def volume_chunks(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    """Chunks of a volume or label volume (see :data:`VOLUME_CHUNKS`)."""
    return _chunks(shape, dims, VOLUME_CHUNKS)


@dataclass(frozen=True)
class Layout:
    """Group paths of one layout version; ``store.layout`` is the one its store was written with."""

    version: int = LAYOUT_VERSION

    IMAGES = "images"
    MASKS = "masks"
    STUDIES = "studies"
    METADATA = "metadata"
    SERIES = "series"
    SEGMENTATIONS = "segmentations"
    SERIES_METADATA = "series_metadata"
    SEGMENTATION_OVERLAP = "segmentation_overlap"
    FINDINGS = "findings"
    FINDINGS_AGREEMENT = "findings_agreement"
    PLATES = "plates"
    SPLITS = "splits"
    SLIDES = "slides"
    LOCKS = "_locks"

    @property
    def top_groups(self) -> tuple[str, ...]:
        """Groups every store has from its creation on."""
        groups = (self.IMAGES, self.MASKS, self.STUDIES, self.METADATA, self.SERIES, self.SEGMENTATIONS,
                  self.SERIES_METADATA, self.PLATES)
        locks = (self.LOCKS, f"{self.LOCKS}/{self.IMAGES}", f"{self.LOCKS}/{self.SERIES}",
                 f"{self.LOCKS}/{self.SEGMENTATIONS}", f"{self.LOCKS}/{self.PLATES}")
        return groups + locks

    def node(self, name: str) -> str:
        """The node name of an archive name in this layout."""
        if self.version >= 3:
            return escape_name(name)
        return percent_name(name) if self.version == 2 else _raw_name(name)

    def name(self, node: str) -> str:
        """The archive name of a node name in this layout."""
        if self.version >= 3:
            return unescape_name(node)
        return unquote(node, encoding="utf-8", errors="strict") if self.version == 2 else node

    def member(self, name: str) -> str:
        """The array name of a name from an archive inside a group (a microscopy label image):
        :meth:`node` in layout 3, the name as given in older layouts (which wrote it so)."""
        return escape_name(name) if self.version >= 3 else _raw_name(name)

    @property
    def named_groups(self) -> tuple[str, ...]:
        """The groups whose children are named by :meth:`node` (``masks/<rater>`` below ``masks`` too);
        ``archivestore upgrade`` moves their children. A new kind of named group is added here."""
        return (self.IMAGES, self.MASKS, self.STUDIES, self.SERIES, self.SEGMENTATIONS, self.PLATES, self.FINDINGS,
                self.SPLITS, self.SLIDES)

    def image(self, image_id: str) -> str:
        """``images/<id>``: the image, its superpixels and the ground-truth masks."""
        return f"{self.IMAGES}/{self.node(image_id)}"

    def rater(self, rater: str) -> str:
        """``masks/<rater>``: the group of one rater's mask groups."""
        return f"{self.MASKS}/{self.node(rater)}"

    def masks(self, image_id: str, rater: str = GROUND_TRUTH) -> str:
        """Where a rater's masks of an image are: the image group for ground truth, else ``masks/<rater>/<id>``."""
        if rater == GROUND_TRUTH:
            return self.image(image_id)
        return f"{self.rater(rater)}/{self.node(image_id)}"

    def study(self, study: str) -> str:
        """``studies/<study>``: per-superpixel annotations."""
        return f"{self.STUDIES}/{self.node(study)}"

    def overlap(self, study: str) -> str:
        """``studies/<study>/overlap``: the study's rater overlap."""
        return f"{self.study(study)}/overlap"

    def series(self, series_id: str) -> str:
        """``series/<id>``: one image volume (a SeriesInstanceUID, or ``<uid>_part<k>`` for a split series)."""
        return f"{self.SERIES}/{self.node(series_id)}"

    def segmentation(self, series_uid: str) -> str:
        """``segmentations/<SEG SeriesInstanceUID>``: one DICOM SEG as label volumes."""
        return f"{self.SEGMENTATIONS}/{self.node(series_uid)}"

    def findings(self, series_uid: str) -> str:
        """``findings/<SR SeriesInstanceUID>``: one measurement report's findings as a table along ``row``."""
        return f"{self.FINDINGS}/{self.node(series_uid)}"
    def slide(self, series_uid: str) -> str:
        """``slides/<SM SeriesInstanceUID>``: a slide's pyramid, one group per level (``0``, ``1``, ...)
        and its ``label``/``overview``/``thumbnail`` images beside."""
        return f"{self.SLIDES}/{self.node(series_uid)}"

    def plate(self, plate_id: str) -> str:
        """``plates/<id>``: a screening plate's well grid of image ids."""
        return f"{self.PLATES}/{self.node(plate_id)}"

    def split(self, name: str) -> str:
        """``splits/<name>``: a train/validation/test assignment of items (:mod:`archivestore.ml`)."""
        return f"{self.SPLITS}/{self.node(name)}"

    def lock(self, name: str) -> str:
        """The key of lease ``name`` (a group path such as ``images/<id>``, or ``tables``)."""
        return f"{self.LOCKS}/{name}/zarr.json"


LAYOUT = Layout()
"""The layout new stores get."""
