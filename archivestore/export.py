"""CSV export of the metadata table with isic-cli's ``metadata.csv`` columns, and license summaries.

>>> from archivestore.export import export_csv, licenses_summary
>>> export_csv(store, "metadata.csv")                       # doctest: +SKIP
>>> print(licenses_summary(store, select(store, "...").ids))  # doctest: +SKIP
"""

from archivestore._export import (
    BASE_COLUMNS,
    add_export_command,
    attributions,
    export_csv,
    licenses_summary,
    metadata_table,
    read_keys,
)

__all__ = [
    "BASE_COLUMNS",
    "add_export_command",
    "attributions",
    "export_csv",
    "licenses_summary",
    "metadata_table",
    "read_keys",
]
