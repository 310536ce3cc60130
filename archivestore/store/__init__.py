"""The store layer: a Zarr v3 hierarchy laid out as :mod:`archivestore.layout` says.

:func:`open_store` opens one; :class:`Store` reads it (lazy xarray objects, or numpy
straight from zarr) and offers writers their few operations (item groups with a
completion marker, leases, the locked append to the shared tables). Imports no source.
"""

import archivestore.codecs  # noqa: F401  (registers the slide tile codecs with zarr)
from archivestore.store._groups import GroupWriter, checksum
from archivestore.store._lock import LEASE_SECONDS, Lease, acquire
from archivestore.store._metadata import TableIndex, flatten, variable_name
from archivestore.store._store import Store, open_store
from archivestore.store._studies import StudyRow
from archivestore.store._upgrade import UpgradeReport, upgrade
from archivestore.store._writing import GroupTaken

__all__ = [
    "LEASE_SECONDS",
    "GroupTaken",
    "GroupWriter",
    "Lease",
    "Store",
    "StudyRow",
    "TableIndex",
    "UpgradeReport",
    "acquire",
    "checksum",
    "flatten",
    "open_store",
    "upgrade",
    "variable_name",
]
