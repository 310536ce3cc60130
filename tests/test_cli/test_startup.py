"""Start-up: ``--help``, ``COMMAND --help`` and argument errors load no heavy library; ``--version``.

These check which modules get imported (``python -X importtime`` lists every one), not how long
it takes; ``benchmarks/bench_startup.py`` measures the time.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import archivestore
from archivestore.cli import main

HEAVY = ("xarray", "dask", "zarr", "pandas", "numpy", "PIL", "requests", "distributed", "fsspec")


def _imported(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``cmd`` with Python's import-time report on; return the process and the modules it imported."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1", **(env or {})})
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, modules - {"imported package"}


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["ingest", "challenge", "--help"],
    ["ingest", "isic", "--help"],
    ["select", "--help"],
    ["score", "--help"],
    ["info"],                                            # missing argument
    ["overlap", "s.zarr", "--definite", "--threshold", "1"],  # mutually exclusive options
    ["info", "s.zarr", "--storage-option", "no-equals-sign"],
    ["heatmap", "s.zarr", "--study", "x", "--feature", "y", "--out", "o", "--cell", "big"],
    ["no-such-command"],
])
def test_help_and_argument_errors_import_no_heavy_library(argv):
    proc, modules = _imported([sys.executable, "-m", "archivestore", *argv])
    assert proc.returncode == (0 if "--help" in argv else 2), proc.stderr[-2000:]
    assert "archivestore.cli" in modules  # the report was read
    assert _heavy(modules) == []
    if proc.returncode == 2:
        assert "usage: archivestore" in proc.stderr and "Traceback" not in proc.stderr


def test_every_commands_help_imports_no_heavy_library():
    """``--help`` of every command and sub-command the parser has, in one process: none loads them."""
    code = (
        "import argparse, contextlib, io, sys\n"
        "from archivestore.cli import build_parser, main\n"
        "def paths(parser, prefix):\n"
        "    yield prefix\n"
        "    for action in parser._actions:\n"
        "        if isinstance(action, argparse._SubParsersAction):\n"
        "            for name, sub in action.choices.items():\n"
        "                yield from paths(sub, [*prefix, name])\n"
        "every = list(paths(build_parser(), []))\n"
        "for argv in every:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([*argv, '--help'])\n"
        f"heavy = {HEAVY!r}\n"
        "print(len(every), sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, heavy = proc.stdout.split(" ", 1)
    assert int(count) > 12 and heavy.strip() == "[]"


def test_the_installed_script_starts_light_too():
    script = Path(sys.executable).with_name("archivestore")
    if not script.exists():
        pytest.skip("the archivestore script is not installed next to this Python")
    proc, modules = _imported([str(script), "ingest", "challenge", "--help"])
    assert proc.returncode == 0 and "--scheduler ADDRESS" in proc.stdout
    assert "archivestore.cli" in modules and _heavy(modules) == []


def test_a_command_that_runs_does_import_them(tmp_path):
    """The check above can fail: a command that opens a store loads zarr (and says so)."""
    proc, modules = _imported([sys.executable, "-m", "archivestore", "info", str(tmp_path / "nope.zarr")])
    assert proc.returncode == 2
    assert "zarr" in _heavy(modules)


def test_import_archivestore_is_light_and_names_load_on_use():
    code = (
        "import sys, archivestore\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "from archivestore import ingest, open_store\n"
        "print(callable(ingest), callable(open_store), 'zarr' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True True True"]


def test_lazy_names():
    import archivestore._ingest
    import archivestore.store

    assert archivestore.ingest is archivestore._ingest.ingest  # the function, not a module
    assert callable(archivestore.ingest)
    assert archivestore.IngestReport is archivestore._ingest.IngestReport
    assert archivestore.open_store is archivestore.store.open_store
    assert archivestore.Store is archivestore.store.Store
    assert archivestore.sources.ChallengeSource.__module__ == "archivestore.sources.isic.challenge"
    assert set(archivestore.__all__) <= set(dir(archivestore))
    with pytest.raises(AttributeError, match="no_such_name"):
        archivestore.no_such_name  # noqa: B018


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"archivestore {archivestore.__version__}\n"
    assert archivestore.__version__ == importlib.metadata.version("archivestore")
