"""The v2 source against a local server: cursor paging, tokens, signed expiring URLs, faults."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fakes import V1_FIXTURES, Faults, V2Server, load_v1_fixtures, synthetic_v2_records, v2_record_from_v1
from PIL import Image

import archivestore
from archivestore.cli import main
from archivestore.errors import APIError, InvalidInputError
from archivestore.imaging import decode_image
from archivestore.sources._base import BadItem
from archivestore.sources.isic.v2 import IsicSearchSource, IsicV2, strip_signed_urls, validate_query
from archivestore.testing.httpserver import Answer
from archivestore.testing.sources import SourceTests


def _api(server, **kw):
    kw.setdefault("backoff_factor", 0.0)
    return IsicV2(server.url, **kw)


@pytest.fixture
def records():
    return synthetic_v2_records(40, private_every=4)


def test_validate_query_catches_obvious_mistakes():
    good = 'diagnosis_3:"Melanoma Invasive" AND age_approx:[10 TO 30] AND -sex:male'
    assert validate_query(good) == good
    assert validate_query(None) == ""
    for bad, reason in [
        ("diagnosis_3:'Melanoma Invasive'", "single quotes"),
        ('diagnosis_3:"Melanoma', "double quotes"),
        ("age_approx:[10 TO 30", r"unbalanced \[\]"),
        ("(sex:male OR sex:female", r"unbalanced \(\)"),
        ("sex:male and age_approx:50", "lower-case 'and'"),
        ("sex:male AND NOT age_approx:50", "no NOT; negate a term with -field:value"),
        ("sex=male", "field:value"),
    ]:
        with pytest.raises(ValueError, match=reason):
            validate_query(bad)
    assert validate_query('diagnosis_3:"it\'s and=fine"')  # inside quotes anything goes
    assert validate_query("sex:male not_a_field:x") and validate_query('diagnosis_3:"NOT this"')


def test_a_query_the_archive_cannot_parse_shows_its_message(records):
    with V2Server(records) as server:
        with pytest.raises(APIError) as caught:
            list(_api(server).search("sex AND age_approx:50"))  # passes the local check, not the parser
    assert caught.value.status == 400 and "the server says: Could not parse search query." in str(caught.value)
    with V2Server(records) as server:
        assert [r["isic_id"] for r in _api(server).search("-sex:male")] == [
            r["isic_id"] for r in records if r["public"] and r["metadata"]["clinical"]["sex"] != "male"]


def test_strip_signed_urls_keeps_sizes():
    files = {"full": {"url": "https://b/x?signature=s", "size": 5}, "thumbnail_256": {"url": "u", "size": 2}}
    record = {"isic_id": "ISIC_1", "files": files}
    stripped = strip_signed_urls(record)
    assert stripped["files"] == {"full": {"size": 5}, "thumbnail_256": {"size": 2}}
    assert record["files"]["full"]["url"]  # the original is untouched


def test_search_paging_limit_and_collections(records):
    with V2Server(records, token="tok") as server:
        public = [r["isic_id"] for r in records if r["public"]]
        assert [r["isic_id"] for r in _api(server).images()] == public
        assert len(server.requests_to("images/")) == 1  # 30 fit in one page of 100
        everything = list(_api(server, token="tok").search(""))
        assert len(everything) == 40
        malignant = [r["isic_id"] for r in _api(server, token="tok").search('diagnosis_1:"Malignant"')]
        assert malignant == [r["isic_id"] for r in records if r["metadata"]["clinical"]["diagnosis_1"] == "Malignant"]
        assert len(list(_api(server).search(limit=7))) == 7
        collections = _api(server).collections()
        b = next(c["id"] for c in collections if c["name"] == "Collection B")
        in_b = [r["isic_id"] for r in _api(server).search(collections=[b])]
        assert in_b == [r["isic_id"] for r in records if r["public"] and r["_collections"] == ["Collection B"]]


def test_cursor_paging_over_many_pages_with_count_on_the_first_only():
    records = synthetic_v2_records(230)
    with V2Server(records) as server:
        ids = [r["isic_id"] for r in _api(server).images()]
        assert ids == [r["isic_id"] for r in records]
        assert len(server.requests_to("images/")) == 3
        first = _api(server).client.get_json("images/")
        assert first["count"] == 230 and len(first["results"]) == 100
        assert "count" not in _api(server).client.get_json(first["next"])


def test_token_from_the_environment(records, monkeypatch):
    monkeypatch.setenv("ISIC_TOKEN", "tok")
    with V2Server(records, token="tok") as server:
        assert len(list(_api(server).images())) == 40
        assert len(list(_api(server, token="").images())) == 30  # an empty option means anonymous


def test_a_bad_token_is_anonymous_on_search_and_401_on_users_me_like_the_real_server(records):
    with V2Server(records, token="tok") as server:
        bad = _api(server, token="expired")
        assert len(list(bad.images())) == len(list(bad.search(""))) == 30  # public only, no error
        with pytest.raises(APIError) as caught:
            bad.client.get_json("users/me/")
        assert caught.value.status == 401
        assert _api(server, token="tok").check_token()["id"] == 1
        assert _api(server).check_token() is None  # no token: nothing to check


def test_a_rejected_token_stops_the_search_before_any_record_is_fetched(records):
    with V2Server(records, token="tok") as server:
        source = IsicSearchSource(_api(server, token="expired"), "")
        with pytest.raises(InvalidInputError, match="ISIC token was rejected") as caught:
            list(source)
        assert "expired" not in str(caught.value).replace("or expired", "")  # the token itself is never shown
        assert [p for p, _, _ in server.log] == ["/api/v2/users/me/"]


def test_cli_ingest_isic_with_a_rejected_token_exits_2_and_stores_nothing(records, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ISIC_TOKEN", "expired-token-value")
    with V2Server(records, token="tok") as server:
        store = tmp_path / "s.zarr"
        code = main(["ingest", "isic", "--store", str(store), "--base-url", server.url, "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "token was rejected" in err
        assert "expired-token-value" not in err and not store.exists()
        assert not [p for p, _, _ in server.log if p.startswith("/api/v2/images")]


def test_items_never_hold_signed_urls_and_downloads_survive_expiry(records):
    with V2Server(records, token="tok", url_ttl=60) as server:
        source = IsicSearchSource(_api(server, token="tok"), 'sex:"female"', limit=5)
        items = list(source)
        assert len(items) == 5 and source.problems == []
        for item in items:
            assert "url" not in json.dumps(item.metadata) and "signature" not in json.dumps(item.metadata)
            assert item.metadata["files"]["full"]["size"] > 0
        server.clock_offset = 3600  # every signature handed out so far has expired
        for item in items:
            pixels = decode_image(item.image())
            h, w = server.by_id[item.id]["_shape"]
            assert pixels.shape == (h, w, 3)
            assert len(server.requests_to(f"images/{item.id}/")) == 1  # one fresh record per item
        denied = [p for p, _, _ in server.log if p.startswith("/files/")]
        assert len(denied) == 10  # each item: one 403, one good download


def test_thumbnails_instead_of_full_images(records):
    with V2Server(records) as server:
        item = next(iter(IsicSearchSource(_api(server), limit=1, file="thumbnail_256")))
        h, w = server.by_id[item.id]["_shape"]
        assert decode_image(item.image()).shape == (h // 2, w // 2, 3)
        assert [p for p, _, _ in server.log if p.startswith("/files/")] == [f"/files/{item.id}/thumbnail_256.png"]
    with pytest.raises(ValueError, match="thumbnail_256"):
        IsicSearchSource(_api(server), file="thumb")


def test_download_failure_names_the_item(records):
    with V2Server(records) as server:
        item = next(iter(IsicSearchSource(_api(server), limit=1)))
        server.records.remove(server.by_id.pop(item.id))
        server.clock_offset = 1e6
        with pytest.raises(BadItem) as info:
            item.image()
        assert info.value.item_id == item.id and "404" in info.value.reason


def test_unusable_ids_are_problems_and_odd_ones_items():
    records = synthetic_v2_records(3)
    records[1]["isic_id"] = "../evil"  # odd but usable: the store escapes it
    records[2]["isic_id"] = "bad\x07id"  # a control character: no usable id
    with V2Server(records) as server:
        source = IsicSearchSource(_api(server))
        assert sorted(it.id for it in source) == sorted([records[0]["isic_id"], "../evil"])
        assert [p.item_id for p in source.problems] == ["bad\x07id"]


def test_ingest_through_faults_stores_every_item_once(tmp_path):
    records = synthetic_v2_records(12)
    faults = Faults(rate=0.2, seed=11)
    with V2Server(records, faults=faults) as server:
        store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
        report = archivestore.ingest(store, IsicSearchSource(_api(server)), workers=3, progress=False)
        assert report.ok, report.failed
        assert sorted(report.ingested) == sorted(r["isic_id"] for r in records)
        assert faults.total > 0
        ids = store.image_ids()
        assert sorted(ids) == sorted(report.ingested) and len(ids) == len(set(ids))
        for r in records[:3]:
            ds = store.image(r["isic_id"])
            expected = np.asarray(Image.open(io.BytesIO(server._file(r, "full"))).convert("RGB"))
            np.testing.assert_array_equal(ds["image"].values, expected)
            assert "url" not in json.dumps(dict(ds.attrs), default=str)
        frame = store.metadata_frame()
        assert frame.loc[records[1]["isic_id"], "metadata.clinical.diagnosis_1"] == "Malignant"
        assert frame.loc[records[2]["isic_id"], "copyright_license"] == "CC-BY-NC"
        assert not any("url" in c for c in frame.columns)
        # a rerun fetches no file again
        before = len([p for p, _, _ in server.log if p.startswith("/files/")])
        again = archivestore.ingest(store, IsicSearchSource(_api(server)), progress=False)
        assert again.ingested == [] and sorted(again.skipped) == sorted(ids)
        assert len([p for p, _, _ in server.log if p.startswith("/files/")]) == before


def test_cli_ingest_isic(tmp_path, capsys):
    records = synthetic_v2_records(6, private_every=3)
    with V2Server(records, token="tok") as server:
        store = str(tmp_path / "cli.zarr")
        code = main(["ingest", "isic", "--store", store, "--base-url", server.url, "--query", 'sex:"male"',
                     "--token", "tok", "--backoff", "0", "--no-progress", "--debug"])
        assert code == 0
        captured = capsys.readouterr()
        assert "3 ingested" in captured.out
        assert "tok" not in captured.err.replace("token", "")  # the bearer token is never printed
        assert "signature=REDACTED" in captured.err
        males = [r["isic_id"] for r in records if r["metadata"]["clinical"]["sex"] == "male"]
        assert sorted(archivestore.open_store(store).image_ids()) == males
        assert main(["ingest", "isic", "--store", store, "--base-url", server.url, "--query", "sex:'male'"]) == 2
        assert "single quotes" in capsys.readouterr().err


@pytest.mark.skipif(
    not (V1_FIXTURES / "images_v1.json.gz").exists(), reason=f"real ISIC v1 fixtures not found at {V1_FIXTURES}"
)
def test_records_derived_from_the_real_v1_records(tmp_path):
    images, _ = load_v1_fixtures()
    chosen = sorted(images.values(), key=lambda r: r["name"])[1:7]
    with V2Server([v2_record_from_v1(r) for r in chosen]) as server:
        store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
        report = archivestore.ingest(store, IsicSearchSource(_api(server)), progress=False)
        assert report.ok and len(report.ingested) == 6
        frame = store.metadata_frame()
        for r in chosen:
            assert frame.loc[r["name"], "metadata.clinical.age_approx"] == r["meta"]["clinical"].get("age_approx")


def test_verify_repairs_a_damaged_image_from_the_api(tmp_path):
    from archivestore.verify import verify

    records = synthetic_v2_records(3)
    with V2Server(records) as server:
        path = tmp_path / "s.zarr"
        store = archivestore.open_store(str(path), mode="a")
        assert archivestore.ingest(store, IsicSearchSource(_api(server)), progress=False).ok
        image_id = records[1]["isic_id"]
        origin = store.image_state(image_id)["origin"]
        assert origin == {"source": "isic_v2", "api": server.url, "isic_id": image_id, "file": "full"}
        for chunk in (path / "images" / image_id / "image" / "c").rglob("*"):
            if chunk.is_file():
                chunk.write_bytes(b"garbage")
        report = verify(store, repair=True, progress=False)
        assert [p.image_id for p in report.problems] == [image_id] and report.repaired == [image_id]
        expected = np.asarray(Image.open(io.BytesIO(server._file(records[1], "full"))).convert("RGB"))
        np.testing.assert_array_equal(store.image(image_id)["image"].values, expected)
        assert verify(store, progress=False).ok


class _OneBadFile(V2Server):
    """Serves a truncated-looking full image for one id (its length differs from the record's)."""

    broken = "ISIC_9000002"

    def route(self, request):
        if request.path == f"/files/{self.broken}/full.png":
            return Answer(body=b"not a PNG", content_type="image/png")
        return super().route(request)


class TestIsicSearchSource(SourceTests):
    @pytest.fixture
    def server(self):
        with V2Server(synthetic_v2_records(4)) as server:
            yield server

    @pytest.fixture
    def source(self, server):
        return IsicSearchSource(_api(server))

    @pytest.fixture
    def bad_source(self):
        with _OneBadFile(synthetic_v2_records(4)) as server:
            yield IsicSearchSource(_api(server))

    @pytest.fixture
    def bad_item_id(self):
        return _OneBadFile.broken

    @pytest.fixture
    def byte_reads(self, server):
        return lambda: sum(path.startswith("/files/") for path, _, _ in server.log)
