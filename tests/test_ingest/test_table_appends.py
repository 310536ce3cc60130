"""The metadata-table appends run beside the ingest loop: results keep being collected while one is under way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from archivestore import ingest, open_store
from archivestore.sources import Item
from archivestore.store import Store
from archivestore.testing.sample import png

PNG = png(np.full((8, 8, 3), 90, np.uint8))


def _items(n: int, exhausted: threading.Event | None = None) -> Iterator[Item]:
    """``n`` tiny images; ``exhausted`` is set when the loop asks for one more than there are."""
    for k in range(n):
        yield Item(id=f"IMG_{k:04d}", metadata={"k": k, "meta": {"site": ["arm", "leg"][k % 2]}},
                   image=lambda: PNG)
    if exhausted is not None:
        exhausted.set()


class _Appends:
    """Wraps a store's ``append_tables``: the first call waits for ``release``; threads and rows are recorded."""

    def __init__(self, store: Store, release: threading.Event | None = None, error: Exception | None = None) -> None:
        self.inner = store.append_tables
        self.release = release
        self.error = error
        self.released: list[bool] = []
        self.threads: set[str] = set()
        self.rows: list[int] = []
        store.append_tables = self  # type: ignore[method-assign]

    def __call__(self, records: Any = None, *args: Any, **kwargs: Any) -> int:
        self.threads.add(threading.current_thread().name)
        if self.release is not None and not self.released:
            self.released.append(self.release.wait(timeout=30))
        if self.error is not None:
            raise self.error
        self.rows.append(len(records or {}))
        return self.inner(records, *args, **kwargs)


def test_the_loop_goes_on_while_a_table_append_is_under_way(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.zarr", mode="a")
    exhausted = threading.Event()
    appends = _Appends(store, release=exhausted)  # the first append waits until the loop has read every item
    report = ingest(store, _items(20, exhausted), workers=2, progress=False, table_batch=6)
    assert report.ok and len(report.ingested) == 20
    assert appends.released == [True]  # it could not have if the loop ran the append itself, or waited for it
    assert threading.current_thread().name not in appends.threads
    assert appends.rows == [6, 14]  # what came during the first append went into one larger append
    table = open_store(tmp_path / "s.zarr").metadata_records()
    assert sorted(table) == [f"IMG_{k:04d}" for k in range(20)]
    assert table["IMG_0013"] == {"k": 13, "meta": {"site": "leg"}}


def test_an_append_error_ends_the_ingest_and_keeps_the_report(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.zarr", mode="a")
    _Appends(store, error=OSError("bucket gone"))
    report = ingest(store, _items(12), workers=2, progress=False, table_batch=4)
    assert isinstance(report.stopped, OSError) and "bucket gone" in str(report.stopped)
    assert not report.ok and "stopped early" in report.summary()


def test_the_rerun_adds_the_rows_an_append_lost(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.zarr", mode="a")
    _Appends(store, error=OSError("cut off"))
    assert ingest(store, _items(12), workers=2, progress=False, table_batch=4).stopped is not None
    report = ingest(open_store(tmp_path / "s.zarr", mode="a"), _items(12), workers=2, progress=False)
    assert report.ok
    assert sorted(open_store(tmp_path / "s.zarr").metadata_records()) == [f"IMG_{k:04d}" for k in range(12)]
