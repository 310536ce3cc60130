"""VolumeDataset: patches equal crops of the field's own readers (pydicom/highdicom), chunk-aligned, seeded."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("highdicom")

from archivestore import ingest, open_store  # noqa: E402
from archivestore.dicom import read_segmentation, read_series  # noqa: E402
from archivestore.errors import InvalidInputError, NotFoundError  # noqa: E402
from archivestore.ml import VolumeDataset  # noqa: E402
from archivestore.sources import SeriesItem  # noqa: E402
from archivestore.testing import dicom as fx  # noqa: E402


def _item(files, modality):
    uid = str(fx.datasets(files[:1])[0].SeriesInstanceUID)
    meta = {"SeriesInstanceUID": uid, "Collection": "Test-Collection", "Modality": modality,
            "LicenseName": "CC BY 4.0", "CollectionURI": "https://doi.org/10.7937/test"}
    return SeriesItem(id=uid, metadata=meta, files=lambda: files, where=f"test://{uid}")


@pytest.fixture(scope="module")
def ct_store(tmp_path_factory):
    """Two 40-slice 128 x 128 CTs (chunks 16 x 128 x 128), the first with a two-segment SEG."""
    ct, bare = fx.ct_series(40, seed="ml-ct", spacing=2.5), fx.ct_series(20, seed="ml-bare")
    volume = read_series(ct)[0]
    seg = fx.segmentation(ct, fx.blob_masks(volume.array.shape, 2, empty_slices=(0, 1), seed=3), seed="ml-seg")
    url = str(tmp_path_factory.mktemp("ml-ct") / "ct.zarr")
    report = ingest(open_store(url, mode="a"), [_item(ct, "CT"), _item(bare, "CT"), _item(seg, "SEG")],
                    progress=False, workers=1)
    assert report.ok, report.failed
    uids = [str(fx.datasets(f[:1])[0].SeriesInstanceUID) for f in (ct, bare, seg)]
    return url, uids, volume, read_segmentation(seg, volume)


def test_patches_are_crops_of_the_dicom(ct_store):
    url, (ct, _, seg), volume, labels = ct_store
    ds = VolumeDataset(url, patch=(16, 64, 48), samples_per_volume=6, seed=1)
    assert ds.ids == [ct] and len(ds) == 6  # labels=True: the volumes with a segmentation
    starts = set()
    for k in range(len(ds)):
        item = ds[k]
        z, y, x = (int(v) for v in item["start"])
        starts.add((z, y, x))
        assert z % 16 == 0  # the patch spans one z-chunk: it starts on a chunk boundary
        assert item["volume"].shape == (16, 64, 48) and item["labels"].shape == (2, 16, 64, 48)
        np.testing.assert_array_equal(item["volume"], volume.array[z:z + 16, y:y + 64, x:x + 48])
        np.testing.assert_array_equal(item["labels"], labels.labels[:, z:z + 16, y:y + 64, x:x + 48])
        assert item["series"] == ct and item["segmentation"] == seg
        assert item["license"] == "CC BY 4.0" and item["attribution"] == "https://doi.org/10.7937/test"
        np.testing.assert_allclose(item["spacing"][0], 2.5)
    assert len(starts) > 1
    again = VolumeDataset(url, patch=(16, 64, 48), samples_per_volume=6, seed=1)
    assert [tuple(again[k]["start"]) for k in range(6)] == [tuple(ds[k]["start"]) for k in range(6)]
    ds.set_epoch(1)
    assert [tuple(ds[k]["start"]) for k in range(6)] != [tuple(again[k]["start"]) for k in range(6)]


def test_label_sampler_centres_on_labels(ct_store):
    url, (ct, _, _), volume, labels = ct_store
    ds = VolumeDataset(url, patch=(8, 16, 16), samples_per_volume=10, sampler="label", aligned=False, seed=2)
    for k in range(len(ds)):
        item = ds[k]
        assert item["labels"].any()  # a labelled voxel is at the centre of every patch
        z, y, x = (int(v) for v in item["start"])
        np.testing.assert_array_equal(item["labels"], labels.labels[:, z:z + 8, y:y + 16, x:x + 16])
    foreground = labels.labels.any(axis=0)
    centres = ds.candidates[ct]
    assert foreground[tuple(centres.T)].all()


def test_whole_volumes_segments_and_padding(ct_store):
    url, (ct, bare, _), volume, labels = ct_store
    whole = VolumeDataset(url, patch=None)
    item = whole[0]
    np.testing.assert_array_equal(item["volume"], volume.array)
    np.testing.assert_array_equal(item["labels"], labels.labels)
    assert len(whole) == 1 and list(item["start"]) == [0, 0, 0]
    codes = [str(c) for c in labels.segment_code]
    picked = VolumeDataset(url, patch=None, segments=[codes[1], "no such segment"])[0]["labels"]
    np.testing.assert_array_equal(picked[0], labels.labels[1])
    assert not picked[1].any()
    padded = VolumeDataset(url, [bare], patch=(32, 64, 64), labels=False, pad_value=-1)
    item = padded[0]
    assert item["volume"].shape == (32, 64, 64) and (item["volume"][20:] == -1).all() and "labels" not in item
    assert item["segmentation"] == ""
    with pytest.raises(NotFoundError, match="no segmentation"):
        VolumeDataset(url, [bare])
    with pytest.raises(InvalidInputError, match="sampler"):
        VolumeDataset(url, sampler="random")


def test_patches_through_dataloader_workers(ct_store):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    url, (ct, _, _), volume, _ = ct_store
    ds = VolumeDataset(url, patch=(16, 32, 32), samples_per_volume=4)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 2 and batches[0]["labels"].shape == (2, 2, 16, 32, 32)
    for batch in batches:
        for start, patch in zip(batch["start"], batch["volume"], strict=True):
            z, y, x = (int(v) for v in start)
            assert isinstance(patch, torch.Tensor)
            np.testing.assert_array_equal(patch.numpy(), volume.array[z:z + 16, y:y + 32, x:x + 32])
