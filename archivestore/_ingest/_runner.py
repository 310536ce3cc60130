"""Where an ingest's per-item tasks run: a local thread pool, or a dask.distributed cluster."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Protocol

__all__ = ["Runner", "runner"]


class Runner(Protocol):
    """Submits tasks, waits for some of them, and is closed at the end."""

    slots: int
    """How many tasks may be pending at once (bounds memory on a long ingest)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def wait_some(self, futures: Iterable[Any]) -> set[Any]: ...

    def cancel(self, futures: Iterable[Any], *, force: bool = False) -> None:
        """Cancel the tasks that have not started (``force``: every unfinished one the runner can stop)."""

    def close(self) -> None: ...


class _Threads:
    """Runs tasks on a local thread pool."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.slots = 2 * workers
        self.forced = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def wait_some(self, futures: Iterable[Any]) -> set[Any]:
        return wait(list(futures), return_when=FIRST_COMPLETED).done

    def cancel(self, futures: Iterable[Any], *, force: bool = False) -> None:
        """Cancel the queued tasks; a running thread cannot be stopped (``force``: it is no longer waited for)."""
        for fut in futures:
            fut.cancel()
        self.forced = self.forced or force

    def close(self) -> None:
        self.pool.shutdown(wait=not self.forced, cancel_futures=True)


class _Dask:
    """Runs tasks on a dask.distributed cluster; the store travels as its URL.

    A client this runner made from a scheduler address is closed with the runner;
    a client the caller passed stays open (it is the caller's).
    """

    def __init__(self, client: Any, *, owned: bool) -> None:
        self.client = client
        self.owned = owned
        self.slots = 2 * max(1, sum(client.nthreads().values()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait_some(self, futures: Iterable[Any]) -> set[Any]:
        from distributed import wait as dask_wait

        with self.client.as_current():  # this client, even when another one is dask's default
            return set(dask_wait(list(futures), return_when="FIRST_COMPLETED").done)

    def cancel(self, futures: Iterable[Any], *, force: bool = False) -> None:
        """Cancel every unfinished task (the scheduler cannot tell queued from running ones); a task that was
        running finishes its group on its worker, and the rerun adds its table row."""
        unfinished = [fut for fut in futures if not fut.done()]
        if unfinished:
            self.client.cancel(unfinished)

    def close(self) -> None:
        if self.owned:
            self.client.close()


def runner(workers: int | None, client: Any) -> Runner:
    """Threads (``workers``, default the CPUs) without ``client``; else its cluster (a Client or an address)."""
    if client is None:
        return _Threads(workers or os.cpu_count() or 1)
    if isinstance(client, str):
        from distributed import Client

        return _Dask(Client(client), owned=True)
    return _Dask(client, owned=False)
