"""Findings agreement: kappas equal scikit-learn's and statsmodels', spreads equal numpy's, the matching rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from archivestore.analysis import cohen_kappa, findings_agreement, fleiss_kappa
from archivestore.errors import InvalidInputError

sklearn_metrics = pytest.importorskip("sklearn.metrics")
inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")


@pytest.mark.parametrize("seed", range(5))
def test_cohen_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 5, 40)
    b = np.where(rng.random(40) < 0.5, a, rng.integers(1, 5, 40))
    labels = np.array([f"R{v}" for v in a]), np.array([f"R{v}" for v in b])
    assert cohen_kappa(*labels) == pytest.approx(sklearn_metrics.cohen_kappa_score(*labels), abs=1e-12)


@pytest.mark.parametrize(("seed", "raters"), [(0, 3), (1, 4), (2, 5)])
def test_fleiss_equals_statsmodels(seed, raters):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 30)
    ratings = np.where(rng.random((30, raters)) < 0.6, truth[:, None], rng.integers(0, 4, (30, raters)))
    table, _ = inter_rater.aggregate_raters(ratings)
    assert fleiss_kappa(ratings) == pytest.approx(inter_rater.fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_undefined_kappas_are_nan():
    assert np.isnan(cohen_kappa(np.array(["a", "a"]), np.array(["a", "a"])))
    assert np.isnan(cohen_kappa(np.array(["a"]), np.array(["b"])))
    assert np.isnan(fleiss_kappa(np.array([["a", "a", "a"], ["a", "a", "a"]])))


def frame_of(ratings: dict[str, list[int]], diameters: dict[str, list[float]], *, key: str = "tracking_uid",
             series: str = "1.2.3") -> pd.DataFrame:
    rows = []
    for observer, values in ratings.items():
        for k, (rating, diameter) in enumerate(zip(values, diameters[observer], strict=True)):
            ids = {"tracking_uid": f"{observer}-{k}" if key != "tracking_uid" else f"uid-{k}",
                   "tracking_id": f"nodule {k}" if key != "referenced_segment" else f"{observer} {k}",
                   "referenced_segment": f"seg:{k + 1}" if key == "referenced_segment" else ""}
            base = {"series": f"sr-{observer}", "source_series": series, "observer": observer, "finding": "Nodule",
                    "finding_code": "27925004:SCT", "finding_site": "", **ids}
            rows.append({**base, "kind": "qualitative", "concept": "M:99", "concept_meaning": "Malignancy",
                         "value": np.nan, "unit": "", "value_code": f"R{rating}", "value_meaning": f"Rating {rating}"})
            rows.append({**base, "kind": "measurement", "concept": "D:SCT", "concept_meaning": "Diameter",
                         "value": diameter, "unit": "mm", "value_code": "", "value_meaning": ""})
    return pd.DataFrame(rows)


def test_two_raters_cohen_and_spread():
    ratings = {"A": [1, 2, 3, 3, 4, 5, 2], "B": [1, 2, 2, 3, 4, 4, 2]}
    diameters = {"A": [5.0, 6, 7, 8, 9, 10, 11], "B": [5.5, 6, 6, 9, 9, 12, 10]}
    ds = findings_agreement(frame_of(ratings, diameters))
    assert ds["kappa_method"].sel(concept="M:99").item() == "cohen"
    expected = sklearn_metrics.cohen_kappa_score([f"R{v}" for v in ratings["A"]], [f"R{v}" for v in ratings["B"]])
    assert float(ds["kappa"].sel(concept="M:99")) == pytest.approx(expected, abs=1e-12)
    assert float(ds["cohen_kappa"].sel(concept="M:99", rater="A", other="B")) == pytest.approx(expected, abs=1e-12)
    values = np.array([diameters["A"], diameters["B"]])
    sd = values.std(axis=0, ddof=1)
    assert float(ds["sd_mean"].sel(measurement="D:SCT [mm]")) == pytest.approx(sd.mean())
    assert float(ds["range_max"].sel(measurement="D:SCT [mm]")) == pytest.approx(np.ptp(values, axis=0).max())
    assert float(ds["cv_mean"].sel(measurement="D:SCT [mm]")) == pytest.approx((sd / values.mean(axis=0)).mean())
    assert int(ds["measured_items"].sel(measurement="D:SCT [mm]")) == 7
    assert ds.attrs["matched_by"] == {"1.2.3": "tracking_uid"}


def test_three_raters_fleiss_over_complete_items():
    ratings = {"A": [1, 2, 3, 3, 4, 5], "B": [1, 2, 2, 3, 4, 4], "C": [2, 2, 3, 3, 5, 4]}
    diameters = {k: [float(v) for v in range(6)] for k in ratings}
    frame = frame_of(ratings, diameters)
    frame = frame[~((frame["observer"] == "C") & (frame["tracking_uid"] == "uid-5"))]  # C skipped nodule 5
    ds = findings_agreement(frame)
    assert ds["kappa_method"].sel(concept="M:99").item() == "fleiss" and int(ds["items"].sel(concept="M:99")) == 5
    table, _ = inter_rater.aggregate_raters(np.array([ratings[k][:5] for k in "ABC"]).T)
    assert float(ds["kappa"].sel(concept="M:99")) == pytest.approx(inter_rater.fleiss_kappa(table), abs=1e-12)
    assert float(ds["sd_mean"].sel(measurement="D:SCT [mm]")) == 0.0


@pytest.mark.parametrize("key", ["tracking_id", "referenced_segment"])
def test_matching_falls_back_when_tracking_uids_are_per_reader(key):
    ratings = {"A": [1, 2, 3, 4], "B": [1, 2, 3, 3]}
    ds = findings_agreement(frame_of(ratings, {"A": [1.0] * 4, "B": [2.0] * 4}, key=key))
    assert ds.attrs["matched_by"] == {"1.2.3": key} and int(ds["items"].sel(concept="M:99")) == 4


def test_nothing_shared_is_one_error():
    frame = frame_of({"A": [1, 2]}, {"A": [1.0, 2.0]})
    with pytest.raises(InvalidInputError, match="two or more observers"):
        findings_agreement(frame)
