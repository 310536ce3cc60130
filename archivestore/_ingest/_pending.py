"""Rows waiting for the shared tables: the ingest loop's batched, background appends."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from archivestore._ingest._results import ItemResult, SeriesResult
from archivestore.store import Store, StudyRow

__all__ = ["Pending"]


class Pending:
    """Rows waiting to be appended to the shared tables, flushed in batches on a background thread.

    An append rewrites the last chunk of every column one request after another: on a
    bucket that is seconds (~180 requests for a 30-field record), during which the
    submitting process would collect no results and the workers would run dry. So each
    batch is handed to one background thread and the loop goes on. One append is in flight
    at a time; rows that come meanwhile wait for the next, which is then larger (an append
    costs about the same whatever its size), so the loop never waits for the tables.
    :meth:`close` appends the rest and waits; an append's error is raised at the next
    flush or at close.
    """

    def __init__(self, store: Store, batch_size: int, table_batch: int, table_seconds: float) -> None:
        self.store = store
        self.index = store.table_index()
        self.series_index = store.table_index(store.layout.SERIES_METADATA)
        self.records: dict[str, dict[str, Any]] = {}
        self.series_records: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[StudyRow]] = {}
        self.n_rows = 0
        self.limits = (batch_size, table_batch, table_seconds)
        self.last_table = time.monotonic()
        self.appending: Future[int] | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archivestore-tables")

    def add(self, item_id: str, result: ItemResult | SeriesResult) -> None:
        if isinstance(result, ItemResult):
            if item_id not in self.index:
                self.records[item_id] = result.record if result.record is not None \
                    else self.store.image_record(item_id)
            for study, row in result.rows:
                self.rows.setdefault(study, []).append(row)
                self.n_rows += 1
        else:
            self.series_records.update((k, v) for k, v in result.rows.items() if k not in self.series_index)
        batch_size, table_batch, table_seconds = self.limits
        waiting = len(self.records) + len(self.series_records)
        table = waiting >= table_batch or bool(waiting and time.monotonic() - self.last_table > table_seconds)
        if (table or self.n_rows >= batch_size) and not (self.appending and not self.appending.done()):
            self.flush(table)

    def flush(self, table: bool = True) -> None:
        """Hand the waiting rows to the background append (once the one in flight has finished)."""
        if not self.rows and not (table and (self.records or self.series_records)):
            return
        self.wait()
        self.appending = self.pool.submit(
            self.store.append_tables, self.records if table else None, self.rows, self.index,
            series_records=self.series_records if table else None, series_index=self.series_index)
        self.rows, self.n_rows = {}, 0
        if table:
            self.records, self.series_records = {}, {}
            self.last_table = time.monotonic()

    def wait(self) -> None:
        """Wait for the append in flight; raise its error."""
        appending, self.appending = self.appending, None
        if appending is not None:
            appending.result()

    def close(self, *, flush: bool) -> None:
        """Append what is waiting (if ``flush``), wait for the last append, and stop the thread."""
        try:
            if flush:
                self.flush()
            self.wait()
        finally:
            self.pool.shutdown()
