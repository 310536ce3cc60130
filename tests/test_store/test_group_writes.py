"""How an image group is written: requests on a bucket, sharding, inline metadata, claims."""

from __future__ import annotations

import functools
import io
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from fakes.faulty_proxy import FaultyProxy
from PIL import Image

from archivestore import ingest, open_store
from archivestore._ingest._item import process_item
from archivestore.errors import LeaseTimeout
from archivestore.layout import STATE_KEY, TILE
from archivestore.sources import Item
from archivestore.store._lock import holder

H, W = TILE + 77, 2 * TILE + 5  # more than one tile each way


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def _pixels(h: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    sp = rng.integers(0, 1000, (h, w)).astype(np.int32)
    return {"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "superpixels": sp,
            "mask": (rng.random((h, w)) > 0.5).astype(np.uint8)}


@functools.cache
def _files(h: int, w: int) -> dict[str, bytes]:
    px = _pixels(h, w)
    sp = px["superpixels"]
    rgb = np.stack([sp & 255, sp >> 8, np.zeros_like(sp)], axis=-1).astype(np.uint8)
    return {"image": _png(px["image"]), "superpixels": _png(rgb), "mask": _png(px["mask"] * 255)}


@pytest.fixture
def pixels() -> dict[str, np.ndarray]:
    return _pixels(H, W)


@pytest.fixture
def files() -> dict[str, bytes]:
    return _files(H, W)


def _item(files: dict[str, bytes], k: int, mask: bytes | None = None) -> Item:
    m = mask or files["mask"]
    return Item(id=f"IMG_{k}", metadata={"k": k, "diagnosis": "nevus"}, image=lambda: files["image"],
                superpixels=lambda: files["superpixels"], mask=lambda: m,
                attributes={"globules": lambda: m, "streaks": lambda: files["mask"]})


@pytest.mark.parametrize(("size", "most"), [((767, 1022), 15), ((H, W), 15 + 4 * 5)])
def test_a_new_image_takes_at_most_15_bucket_requests(s3_env, size, most):
    """Image, superpixels, mask, two attribute masks and the state: counted at the bucket itself.

    ISIC_0000000's size is one tile; an image of 2 x 3 tiles has 5 more objects in each of its
    image, superpixels, mask and attribute arrays.
    """
    import s3fs

    files, pixels = _files(*size), _pixels(*size)
    bucket = f"requests-{size[0]}"
    s3fs.S3FileSystem(endpoint_url=s3_env).mkdir(bucket)
    with FaultyProxy(s3_env, share=0.0) as proxy:
        store = open_store(f"s3://{bucket}/s.zarr", mode="a", storage_options={"endpoint_url": proxy.url})
        assert ingest(store, [_item(files, 0)], progress=False).ok  # the tables exist from here on
        proxy.requests.clear()
        assert ingest(store, [_item(files, k) for k in (1, 2, 3)], progress=False, workers=1).ok
        per_image = Counter(next(f"IMG_{k}" for k in (1, 2, 3) if f"IMG_{k}/" in path)
                            for _, path in proxy.requests if "/IMG_" in path)
        assert set(per_image) == {"IMG_1", "IMG_2", "IMG_3"}
        assert max(per_image.values()) <= most, proxy.requests
        proxy.requests.clear()
        assert ingest(store, [_item(files, k) for k in (1, 2, 3)], progress=False, workers=1).ok
        again = [path for _, path in proxy.requests if "/IMG_" in path]
        assert len(again) == 3, again  # a rerun reads each image's state once and writes nothing
    back = open_store(f"s3://{bucket}/s.zarr", storage_options={"endpoint_url": s3_env})
    for name, data in pixels.items():
        np.testing.assert_array_equal(back.read("IMG_2", name), data)


def test_tiles_shards_and_inline_metadata_open_with_plain_xarray_and_zarr(tmp_path, files, pixels):
    path = tmp_path / "s.zarr"
    assert ingest(open_store(path, mode="a"), [_item(files, 1)], progress=False).ok
    group = zarr.open_group(path / "images" / "IMG_1", mode="r")
    assert group.metadata.consolidated_metadata is not None
    assert set(group.metadata.consolidated_metadata.metadata) == {
        "image", "superpixels", "mask", "attribute", "channel", "feature"}
    assert group["image"].shards is None  # tiles of their own: zarr reads them faster
    assert group["attribute"].shards == (2, TILE, TILE)  # every feature of a tile in one object
    for name, data in pixels.items():
        np.testing.assert_array_equal(group[name][...], data)  # through the inline metadata
    ds = xr.open_zarr(path, group="images/IMG_1", consolidated=False)
    for name, data in pixels.items():
        np.testing.assert_array_equal(ds[name].values, data)
    np.testing.assert_array_equal(ds["attribute"].sel(feature="globules").values, pixels["mask"])
    assert list(ds["channel"].values) == ["R", "G", "B"]
    assert ds.attrs["diagnosis"] == "nevus"


def test_parts_added_later_join_the_inline_metadata(tmp_path, files, pixels):
    path = tmp_path / "s.zarr"
    store = open_store(path, mode="a")
    bare = Item(id="IMG_1", metadata={"k": 1}, image=lambda: files["image"])
    assert ingest(store, [bare], progress=False).ok
    assert ingest(store, [_item(files, 1)], progress=False).ok
    group = zarr.open_group(path / "images" / "IMG_1", mode="r")
    assert {"image", "superpixels", "mask", "attribute"} <= set(group.metadata.consolidated_metadata.metadata)
    np.testing.assert_array_equal(group["superpixels"][...], pixels["superpixels"])


def test_a_failed_claimed_write_leaves_an_incomplete_group_the_next_run_replaces(tmp_path, files, pixels):
    path = tmp_path / "s.zarr"
    store = open_store(path, mode="a")
    wrong = _png(np.zeros((5, 5), np.uint8))
    report = ingest(store, [_item(files, 1, mask=wrong)], progress=False)
    assert [f.item_id for f in report.failed] == ["IMG_1"]
    state = store.image_state("IMG_1")
    assert state == {"complete": False}  # the claim was given up, not left to expire
    assert ingest(store, [_item(files, 1)], progress=False).ok
    np.testing.assert_array_equal(store.read("IMG_1", "mask"), pixels["mask"])


def _claim(store, path: str, **holder_fields) -> None:
    """Leave the document of a group being written by a claim (live unless ``holder_fields`` say otherwise)."""
    doc = {"zarr_format": 3, "node_type": "group",
           "attributes": {STATE_KEY: {"complete": False, "writer": {**holder(300.0), **holder_fields}}}}
    target = Path(store.url) / path
    target.mkdir(parents=True)
    (target / "zarr.json").write_text(json.dumps(doc))


def test_a_live_claim_holds_other_writers_off_and_a_dead_one_does_not(tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    _claim(store, "images/LIVE")
    with pytest.raises(LeaseTimeout, match="being written"):
        store.item_lease("images/LIVE", wait_seconds=0.3)
    _claim(store, "images/EXPIRED", expires=0)
    with store.item_lease("images/EXPIRED", wait_seconds=0.3):
        pass
    _claim(store, "images/DEAD", pid=2**22 + 12345)  # a process of this host that does not run
    with store.item_lease("images/DEAD", wait_seconds=0.3):
        pass


def test_writers_racing_for_one_new_image_leave_it_complete_and_exact(tmp_path, files, pixels):
    store = open_store(tmp_path / "s.zarr", mode="a")
    results, errors = [], []

    def write() -> None:
        try:
            results.append(process_item(store, _item(files, 1)))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 4
    assert sum(r.record is not None for r in results) >= 1
    state = store.image_state("IMG_1")
    assert state["complete"] and "writer" not in state
    for name, data in pixels.items():
        np.testing.assert_array_equal(store.read("IMG_1", name), data)
