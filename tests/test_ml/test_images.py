"""ImageDataset: items equal the ingested pixels, carry licence and attribution, travel into DataLoader workers."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from archivestore import open_store
from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml import ImageDataset, opened_stores
from test_ml.conftest import image_arrays, image_ids, record


def test_items_are_the_ingested_pixels_with_credits_and_targets(image_store_url):
    ds = ImageDataset(image_store_url, targets=["metadata.clinical.diagnosis_1", "metadata.clinical.age_approx"])
    assert ds.ids == image_ids() and len(ds) == len(image_ids())
    assert ds.classes == {"metadata.clinical.diagnosis_1": ["Benign", "Malignant"]}
    for k, image_id in enumerate(ds.ids):
        item = ds[k]
        image, mask = image_arrays(image_id)
        assert item["id"] == image_id
        assert item["image"].dtype == np.uint8 and item["image"].shape == image.shape
        np.testing.assert_array_equal(item["image"], image)
        np.testing.assert_array_equal(item["mask"], mask)
        rec = record(k, image_id)
        assert item["license"] == rec["copyright_license"] and item["attribution"] == rec["attribution"]
        diagnosis = rec["metadata"]["clinical"]["diagnosis_1"]
        assert ds.classes["metadata.clinical.diagnosis_1"][item["metadata.clinical.diagnosis_1"]] == diagnosis
        assert item["metadata.clinical.age_approx"] == 30 + k
    assert ds[-1]["id"] == image_ids()[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_choices_and_errors(image_store_url):
    ds = ImageDataset(image_store_url, ["ISIC_0000003", "ISIC_0000001"], arrays=("mask",))
    assert [ds[k]["id"] for k in range(2)] == ["ISIC_0000003", "ISIC_0000001"]
    assert set(ds[0]) == {"id", "mask", "license", "attribution"}
    with pytest.raises(NotFoundError, match="ISIC_9999999"):
        ImageDataset(image_store_url, ["ISIC_9999999"])
    with pytest.raises(InvalidInputError, match="arrays"):
        ImageDataset(image_store_url, arrays=("pixels",))
    with pytest.raises(InvalidInputError, match="rater"):
        ImageDataset(image_store_url, rater="nobody")
    with pytest.raises(NotFoundError, match="no metadata field"):
        ImageDataset(image_store_url, targets=["nope"])
    with pytest.raises(NotFoundError, match="superpixels"):  # these images have none: the item is named
        ImageDataset(image_store_url, arrays=("superpixels",))[0]


def test_pickles_as_its_url(image_store_url):
    ds = ImageDataset(open_store(image_store_url))
    data = pickle.dumps(ds)
    assert len(data) < 10_000  # ids and credits, no store
    copy = pickle.loads(data)
    assert copy._store is None and copy.url == image_store_url
    np.testing.assert_array_equal(copy[2]["image"], ds[2]["image"])


def tag_worker(item):
    """A transform run in the worker: which process read the item, and how many stores it had opened."""
    item["pid"] = os.getpid()
    item["opened"] = opened_stores()
    return item


def _load_all(url: str, context: str, **options):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    ds = ImageDataset(url, targets=["metadata.clinical.diagnosis_1"], transform=tag_worker, **options)
    loader = DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context=context)
    batches = list(loader)
    assert [b["id"][0] for b in batches] == image_ids()
    for batch in batches:
        image, mask = image_arrays(batch["id"][0])
        assert isinstance(batch["image"], torch.Tensor) and batch["image"].dtype == torch.uint8
        np.testing.assert_array_equal(batch["image"][0].numpy(), image)
        np.testing.assert_array_equal(batch["mask"][0].numpy(), mask)
    pids = {int(b["pid"]) for b in batches}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers read, the main process did not
    assert {int(b["opened"]) for b in batches} == {1}  # each worker opened the store once
    return batches


def test_dataloader_workers_forked_on_disk(image_store_url):
    _load_all(image_store_url, "fork")


def test_dataloader_workers_spawned_on_a_bucket(s3_image_store_url):
    # spawned workers get the dataset pickled: the URL (and the environment's endpoint) is all they need
    batches = _load_all(s3_image_store_url, "spawn")
    assert batches[0]["license"] == ["CC-0"]


def test_tensors_on_request(image_store_url):
    torch = pytest.importorskip("torch")
    item = ImageDataset(image_store_url, targets=["metadata.clinical.age_approx"], tensors=True)[1]
    assert isinstance(item["image"], torch.Tensor) and item["image"].shape == image_arrays(item["id"])[0].shape
    assert item["metadata.clinical.age_approx"].item() == 31.0 and isinstance(item["license"], str)


def test_importing_ml_needs_no_torch(image_store_url):
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['datasets'] = None\n"
        "import archivestore.ml as ml\n"
        f"ds = ml.ImageDataset({image_store_url!r})\n"
        "assert ds[0]['image'].shape[2] == 3\n"
        "ml.make_split, ml.read_split, ml.assign\n"
        "try:\n    ml.ImageDataset({!r}, tensors=True)\nexcept ImportError:\n    print('no torch')\n".replace(
            "{!r}", repr(image_store_url))
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "no torch"


def test_another_raters_masks(writable_store):
    from archivestore import ingest
    from archivestore.sources import Item
    from archivestore.testing.sample import png

    predicted = {i: 1 - image_arrays(i)[1] for i in image_ids()[:2]}
    items = [Item(id=i, metadata=record(k, i), mask=lambda m=m: png(m * 255), rater="model")
             for k, (i, m) in enumerate(predicted.items())]
    assert ingest(open_store(writable_store, mode="a"), items, progress=False, workers=1).ok
    ds = ImageDataset(writable_store, list(predicted), rater="model")
    for k, image_id in enumerate(predicted):
        item = ds[k]
        np.testing.assert_array_equal(item["mask"], predicted[image_id])  # the model's, not the ground truth
        np.testing.assert_array_equal(item["image"], image_arrays(image_id)[0])
    with pytest.raises(NotFoundError, match="masks/model"):
        ImageDataset(writable_store, [image_ids()[3]], rater="model")[0]  # no mask of that rater: named
