"""From store to model: map-style datasets for PyTorch, leak-free splits kept in the store, a Hugging Face export.

>>> from archivestore.ml import ImageDataset, make_split
>>> make_split(store, by="metadata.clinical.patient_id", fractions=(0.8, 0.1, 0.1), name="v1")  # doctest: +SKIP
>>> ds = ImageDataset("isic.zarr", targets=["metadata.clinical.diagnosis_1"], split=("v1", "train"))  # doctest: +SKIP
>>> torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)                                   # doctest: +SKIP

Importing this package needs neither torch nor Hugging Face ``datasets`` (``pip install
'archivestore[ml]'`` and ``'archivestore[hf]'``): the datasets are plain Python objects with
``__len__`` and ``__getitem__`` that ``DataLoader`` takes as they are; torch is imported only
for ``tensors=True``, and ``datasets`` only by :func:`export_hf`. The names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archivestore.ml._assign import Assignment, assign
    from archivestore.ml._base import StoreDataset, opened_stores, to_tensors
    from archivestore.ml._hf import HfExport, export_hf
    from archivestore.ml._images import ImageDataset
    from archivestore.ml._splits import SplitReport, list_splits, make_split, read_split
    from archivestore.ml._tiles import Tiled, TileDataset, register_opener
    from archivestore.ml._volumes import VolumeDataset

_EXPORTS: dict[str, str] = {
    "Assignment": "archivestore.ml._assign",
    "HfExport": "archivestore.ml._hf",
    "ImageDataset": "archivestore.ml._images",
    "SplitReport": "archivestore.ml._splits",
    "StoreDataset": "archivestore.ml._base",
    "TileDataset": "archivestore.ml._tiles",
    "Tiled": "archivestore.ml._tiles",
    "VolumeDataset": "archivestore.ml._volumes",
    "assign": "archivestore.ml._assign",
    "export_hf": "archivestore.ml._hf",
    "list_splits": "archivestore.ml._splits",
    "make_split": "archivestore.ml._splits",
    "opened_stores": "archivestore.ml._base",
    "read_split": "archivestore.ml._splits",
    "register_opener": "archivestore.ml._tiles",
    "to_tensors": "archivestore.ml._base",
}

__all__ = [
    "Assignment", "ImageDataset", "SplitReport", "StoreDataset", "assign", "list_splits", "make_split",
    "opened_stores", "read_split", "to_tensors", "VolumeDataset", "HfExport", "export_hf",
    "TileDataset", "Tiled", "register_opener",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    try:
        module = importlib.import_module(_EXPORTS[name])
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
