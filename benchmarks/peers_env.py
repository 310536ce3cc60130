"""Separate virtual environments for the tools users use instead of archivestore (benchmark peers).

``bench_peers.py`` runs each peer in a venv of its own, built here on first use from the
package registry by name, never in the project's environment::

    python benchmarks/peers_env.py isic tcia idc idr    # build (or reuse) and print their pythons

Each lives in ``benchmarks/.venv-<name>`` (ignored by git: ``benchmarks/.venv-*/`` and a ``.gitignore``
written inside it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PEERS", "ensure_peer", "peer_bin"]

PEERS: dict[str, list[str]] = {
    "isic": ["isic-cli", "Pillow", "numpy"],
    "tcia": ["tcia_utils", "pydicom", "numpy"],
    "idc": ["idc-index", "s5cmd", "pydicom", "highdicom", "numpy"],
    "idr": ["ome-zarr", "requests", "Pillow", "numpy"],
}
"""What each peer's environment installs (the tool, then what its user decodes with)."""

HERE = Path(__file__).resolve().parent


def peer_bin(name: str) -> Path:
    """The ``bin`` directory of peer ``name``'s environment."""
    return HERE / f".venv-{name}" / ("Scripts" if os.name == "nt" else "bin")


def ensure_peer(name: str, *, quiet: bool = True) -> Path:
    """Create peer ``name``'s environment if needed (pip install by name) and return its python."""
    env_dir = HERE / f".venv-{name}"
    python = peer_bin(name) / "python"
    stamp = env_dir / ".installed"
    wanted = "\n".join(PEERS[name])
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(env_dir)
        (env_dir / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *(["--quiet"] if quiet else [])]
    subprocess.run([*pip, *PEERS[name]], check=True)
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEERS):
        print(peer, ensure_peer(peer))
