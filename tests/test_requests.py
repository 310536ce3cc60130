"""Opening one image or the metadata table does not list or read the other images."""

from __future__ import annotations

from collections import Counter

import numpy as np
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


def _store_with(tmp_path, n):
    import io
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 9, np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    items = [Item(id=f"IMG_{k:05d}", metadata={"k": k, "meta": {"x": str(k)}}, image=lambda: data)
             for k in range(n)]
    store = open_store(tmp_path / f"s{n}.zarr", mode="a")
    assert ingest(store, items, progress=False).ok
    return tmp_path / f"s{n}.zarr"


def _counts(path, action):
    counting = CountingStore(zarr.storage.LocalStore(path, read_only=True))
    store = Store(str(path), counting, zarr.open_group(counting, mode="r", zarr_format=3))
    counting.counts.clear()
    action(store)
    return dict(counting.counts)


def test_open_one_image_and_the_table_cost_the_same_at_any_size(tmp_path):
    small, large = _store_with(tmp_path, 5), _store_with(tmp_path, 120)
    for action in (lambda s: s.image("IMG_00003").load(), lambda s: s.metadata()):
        a, b = _counts(small, action), _counts(large, action)
        assert a == b, (a, b)
        assert a.get("list", 0) == 0
        listed = [k for k in a if k.startswith("list ")]
        assert all(k in ("list images/IMG_00003", "list images/IMG_00003/", "list metadata", "list metadata/")
                   for k in listed), listed
