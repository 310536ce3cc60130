"""Opening one image or the metadata table does not list or read the other images."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import zarr.storage

from archivestore import open_store
from archivestore.store import Store
from archivestore.sources import Item
from archivestore import ingest


class CountingStore(zarr.storage.WrapperStore):
    """Counts the store operations made through it (as xarray's tests do)."""

    def __init__(self, store):
        super().__init__(store)
        self.counts: Counter = Counter()

    async def get(self, key, prototype, byte_range=None):
        self.counts["get"] += 1
        return await self._store.get(key, prototype, byte_range)

    async def exists(self, key):
        self.counts["exists"] += 1
        return await self._store.exists(key)

    def list(self):
        self.counts["list"] += 1
        return self._store.list()

    def list_prefix(self, prefix):
        self.counts[f"list {prefix}"] += 1
        return self._store.list_prefix(prefix)

    def list_dir(self, prefix):
        self.counts[f"list {prefix}"] += 1
        return self._store.list_dir(prefix)


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
    counting = CountingStore(_base(url))
    store = Store(str(url), counting, zarr.open_group(counting, mode="r", zarr_format=3))
    counting.counts.clear()
    action(store)
    return dict(counting.counts)


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
        listed = [k for k in a if k.startswith("list ")]
        assert all(k in ("list images/IMG_00003", "list images/IMG_00003/", "list metadata", "list metadata/")
                   for k in listed), listed


class WriteCounting(zarr.storage.WrapperStore):
    def __init__(self, store):
        super().__init__(store)
        self.sets: Counter = Counter()

    async def set(self, key, value):
        self.sets[key] += 1
        return await self._store.set(key, value)


def test_ingest_writes_each_chunk_once(sample_dirs, tmp_path):
    from archivestore.sources import ChallengeSource

    path = tmp_path / "s.zarr"
    open_store(path, mode="a")
    counting = WriteCounting(zarr.storage.LocalStore(path))
    store = Store(str(path), counting, zarr.open_group(counting, mode="a", zarr_format=3), mode="a")
    dirs = [sample_dirs["train"], sample_dirs["masks"], sample_dirs["attributes"]]
    assert ingest(store, ChallengeSource(dirs), progress=False).ok
    chunks = {k: n for k, n in counting.sets.items() if k.startswith("images/") and "/c/" in k}
    assert len(chunks) >= 6 * 5
    assert set(chunks.values()) == {1}, {k: n for k, n in chunks.items() if n > 1}
