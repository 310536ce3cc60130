"""archivestore: public imaging archives in one chunked Zarr v3 store.

>>> import archivestore
>>> store = archivestore.open_store("isic.zarr", mode="a")
>>> report = archivestore.ingest(store, archivestore.sources.ChallengeSource(["ISIC-2017_Training_Data"]))
>>> store.image("ISIC_0000000")            # xarray Dataset: image, superpixels, mask, ...
>>> store.metadata_frame()                 # one row per image

The names below load on first use (PEP 562), so ``import archivestore`` (and the command
line's ``--help``) imports no xarray, dask, zarr or pandas until one of them is needed.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archivestore import sources
    from archivestore._ingest import IngestInterrupted, IngestReport, ingest
    from archivestore.store import Store, open_store, upgrade

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "IngestInterrupted": "archivestore._ingest",
    "IngestReport": "archivestore._ingest",
    "Store": "archivestore.store",
    "ingest": "archivestore._ingest",
    "open_store": "archivestore.store",
    "sources": "archivestore.sources",
    "upgrade": "archivestore.store",
}
"""Public name → the module that defines it (a name that is itself a submodule maps to that module)."""

__all__ = ["IngestInterrupted", "IngestReport", "Store", "ingest", "open_store", "sources", "upgrade"]


if "zarr" in sys.modules:  # zarr is loaded already: register the slide codecs now (else archivestore.store does)
    importlib.import_module("archivestore.codecs")


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name in the package's globals."""
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if module_name == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
