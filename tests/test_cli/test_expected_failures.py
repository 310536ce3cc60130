"""One line, exit 2, no traceback, for every failure a user can fix: a missing extra (each extra made
unimportable in a fresh interpreter), missing s3fs/gcsfs, no credentials, an endpoint out of reach, a bad
``--scheduler``, ``distributed`` not installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUN_WITHOUT = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    # makes the named packages unimportable, as if their extra were not installed
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker(set(filter(None, sys.argv[1].split(",")))))
from archivestore.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _run(blocked: list[str], *args: str, env: dict[str, str] | None = None, timeout: float = 120
         ) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RUN_WITHOUT, ",".join(blocked), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archivestore: error: "), err
    return lines[0]


@pytest.mark.parametrize("extra, blocked, command", [
    ("idc", ["idc_index_data", "duckdb"], ["idc", "sql", "SELECT 1"]),
    ("idc", ["duckdb"], ["ingest", "idc", "--collection", "x", "--store", "{tmp}/s.zarr", "--no-progress"]),
    ("dicom", ["pydicom", "highdicom"],
     ["ingest", "tcia", "--collection", "x", "--store", "{tmp}/s.zarr", "--base-url", "http://127.0.0.1:{port}/"]),
    ("ome", ["ome_zarr", "ome_zarr_models"], ["ingest", "ome-zarr", "{tmp}/in.zarr", "--store", "{tmp}/s.zarr"]),
    ("ome", ["ome_zarr"], ["export", "ome-zarr", "{tmp}/s.zarr", "{tmp}/out"]),
    ("s3", ["s3fs"], ["info", "s3://bucket/s.zarr"]),
    ("distributed", ["distributed"],
     ["ingest", "challenge", "{tmp}", "--store", "{tmp}/s.zarr", "--scheduler", "tcp://127.0.0.1:{port}"]),
], ids=["idc-sql", "ingest-idc", "ingest-tcia", "ingest-ome-zarr", "export-ome-zarr", "s3-store", "scheduler"])
def test_each_missing_extra_is_one_line_naming_it(tmp_path, extra, blocked, command):
    if command[:2] == ["export", "ome-zarr"]:
        from archivestore import open_store

        open_store(tmp_path / "s.zarr", mode="a")
    args = [a.format(tmp=tmp_path, port=_closed_port()) for a in command]
    code, _, err, _ = _run(blocked, *args)
    line = _one_line(code, err)
    assert f"pip install 'archivestore[{extra}]'" in line
    assert not (tmp_path / "out").exists()


def test_a_filesystem_no_extra_installs_names_its_package(tmp_path):
    code, _, err, _ = _run(["gcsfs"], "info", "gs://bucket/s.zarr")
    assert "pip install gcsfs" in _one_line(code, err)


def test_a_bucket_endpoint_out_of_reach_is_said_at_once(tmp_path):
    port = _closed_port()
    code, _, err, seconds = _run([], "info", "s3://bucket/s.zarr", "-O", f"endpoint_url=http://127.0.0.1:{port}",
                                 env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    line = _one_line(code, err)
    assert f"cannot reach the bucket endpoint 127.0.0.1:{port}" in line
    assert seconds < 30  # it took 1 min 41 s of retries before


def test_a_bucket_without_credentials_is_one_line(tmp_path, s3_server):
    empty = tmp_path / "home"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": str(empty), "AWS_CONFIG_FILE": str(empty / "none"), "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_SHARED_CREDENTIALS_FILE": str(empty / "none"), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-m", "archivestore", "info", "s3://bucket/s.zarr", "-O",
                           f"endpoint_url={s3_server}"], capture_output=True, text=True, timeout=120, env=env)
    line = _one_line(proc.returncode, proc.stderr)
    assert "no usable credentials for the bucket" in line and "anon=true" in line


def test_a_bad_scheduler_is_one_line(tmp_path):
    code, _, err, _ = _run([], "ingest", "challenge", str(tmp_path), "--store", str(tmp_path / "s.zarr"),
                           "--scheduler", "nonsense", "--no-progress")
    assert "nonsense" in _one_line(code, err)
    port = _closed_port()
    code, _, err, seconds = _run([], "ingest", "challenge", str(tmp_path), "--store", str(tmp_path / "s.zarr"),
                                 "--scheduler", f"tcp://127.0.0.1:{port}", "--no-progress",
                                 env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert f"127.0.0.1:{port}" in _one_line(code, err)
