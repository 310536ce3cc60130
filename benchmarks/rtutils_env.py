"""Build and use a separate virtual environment holding rt-utils 1.2.7 (the RTSTRUCT benchmark's peer).

rt-utils (MIT) makes RTSTRUCT masks with OpenCV's ``fillPoly``. It pins nothing but imports
``cv2``, and the ``opencv-python`` it names needs libGL at import; it is installed here without its
dependencies, beside ``opencv-python-headless``, ``pydicom<3`` (rt-utils 1.2.7 predates pydicom 3)
and numpy, in its own environment so that nothing of it reaches the project's::

    python benchmarks/rtutils_env.py          # build (or reuse) and print its python

The environment lives in ``benchmarks/.venv-rtutils`` (a ``.gitignore`` inside it keeps it out of git);
``RTUTILS_VENV`` overrides the location.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PACKAGES", "ensure_env", "run_json"]

PACKAGES = ["opencv-python-headless<5", "pydicom>=2.4,<3", "numpy<2.3"]
"""rt-utils' imports, installed first; rt-utils itself goes in with ``--no-deps``."""
RT_UTILS = "rt-utils==1.2.7"

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / ".venv-rtutils"


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(env_dir: str | os.PathLike | None = None, *, quiet: bool = True) -> Path:
    """Create the rt-utils environment if needed and return its python (able to ``import rt_utils``)."""
    env_dir = Path(env_dir or os.environ.get("RTUTILS_VENV") or DEFAULT_DIR)
    python = _python(env_dir)
    stamp = env_dir / ".installed"
    wanted = "\n".join([*PACKAGES, RT_UTILS])
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(env_dir)
        (env_dir / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *(["--quiet"] if quiet else [])]
    subprocess.run([*pip, *PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", RT_UTILS], check=True)
    subprocess.run([str(python), "-c", "import rt_utils, cv2"], check=True)
    stamp.write_text(wanted)
    return python


def run_json(code: str, payload: dict | None = None, *, python: Path | None = None, timeout: float = 1800) -> dict:
    """Run ``code`` in the rt-utils environment (``payload`` as JSON on stdin); the JSON it prints last."""
    python = python or ensure_env()
    proc = subprocess.run([str(python), "-c", code], input=json.dumps(payload or {}), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rt-utils subprocess failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(ensure_env(quiet="-v" not in sys.argv))
