"""Assigning whole groups of items to the parts of a split (no store: a table in, an assignment out).

- **Groups.** Items sharing a value of any ``by`` field are one group (patient, lesion, study,
  collection; several fields link: two patients' images of one lesion are one group), so no
  group can straddle two parts. An item without any ``by`` value is *unplaced* and reported.
- **Stratified** (``stratify`` a field): the groups of each stratum are assigned apart, so each
  part gets each stratum's share. A group whose items hold several values of the field (a patient
  with a melanoma and a nevus) would straddle strata: it goes whole into the stratum of its most
  common value (the smallest on a tie) and is reported; an item without the value is stratum "".
- **Deterministic.** Within a stratum the groups are sorted by key, shuffled by
  ``numpy.random.default_rng(seed)``, then taken largest first (a stable sort) and each given to
  the part furthest below its share of items. The same table and seed give the same split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from archivestore.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Assignment", "assign", "default_parts", "text_of"]


def default_parts(n: int) -> tuple[str, ...]:
    """Part names for ``n`` fractions: train/test, train/validation/test, else part1, part2, ..."""
    return {2: ("train", "test"), 3: ("train", "validation", "test")}.get(n, tuple(f"part{k + 1}" for k in range(n)))


@dataclass
class Assignment:
    """The result of :func:`assign`: each item's part and group, and what could not be placed plainly."""

    part: dict[str, str] = field(default_factory=dict)
    """Item id → its part (only placed items)."""
    group: dict[str, str] = field(default_factory=dict)
    """Item id → its group's key (``field=value`` of the group's smallest value)."""
    unplaced: dict[str, str] = field(default_factory=dict)
    """Item id → why it has no part."""
    mixed: dict[str, str] = field(default_factory=dict)
    """Group key → the strata it spans and the one it was placed by (stratified splits)."""


def _values(frame: pd.DataFrame, name: str) -> list[str | None]:
    if name not in frame.columns:
        raise NotFoundError(f"no metadata field {name!r}; fields: {', '.join(sorted(frame.columns)[:20])} ...")
    return [text_of(v) for v in frame[name].astype(object)]


def text_of(value: Any) -> str | None:
    """A table value as text; None when missing (None, NaN, ``pd.NA``, ``""``)."""
    import pandas as pd

    if value is None or (not isinstance(value, (list, tuple, dict, np.ndarray)) and pd.isna(value)):
        return None
    return str(value) if str(value) != "" else None


def _components(ids: Sequence[str], keys: list[list[str]]) -> dict[str, str]:
    """Item → group key, where items sharing any key are one group (union-find over the keys)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for item_keys in keys:
        for other in item_keys[1:]:
            a, b = find(item_keys[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smallest key names the group
    return {i: find(k[0]) for i, k in zip(ids, keys, strict=True) if k}


def assign(frame: pd.DataFrame, by: Sequence[str], fractions: Sequence[float], *, seed: int = 0,
           stratify: str | None = None, parts: Sequence[str] | None = None) -> Assignment:
    """Assign the rows of ``frame`` (index: item ids) to parts, whole groups at a time (see the module).

    Parameters
    ----------
    frame
        A metadata table (``Store.metadata_frame()`` or a selection of it).
    by
        The grouping fields (dotted paths), e.g. ``["metadata.clinical.patient_id"]``.
    fractions
        Each part's share of the items, positive, summing to 1.
    seed
        The shuffle's seed.
    stratify
        A field whose values each part should get in proportion.
    parts
        The parts' names (default :func:`default_parts`).
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) < 2 or any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise InvalidInputError(f"fractions are two or more positive numbers summing to 1, not {fractions}")
    names = tuple(parts) if parts is not None else default_parts(len(fractions))
    if len(names) != len(fractions) or len(set(names)) != len(names) or not all(names):
        raise InvalidInputError(f"one distinct, non-empty part name per fraction, not {list(names)}")
    if not by:
        raise InvalidInputError("a split needs at least one grouping field (by)")
    ids = [str(i) for i in frame.index]
    columns = {name: _values(frame, name) for name in by}
    keys = [[f"{name}={columns[name][k]}" for name in by if columns[name][k] is not None] for k in range(len(ids))]
    out = Assignment()
    for item, item_keys in zip(ids, keys, strict=True):
        if not item_keys:
            out.unplaced[item] = f"no value of {' or '.join(by)}"
    out.group = _components(ids, keys)
    members: dict[str, list[str]] = {}
    for item, key in out.group.items():
        members.setdefault(key, []).append(item)
    strata = dict(zip(ids, _values(frame, stratify), strict=True)) if stratify else {}
    by_stratum: dict[str, list[str]] = {}
    for key in sorted(members):
        counts = Counter(strata.get(i) or "" for i in members[key])
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        if len(counts) > 1:
            spans = ", ".join(f"{v or '(none)'} ({n})" for v, n in sorted(counts.items()))
            out.mixed[key] = f"{stratify} values {spans}: placed whole with {best or '(none)'}"
        by_stratum.setdefault(best, []).append(key)
    rng = np.random.default_rng(seed)
    for stratum in sorted(by_stratum):
        groups = [by_stratum[stratum][k] for k in rng.permutation(len(by_stratum[stratum]))]
        groups.sort(key=lambda g: -len(members[g]))
        target = np.array(fractions) * sum(len(members[g]) for g in groups)
        count = np.zeros(len(fractions))
        for g in groups:
            k = int(np.argmax(target - count))
            count[k] += len(members[g])
            for item in members[g]:
                out.part[item] = names[k]
    return out
