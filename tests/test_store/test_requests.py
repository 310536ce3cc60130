"""Opening one image or the metadata table does not list or read the other images."""

from __future__ import annotations

import numpy as np
import pytest
import zarr.storage

from archivestore import ingest, open_store
from archivestore.sources import Item
from archivestore.store import Store
from archivestore.testing.store import CountingStore


def _store_with(url, n):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 9, np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    items = [Item(id=f"IMG_{k:05d}", metadata={"k": k, "meta": {"x": str(k)}}, image=lambda: data)
             for k in range(n)]
    store = open_store(url, mode="a")
    assert ingest(store, items, progress=False, workers=8).ok
    return url


def _base(url):
    if "://" in url:
        return zarr.storage.FsspecStore.from_url(url, read_only=True)
    return zarr.storage.LocalStore(url, read_only=True)


def _counts(url, action):
    """Requests per operation, listings per prefix."""
    counting = CountingStore(_base(url))
    store = Store(str(url), counting, zarr.open_group(counting, mode="r", zarr_format=3))
    counting.reset()
    action(store)
    listings = {f"{op} {key}": n for (op, key), n in counting.calls.items() if op.startswith("list")}
    return {**counting.counts, **listings}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_open_one_image_and_the_table_cost_the_same_at_any_size(tmp_path, request, where):
    if where == "local":
        small, large = str(tmp_path / "s5.zarr"), str(tmp_path / "s.zarr")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        small, large = f"s3://{bucket}/s5.zarr", f"s3://{bucket}/s.zarr"
    _store_with(small, 5)
    _store_with(large, 60 if where == "s3" else 120)
    for action in (lambda s: s.image("IMG_00003").load(), lambda s: s.metadata()):
        a, b = _counts(small, action), _counts(large, action)
        assert a == b, (a, b)
        assert a.get("list", 0) == 0
        listed = {k.partition(" ")[2] for k in a if k.startswith(("list_prefix ", "list_dir "))}
        assert listed <= {"images/IMG_00003", "images/IMG_00003/", "metadata", "metadata/"}, listed


def test_ingest_writes_each_chunk_once(sample_dirs, tmp_path):
    from archivestore.sources import ChallengeSource

    path = tmp_path / "s.zarr"
    open_store(path, mode="a")
    counting = CountingStore(zarr.storage.LocalStore(path))
    store = Store(str(path), counting, zarr.open_group(counting, mode="a", zarr_format=3), mode="a")
    dirs = [sample_dirs["train"], sample_dirs["masks"], sample_dirs["attributes"]]
    assert ingest(store, ChallengeSource(dirs), progress=False).ok
    chunks = {k: n for (op, k), n in counting.calls.items() if op == "set" and k.startswith("images/") and "/c/" in k}
    assert len(chunks) >= 6 * 5
    assert set(chunks.values()) == {1}, {k: n for k, n in chunks.items() if n > 1}
