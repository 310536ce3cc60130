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
from typing import Any

from tqdm.auto import tqdm

from archivestore._ingest._repair import is_transport_failure
from archivestore.store import Store, checksum

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass
class Problem:
    """One thing wrong with one image: ``kind`` is damaged, missing, incomplete, unlisted, or unreachable
    (the store could not be read: a transport failure, not damage)."""

    image_id: str
    kind: str
    detail: str
    group: str = ""

    def __str__(self) -> str:
        return f"{self.image_id}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    """What :func:`verify` found (``problems``) and what ``repair`` did with them."""

    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)
    unreachable: list[Problem] = field(default_factory=list)
    """Repairs not tried or not finished because the store or the origin could not be reached (nothing changed)."""

    @property
    def ok(self) -> bool:
        """No problem, or every problem repaired."""
        return not self.problems or (not self.unrepaired and not self.unreachable and bool(self.repaired))

    def summary(self) -> str:
        """One line: items checked, problems, and what repair did."""
        text = f"{self.checked} items checked, {len(self.problems)} problems"
        if self.repaired or self.unrepaired or self.unreachable:
            text += f", {len(self.repaired)} repaired, {len(self.unrepaired)} not repairable"
        if self.unreachable:
            text += f", {len(self.unreachable)} left as they are (store or origin out of reach)"
        return text


def _check_group(store: Store, image_id: str, path: str) -> Problem | None:
    try:
        state = store.group_state(path)
    except Exception as exc:
        if is_transport_failure(exc):
            return Problem(image_id, "unreachable", f"cannot read {path}: {type(exc).__name__}: {exc}", path)
        raise
    if state is None:
        return Problem(image_id, "missing", f"{path} is not in the store", path)
    if not state.get("complete"):
        return Problem(image_id, "incomplete", f"{path} was not written to the end", path)
    for name, want in sorted(state.get("checksums", {}).items()):
        try:
            data = store.read_array(path, name)
        except Exception as exc:  # a corrupt chunk fails to decode; a store out of reach is not damage
            kind = "unreachable" if is_transport_failure(exc) else "damaged"
            return Problem(image_id, kind, f"{path}/{name} cannot be read: {type(exc).__name__}: {exc}", path)
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
    """A volume, segmentation or findings table the series table lists (its group is one of the three)."""
    path = store.layout.series(series_id)
    try:
        if store.group_state(path) is None:
            path = store.layout.segmentation(series_id)
            findings = store.layout.findings(series_id)
            if store.group_state(path) is None and store.group_state(findings) is not None:
                path = findings
        if store.group_state(path) is None and store.group_state(store.layout.slide(series_id)) is not None:
            slide = store.layout.slide(series_id)  # a slide: its tiles against their recorded checksums
            return [Problem(series_id, "damaged" if "checksum" in detail or "read" in detail else "incomplete",
                            detail, slide) for detail in store.slide_damage(series_id)]
    except Exception as exc:
        if not is_transport_failure(exc):
            raise
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
        _repair(store, report, workers, progress)
    return report


def _needs(store: Store, group: str, state: dict[str, Any]) -> list[str]:
    """The groups a fresh copy of ``group`` is written beside: a rater's masks need their image, a SEG its volume."""
    if group.startswith(f"{store.layout.MASKS}/"):
        return [store.layout.image(str(state.get("name")))]
    if group.startswith(f"{store.layout.SEGMENTATIONS}/"):
        volume = dict(store.root[group].attrs).get("source_volume")
        return [store.layout.series(str(volume))] if volume else []
    return []


def _repair(store: Store, report: VerifyReport, workers: int | None, progress: bool) -> None:
    from archivestore._ingest._repair import Fix, repair_groups
    from archivestore.sources import item_from_origin

    unlisted = {p.image_id: store.image_record(p.image_id) for p in report.problems if p.kind == "unlisted"}
    fixes: dict[str, tuple[Problem, Fix]] = {}
    for problem in report.problems:
        if problem.kind == "unlisted":
            continue
        if problem.kind == "unreachable":
            report.unreachable.append(problem)
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
        fix = Fix(item, problem.group, dict(state.get("checksums") or {}), _needs(store, problem.group, state))
        fixes[problem.group] = (problem, fix)
    outcomes = repair_groups(store, [fix for _, fix in fixes.values()], workers=workers, progress=progress)
    for outcome in outcomes:
        problem = fixes[outcome.fix.group][0]
        if outcome.kind == "repaired":
            report.repaired.append(problem.image_id)
            continue
        left = Problem(problem.image_id, problem.kind, f"{problem.detail}; {outcome.detail}", problem.group)
        (report.unreachable if outcome.kind == "unreachable" else report.unrepaired).append(left)
    if unlisted:  # the same locked append as ingest: a cut-short append is trimmed back first
        store.append_tables(unlisted)
        report.repaired.extend(unlisted)
