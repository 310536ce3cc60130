"""The `archivestore` command: demo, ingest challenge, info."""

from __future__ import annotations

import json
import subprocess
import sys

import xarray as xr

from archivestore.cli import main


def test_demo_builds_a_store_that_plain_xarray_opens(tmp_path, capsys):
    url = str(tmp_path / "demo.zarr")
    assert main(["demo", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "images: 6" in out and "3 raters" in out and "xr.open_zarr" in out
    ds = xr.open_zarr(url, group="images/ISIC_0000000", consolidated=False)
    assert ds["image"].dtype == "uint8" and ds["superpixels"].ndim == 2
    assert main(["info", url, "--sizes"]) == 0
    info = capsys.readouterr().out
    assert "images: 6" in info and "rater_a" in info and "model" in info
    assert "size:" in info and "images " in info
    assert main(["info", url, "--sizes", "--json"]) == 0
    sizes = json.loads(capsys.readouterr().out)["bytes"]
    assert sizes["images"] > sizes["metadata"] > 0


def test_ingest_challenge_reports_bad_files_and_exits_nonzero(sample_dirs, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ISIC_0000007.jpg").write_bytes(b"\xff\xd8 truncated")
    (bad / "ISIC_0000000.jpg").write_bytes((sample_dirs["train"] / "ISIC_0000000.jpg").read_bytes())
    code = main(["ingest", "challenge", str(bad), "--store", str(tmp_path / "s.zarr"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED ISIC_0000007" in captured.err and "ISIC_0000007.jpg" in captured.err
    assert "1 ingested, 0 already complete, 1 failed" in captured.out


def test_python_dash_m_and_missing_store(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "archivestore", "info", str(tmp_path / "nope.zarr")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no archivestore store" in proc.stderr
