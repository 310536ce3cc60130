"""Real ISIC v2 signed file URLs replayed through the v2 client, from a local server on 127.0.0.1.

``isic_v2/files_thumbnail_256_urls.txt`` lists three real CloudFront-signed URLs (``Expires``,
``Signature``, ``Key-Pair-Id``) as the API returned them in ``files.thumbnail_256.url``. Served here
with their path and query as recorded and the host made local: they expired long ago, so the file
host answers 403, as CloudFront does, and the client must fetch the record again for a fresh URL.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from archivestore.sources import IsicV2
from archivestore.sources.isic.v2 import strip_signed_urls
from archivestore.testing.httpserver import Answer, FakeServer, Request, json_answer

URLS = "isic_v2/files_thumbnail_256_urls.txt"
JPEG = b"\xff\xd8\xff\xe0 not decoded here \xff\xd9"


class _Archive(FakeServer):
    """Records whose thumbnail URLs are the recorded ones (expired: 403); a fresh record has a working URL."""

    def __init__(self, recorded: list[str]) -> None:
        super().__init__()
        self.recorded = {urlsplit(u).path.rsplit("/", 1)[1].split("_thumbnail")[0]: u for u in recorded}

    def record(self, isic_id: str, url: str) -> dict:
        return {"isic_id": isic_id, "public": True, "files": {"thumbnail_256": {"url": url, "size": len(JPEG)}}}

    def route(self, request: Request) -> Answer:
        parts = request.parts
        if parts[:3] == ["api", "v2", "images"] and len(parts) == 4:  # a fresh record: a URL that works
            return json_answer(self.record(parts[3], f"{self.origin}/fresh/{parts[3]}.jpg"))
        if parts and parts[0] == "fresh":
            return Answer(200, JPEG, "image/jpeg")
        expired = b"<Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>"
        return Answer(403, expired, "text/xml")  # the recorded signatures expired in 2025


@pytest.fixture
def recorded(real):
    urls = (real / URLS).read_text().split()
    assert len(urls) == 3 and all({"Expires", "Signature", "Key-Pair-Id"} <= set(
        q.split("=")[0] for q in urlsplit(u).query.split("&")) for u in urls)
    with _Archive(urls) as server:
        yield server, urls


def test_a_403_on_a_real_signed_url_fetches_the_record_again(recorded, caplog):
    server, urls = recorded
    api = IsicV2(server.url + "api/v2/", backoff_factor=0.0, debug=True)
    for url in urls:
        isic_id = urlsplit(url).path.rsplit("/", 1)[1].split("_thumbnail")[0]
        local = server.origin + urlsplit(url).path + "?" + urlsplit(url).query  # as recorded, on 127.0.0.1
        with caplog.at_level(logging.INFO, logger="archivestore.http"):
            assert api.file_bytes(server.record(isic_id, local), "thumbnail_256") == JPEG
        asked = [p for p, _, _ in server.log]
        assert urlsplit(url).path in asked and f"/api/v2/images/{isic_id}/" in asked
    signatures = [q.split("=", 1)[1] for u in urls for q in urlsplit(u).query.split("&") if q.startswith("Sig")]
    assert not any(s in caplog.text for s in signatures)  # signatures never reach the log


def test_stored_metadata_keeps_no_real_signed_url(recorded):
    server, urls = recorded
    record = server.record("ISIC_0053462", urls[0])
    stripped = strip_signed_urls(record)
    assert stripped["files"]["thumbnail_256"] == {"size": len(JPEG)} and "Signature" not in str(stripped)
