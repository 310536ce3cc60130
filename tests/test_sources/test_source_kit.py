"""The source conformance kit itself: each check passes on a well-behaved toy source and fails on one that breaks it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from archivestore.errors import BadItem
from archivestore.sources import Item
from archivestore.testing.sample import synthetic_image
from archivestore.testing.sources import SourceTests, loaders_of


@dataclass
class ToySource:
    """Items whose images are drawn from their ids; ``reads`` counts the images drawn."""

    ids: list[str]
    eager: bool = False
    broken: str | None = None
    extra: dict = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    problems: list[BadItem] = field(default_factory=list)

    def load(self, item_id: str) -> bytes:
        self.reads.append(item_id)
        return b"not a PNG" if item_id == self.broken else synthetic_image(item_id, (8, 8))

    def __iter__(self) -> Iterator[Item]:
        for item_id in self.ids:
            data = self.load(item_id) if self.eager else None
            image = (lambda d=data: d) if self.eager else (lambda i=item_id: self.load(i))
            yield Item(id=item_id, metadata={"id": item_id, **self.extra}, image=image)


class _Request:
    def __init__(self, source: ToySource) -> None:
        self.source = source

    def getfixturevalue(self, name: str) -> ToySource:
        assert name == "source"
        return self.source


KIT = SourceTests()
IDS = ["a/b", "..", " spaced ", "ünï"]


def _reads(source: ToySource) -> Callable[[], int]:
    return lambda: len(source.reads)


def test_a_good_toy_source_passes_every_check(tmp_path):
    source = ToySource(IDS)
    KIT.test_ids_are_unique_strings_the_store_can_name(source)
    KIT.test_a_good_source_has_no_problems(source)
    KIT.test_items_and_source_survive_pickling(source)
    KIT.test_metadata_and_origins_are_json(source)
    KIT.test_listing_reads_no_item_bytes(_Request(source), _reads(source))
    bad = ToySource(IDS, broken="..")
    KIT.test_a_bad_item_is_reported_and_the_others_ingested(bad, "..", f"memory://{tmp_path.name}/s.zarr")


def test_duplicate_or_unusable_ids_fail():
    with pytest.raises(AssertionError, match="duplicate"):
        KIT.test_ids_are_unique_strings_the_store_can_name(ToySource(["a", "b", "a"]))
    with pytest.raises(BadItem):
        KIT.test_ids_are_unique_strings_the_store_can_name(ToySource(["a", "b\x07"]))


def test_eager_loading_or_an_uncounted_read_fails():
    eager = ToySource(IDS, eager=True)
    with pytest.raises(AssertionError, match="read item bytes"):
        KIT.test_listing_reads_no_item_bytes(_Request(eager), _reads(eager))
    with pytest.raises(AssertionError, match="did not count"):
        KIT.test_listing_reads_no_item_bytes(_Request(ToySource(IDS)), lambda: 0)


def test_unpicklable_items_fail():
    with pytest.raises(TypeError):
        KIT.test_items_and_source_survive_pickling(ToySource(IDS, extra={"lock": threading.Lock()}))


def test_metadata_that_is_not_json_fails():
    with pytest.raises(TypeError):
        KIT.test_metadata_and_origins_are_json(ToySource(IDS, extra={"tags": {"x"}}))


def test_a_bad_item_that_ingests_or_takes_others_down_fails(tmp_path):
    with pytest.raises(AssertionError, match="not reported"):
        KIT.test_a_bad_item_is_reported_and_the_others_ingested(ToySource(IDS), "..", f"memory://{tmp_path.name}-1/s.zarr")
    with pytest.raises(AssertionError):  # the broken one is another item than the fixture names
        KIT.test_a_bad_item_is_reported_and_the_others_ingested(ToySource(IDS, broken="a/b"), "..", f"memory://{tmp_path.name}-2/s.zarr")


def test_loaders_of_finds_nested_loaders():
    from archivestore.sources import Annotation

    item = Item(id="x", metadata={}, image=lambda: b"", attributes={"f": lambda: b""},
                annotations=[Annotation(study="s", rater="r", values=lambda: {})])
    assert len(loaders_of(item)) == 3
