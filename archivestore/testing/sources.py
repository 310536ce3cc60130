"""A conformance test kit for sources (like ``zarr.testing.store.StoreTests``).

A new archive adapter gets the checks every source must pass by subclassing
:class:`SourceTests` in its test module and providing four fixtures::

    class TestMySource(SourceTests):
        @pytest.fixture
        def source(self, server):             # a source over good data (two items or more)
            return MySource(MyApi(server.url))

        @pytest.fixture
        def bad_source(self, broken_server):  # the same, with exactly one broken item
            return MySource(MyApi(broken_server.url))

        @pytest.fixture
        def bad_item_id(self):
            return "ITEM_2"

        @pytest.fixture
        def byte_reads(self, server):         # how many item bytes were read so far
            return lambda: len(server.requests_to("download"))

The checks: ids are non-empty unique strings the store can escape and get back
(``/``, ``..``, spaces and Unicode are allowed); items and the source survive
pickling as dask ships them to workers; building and iterating the source reads no
item bytes (the loaders are lazy); a broken item becomes one per-item
:class:`~archivestore.errors.BadItem` naming it while the others are ingested; and
metadata records and origins are JSON.

Importing this module needs pytest; importing :mod:`archivestore.testing` does not.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import fsspec
import pytest

from archivestore.errors import BadItem
from archivestore.layout import escape_name, unescape_name
from archivestore.sources import validate_id

__all__ = ["SourceTests", "loaders_of"]


def loaders_of(item: Any) -> list[Callable[[], Any]]:
    """Every lazy loader of an item: callable fields, callables in dict fields, and those of nested records.

    Works for :class:`~archivestore.sources.Item` (image, superpixels, mask, attribute
    masks, annotation values) and :class:`~archivestore.sources.SeriesItem` (files).
    """
    found: list[Callable[[], Any]] = []
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for v in values:
            if callable(v):
                found.append(v)
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                found.extend(loaders_of(v))
    return found


def _same(a: Any, b: Any) -> bool:
    """Equal loader results: bytes and records by ``==``, arrays (an ArrayImage's pixels) by value."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        import numpy as np

        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _roundtrip(obj: Any) -> Any:
    """``obj`` serialised as dask.distributed ships task arguments (cloudpickle) and loaded again."""
    return pickle.loads(cloudpickle.dumps(obj))


class SourceTests:
    """The shared checks of a source; subclass and provide the fixtures below.

    Fixtures to provide
    -------------------
    source
        A source over good data with at least two items.
    bad_source
        A source like ``source`` with exactly one broken item (bytes that do not
        decode, a loader whose fetch fails, an annotation of the wrong length, ...).
    bad_item_id
        The id of that broken item.
    byte_reads
        A callable returning how many times item bytes (images, masks, superpixels,
        annotation values, series files) have been read or fetched so far, counted
        where the source gets them (file reads, requests to a stand-in server).
    """

    @pytest.fixture
    def source(self) -> Any:
        """A source over good data (override)."""
        raise NotImplementedError("a SourceTests subclass provides the `source` fixture")

    @pytest.fixture
    def bad_source(self) -> Any:
        """A source with exactly one broken item (override)."""
        raise NotImplementedError("a SourceTests subclass provides the `bad_source` fixture")

    @pytest.fixture
    def bad_item_id(self) -> str:
        """The id of the broken item of ``bad_source`` (override)."""
        raise NotImplementedError("a SourceTests subclass provides the `bad_item_id` fixture")

    @pytest.fixture
    def byte_reads(self) -> Callable[[], int]:
        """How many item bytes have been read so far (override)."""
        raise NotImplementedError("a SourceTests subclass provides the `byte_reads` fixture")

    @pytest.fixture
    def memory_store_url(self) -> Iterator[str]:
        """A fresh ``memory://`` store location, removed afterwards."""
        root = f"archivestore-sourcetests-{uuid.uuid4().hex}"
        yield f"memory://{root}/store.zarr"
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def stored_ids(self, store: Any) -> set[str]:
        """The item ids a store holds after an ingest: images and series (override for other item kinds)."""
        return set(store.image_ids()) | {i.split("_part")[0] for i in store.series_ids()}

    # -- the checks -------------------------------------------------------------------------
    def test_ids_are_unique_strings_the_store_can_name(self, source: Any) -> None:
        ids = [item.id for item in source]
        assert len(ids) >= 2, "the `source` fixture should yield two items or more"
        assert len(set(ids)) == len(ids), f"duplicate ids: {sorted(i for i in set(ids) if ids.count(i) > 1)}"
        for item_id in ids:
            assert isinstance(item_id, str) and item_id, repr(item_id)
            assert validate_id(item_id) == item_id
            name = escape_name(item_id)
            assert "/" not in name and name not in (".", "..") and unescape_name(name) == item_id, (item_id, name)

    def test_a_good_source_has_no_problems(self, source: Any) -> None:
        list(source)
        assert list(source.problems) == []

    def test_items_and_source_survive_pickling(self, source: Any) -> None:
        items = list(source)
        for item in items:
            again = _roundtrip(item)
            assert (again.id, again.metadata) == (item.id, item.metadata)
            assert len(loaders_of(again)) == len(loaders_of(item))
        first = items[0]
        assert loaders_of(first), f"item {first.id!r} has no loaders"
        assert _same(loaders_of(_roundtrip(first))[0](), loaders_of(first)[0]())
        assert [item.id for item in _roundtrip(source)] == [item.id for item in items]

    def test_listing_reads_no_item_bytes(self, request: pytest.FixtureRequest, byte_reads: Callable[[], int]) -> None:
        before = byte_reads()
        source = request.getfixturevalue("source")  # built after the count started
        items = list(source)
        _roundtrip(items)
        assert byte_reads() == before, "building, iterating or pickling the source read item bytes"
        loaders_of(items[0])[0]()
        assert byte_reads() > before, "the `byte_reads` fixture did not count a loader's read"

    def test_a_bad_item_is_reported_and_the_others_ingested(
        self, bad_source: Any, bad_item_id: str, memory_store_url: str
    ) -> None:
        from archivestore import ingest, open_store

        good = {item.id for item in bad_source} - {bad_item_id}
        assert good, "the `bad_source` fixture should also yield good items"
        store = open_store(memory_store_url, mode="a")
        report = ingest(store, bad_source, progress=False)
        assert report.failed, "the broken item was not reported"
        assert all(isinstance(bad, BadItem) for bad in report.failed)
        assert {bad.item_id for bad in report.failed} == {bad_item_id}, report.failed
        assert all(bad.reason for bad in report.failed)
        assert good <= self.stored_ids(store)

    def test_metadata_and_origins_are_json(self, source: Any) -> None:
        for item in source:
            assert isinstance(item.metadata, dict)
            json.dumps(item.metadata)
            if getattr(item, "origin", None) is not None:
                json.dumps(item.origin)
