"""The Hugging Face export: load_from_disk opens it, pixels read back bit-exact, licence and attribution per row."""

from __future__ import annotations

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from archivestore import open_store  # noqa: E402
from archivestore.cli import main  # noqa: E402
from archivestore.errors import InvalidInputError  # noqa: E402
from archivestore.ml import export_hf, make_split, read_split  # noqa: E402
from archivestore.ml._hf import png_bytes  # noqa: E402
from test_ml.conftest import image_arrays, image_ids, record  # noqa: E402


def test_round_trip_is_bit_exact_with_licences(image_store_url, tmp_path):
    out = tmp_path / "hf"
    report = export_hf(open_store(image_store_url), out)
    assert report.rows == {"train": len(image_ids())} and not report.failed
    ds = datasets.load_from_disk(str(out))["train"]
    assert isinstance(ds.features["image"], datasets.Image) and isinstance(ds.features["mask"], datasets.Image)
    assert ds.features["metadata.clinical.age_approx"].dtype == "int64"
    assert ds["id"] == image_ids()
    for k, row in enumerate(ds):
        image, mask = image_arrays(row["id"])
        assert row["image"].format == "PNG"
        np.testing.assert_array_equal(np.asarray(row["image"]), image)
        np.testing.assert_array_equal(np.asarray(row["mask"]), mask)
        rec = record(k, row["id"])
        assert row["license"] == rec["copyright_license"] and row["attribution"] == rec["attribution"]
        assert row["metadata.clinical.patient_id"] == rec["metadata"]["clinical"].get("patient_id")
    licences = (out / "LICENSES.txt").read_text()
    assert f"Licenses of {len(image_ids())} images" in licences and "Hospital A" in licences
    with pytest.raises(InvalidInputError, match="exists"):
        export_hf(open_store(image_store_url), out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.partial")]  # nothing left half-written


def test_sixteen_bit_pngs_keep_their_values():
    from PIL import Image

    values = np.array([[0, 1, 255], [256, 40000, 65535]], dtype=np.uint16)
    back = np.asarray(Image.open(__import__("io").BytesIO(png_bytes(values))))
    np.testing.assert_array_equal(back, values)
    with pytest.raises(InvalidInputError, match="no lossless PNG"):
        png_bytes(np.zeros((2, 2), np.float32))


def test_split_parts_become_splits_from_the_command(writable_store, tmp_path, capsys):
    store = open_store(writable_store, mode="a")
    make_split(store, "metadata.clinical.patient_id", (0.5, 0.5), seed=0, name="v1")
    table = read_split(store, "v1")
    out = tmp_path / "hf-split"
    code = main(["export", "hf", writable_store, str(out), "--split", "v1", "--arrays", "image",
                 "--fields", "metadata.clinical.diagnosis_1", "--where", "metadata.clinical.age_approx < 40"])
    assert code == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "test"}
    for part in ("train", "test"):
        expected = [i for i in table.index[table["split"] == part] if i.startswith("ISIC") and int(i[-2:]) < 10]
        assert dd[part]["id"] == expected
        assert set(dd[part].column_names) == {"id", "license", "attribution", "image", "metadata.clinical.diagnosis_1"}
    assert main(["export", "hf", writable_store, str(out)]) == 2  # exists: one line, no traceback
    assert "exists" in capsys.readouterr().err
