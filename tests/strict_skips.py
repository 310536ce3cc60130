"""A pytest plugin: with ``CI=true`` a test skipped for something missing fails instead.

The suite skips what needs an optional dependency (``pytest.importorskip("distributed")``,
whole modules for ``ome_zarr``, ``highdicom``, ``duckdb``) or the recorded fixtures in
``../shared``, so that a partial install still runs the rest. In CI every extra is installed
and ``../shared`` is there: a skip for a missing module, fixture or script means an extra
stopped installing, and CI must not pass by skipping. ``tests/conftest.py`` loads this
plugin; other skips (and xfails) are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

MISSING = ("could not import", "no module named", "not found at", "not present at", "is not installed",
           "not installed next to")
"""Skip reasons (lower case) that mean something the suite needs is missing: ``importorskip``'s
message, and the fixture and script checks of ``conftest.py`` and ``test_startup.py``."""


def strict() -> bool:
    """Whether skips for missing things fail: the ``CI`` environment variable is true."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_missing(report: Any) -> None:
    if not (report.skipped and strict()) or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if any(m in reason.lower() for m in MISSING):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a skip for something missing fails here ({reason})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    _fail_if_missing(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield  # a module-level importorskip skips the whole module at collection
    _fail_if_missing(outcome.get_result())
