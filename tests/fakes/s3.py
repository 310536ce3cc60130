"""A local S3 server (moto) on 127.0.0.1 with an OS-chosen port, and the environment that points s3fs at it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["ENV", "local_s3_server", "new_bucket", "point_s3fs_at"]

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def local_s3_server() -> Iterator[str]:
    """Run moto's S3 on 127.0.0.1, port 0; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def point_s3fs_at(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the usual AWS environment variables to the local server (undone with ``monkeypatch``)."""
    import s3fs

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()


def new_bucket() -> str:
    """A fresh, empty bucket on the server the environment points at."""
    import s3fs

    name = f"archivestore-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return name
