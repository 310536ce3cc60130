"""What every command shares: errors → exit codes, report lines, ``--scheduler``, ``--storage-option``."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from archivestore import errors
from archivestore.cli import main
from archivestore.cli._common import command, print_report, storage_option


def _run(exc: BaseException) -> int:
    @command
    def fails(args: argparse.Namespace) -> int:
        raise exc

    return fails(argparse.Namespace())


@pytest.mark.parametrize(("exc", "message"), [
    (errors.StoreNotFoundError("no archivestore store at x.zarr"), "no archivestore store at x.zarr"),
    (errors.NotFoundError("no study 'a/b'"), "no study 'a/b'"),
    (KeyError("no metadata field 'x'"), "no metadata field 'x'"),  # without KeyError's quotes
    (errors.InvalidInputError("bad\nquery"), "bad query"),           # always one line
    (ValueError("bad value"), "bad value"),
    (FileNotFoundError(2, "No such file or directory", "keys.csv"), "[Errno 2] No such file or directory: 'keys.csv'"),
    (errors.APIError("https://x/api?token=abc", "503 Service Unavailable", status=503), "GET https://x/api"),
    (errors.LeaseTimeout("lease held"), "lease held"),
])
def test_expected_errors_exit_2_with_one_line(exc, message, capsys):
    assert _run(exc) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"archivestore: error: {message}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_secrets_stay_out_of_the_error_line(capsys):
    assert _run(errors.APIError("https://x/api?token=abc123", "401 Unauthorized", status=401)) == 2
    assert "abc123" not in capsys.readouterr().err


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        _run(ZeroDivisionError("a bug"))


@pytest.mark.parametrize("argv", [
    ["info", "{store}"],
    ["verify", "{store}"],
    ["verify", "{store}", "--repair"],
    ["select", "{store}", "meta.x == 1"],
    ["export-csv", "{store}", "{tmp}/out.csv"],
    ["overlap", "{store}"],
    ["score", "{store}", "--prediction", "model"],
    ["heatmap", "{store}", "--study", "s", "--feature", "f", "--out", "{tmp}/png"],
])
def test_a_missing_store_is_one_line_and_exit_2(argv, tmp_path, capsys):
    store = tmp_path / "nope.zarr"
    code = main([a.format(store=store, tmp=tmp_path) for a in argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("archivestore: error: ") and "no archivestore store" in captured.err
    assert captured.err.count("\n") == 1
    assert not store.exists()


def test_python_dash_m_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "archivestore", "select", str(tmp_path / "nope.zarr")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("archivestore: error: ") and proc.stderr.count("\n") == 1


def test_report_lines_on_stderr_summary_on_stdout(capsys):
    bad = errors.BadItem("ISIC_0000007", "ISIC_0000007.jpg", "cannot decode the image")
    assert print_report("1 ingested, 1 failed", False, [("FAILED", bad)]) == 1
    captured = capsys.readouterr()
    assert captured.err == "FAILED ISIC_0000007: ISIC_0000007.jpg: cannot decode the image\n"
    assert captured.out == "1 ingested, 1 failed\n"
    assert print_report("2 ingested", True) == 0


def test_storage_options():
    assert storage_option("anon=true") == ("anon", True)
    assert storage_option("endpoint_url=http://127.0.0.1:9000/x=y") == ("endpoint_url", "http://127.0.0.1:9000/x=y")
    assert storage_option("retries=3") == ("retries", 3)
    for bad in ("anon", "=true"):
        with pytest.raises(argparse.ArgumentTypeError):
            storage_option(bad)


# -- --scheduler ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


def _open_clients() -> list[object]:
    from distributed import Client

    return [c for c in list(Client._instances) if c.status not in ("closed", "closing")]


def test_the_scheduler_client_is_dasks_for_the_run_and_closed_after(cluster):
    from distributed import default_client

    seen = {}

    @command
    def run(args: argparse.Namespace) -> int:
        seen["client"] = args.client
        seen["default"] = default_client()
        seen["address"] = args.client.scheduler.address
        return 0

    assert run(argparse.Namespace(scheduler=cluster.scheduler_address)) == 0
    assert seen["default"] is seen["client"] and seen["address"] == cluster.scheduler_address
    assert seen["client"].status == "closed"
    assert _open_clients() == []
    with pytest.raises(ValueError):
        default_client()


def test_the_client_is_closed_when_the_command_fails(cluster, capsys):
    seen = {}

    @command
    def run(args: argparse.Namespace) -> int:
        seen["client"] = args.client
        raise errors.NotFoundError("no study 'x'")

    assert run(argparse.Namespace(scheduler=cluster.scheduler_address)) == 2
    assert "no study 'x'" in capsys.readouterr().err
    assert seen["client"].status == "closed" and _open_clients() == []


def test_without_scheduler_no_client():
    @command
    def run(args: argparse.Namespace) -> int:
        return 0 if args.client is None else 1

    assert run(argparse.Namespace(scheduler=None)) == 0
    assert run(argparse.Namespace()) == 0


def test_ingest_on_a_scheduler_leaves_no_client(cluster, sample_dirs, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    argv = ["ingest", "challenge", str(sample_dirs["train"]), str(sample_dirs["masks"]), "--store", str(store),
            "--no-progress", "--scheduler", cluster.scheduler_address]
    assert main(argv) == 0
    assert main(["ingest", "challenge", str(sample_dirs["masks"]), "--store", str(store), "--rater", "copy",
                 "--no-progress", "--scheduler", cluster.scheduler_address]) == 0
    assert "6 ingested" in capsys.readouterr().out
    assert _open_clients() == []
    assert main(["score", str(store), "--prediction", "copy", "--scheduler", cluster.scheduler_address]) == 0
    assert "overall: 1.0000" in capsys.readouterr().out
    assert _open_clients() == []


def test_a_reader_that_goes_away_is_no_error(tmp_path):
    """``archivestore info STORE | head -0``: no traceback, no error line."""
    import os

    import archivestore

    archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "archivestore", "info", str(tmp_path / "s.zarr")],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 1


def test_help_names_the_token_variable_the_source_reads(capsys):
    from archivestore.cli import _ingest
    from archivestore.sources import isic_v2

    assert _ingest.TOKEN_ENV == isic_v2.TOKEN_ENV
    with pytest.raises(SystemExit):
        main(["ingest", "isic", "--help"])
    assert f"${isic_v2.TOKEN_ENV}" in capsys.readouterr().out
