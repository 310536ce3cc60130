"""Build and use a separate virtual environment holding isicarchive 0.4.11.

The benchmarks compare archivestore with the reference implementation in the
``isicarchive`` package (MIT). isicarchive 0.4.11 only imports with numpy < 1.24
(it uses ``numpy.bool`` and eager numba signatures), which cannot live in the
project's own environment, so the benchmarks run it in a subprocess of its own
virtual environment, built here on first use::

    python benchmarks/isicarchive_env.py          # build (or reuse) and print its python

The environment lives in ``benchmarks/.venv-isicarchive`` (ignored by git through a
``.gitignore`` written inside it). Override the location with the environment
variable ``ISICARCHIVE_VENV``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PACKAGES", "ensure_env", "run_json"]

PACKAGES = ["isicarchive==0.4.11", "numpy==1.23.5", "numba==0.57.1", "scipy<1.12"]
"""What the reference environment needs: isicarchive's imports work with these pins."""

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / ".venv-isicarchive"


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(env_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """Create the isicarchive environment if needed and return its python.

    Parameters
    ----------
    env_dir
        Where the environment lives; default ``$ISICARCHIVE_VENV`` or
        ``benchmarks/.venv-isicarchive``.
    quiet
        Pass ``--quiet`` to pip.

    Returns
    -------
    pathlib.Path
        The environment's python executable, able to ``import isicarchive.jitfunc``.
    """
    env_dir = Path(env_dir or os.environ.get("ISICARCHIVE_VENV") or DEFAULT_DIR)
    python = _python(env_dir)
    stamp = env_dir / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(PACKAGES):
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(env_dir)
        (env_dir / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("--quiet")
    subprocess.run([*pip, *PACKAGES], check=True)
    # Import check: numba compiles isicarchive's eager signatures on import.
    subprocess.run(
        [str(python), "-c", "import isicarchive.jitfunc, isicarchive.imfunc"],
        check=True,
    )
    stamp.write_text("\n".join(PACKAGES))
    return python


def run_json(code: str, payload: dict | None = None, *, python: Path | None = None, timeout: float = 1800) -> dict:
    """Run ``code`` in the isicarchive environment and return the JSON it prints last.

    ``payload`` is passed as JSON on standard input; the code reads it with
    ``json.load(sys.stdin)`` and prints one JSON object as its last line.
    """
    python = python or ensure_env()
    proc = subprocess.run(
        [str(python), "-c", code],
        input=json.dumps(payload or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"isicarchive subprocess failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(ensure_env(quiet="-v" not in sys.argv))
