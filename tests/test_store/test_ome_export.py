"""OME-Zarr export: ISIC images, CT volumes with their SEGs and microscopy images as OME-Zarr 0.5 that
validates with ome-zarr-models, reads back pixel-exact with ome-zarr-py's Reader and with read_ome_zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ome_zarr")
pytest.importorskip("highdicom")

import dask  # noqa: E402
import dask.threaded  # noqa: E402
import zarr  # noqa: E402
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Reader  # noqa: E402
from ome_zarr_models import open_ome_zarr  # noqa: E402
from ome_zarr_models.v05.image import Image  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.dicom import read_series  # noqa: E402
from archivestore.errors import InvalidInputError, NotFoundError  # noqa: E402
from archivestore.ome import export_ome_zarr, output_url, pyramid_factors, validate_ome_zarr  # noqa: E402
from archivestore.sources import ArrayImage, ArrayItem, ChallengeSource, SeriesItem  # noqa: E402
from archivestore.sources.ome_zarr import OmeZarrSource, read_ome_zarr  # noqa: E402
from archivestore.testing import dicom as dcm  # noqa: E402
from archivestore.testing.ome import write_ome_fixtures  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")

ODD_ID = "cells / day 1: ü"


def _series(files: list[tuple[str, bytes]], modality: str) -> SeriesItem:
    uid = str(dcm.datasets(files[:1])[0].SeriesInstanceUID)
    return SeriesItem(id=uid, metadata={"SeriesInstanceUID": uid, "Modality": modality}, files=lambda: files,
                      where=f"test://{uid}")


def _segs(ct: list[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """Two SEGs of ``ct``: one with disjoint segments, one whose tumour lies inside its liver."""
    shape = read_series(ct)[0].array.shape
    disjoint = np.zeros((2, *shape), dtype=bool)
    disjoint[0, 1:4, 10:40, 10:40] = True
    disjoint[1, 2:5, 60:90, 60:100] = True
    nested = np.zeros((2, *shape), dtype=bool)
    nested[0, 1:5, 20:100, 20:100] = True
    nested[1, 2:4, 40:60, 40:60] = True
    return (dcm.segmentation(ct, disjoint, seed="seg-disjoint", creator="Doe^Jane"),
            dcm.segmentation(ct, nested, seed="seg-nested", algorithm="unet", creator=None))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sample_dirs: dict[str, Path]) -> Any:
    """A store with the sample ISIC images, a CT with two SEGs, and microscopy images (one with an odd id)."""
    root = tmp_path_factory.mktemp("export")
    store = open_store(root / "store.zarr", mode="a")
    fx = write_ome_fixtures(root / "ome")
    ct = dcm.ct_series(6, seed="ct-export", slope=1.0, intercept=-1024.0)
    disjoint, nested = _segs(ct)
    odd = read_ome_zarr(fx["v04"].url)
    items: list[Any] = [
        _series(ct, "CT"), _series(disjoint, "SEG"), _series(nested, "SEG"),
        ArrayItem(id=ODD_ID, metadata={"note": "an id that is not a path"}, load=lambda: odd, where="test://odd"),
    ]
    for source in (ChallengeSource([str(p) for p in sample_dirs.values()]), items,
                   OmeZarrSource([fx["v05"].url, fx["plate"].url])):
        report = ingest(store, source, progress=False)
        assert report.ok, report.failed
    return store


@pytest.fixture(scope="module")
def exported(store: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Everything in the store, exported once: {id: OME-Zarr URL}."""
    out = tmp_path_factory.mktemp("out")
    urls = export_ome_zarr(store, out)
    frame = store.metadata_frame("series")
    volumes = [str(u) for u, kind in frame["store.kind"].items() if kind == "volume"]
    ids = store.image_ids() + volumes
    assert urls == [output_url(out, i) for i in ids]
    return dict(zip(ids, urls, strict=True))


def _store_arrays(store: Any, item_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The store's pixels of an item in OME-Zarr's axis order, and what its label images must hold."""
    if item_id in store.image_ids():
        ds = store.image(item_id)
        if ds["image"].dims == ("y", "x", "channel"):
            labels = {"mask": ds["mask"].values, "superpixels": ds["superpixels"].values}
            labels.update({f"attribute_{f}": ds["attribute"].sel(feature=f).values for f in ds["feature"].values})
            return np.moveaxis(ds["image"].values, -1, 0), labels
        return ds["image"].values, {n: v.values for n, v in ds.data_vars.items() if v.attrs.get("label") is True}
    labels = {}
    for seg in store.segmentations_of(item_id):
        uid, binary = seg.attrs["series_instance_uid"], seg["labels"].values > 0
        numbers = seg["segment"].values
        if (binary.sum(axis=0) > 1).any():
            labels.update({f"{uid}_{n}": binary[k] * np.uint8(n) for k, n in enumerate(numbers)})
        else:
            labels[uid] = (binary * numbers[:, None, None, None]).max(axis=0)
    return store.volume(item_id)["volume"].values, labels


def test_every_exported_image_validates_with_ome_zarr_models(exported: dict[str, str]) -> None:
    for url in exported.values():
        model = validate_ome_zarr(url)
        assert isinstance(model, Image) and model.ome_attributes.version == "0.5"
        group = zarr.open_group(url, mode="r")
        assert isinstance(open_ome_zarr(group), Image)
        if "labels" in group:
            assert group["labels"].attrs["ome"]["version"] == "0.5"  # the 0.18 trap avoided
            assert len(model.members["labels"].members) == len(group["labels"].attrs["ome"]["labels"])


def test_ome_zarr_pys_reader_reads_back_every_pixel(store: Any, exported: dict[str, str]) -> None:
    for item_id, url in exported.items():
        data, labels = _store_arrays(store, item_id)
        nodes = list(Reader(parse_url(url))())
        np.testing.assert_array_equal(nodes[0].data[0].compute(), data)
        assert nodes[0].metadata["name"] == item_id
        found = {str(n.zarr.path).rstrip("/").rsplit("/", 1)[-1]: n for n in nodes[1:] if n.data}
        assert sorted(found) == sorted(labels), item_id
        for name, values in labels.items():
            np.testing.assert_array_equal(found[name].data[0].compute(), values)


def test_export_then_import_round_trips(store: Any, exported: dict[str, str]) -> None:
    for item_id, url in exported.items():
        data, labels = _store_arrays(store, item_id)
        image = read_ome_zarr(url)
        assert image.attrs["name"] == item_id and image.data.dtype == data.dtype
        np.testing.assert_array_equal(image.data, data)
        assert sorted(image.labels) == sorted(labels)
        for name, values in labels.items():
            np.testing.assert_array_equal(image.labels[name], values)
    ids = [item.id for item in OmeZarrSource(exported.values())]
    assert ids == list(exported)  # the multiscales name is the id, odd characters and all


def test_isic_channels_and_pyramid(store: Any, exported: dict[str, str]) -> None:
    url = exported["ISIC_0000002"]  # 600 x 800: 800 -> 400 -> 200
    image = read_ome_zarr(url)
    assert image.axes == ("channel", "y", "x")
    assert [(c["label"], c["color"]) for c in image.channels] == [("R", "FF0000"), ("G", "00FF00"),
                                                                   ("B", "0000FF")]
    assert image.channels[0]["window"] == {"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0}
    group = zarr.open_group(url, mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert [group[d["path"]].shape for d in datasets] == [(3, 600, 800), (3, 300, 400), (3, 150, 200)]
    assert [group[f"labels/mask/{d['path']}"].shape for d in datasets] == [(600, 800), (300, 400), (150, 200)]
    label = group["labels/mask"].attrs["ome"]["image-label"]
    assert label["properties"] == [{"label-value": 1, "name": "lesion"}]
    assert group.attrs["archivestore"]["record"] == store.image_record("ISIC_0000002")
    assert pyramid_factors({"y": 600, "x": 800}) == (2, 4) and pyramid_factors({"y": 40, "x": 30}) == ()


def test_volume_scale_origin_and_segmentations(store: Any, exported: dict[str, str]) -> None:
    frame = store.metadata_frame("series")
    uid = next(str(u) for u, kind in frame["store.kind"].items() if kind == "volume")
    volume = store.volume(uid)
    image = read_ome_zarr(exported[uid])
    assert image.axes == ("z", "y", "x") and image.units == dict.fromkeys("zyx", "millimeter")
    for axis in "zyx":
        np.testing.assert_allclose(image.coords[axis], volume[axis].values, rtol=0, atol=1e-9)
    segs = {s.attrs["rater"]: s.attrs["series_instance_uid"] for s in store.segmentations_of(uid)}
    # the disjoint SEG is one label image of segment numbers, the nested one a label image per segment
    assert set(image.labels) == {segs["Doe^Jane"], f"{segs['unet']}_1", f"{segs['unet']}_2"}
    assert set(np.unique(image.labels[segs["Doe^Jane"]])) == {0, 1, 2}
    props = zarr.open_group(exported[uid], mode="r")[f"labels/{segs['Doe^Jane']}"].attrs["ome"]["image-label"]
    assert [(p["label-value"], p["segment_label"], p["rater"]) for p in props["properties"]] == [
        (1, "liver", "Doe^Jane"), (2, "tumour", "Doe^Jane")]


def test_microscopy_keeps_axes_units_channels(store: Any, exported: dict[str, str]) -> None:
    ds = store.image("cells-v05")
    image = read_ome_zarr(exported["cells-v05"])
    assert image.axes == ("t", "channel", "z", "y", "x")
    assert image.units == {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}
    for axis in ("t", "z", "y", "x"):
        np.testing.assert_allclose(image.coords[axis], ds[axis].values)
    assert [c["label"] for c in image.channels] == list(ds["channel"].values)
    assert [c["window"] for c in image.channels] == [c["window"] for c in ds["image"].attrs["channels"]]
    assert output_url("out", ODD_ID) == "out/_xcells_20_2F_20day_201_3A_20_C3_BC.zarr"  # layout 3 names


def test_one_parallel_compute_per_batch(store: Any, tmp_path: Path) -> None:
    calls: list[int] = []

    def counting_get(graph: Any, keys: Any, **kwargs: Any) -> Any:
        calls.append(len(keys))
        return dask.threaded.get(graph, keys, **kwargs)

    ids = store.image_ids()[:6]
    with dask.config.set(scheduler=counting_get):
        urls = export_ome_zarr(store, tmp_path, images=ids, batch=6)
    # one compute of every level of every image and label image (8 each, 2 levels or more) of the six
    assert len(urls) == 6 and len(calls) == 1 and calls[0] >= 6 * 8 * 2


def test_selection_and_unknown_ids(store: Any, tmp_path: Path) -> None:
    frame = store.metadata_frame("series")
    uid = next(str(u) for u, kind in frame["store.kind"].items() if kind == "volume")
    assert export_ome_zarr(store, tmp_path, series=[uid]) == [output_url(tmp_path, uid)]
    assert export_ome_zarr(store, tmp_path, images=["ISIC_0000001"]) == [output_url(tmp_path, "ISIC_0000001")]
    with pytest.raises(NotFoundError, match="no complete image 'ISIC_9'"):
        export_ome_zarr(store, tmp_path, images=["ISIC_9"])
    with pytest.raises(NotFoundError, match="no volume '1.2.3'"):
        export_ome_zarr(store, tmp_path, series=["1.2.3"])


def test_export_to_a_bucket(store: Any, s3_bucket: str, s3_env: str) -> None:
    options = {"endpoint_url": s3_env}
    out = f"s3://{s3_bucket}/ome"
    urls = export_ome_zarr(store, out, images=["ISIC_0000005", "cells-v05"], storage_options=options)
    assert urls == [f"{out}/ISIC_0000005.zarr", f"{out}/cells-v05.zarr"]
    for item_id, url in zip(["ISIC_0000005", "cells-v05"], urls, strict=True):
        data, labels = _store_arrays(store, item_id)
        image = read_ome_zarr(url, storage_options=options)
        np.testing.assert_array_equal(image.data, data)
        for name, values in labels.items():
            np.testing.assert_array_equal(image.labels[name], values)


def test_a_label_array_is_not_mistaken_for_an_image(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.zarr", mode="a")
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    item = ArrayItem(id="float", metadata={}, load=lambda: ArrayImage(data, axes=("channel", "y", "x"),
                                                                      channels=[{"label": "a"}, {"label": "b"}]))
    assert ingest(store, [item], progress=False).ok
    url = export_ome_zarr(store, tmp_path / "out")[0]
    image = read_ome_zarr(url)
    np.testing.assert_array_equal(image.data, data)
    assert [c["label"] for c in image.channels] == ["a", "b"] and image.channels[0]["window"]["max"] == 1.0


def test_downsampling_methods(store: Any, tmp_path: Path) -> None:
    mean = zarr.open_group(export_ome_zarr(store, tmp_path / "mean", images=["ISIC_0000002"])[0], mode="r")
    resize = zarr.open_group(export_ome_zarr(store, tmp_path / "resize", images=["ISIC_0000002"],
                                             method="resize")[0], mode="r")
    np.testing.assert_array_equal(mean["s0"][...], resize["s0"][...])
    full = mean["s0"][...].astype(np.float64)
    blocks = full.reshape(3, 300, 2, 400, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(mean["s1"][...], blocks.astype(np.uint8))  # the mean of each 2x2 block
    assert not np.array_equal(resize["s1"][...], mean["s1"][...])
    with pytest.raises(InvalidInputError, match="downsampling method 'cubic' is not one of local_mean"):
        export_ome_zarr(store, tmp_path / "bad", images=["ISIC_0000002"], method="cubic")
