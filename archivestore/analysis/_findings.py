"""Rater agreement on SR findings: kappas per qualitative concept, spread of each measurement.

The input is :meth:`Store.findings` (one row per measurement or qualitative evaluation, with
``source_series``, ``observer``, ``tracking_uid``, ``tracking_id``, ``referenced_segment``, ``kind``,
``concept``, ``value``, ``value_code``, ``unit``). The rules:

1. **Matching findings.** Per source series one key, the first of ``tracking_uid``,
   ``tracking_id``, ``referenced_segment`` whose non-empty values include one reported by two or
   more observers (so per-reader tracking UIDs fall back to shared identifiers); a series where none
   is shared is left out. An item is ``(source series, key value)``; rows without a key value are
   left out. The ``matched_by`` attribute records each series' choice.
2. **Raters** are the ``observer`` values. A rater who rated one item and concept more than once
   counts with the first row (in the frame's order), and ``duplicates`` counts the rows dropped.
3. **Qualitative concepts** (``kind == "qualitative"``, categories = ``value_code``): with exactly two
   raters of the concept, **Cohen's kappa** over the items both rated; with three or more,
   **Fleiss' kappa** over the items every one of them rated. ``cohen_kappa`` (concept, rater, other)
   holds every pair's Cohen kappa as well. ``kappa = (p_o - p_e) / (1 - p_e)``; NaN when
   undefined (fewer than two items, or ``p_e == 1``: one category only).
4. **Measurements** (``kind == "measurement"``, per concept and unit): for each item with two or more
   raters' values, their mean, sample standard deviation (ddof 1), minimum and maximum
   (``rated_*`` along ``rated``); per concept the number of such items, the mean and median of the
   standard deviations, the mean and largest range (max - min), and the mean coefficient of
   variation (sd / |mean|).

Kappas equal scikit-learn's ``cohen_kappa_score`` and statsmodels' ``fleiss_kappa`` (the tests check).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from archivestore.analysis._write import write_result
from archivestore.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cohen_kappa", "findings_agreement", "findings_agreement_table", "fleiss_kappa",
           "write_findings_agreement"]

_KEYS = ("tracking_uid", "tracking_id", "referenced_segment")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two raters' categories of the same items (NaN when undefined)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size < 2:
        return float("nan")
    categories, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    ca, cb = codes[: a.size], codes[a.size:]
    k = categories.size
    observed = float(np.mean(ca == cb))
    expected = float(np.bincount(ca, minlength=k) @ np.bincount(cb, minlength=k)) / a.size ** 2
    return float("nan") if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: np.ndarray) -> float:
    """Fleiss' kappa of an (items, raters) array of categories, every item rated by every rater."""
    ratings = np.asarray(ratings)
    items, raters = ratings.shape
    if items < 2 or raters < 2:
        return float("nan")
    _, codes = np.unique(ratings, return_inverse=True)
    codes = codes.reshape(items, raters)
    counts = np.zeros((items, int(codes.max()) + 1))
    np.add.at(counts, (np.repeat(np.arange(items), raters), codes.ravel()), 1)
    p_item = ((counts ** 2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_category = counts.sum(axis=0) / (items * raters)
    expected = float((p_category ** 2).sum())
    return float("nan") if expected >= 1.0 else (float(p_item.mean()) - expected) / (1.0 - expected)


def _matched(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str], int]:
    """Rows with an ``item`` key (rule 1), first row per (rater, item, concept) (rule 2)."""
    import pandas as pd

    parts, matched_by = [], {}
    for series, rows in frame.groupby("source_series", sort=True):
        for key in _KEYS:
            keyed = rows[rows[key].astype(str) != ""]
            if not keyed.empty and (keyed.groupby(key)["observer"].nunique() >= 2).any():
                matched_by[str(series)] = key
                parts.append(keyed.assign(item=[f"{series}|{v}" for v in keyed[key]]))
                break
    if not parts:
        return frame.iloc[:0].assign(item=[]), matched_by, 0
    rows = pd.concat(parts, ignore_index=True)
    unique = rows.drop_duplicates(["observer", "item", "kind", "concept"], keep="first")
    return unique, matched_by, len(rows) - len(unique)


def findings_agreement(frame: pd.DataFrame) -> xr.Dataset:
    """Agreement of the observers' findings (module docstring: the rules).

    Parameters
    ----------
    frame
        :meth:`archivestore.store.Store.findings` (or any frame with its columns).

    Returns
    -------
    xarray.Dataset
        ``kappa``, ``kappa_method``, ``items``, ``raters``, ``categories``, ``observed_agreement``
        (concept); ``cohen_kappa`` (concept, rater, other); ``measured_items``, ``sd_mean``,
        ``sd_median``, ``range_mean``, ``range_max``, ``cv_mean`` (measurement, with ``unit``); the
        per-item spread ``rated_mean``, ``rated_sd``, ``rated_min``, ``rated_max``, ``rated_n`` (rated).

    Raises
    ------
    InvalidInputError
        No findings are matched across two or more observers.
    """
    rows, matched_by, duplicates = _matched(frame)
    if rows.empty:
        raise InvalidInputError("no finding is reported by two or more observers (matched by tracking UID, "
                                "tracking identifier or referenced segment)")
    raters = sorted(set(rows["observer"]))
    qualitative = rows[rows["kind"] == "qualitative"]
    concepts = sorted(set(qualitative["concept"]))
    n, r = len(concepts), len(raters)
    kappa, observed = np.full(n, np.nan), np.full(n, np.nan)
    items, rater_count, categories = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    method, meaning = [""] * n, [""] * n
    pairwise = np.full((n, r, r), np.nan)
    for c, concept in enumerate(concepts):
        sub = qualitative[qualitative["concept"] == concept]
        meaning[c] = str(sub["concept_meaning"].iloc[0])
        table = sub.pivot(index="item", columns="observer", values="value_code")
        who = [x for x in raters if x in table.columns]
        rater_count[c], categories[c] = len(who), sub["value_code"].nunique()
        for i, x in enumerate(raters):
            for j, y in enumerate(raters):
                if i != j and x in table.columns and y in table.columns:
                    both = table[[x, y]].dropna()
                    pairwise[c, i, j] = cohen_kappa(both[x].to_numpy(), both[y].to_numpy())
        complete = table[who].dropna()
        items[c] = len(complete)
        if len(who) == 2:
            method[c] = "cohen"
            kappa[c] = cohen_kappa(complete[who[0]].to_numpy(), complete[who[1]].to_numpy())
        elif len(who) > 2:
            method[c] = "fleiss"
            kappa[c] = fleiss_kappa(complete.to_numpy())
        if len(complete):
            values = complete.to_numpy()
            observed[c] = float(np.mean([len(set(v)) == 1 for v in values]))
    ds = xr.Dataset(
        {"kappa": ("concept", kappa), "kappa_method": ("concept", np.array(method, dtype=object)),
         "items": ("concept", items), "raters": ("concept", rater_count), "categories": ("concept", categories),
         "observed_agreement": ("concept", observed),
         "cohen_kappa": (("concept", "rater", "other"), pairwise)},
        coords={"concept": np.array(concepts, dtype=object), "concept_meaning": ("concept", np.array(meaning, object)),
                "rater": np.array(raters, dtype=object), "other": np.array(raters, dtype=object)})
    ds = ds.merge(_spread(rows[rows["kind"] == "measurement"]))
    ds.attrs = {"matched_by": matched_by, "duplicates": duplicates,
                "definitions": {"kappa": "Cohen's kappa (two raters) or Fleiss' kappa (three or more) per concept",
                                "observed_agreement": "share of complete items on which every rater agrees",
                                "sd_mean": "mean over items of the raters' sample standard deviation",
                                "cv_mean": "mean over items of sd / |mean|"}}
    return ds


def _spread(rows: pd.DataFrame) -> xr.Dataset:
    """Per item and measurement concept: the raters' mean, sd, min, max; per concept their summaries."""
    grouped = rows.groupby(["concept", "unit", "item"], sort=True)["value"]
    stats = grouped.agg(["count", "mean", "std", "min", "max"]).reset_index()
    stats = stats[stats["count"] >= 2]
    names = sorted(set(zip(stats["concept"], stats["unit"], strict=True)))
    keys = [f"{c} [{u}]" if u else c for c, u in names]
    per = {name: stats[(stats["concept"] == name[0]) & (stats["unit"] == name[1])] for name in names}
    meaning = {c: str(m) for c, m in zip(rows["concept"], rows["concept_meaning"], strict=True)}

    def summary(fn: Any) -> np.ndarray:
        return np.array([fn(per[name]) if len(per[name]) else np.nan for name in names], dtype=np.float64)

    return xr.Dataset(
        {"measured_items": ("measurement", np.array([len(per[n]) for n in names], dtype=np.int64)),
         "sd_mean": ("measurement", summary(lambda s: s["std"].mean())),
         "sd_median": ("measurement", summary(lambda s: s["std"].median())),
         "range_mean": ("measurement", summary(lambda s: (s["max"] - s["min"]).mean())),
         "range_max": ("measurement", summary(lambda s: (s["max"] - s["min"]).max())),
         "cv_mean": ("measurement", summary(lambda s: (s["std"] / s["mean"].abs()).mean())),
         "rated_n": ("rated", stats["count"].to_numpy(np.int64)),
         "rated_mean": ("rated", stats["mean"].to_numpy(np.float64)),
         "rated_sd": ("rated", stats["std"].to_numpy(np.float64)),
         "rated_min": ("rated", stats["min"].to_numpy(np.float64)),
         "rated_max": ("rated", stats["max"].to_numpy(np.float64))},
        coords={"measurement": np.array(keys, dtype=object),
                "measurement_meaning": ("measurement", np.array([meaning[c] for c, _ in names], dtype=object)),
                "unit": ("measurement", np.array([u for _, u in names], dtype=object)),
                "rated_concept": ("rated", stats["concept"].to_numpy(object)),
                "rated_unit": ("rated", stats["unit"].to_numpy(object)),
                "rated_item": ("rated", stats["item"].to_numpy(object))})


def findings_agreement_table(ds: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The printable tables of a :func:`findings_agreement` result: per concept, per measurement."""
    import pandas as pd

    kappas = pd.DataFrame({"concept": ds["concept_meaning"].values, "method": ds["kappa_method"].values,
                           "kappa": ds["kappa"].values, "raters": ds["raters"].values,
                           "items": ds["items"].values, "agreement": ds["observed_agreement"].values},
                          index=pd.Index(ds["concept"].values, name="code"))
    spread = pd.DataFrame({"measurement": ds["measurement_meaning"].values, "unit": ds["unit"].values,
                           "items": ds["measured_items"].values, "sd_mean": ds["sd_mean"].values,
                           "range_mean": ds["range_mean"].values, "range_max": ds["range_max"].values,
                           "cv_mean": ds["cv_mean"].values}, index=pd.Index(ds["measurement"].values, name="code"))
    return kappas, spread


def write_findings_agreement(store: Any, ds: xr.Dataset, *, storage_options: dict[str, Any] | None = None) -> str:
    """Write a :func:`findings_agreement` result to the group ``findings_agreement`` (replaced); return its path."""
    ds = ds.copy()
    ds.attrs = {**ds.attrs}
    return write_result(store, lambda layout: layout.FINDINGS_AGREEMENT, ds, storage_options=storage_options)
