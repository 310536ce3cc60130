"""Per-item values taken from a metadata table once, in the main process: licences, attributions, targets.

Targets are metadata fields (``ground_truth.melanoma``, ``metadata.clinical.diagnosis_1``): numbers
stay numbers (float64; a missing value is NaN), booleans become 0/1, anything else is a class
encoded by its position in the sorted list of the values seen (a missing value is -1), and the
encoding is kept (:attr:`Targets.classes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from archivestore.errors import NotFoundError
from archivestore.ml._assign import text_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LICENSE_FIELDS", "ATTRIBUTION_FIELDS", "Targets", "credits"]

LICENSE_FIELDS = ("copyright_license", "dataset.license", "LicenseName", "license_short_name")
"""Where a row's licence is, first found wins: ISIC v2, ISIC v1, TCIA (NBIA), IDC."""

ATTRIBUTION_FIELDS = ("attribution", "dataset.attribution", "CollectionURI", "source_DOI", "Collection",
                      "collection_id")
"""Where a row's attribution is, first found wins: ISIC v2/v1, then TCIA's and IDC's citation and collection."""


def _first(frame: pd.DataFrame, ids: Sequence[str], names: Sequence[str]) -> list[str]:
    out = [""] * len(ids)
    rows = frame.reindex(list(ids))
    for name in names:
        if name not in rows.columns:
            continue
        for k, value in enumerate(rows[name].astype(object)):
            if not out[k]:
                out[k] = text_of(value) or ""
    return out


def credits(frame: pd.DataFrame, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each item's licence and attribution (``""`` where the archive gave none)."""
    return _first(frame, ids, LICENSE_FIELDS), _first(frame, ids, ATTRIBUTION_FIELDS)


@dataclass
class Targets:
    """Target values of the chosen items, one array per field (aligned with the dataset's ids)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)
    """The encoding of each class target: value ``k`` is ``classes[field][k]``."""

    @classmethod
    def of(cls, frame: pd.DataFrame, ids: Sequence[str], fields: Sequence[str]) -> Targets:
        """The targets ``fields`` of the rows ``ids`` of ``frame`` (``NotFoundError`` for an unknown field)."""
        import pandas as pd

        missing = [f for f in fields if f not in frame.columns]
        if missing:
            raise NotFoundError(f"no metadata field {', '.join(map(repr, missing))}; "
                                f"fields: {', '.join(sorted(frame.columns)[:20])} ...")
        out = cls()
        rows = frame.reindex(list(ids))
        for name in fields:
            column = rows[name]
            if pd.api.types.is_bool_dtype(column.dtype):
                out.values[name] = column.astype("float64").fillna(np.nan).to_numpy(np.float64)
            elif pd.api.types.is_numeric_dtype(column.dtype):
                out.values[name] = column.astype("Float64").to_numpy(np.float64, na_value=np.nan)
            else:
                text = [text_of(v) for v in column.astype(object)]
                classes = sorted({t for t in text if t is not None})
                code = {c: k for k, c in enumerate(classes)}
                out.values[name] = np.array([-1 if t is None else code[t] for t in text], dtype=np.int64)
                out.classes[name] = classes
        return out

    def row(self, k: int) -> dict[str, np.generic]:
        """The targets of the ``k``-th item."""
        return {name: values[k] for name, values in self.values.items()}
