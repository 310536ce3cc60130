"""DICOM series into the store: volumes and SEG label volumes equal the field's own readers, the
series table, resumption, and per-series errors while the rest goes in."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("highdicom")

from archivestore import ingest, open_store  # noqa: E402
from archivestore.dicom import read_segmentation, read_series  # noqa: E402
from archivestore.layout import escape_name  # noqa: E402
from archivestore.sources import SeriesItem  # noqa: E402
from archivestore.testing import dicom as fx  # noqa: E402


def _item(files: list[tuple[str, bytes]], *, modality: str | None = None, **record: object) -> SeriesItem:
    uid = str(fx.datasets(files[:1])[0].SeriesInstanceUID)
    meta = {"SeriesInstanceUID": uid, "Collection": "Test-Collection", **record}
    if modality:
        meta["Modality"] = modality
    return SeriesItem(id=uid, metadata=meta, files=lambda: files, where=f"test://{uid}")


@pytest.fixture(scope="module")
def ct():
    return fx.ct_series(6, seed="ct-a", slope=2.0, intercept=-1024.0)


@pytest.fixture(scope="module")
def segs(ct):
    volume = read_series(ct)[0]
    masks = fx.blob_masks(volume.array.shape, 2, empty_slices=(0, 5), seed=1)
    manual = fx.segmentation(ct, masks, seed="seg-manual", creator="Doe^Jane")
    auto = fx.segmentation(ct, fx.blob_masks(volume.array.shape, 2, seed=2, fractional=True),
                           seed="seg-auto", fractional=True, algorithm="unet", creator=None)
    return manual, auto


def test_volumes_and_segmentations_round_trip(ct, segs, store_url):
    store = open_store(store_url, mode="a")
    manual, auto = segs
    # the SEGs come first in the source: the ingest writes them after the volume they segment
    items = [_item(manual, modality="SEG"), _item(auto, modality="SEG"), _item(ct, modality="CT")]
    report = ingest(store, items, progress=False)
    assert report.ok, report.failed
    assert len(report.ingested) == 3
    uid = items[2].id
    reference = read_series(ct)[0]
    ds = store.volume(uid)
    assert ds["volume"].dtype == reference.array.dtype
    np.testing.assert_array_equal(ds["volume"].values, reference.array)
    np.testing.assert_array_equal(ds["z"].values, reference.z)
    assert list(ds["sop_instance_uid"].values) == list(reference.sop_instance_uids)
    np.testing.assert_array_equal(np.asarray(ds.attrs["affine"]), reference.affine)
    assert ds.attrs["uniform_spacing"] is True and ds["z"].attrs["units"] == "mm"
    assert "7FE00010" not in ds.attrs["dicom"]  # no pixel data in the header
    for files, item in ((manual, items[0]), (auto, items[1])):
        expected = read_segmentation(files, reference)
        seg = store.segmentation(item.id)
        np.testing.assert_array_equal(seg["labels"].values, expected.labels)
        assert seg["labels"].dtype == expected.labels.dtype
        assert list(seg["segment_code"].values) == list(expected.segment_code)
        assert seg.attrs["rater"] == expected.rater and seg.attrs["source_series"] == uid
        np.testing.assert_array_equal(seg["z"].values, ds["z"].values)
    assert store.segmentation(items[1].id)["labels"].dtype == np.float32
    assert sorted(s.attrs["series_instance_uid"] for s in store.segmentations_of(uid)) == \
        sorted([items[0].id, items[1].id])
    # the series table: archive record and main DICOM attributes
    frame = store.metadata_frame("series")
    assert set(frame.index) == {items[0].id, items[1].id, uid}
    assert frame.loc[uid, "Collection"] == "Test-Collection"
    assert frame.loc[uid, "dicom.Modality"] == "CT" and frame.loc[uid, "dicom.slices"] == 6
    assert frame.loc[items[0].id, "store.kind"] == "segmentation"
    assert store.info()["series"] == 3
    # plain xarray
    plain = xr.open_zarr(store.zstore, group=f"series/{escape_name(uid)}", consolidated=False)
    np.testing.assert_array_equal(plain["volume"].values, reference.array)
    # chunks as xr.open_zarr takes them: dask by default, None reads on access without dask
    assert ds["volume"].chunks is not None and store.segmentation(items[0].id)["labels"].chunks is not None
    eager = store.volume(uid, chunks=None)
    assert eager["volume"].chunks is None and eager.attrs == ds.attrs
    np.testing.assert_array_equal(eager["volume"].values, reference.array)
    segs_eager = store.segmentations_by_series([uid], chunks=None)[uid]
    assert all(seg["labels"].chunks is None for seg in segs_eager) and len(segs_eager) == 2
    np.testing.assert_array_equal(store.segmentation(items[0].id, chunks=None)["labels"].values,
                                  store.segmentation(items[0].id)["labels"].values)
    # numpy straight from zarr, as store.read for images
    np.testing.assert_array_equal(store.read_volume(uid), reference.array)
    assert store.read_volume(uid).dtype == reference.array.dtype
    assert list(store.read_volume(uid, "sop_instance_uid")) == list(reference.sop_instance_uids)
    np.testing.assert_array_equal(store.read_segmentation(items[0].id),
                                  read_segmentation(manual, reference).labels)
    with pytest.raises(KeyError, match="no complete volume"):
        store.read_volume(items[0].id)  # a SEG's uid names no volume
    with pytest.raises(KeyError, match="no complete segmentation"):
        store.read_segmentation(uid)


def test_a_volume_reads_without_dask(ct, tmp_path):
    """``chunks=None``: a fresh process reads a volume without dask.array or distributed (a second of CPU less;
    xarray itself imports a few light dask modules)."""
    import subprocess
    import sys

    path = str(tmp_path / "s.zarr")
    item = _item(ct, modality="CT")
    assert ingest(open_store(path, mode="a"), [item], progress=False).ok
    code = ("import sys\nfrom archivestore import open_store\n"
            f"v = open_store({path!r}).volume({item.id!r}, chunks=None)['volume'].values\n"
            "print(v.shape, sorted(set(sys.modules) & {'dask.array', 'distributed'}))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == f"{read_series(ct)[0].array.shape} []"
    code = ("import sys\nfrom archivestore import open_store\n"  # read_volume: not even xarray
            f"v = open_store({path!r}).read_volume({item.id!r})\n"
            "print(v.shape, sorted(set(sys.modules) & {'xarray', 'pandas', 'dask.array', 'distributed'}))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == f"{read_series(ct)[0].array.shape} []"


def test_rerun_fetches_nothing_and_restores_rows(ct, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    calls = []

    def files():
        calls.append(1)
        return ct

    item = _item(ct)
    item = SeriesItem(id=item.id, metadata=item.metadata, files=files, where=item.where)
    assert ingest(store, [item], progress=False).ok and len(calls) == 1
    again = ingest(store, [item], progress=False)
    assert again.ok and again.skipped == [item.id] and len(calls) == 1
    # a lost table row comes back from the group's state, still without fetching
    store.root["series_metadata"]["series"].resize((0,))
    assert store.series_ids() == []
    assert ingest(store, [item], progress=False).ok and len(calls) == 1
    assert store.series_ids() == [item.id]


def test_split_uneven_and_bad_series(tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    good = fx.ct_series(4, seed="good")
    mixed = fx.localizer_mixed_series()
    uneven = fx.uneven_ct_series()
    corrupt = fx.corrupt_series("truncated")
    duplicate = fx.duplicate_position_series()
    orphan_source = fx.ct_series(3, seed="never-ingested")
    shape = read_series(orphan_source)[0].array.shape
    orphan = fx.segmentation(orphan_source, fx.blob_masks(shape, 1, empty_slices=()), seed="orphan")
    items = [_item(good), _item(mixed), _item(uneven), _item(corrupt), _item(duplicate), _item(orphan)]
    report = ingest(store, items, progress=False)
    failed = {b.item_id: b.reason for b in report.failed}
    assert set(failed) == {items[3].id, items[4].id, items[5].id}
    assert "not in the store" in failed[items[5].id] and items[5].id not in store.series_ids()
    assert any(name in failed[items[3].id] for name, _ in corrupt)  # the error names the file
    # a localizer mixed in: separate volumes, never one wrong array
    parts = sorted(i for i in store.series_ids() if i.startswith(items[1].id + "_part"))
    expected = read_series(mixed)
    assert len(parts) == len(expected) == 3  # the axial stack, and each localizer on its own
    for part, volume in zip(parts, expected, strict=True):
        np.testing.assert_array_equal(store.volume(part)["volume"].values, volume.array)
        assert store.volume(part).attrs["part_description"] == volume.part_description
    # uneven spacing: the true positions, flagged, with a warning naming the series
    ds = store.volume(items[2].id)
    assert ds.attrs["uniform_spacing"] is False
    with pytest.warns(UserWarning, match="uneven"):
        np.testing.assert_array_equal(ds["z"].values, read_series(uneven)[0].z)
    assert any(items[2].id in w and "uneven" in w for w in report.warnings)
    assert store.volume(items[0].id)["volume"].shape[0] == 4


def test_verify_finds_and_repairs_a_damaged_volume(ct, segs, tmp_path):
    from archivestore.sources import item_from_origin
    from archivestore.verify import verify

    store = open_store(tmp_path / "s.zarr", mode="a")
    origin_files = {}

    def rebuild(uid, origin, metadata):  # the origin of a test series: its files in memory
        return SeriesItem(id=uid, metadata=metadata, files=lambda: origin_files[uid], where=f"test://{uid}",
                          origin=origin)

    items = [_item(ct), _item(segs[0], modality="SEG")]
    for item in items:
        origin_files[item.id] = list(item.files())
    items = [SeriesItem(id=i.id, metadata=i.metadata, files=i.files, where=i.where, origin={"source": "memory-test"})
             for i in items]
    assert ingest(store, items, progress=False).ok
    assert verify(store, progress=False).ok
    uid = items[0].id
    array = store.root[store.layout.series(uid)]["volume"]
    array[0, 0, 0] = int(array[0, 0, 0]) + 1  # damage one voxel
    report = verify(store, progress=False)
    assert [(p.image_id, p.kind) for p in report.problems] == [(uid, "damaged")]
    import archivestore.sources as sources

    sources._ORIGINS["memory-test"] = rebuild
    try:
        repaired = verify(store, repair=True, progress=False)
    finally:
        del sources._ORIGINS["memory-test"]
    assert repaired.ok and repaired.repaired == [uid]
    np.testing.assert_array_equal(store.volume(uid)["volume"].values, read_series(ct)[0].array)
    assert verify(store, progress=False).ok
    assert item_from_origin  # the registry verify --repair uses
