"""An instance index for the IDC stand-in: SOPInstanceUID -> crdc_instance_uuid, as idc-index's ``sm_instance_index``.

:func:`archivestore.testing.idc.populate_idc_bucket` names each object ``<crdc_instance_uuid>.dcm`` with
:func:`~archivestore.testing.idc.crdc_uuid` of its SOPInstanceUID; :func:`write_instance_index` writes the
parquet that maps the one to the other (the columns idc-index's instance index has for this purpose).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from archivestore.testing.idc import crdc_uuid

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_instance_index"]


def write_instance_index(series: Iterable[Sequence[tuple[str, bytes]]],
                         path: str | os.PathLike[str]) -> pd.DataFrame:
    """Write (and return) ``SOPInstanceUID``, ``SeriesInstanceUID``, ``crdc_instance_uuid`` of every instance."""
    import duckdb
    import pandas as pd
    import pydicom

    rows = []
    for files in series:
        for _, data in files:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            rows.append({"SOPInstanceUID": str(ds.SOPInstanceUID), "SeriesInstanceUID": str(ds.SeriesInstanceUID),
                         "crdc_instance_uuid": crdc_uuid(str(ds.SOPInstanceUID))})
    table = pd.DataFrame(rows, columns=["SOPInstanceUID", "SeriesInstanceUID", "crdc_instance_uuid"])
    con = duckdb.connect()
    con.from_df(table).write_parquet(os.fspath(path))
    con.close()
    return table
