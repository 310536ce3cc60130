"""No module of archivestore imports itself back, counting the imports under ``TYPE_CHECKING`` and in functions.

import-linter (``pyproject.toml``) leaves ``TYPE_CHECKING`` imports out; this test counts them too, so
a cycle that only type checkers follow (as the IDR modules once had) is caught as well.
"""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp")


def cycles(package: str) -> list[tuple[str, ...]]:
    """Every direct import ``a -> b`` for which ``b`` leads back to ``a``, as the cycle's modules."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                found.append((importer, *back))
    return found


def test_archivestore_has_no_import_cycle():
    assert cycles("archivestore") == []


def test_a_cycle_is_found(tmp_path, monkeypatch):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic.b import B\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic.a import A\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(cycles("cyclic")) == {("cyclic.a", "cyclic.b", "cyclic.a"), ("cyclic.b", "cyclic.a", "cyclic.b")}
