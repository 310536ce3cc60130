"""With ``CI=true`` a test or module skipped for a missing dependency fails; without it, it skips."""

from __future__ import annotations

import pytest

MODULE = """
import pytest
pytest.importorskip("archivestore_no_such_module")

def test_never_runs():
    pass
"""

TESTS = """
import pytest

def test_needs_a_module():
    pytest.importorskip("archivestore_no_such_module")

def test_skips_for_another_reason():
    pytest.skip("only on Windows")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_modules_fail_on_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_module=MODULE, test_tests=TESTS)
    result = pytester.runpytest_inprocess("-p", "strict_skips", "-p", "no:cacheprovider",
                                          "--continue-on-collection-errors")
    if ci:
        # the module and the test that import a missing module fail; other skips and xfails stay
        result.assert_outcomes(failed=1, skipped=1, xfailed=1, errors=1)
        result.stdout.fnmatch_lines(["*CI=true: a skip for something missing fails here*"])
    else:
        result.assert_outcomes(skipped=3, xfailed=1)
