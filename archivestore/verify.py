"""Check a store against the checksums recorded at ingest, and repair what can be repaired.

``verify`` reads every array of every image the metadata table lists (and of the
other raters' mask groups), recomputes its sha256 and compares it with the one written
in the group's ``_archivestore`` attribute at ingest. It also looks for image groups
that are incomplete (an interrupted write) or complete but missing from the table.
With ``repair=True`` a damaged or missing image is fetched again from the ``origin``
its group recorded (challenge files on disk, an archive API) and re-ingested; a
complete image missing from the table gets its row back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain

from tqdm.auto import tqdm

from archivestore.sources import ArrayItem, Item, SeriesItem
from archivestore.store import Store, checksum

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass
class Problem:
    """One thing wrong with one image: ``kind`` is damaged, missing, incomplete or unlisted."""

    image_id: str
    kind: str
    detail: str
    group: str = ""

    def __str__(self) -> str:
        return f"{self.image_id}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems or (not self.unrepaired and bool(self.repaired))

    def summary(self) -> str:
        text = f"{self.checked} items checked, {len(self.problems)} problems"
        if self.repaired or self.unrepaired:
            text += f", {len(self.repaired)} repaired, {len(self.unrepaired)} not repairable"
        return text


def _check_group(store: Store, image_id: str, path: str) -> Problem | None:
    state = store.group_state(path)
    if state is None:
        return Problem(image_id, "missing", f"{path} is not in the store", path)
    if not state.get("complete"):
        return Problem(image_id, "incomplete", f"{path} was not written to the end", path)
    for name, want in sorted(state.get("checksums", {}).items()):
        try:
            data = store.read_array(path, name)
        except (KeyError, FileNotFoundError) as exc:
            return Problem(image_id, "damaged", f"{path}/{name} cannot be read: {exc}", path)
        except Exception as exc:  # a corrupt chunk fails to decode
            return Problem(image_id, "damaged", f"{path}/{name} cannot be read: {type(exc).__name__}: {exc}", path)
        if checksum(data) != want:
            return Problem(image_id, "damaged", f"{path}/{name} does not match its checksum", path)
    return None


def _check_image(store: Store, image_id: str, raters: list[str]) -> list[Problem]:
    problems = [p for p in [_check_group(store, image_id, store.layout.image(image_id))] if p]
    for rater in raters:
        path = store.layout.masks(image_id, rater)
        if store.group_state(path) is not None:
            p = _check_group(store, image_id, path)
            if p:
                problems.append(p)
    return problems


def _check_series(store: Store, series_id: str) -> list[Problem]:
    """A volume or segmentation the series table lists (its group is one of the two)."""
    path = store.layout.series(series_id)
    if store.group_state(path) is None:
        path = store.layout.segmentation(series_id)
    if store.group_state(path) is None and store.group_state(store.layout.slide(series_id)) is not None:
        slide = store.layout.slide(series_id)  # a slide: its tiles against their recorded checksums
        return [Problem(series_id, "damaged" if "checksum" in detail or "read" in detail else "incomplete", detail,
                        slide) for detail in store.slide_damage(series_id)]
    problem = _check_group(store, series_id, path)
    return [problem] if problem else []


def verify(store: Store, *, repair: bool = False, workers: int | None = None, progress: bool = True) -> VerifyReport:
    """Check every image, volume and segmentation against its recorded checksums; optionally repair.

    Parameters
    ----------
    store
        The store (``mode="a"`` to repair).
    repair
        Re-ingest damaged, missing and incomplete images from their recorded origin
        and add table rows for complete images the table lacks.
    workers
        Threads reading arrays in parallel.
    progress
        Show a progress bar.
    """
    report = VerifyReport()
    listed = store.image_ids()
    raters = store.mask_raters()
    series = store.series_ids()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = chain(pool.map(lambda i: _check_image(store, i, raters), listed),
                        pool.map(lambda s: _check_series(store, s), series))
        for problems in tqdm(results, total=len(listed) + len(series), disable=not progress, desc="verify",
                             unit="item"):
            report.checked += 1
            report.problems.extend(problems)
    # groups the table does not list: interrupted writes, or rows lost with a crash
    in_table = set(listed)
    for name in store.stored_image_ids():
        if name in in_table:
            continue
        path = store.layout.image(name)
        if (store.image_state(name) or {}).get("complete"):
            report.problems.append(Problem(name, "unlisted", "complete but not in the metadata table", path))
        else:
            report.problems.append(Problem(name, "incomplete", "interrupted write, not in the metadata table", path))
    if repair and report.problems:
        _repair(store, report, progress)
    return report


def _repair(store: Store, report: VerifyReport, progress: bool) -> None:
    from archivestore._ingest import ingest
    from archivestore.sources import item_from_origin

    unlisted = {p.image_id: store.image_record(p.image_id) for p in report.problems if p.kind == "unlisted"}
    items: dict[str, Item | SeriesItem | ArrayItem] = {}
    for problem in report.problems:
        if problem.kind == "unlisted":
            continue
        state = store.group_state(problem.group) or {}
        item_id = str(state.get("series") or problem.image_id)  # a part of a split series: its series
        origin = state.get("origin")
        if not origin:
            report.unrepaired.append(Problem(problem.image_id, problem.kind,
                                             problem.detail + "; no origin recorded to fetch it again", problem.group))
            continue
        try:
            # the group's attributes are the record (the table may be mid-repair itself)
            item = item_from_origin(item_id, origin, store.record_of(problem.group))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            report.unrepaired.append(Problem(problem.image_id, problem.kind, f"{problem.detail}; {exc}", problem.group))
            continue
        store.drop_item(problem.group)
        items[item_id] = item
    if items:
        result = ingest(store, list(items.values()), progress=progress)
        report.repaired.extend(result.ingested)
        report.unrepaired.extend(Problem(b.item_id, "damaged", b.reason) for b in result.failed)
    if unlisted:  # the same locked append as ingest: a cut-short append is trimmed back first
        store.append_tables(unlisted)
        report.repaired.extend(unlisted)

