"""The ``archivestore`` command line: the only place with argparse and printing.

One module per command group, each a few-line wrapper of library calls:

- ``_ingest``: ``ingest challenge|isic|isic-study``
- ``_store``: ``info``, ``verify``, ``upgrade``
- ``_analysis``: ``overlap``, ``score``, ``heatmap``
- ``_tables``: ``select``, ``export-csv``
- ``_demo``: ``demo``
- ``_common``: ``--storage-option``, ``--scheduler``, errors → exit codes, report lines

Nothing in archivestore imports this package. At module level it imports only the standard
library and archivestore's dependency-free modules (``errors``, ``layout``, the criteria of
``select``), so ``--help`` and argument errors load no xarray, dask, zarr, pandas, numpy,
Pillow or requests; each command imports what it needs when it runs.
"""

from archivestore.cli._demo import run_demo
from archivestore.cli._main import build_parser, main

__all__ = ["build_parser", "main", "run_demo"]
