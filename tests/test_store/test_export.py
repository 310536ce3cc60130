"""CSV export: isic-cli's metadata.csv columns, renaming by a keys file, license summaries."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from fakes import V1_FIXTURES, load_v1_fixtures, synthetic_v2_records

import archivestore
from archivestore.cli import main
from archivestore.export import attributions, export_csv, licenses_summary, metadata_table, read_keys
from archivestore.sources.isic.v2 import strip_signed_urls
from archivestore.store import _metadata


def _isic_cli_rows(records):
    """isic-cli's ``_extract_metadata`` + ``csv.DictWriter``, as the reference."""
    fields = set()
    rows = []
    for image in records:
        fields |= set(image["metadata"]["acquisition"]) | set(image["metadata"]["clinical"])
        rows.append({"isic_id": image["isic_id"], "attribution": image["attribution"],
                     "copyright_license": image["copyright_license"],
                     **image["metadata"]["acquisition"], **image["metadata"]["clinical"]})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["isic_id", "attribution", "copyright_license"] + sorted(fields))
    writer.writeheader()
    writer.writerows(rows)
    return list(csv.reader(io.StringIO(buf.getvalue())))


def _v2_records(n=15):
    out = []
    for r in synthetic_v2_records(n):
        r = {k: v for k, v in r.items() if not k.startswith("_")}
        r["files"] = {"full": {"url": "https://bucket/x?signature=s", "size": 100}}
        out.append(strip_signed_urls(r))
    out[3]["metadata"]["clinical"]["family_hx_mm"] = True  # a ragged field
    out[4]["metadata"]["clinical"]["age_approx"] = None
    return out


@pytest.fixture
def v2_store(tmp_path):
    records = _v2_records()
    store = archivestore.open_store(str(tmp_path / "v2.zarr"), mode="a")
    _metadata.append_rows(store.root["metadata"], {r["isic_id"]: r for r in records})
    return archivestore.open_store(str(tmp_path / "v2.zarr")), records


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_columns_and_values_are_isic_clis(v2_store, tmp_path):
    store, records = v2_store
    out = tmp_path / "metadata.csv"
    assert export_csv(store, out) == len(records)
    assert _read(out) == _isic_cli_rows(records)


def test_a_selection_in_its_order(v2_store, tmp_path):
    store, records = v2_store
    ids = [records[5]["isic_id"], records[2]["isic_id"]]
    export_csv(store.metadata_frame(), tmp_path / "two.csv", ids)
    rows = _read(tmp_path / "two.csv")
    assert [r[0] for r in rows[1:]] == ids
    with pytest.raises(KeyError, match="ISIC_0000404"):
        metadata_table(store, ["ISIC_0000404"])


def test_keys_file_chooses_and_renames(v2_store, tmp_path):
    store, records = v2_store
    keys = tmp_path / "keys.csv"
    keys.write_text(
        "internal name,archive name\n# comment\nimage,isic_id\nage,age_approx\nsize,files.full.size\n\n"
        "license,copyright_license\n"
    )
    renamed = [("image", "isic_id"), ("age", "age_approx"), ("size", "files.full.size"),
               ("license", "copyright_license")]
    assert read_keys(keys) == renamed
    export_csv(store, tmp_path / "mapped.csv", keys=keys)
    rows = _read(tmp_path / "mapped.csv")
    assert rows[0] == ["image", "age", "size", "license"]
    for r, row in zip(records, rows[1:], strict=True):
        age = r["metadata"]["clinical"]["age_approx"]
        assert row == [r["isic_id"], "" if age is None else str(age), "100", r["copyright_license"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("age,age_aprox\n")
    with pytest.raises(KeyError, match="age_aprox"):
        export_csv(store, tmp_path / "x.csv", keys=bad)
    bad.write_text("age,age_approx,extra\n")
    with pytest.raises(ValueError, match="line 1"):
        read_keys(bad)


def test_all_fields_appends_the_other_leaves(v2_store):
    store, _ = v2_store
    table = metadata_table(store, all_fields=True)
    assert "files.full.size" in table.columns and "public" in table.columns
    assert "metadata.clinical.sex" not in table.columns and "sex" in table.columns


def test_attributions_and_licenses_as_isic_cli(v2_store):
    store, records = v2_store
    counts = Counter(r["attribution"] for r in records)
    expected = sorted(counts.most_common(), key=lambda v: (-v[1], v[0]))
    expected = [name for name, _ in sorted(expected, key=lambda v: 1 if v[0] == "Anonymous" else 0)]
    assert attributions(store) == expected and expected[-1] == "Anonymous"
    text = licenses_summary(store)
    for name, n in Counter(r["copyright_license"] for r in records).items():
        assert f"{name}: {n} images" in text
    assert text.rstrip().endswith("Anonymous") and f"Licenses of {len(records)} images" in text
    one = licenses_summary(store, [records[0]["isic_id"]])
    assert "CC-0: 1 image\n" in one and "CC-BY" not in one


@pytest.mark.skipif(
    not (V1_FIXTURES / "images_v1.json.gz").exists(), reason=f"real ISIC v1 fixtures not found at {V1_FIXTURES}"
)
def test_v1_records_fall_back_to_name_and_dataset_license(tmp_path):
    images, _ = load_v1_fixtures()
    chosen = sorted(images.values(), key=lambda r: r["name"])[::500]
    store = archivestore.open_store(str(tmp_path / "v1.zarr"), mode="a")
    _metadata.append_rows(store.root["metadata"], {r["name"]: r for r in chosen})
    table = metadata_table(archivestore.open_store(str(tmp_path / "v1.zarr")))
    keys = set()
    for r in chosen:
        keys |= set(r["meta"].get("acquisition", {})) | set(r["meta"].get("clinical", {}))
    assert list(table.columns) == ["isic_id", "attribution", "copyright_license"] + sorted(keys)
    for r in chosen:
        row = table.loc[r["name"]]
        assert row["isic_id"] == r["name"] and row["copyright_license"] == r["dataset"]["license"]
        assert row["pixelsX"] == r["meta"]["acquisition"]["pixelsX"]


def test_cli_export(v2_store, tmp_path, capsys):
    store, records = v2_store
    out, lic = tmp_path / "out.csv", tmp_path / "LICENSES.txt"
    argv = ["export-csv", store.url, str(out), "--where", "metadata.clinical.sex == female", "--licenses", str(lic)]
    code = main(argv)
    assert code == 0
    female = [r for r in records if r["metadata"]["clinical"]["sex"] == "female"]
    rows = _read(out)
    assert [r[0] for r in rows[1:]] == [r["isic_id"] for r in female]
    assert lic.read_text() == licenses_summary(store, [r["isic_id"] for r in female])
    assert main(["export-csv", store.url, str(out), "--keys", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_a_challenge_store_exports_every_field(sample_dirs, tmp_path):
    # the defect: only isic_id, attribution, copyright_license; clinical.* and ground_truth.* were dropped
    from archivestore import ingest
    from archivestore.sources import ChallengeSource

    path = str(tmp_path / "challenge.zarr")
    assert ingest(archivestore.open_store(path, mode="a"), ChallengeSource([sample_dirs["train"]]), progress=False).ok
    out = tmp_path / "metadata.csv"
    assert main(["export-csv", path, str(out)]) == 0
    rows = _read(out)
    assert rows[0] == ["isic_id", "attribution", "copyright_license", "clinical.age_approximate", "clinical.sex",
                       "ground_truth.melanoma", "ground_truth.seborrheic_keratosis"]
    exported = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert len(exported) == 6
    for name, section in (("Data_metadata", "clinical"), ("Part3_GroundTruth", "ground_truth")):
        source = _read(sample_dirs["train"] / f"ISIC-2017_Training_{name}.csv")
        for row in source[1:]:
            for key, value in zip(source[0][1:], row[1:], strict=True):
                got = exported[row[0]][f"{section}.{key}"]
                assert got == value or float(got) == float(value), (row[0], key, got, value)
    # a store of API records and challenge records: the API records' other fields stay out, as isic-cli
    store = archivestore.open_store(path, mode="a")
    records = _v2_records(5)
    store.append_tables({r["isic_id"]: r for r in records})
    table = metadata_table(archivestore.open_store(path))
    assert "ground_truth.melanoma" in table.columns and "sex" in table.columns and "public" not in table.columns
    assert table.loc[records[0]["isic_id"], "ground_truth.melanoma"] == ""
