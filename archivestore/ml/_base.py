"""What every dataset shares: the store opened once per process, items as dicts, tensors on request.

A dataset holds the store's URL and storage options, never an open store across processes:
pickled into a ``DataLoader`` worker (``spawn``/``forkserver``) it carries the URL, and a worker
made by ``fork`` notices the new process id; either way the worker opens the store on its first
item and keeps it for the rest (one open per process and URL, shared by every dataset there).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from archivestore.store import Store

__all__ = ["Item", "StoreDataset", "open_once", "opened_stores", "to_tensors"]

Item = dict[str, Any]
"""One item: ``id``, ``license``, ``attribution``, numpy arrays and numbers (tensors on request)."""

_OPENED: dict[tuple[int, str, str], Store] = {}
"""Stores this process opened for datasets, by (process id, URL, options)."""


def open_once(url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
    """The store at ``url`` opened read-only, once per process (a forked child opens its own)."""
    from archivestore.store import open_store

    options = dict(storage_options or {})
    key = (os.getpid(), url, repr(sorted(options.items())))
    if key not in _OPENED:
        _OPENED[key] = open_store(url, "r", options)
    return _OPENED[key]


def opened_stores() -> int:
    """How many stores this process has opened for datasets (what a worker's first item costs)."""
    pid = os.getpid()
    return sum(1 for key in _OPENED if key[0] == pid)


def to_tensors(item: Item) -> Item:
    """``item`` with its numpy arrays and numbers as ``torch`` tensors (strings and lists kept)."""
    import torch

    out: Item = {}
    for key, value in item.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, np.generic) and value.dtype.kind in "biuf":
            out[key] = torch.as_tensor(value.item())
        else:
            out[key] = value
    return out


class StoreDataset:
    """The base of the map-style datasets: ``len(ds)``, ``ds[i]`` → a dict, picklable as the store's URL.

    Parameters
    ----------
    store
        A :class:`~archivestore.Store`, or a path or fsspec URL to open read-only.
    storage_options
        fsspec options when ``store`` is a URL (a store keeps its own).
    transform
        Called on each item (after ``tensors``) and its result returned instead.
    tensors
        Return arrays as ``torch`` tensors (needs torch); numpy by default.
    """

    def __init__(self, store: Store | str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None,
                 transform: Callable[[Item], Any] | None = None, tensors: bool = False) -> None:
        if isinstance(store, (str, os.PathLike)):
            store = open_once(os.fspath(store), storage_options)
        self.url: str = store.url
        self.storage_options: dict[str, Any] = dict(store.storage_options)
        self.transform = transform
        self.tensors = tensors
        if tensors:
            import torch  # noqa: F401  (fail here, not in a worker, when torch is missing)
        self._store: Store | None = store
        self._pid = os.getpid()

    @property
    def store(self) -> Store:
        """The store, opened in this process on first use."""
        if self._store is None or self._pid != os.getpid():
            self._store = open_once(self.url, self.storage_options)
            self._pid = os.getpid()
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None  # the worker opens the store from its URL
        return state

    def __len__(self) -> int:
        raise NotImplementedError

    def read_item(self, index: int) -> Item:
        """Item ``index`` as numpy (before ``tensors`` and ``transform``)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, not {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        item = self.read_item(int(index))
        if self.tensors:
            item = to_tensors(item)
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} items from {self.url!r}>"


def split_members(store: Store, split: tuple[str, str] | None) -> set[str] | None:
    """The item ids of part ``split[1]`` of the stored split ``split[0]``; None without a split."""
    if split is None:
        return None
    from archivestore.errors import InvalidInputError
    from archivestore.ml._splits import read_split

    if isinstance(split, str) or len(split) != 2:
        raise InvalidInputError(f"split is (name, part), e.g. ('v1', 'test'), not {split!r}")
    name, part = split
    table = read_split(store, name)
    parts = sorted(set(table["split"]) - {""})
    if part not in parts:
        raise InvalidInputError(f"split {name!r} has no part {part!r}; parts: {', '.join(parts)}")
    return set(table.index[table["split"] == part])


def choose(ids: Sequence[str], wanted: Sequence[str] | None, members: set[str] | None, what: str) -> list[str]:
    """``wanted`` (checked against ``ids``) or all ``ids``, limited to a split's ``members``."""
    from archivestore.errors import NotFoundError

    if wanted is not None:
        known = set(ids)
        missing = [i for i in wanted if i not in known]
        if missing:
            raise NotFoundError(f"no complete {what} {', '.join(map(repr, missing[:5]))}"
                                f"{' ...' if len(missing) > 5 else ''} in the store")
        ids = list(wanted)
    return [i for i in ids if members is None or i in members]
