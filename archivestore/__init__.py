"""archivestore: public imaging archives in one chunked Zarr v3 store.

>>> import archivestore
>>> store = archivestore.open_store("isic.zarr", mode="a")
>>> report = archivestore.ingest(store, archivestore.sources.ChallengeSource(["ISIC-2017_Training_Data"]))
>>> store.image("ISIC_0000000")            # xarray Dataset: image, superpixels, mask, ...
>>> store.metadata_frame()                 # one row per image
"""

from archivestore import sources
from archivestore.ingest import IngestReport, ingest
from archivestore.store import Store, open_store

__all__ = ["IngestReport", "Store", "ingest", "open_store", "sources"]
__version__ = "0.1.0"
