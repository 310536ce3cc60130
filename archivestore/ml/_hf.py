"""Export for sharing: a Hugging Face ``datasets`` dataset on disk (``datasets.load_from_disk`` opens it).

One row per image: ``id``, ``license``, ``attribution``, each chosen array as an ``Image`` feature
holding a lossless PNG (``image`` RGB, ``mask`` 0/1 gray, ``superpixels`` 16-bit gray: the stored
values, read back bit-exact), then the metadata fields as typed columns (dotted paths). With a
stored split, its parts are the dataset's splits (a ``DatasetDict``); without, one ``train`` split.
A ``LICENSES.txt`` (images per licence, then the attributions) goes beside the Arrow files.

The dataset is written into a hidden folder beside ``out`` and moved into place when complete, so
``out`` never holds half an export; an existing ``out`` is an error (nothing is replaced). An image
that cannot be read is reported by id and left out; an array an image lacks (no mask) is null.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from archivestore.errors import ArchivestoreError, InvalidInputError, NotFoundError
from archivestore.ml._fields import credits

if TYPE_CHECKING:
    import pandas as pd

    from archivestore.store import Store

__all__ = ["HF_ARRAYS", "HfExport", "export_hf", "png_bytes"]

HF_ARRAYS = ("image", "mask", "superpixels")
"""The image arrays an export may carry (each a PNG): 8-bit RGB, 8-bit gray, 16-bit gray."""


@dataclass
class HfExport:
    """What :func:`export_hf` wrote: rows per split, images left out (id → reason), arrays missing."""

    out: str
    rows: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: rows per split, and what was left out."""
        rows = ", ".join(f"{k} {n}" for k, n in self.rows.items())
        missing = "".join(f"; {n} without {a}" for a, n in self.missing.items() if n)
        return f"wrote {sum(self.rows.values())} images to {self.out} ({rows}){missing}; {len(self.failed)} failed"


def png_bytes(array: np.ndarray) -> bytes:
    """A lossless PNG of an image array: (y, x, 3) uint8 RGB, (y, x) uint8 or uint16 gray."""
    from PIL import Image

    if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        image = Image.fromarray(np.ascontiguousarray(array))  # L, RGB or RGBA
    elif array.ndim == 2 and array.dtype.kind == "u" and (array.dtype.itemsize <= 2 or int(array.max()) <= 65535):
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint16))  # I;16 (uint32 superpixels < 65536)
    else:
        raise InvalidInputError(f"no lossless PNG for a {array.dtype} array of shape {array.shape}")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _features(frame: pd.DataFrame, arrays: Sequence[str], fields: Sequence[str]) -> Any:
    import pandas as pd
    from datasets import Features, Image, Value

    spec: dict[str, Any] = {"id": Value("string"), "license": Value("string"), "attribution": Value("string")}
    spec.update({a: Image() for a in arrays})
    for name in fields:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            spec[name] = Value("bool")
        elif pd.api.types.is_integer_dtype(dtype):
            spec[name] = Value("int64")
        elif pd.api.types.is_float_dtype(dtype):
            spec[name] = Value("float64")
        else:
            spec[name] = Value("string")
    return Features(spec)


def _rows(store: Store, ids: Sequence[str], arrays: Sequence[str], frame: pd.DataFrame, fields: Sequence[str],
          report: HfExport) -> Iterator[dict[str, Any]]:
    from archivestore.ml._assign import text_of
    from archivestore.ml._read import read_groups

    licenses, attributions = credits(frame, ids)
    rows = frame.reindex(list(ids))
    for k, image_id in enumerate(ids):
        row: dict[str, Any] = {"id": image_id, "license": licenses[k], "attribution": attributions[k]}
        try:
            for name in arrays:
                path = store.layout.image(image_id)
                try:
                    data = read_groups(store, {path: [name]})[(path, name)]
                except NotFoundError:
                    if name == "image" or not store.is_complete(image_id):
                        raise
                    report.missing[name] = report.missing.get(name, 0) + 1
                    row[name] = None
                    continue
                row[name] = {"bytes": png_bytes(data), "path": None}
        except (ArchivestoreError, OSError, ValueError) as exc:
            report.failed[image_id] = f"{store.layout.image(image_id)}: {exc}"
            continue
        for name in fields:
            value = rows.iloc[k][name]
            text = text_of(value)
            row[name] = None if text is None else (value.item() if isinstance(value, np.generic) else value)
            if text is not None and isinstance(row[name], (list, dict)):
                row[name] = text
        yield row


def export_hf(store: Store, out: str | os.PathLike[str], *, ids: Sequence[str] | None = None,
              where: Sequence[str] = (), split: str | None = None, arrays: Sequence[str] = ("image", "mask"),
              fields: Sequence[str] | None = None) -> HfExport:
    """Write images, masks and metadata as a Hugging Face dataset that ``datasets.load_from_disk`` opens.

    Parameters
    ----------
    store
        The store to read.
    out
        A local folder that does not exist yet.
    ids, where
        Only these images / the images passing these criteria (see :func:`archivestore.select.select`).
    split
        A stored split (``splits/<name>``): its parts become the dataset's splits, the items it
        left out are not exported. Default: one ``train`` split of every chosen image.
    arrays
        Image arrays to export as PNG, from :data:`HF_ARRAYS`.
    fields
        Metadata fields (dotted paths) to keep as columns; default every field.

    Returns
    -------
    HfExport
        Rows per split and the images left out.
    """
    from datasets import Dataset, DatasetDict

    from archivestore.export import licenses_summary
    from archivestore.ml._splits import read_split
    from archivestore.select import select

    bad = [a for a in arrays if a not in HF_ARRAYS]
    if bad or not arrays:
        raise InvalidInputError(f"arrays are some of {', '.join(HF_ARRAYS)}, not {list(arrays)!r}")
    target = Path(out)
    if target.exists():
        raise InvalidInputError(f"{target} exists; export into a new folder")
    frame = store.metadata_frame()
    chosen = list(ids) if ids is not None else store.image_ids()
    if where:
        passing = set(select(store, *where).ids)
        chosen = [i for i in chosen if i in passing]
    fields = list(frame.columns) if fields is None else list(fields)
    unknown = [f for f in fields if f not in frame.columns]
    if unknown:
        raise NotFoundError(f"no metadata field {', '.join(map(repr, unknown))}")
    fields = [f for f in fields if f not in ("id", "license", "attribution", *HF_ARRAYS)]
    if split is None:
        parts = {"train": chosen}
    else:
        table = read_split(store, split)
        keep = set(chosen)
        names = [p for p in dict.fromkeys(table["split"]) if p]
        parts = {p: [i for i in table.index[table["split"] == p] if i in keep] for p in names}
    report = HfExport(str(target))
    features = _features(frame, arrays, fields)
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    bars = is_progress_bar_enabled()
    disable_progress_bar()  # one summary line instead of a bar per split and per step
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        built = {}
        for part, part_ids in parts.items():
            built[part] = Dataset.from_generator(
                _rows, features=features, cache_dir=str(work / "cache"), keep_in_memory=False,
                gen_kwargs={"store": store, "ids": tuple(part_ids), "arrays": tuple(arrays), "frame": frame,
                            "fields": tuple(fields), "report": report})
            report.rows[part] = len(built[part])
        DatasetDict(built).save_to_disk(str(work / "dataset"))
        exported = [i for p in parts.values() for i in p if i not in report.failed]
        (work / "dataset" / "LICENSES.txt").write_text(licenses_summary(frame, exported), encoding="utf-8")
        os.replace(work / "dataset", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if bars:
            enable_progress_bar()
    return report
