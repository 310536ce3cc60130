"""The shared HTTP behaviour against the local fake servers (no network)."""

from __future__ import annotations

import logging
import os
import time

import pytest
import urllib3.util.retry
from fakes import Faults, V2Server, synthetic_v2_records

from archivestore.sources._http import APIError, Client, ListingCache, bounded_map, find_password, identity_of, redact


@pytest.fixture
def records():
    return synthetic_v2_records(23)


def _client(server, **kw):
    kw.setdefault("backoff_factor", 0.0)
    kw.setdefault("retries", 5)
    return Client(server.url, **kw)


def test_redact_hides_signatures_tokens_and_passwords():
    text = (
        "GET https://bucket/x.jpg?expires=99&signature=s3cr3t&X-Amz-Signature=abc&X-Amz-Credential=AKIA%2F1 "
        "{'Girder-Token': 'tok123', 'Authorization': 'Bearer bear456'} https://me:pw789@host/a?token=t0k&keep=1"
    )
    out = redact(text)
    for secret in ("s3cr3t", "abc", "AKIA", "tok123", "bear456", "pw789", "t0k"):
        assert secret not in out
    assert "expires=99" in out and "keep=1" in out and "https://bucket/x.jpg" in out


@pytest.mark.parametrize("kind", ["500", "reset", "truncate", "429"])
def test_each_fault_is_retried_until_the_answer_is_whole(records, kind):
    faults = Faults(rate=1.0, kinds=(kind,), max_per_path=3)
    with V2Server(records, faults=faults) as server:
        data = _client(server).get_json("images/ISIC_9000004/")
        assert data["isic_id"] == "ISIC_9000004"
        assert faults.counts[kind] == 3
        assert len(server.requests_to("images/ISIC_9000004/")) == 4


def test_truncated_file_is_never_returned(records):
    faults = Faults(rate=1.0, kinds=("truncate",), max_per_path=2)
    with V2Server(records) as server:
        record = _client(server).get_json("images/ISIC_9000001/")
        url = record["files"]["full"]["url"]
        server.faults = faults
        body = _client(server).get_bytes(url)
        assert len(body) == record["files"]["full"]["size"]
        assert faults.counts["truncate"] == 2


def test_retry_after_is_honoured(records, monkeypatch):
    slept = []

    class _Time:  # urllib3's own view of the time module: other threads' time.sleep stays as it is
        sleep = staticmethod(slept.append)

        def __getattr__(self, name):
            return getattr(time, name)

    monkeypatch.setattr(urllib3.util.retry, "time", _Time())
    with V2Server(records, faults=Faults(rate=1.0, kinds=("429",), max_per_path=2, retry_after="7")) as server:
        _client(server, backoff_factor=0.0).get_json("images/")
    assert slept == [7, 7]


def test_gives_up_with_a_redacted_error(records, caplog):
    with V2Server(records) as server:
        url = _client(server).get_json("images/ISIC_9000002/")["files"]["full"]["url"]
        signature = url.split("signature=")[1]
        server.faults = Faults(rate=1.0, kinds=("truncate", "reset"), max_per_path=100)
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(APIError) as info:
                _client(server, retries=2).get_bytes(url, item="ISIC_9000002")
    message = str(info.value)
    assert "ISIC_9000002" in message and "gave up" in message
    assert signature not in message and "signature=REDACTED" in message
    assert signature not in caplog.text


@pytest.mark.parametrize("status", [500])
def test_persistent_server_error_is_reported(records, status):
    with V2Server(records, faults=Faults(rate=1.0, kinds=(str(status),), max_per_path=100)) as server:
        with pytest.raises(APIError) as info:
            _client(server, retries=2).get_json("images/")
    assert info.value.status == status


def test_client_errors_name_the_item(records):
    with V2Server(records, token="good") as server:
        client = _client(server)
        with pytest.raises(APIError) as info:
            client.get_json("images/ISIC_0000404/", item="ISIC_0000404")
        assert info.value.status == 404 and "ISIC_0000404" in str(info.value) and "not found" in str(info.value)
        client.set_token("Authorization", "Bearer wrong")
        with pytest.raises(APIError) as info:
            client.get_json("users/me/")  # the real server: 401 there; search routes take a bad token as anonymous
        assert info.value.status == 401 and "wrong" not in str(info.value)
        # 401/404 are not retried
        assert len(server.requests_to("images/ISIC_0000404/")) == 1


def test_token_goes_only_to_the_api_origin(records):
    with V2Server(records, token="good") as server:
        client = _client(server)
        client.set_token("Authorization", "Bearer good")
        client.get_json("images/")
        other = f"http://localhost:{server.httpd.server_address[1]}/api/v2/images/"
        client.get_json(other)
        sent = [h.get("Authorization") for _, _, h in server.requests_to("images/")]
    assert sent == ["Bearer good", None]


def test_girder_and_cursor_paging(records):
    with V2Server(records) as server:
        client = _client(server)
        ids = [r["isic_id"] for r in client.cursor_pages("images/", page_size=5)]
        assert ids == sorted(r["isic_id"] for r in records)
        assert len(server.requests_to("images/")) == 5  # 23 records, 5 a page
        assert len(list(client.cursor_pages("images/", limit=7))) == 7
        # page_size is capped at 100 by the client
        list(client.cursor_pages("images/", page_size=500))
        assert server.log[-1][1]["limit"] == "100"


def test_listing_cache_expires_and_keeps_identities_apart(records, tmp_path):
    with V2Server(records, token="good") as server:
        client = _client(server, cache=ListingCache(tmp_path, expire_after=3600))
        first = client.get_json("collections/", cache=True)
        assert client.get_json("collections/", cache=True) == first
        assert len(server.requests_to("collections/")) == 1
        client.set_token("Authorization", "Bearer good")
        client.get_json("collections/", cache=True)
        assert len(server.requests_to("collections/")) == 2
        # nothing secret is written
        for path in tmp_path.iterdir():
            assert "good" not in path.read_text()
        expired = _client(server, cache=ListingCache(tmp_path, expire_after=-1))
        expired.get_json("collections/", cache=True)
        assert len(server.requests_to("collections/")) == 3


def test_cache_identities():
    assert identity_of(None) == "anonymous"
    alice = identity_of("token-1", "alice")
    assert alice == identity_of("token-2", "alice")  # a new login of the same user reuses the cache
    assert alice != identity_of("token-1", "bob") and alice != identity_of("token-1")
    assert "token-1" not in alice


def test_debug_log_shows_requests_without_secrets(records, caplog):
    with V2Server(records) as server:
        client = _client(server, debug=True)
        record = client.get_json("images/ISIC_9000000/")
        with caplog.at_level(logging.INFO, logger="archivestore.http"):
            client.get_json("images/search/", {"query": "sex:male", "token": "hush"})
            client.get_bytes(record["files"]["full"]["url"])
    assert "GET http://127.0.0.1" in caplog.text and '"query": "sex:male"' in caplog.text
    assert "hush" not in caplog.text
    assert record["files"]["full"]["url"].split("signature=")[1] not in caplog.text


def test_find_password_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine archive.example login alice password fromnetrc\n")
    os.chmod(netrc, 0o600)
    url = "https://archive.example/api/v1/"
    assert find_password(url, "alice", "given") == ("alice", "given")
    assert find_password(url, None) == ("alice", "fromnetrc")
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed")
    assert find_password("https://other.example/", "bob") == ("bob", "typed")
    with pytest.raises(ValueError, match="no password"):
        find_password("https://other.example/", "bob", prompt=False)


def test_bounded_map_keeps_order_and_raises():
    assert list(bounded_map(lambda x: x * x, range(50), workers=3)) == [x * x for x in range(50)]

    def boom(x):
        if x == 7:
            raise RuntimeError("seven")
        return x

    with pytest.raises(RuntimeError, match="seven"):
        list(bounded_map(boom, range(20), workers=2))
