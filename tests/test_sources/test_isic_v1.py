"""The v1 (Girder) source against a local server serving the real recorded records.

Studies and annotations are synthetic: the fixtures hold none.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import (
    V1_FIXTURES,
    Faults,
    V1Server,
    load_v1_fixtures,
    synthetic_mask,
    synthetic_size,
    synthetic_study,
    v1_superpixels,
)

import archivestore
from archivestore.cli import main
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.sources._base import BadItem
from archivestore.sources._http import APIError
from archivestore.sources.isic.v1 import SKILL_RANK, IsicStudySource, IsicV1, best_segmentation
from archivestore.testing.httpserver import error_answer
from archivestore.testing.sources import SourceTests

pytestmark = pytest.mark.skipif(
    not (V1_FIXTURES / "images_v1.json.gz").exists(),
    reason=f"real ISIC v1 fixtures not found at {V1_FIXTURES} (a checkout outside the workplace)",
)

NAMES = ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000004"]


@pytest.fixture(scope="module")
def fixtures():
    return load_v1_fixtures()


@pytest.fixture(scope="module")
def study(fixtures):
    images, _ = fixtures
    by_name = {r["name"]: r for r in images.values()}
    return synthetic_study("Synthetic Study", [by_name[n] for n in NAMES], incomplete=(("User BBBB", "ISIC_0000003"),))


def _api(server, **kw):
    kw.setdefault("backoff_factor", 0.0)
    return IsicV1(server.url, **kw)


def _rank(seg):
    return max((SKILL_RANK[r["skill"]] for r in seg["reviews"] if r["approved"]), default=-1)


def test_best_segmentation_rule_on_the_real_records(fixtures):
    images, segs = fixtures
    by_image = {}
    for s in segs.values():
        by_image.setdefault(s["imageId"], []).append(s)
    chosen = 0
    for group in list(by_image.values())[:3000]:
        group = sorted(group, key=lambda s: s["created"], reverse=True)
        best = best_segmentation(group)
        usable = [s for s in group if not s["failed"] and _rank(s) >= 0]
        if not usable:
            assert best is None
            continue
        chosen += 1
        assert not best["failed"] and _rank(best) == max(_rank(s) for s in usable)
        # ties go to the newest
        assert best is next(s for s in group if not s["failed"] and _rank(s) == _rank(best))
    assert chosen > 1000


def test_best_segmentation_rule_cases():
    novice_ok = {"_id": "a", "failed": False, "reviews": [{"approved": True, "skill": "novice"}]}
    expert_rejected = {"_id": "b", "failed": False, "reviews": [{"approved": False, "skill": "expert"}]}
    expert_failed = {"_id": "c", "failed": True, "reviews": [{"approved": True, "skill": "expert"}]}
    reviews = [{"approved": True, "skill": "novice"}, {"approved": True, "skill": "expert"}]
    expert_ok = {"_id": "d", "failed": False, "reviews": reviews}
    assert best_segmentation([expert_rejected, novice_ok, expert_failed]) is novice_ok
    assert best_segmentation([novice_ok, expert_ok])["_id"] == "d"
    assert best_segmentation([expert_rejected, expert_failed]) is None


def test_study_source_through_faults(fixtures, study):
    images, segs = fixtures
    faults = Faults(rate=0.2, seed=4)
    with V1Server(images, segs, studies=[study], users={"alice": "pw"}, require_login=True, faults=faults) as server:
        api = _api(server, username="alice", password="pw")
        source = IsicStudySource(api, "Synthetic Study")
        items = list(source)
        assert [it.id for it in items] == NAMES and source.problems == []
        by_name = {r["name"]: r for r in images.values()}
        _, annotations, values = study
        for item in items:
            record = by_name[item.id]
            assert item.metadata == record
            shape = synthetic_size(record)
            assert decode_image(item.image()).shape == (*shape, 3)
            np.testing.assert_array_equal(decode_superpixels(item.superpixels()), v1_superpixels(item.id, shape))
            of_image = (s for s in segs.values() if s["imageId"] == record["_id"])
            group = sorted(of_image, key=lambda s: s["created"], reverse=True)
            best = best_segmentation(group)
            assert (item.mask is None) == (best is None)
            if best is not None:
                np.testing.assert_array_equal(decode_mask(item.mask()), synthetic_mask(best["_id"], shape) // 255)
            expected = {
                a["user"]["name"]: values[a["_id"]]
                for a in annotations
                if a["image"]["name"] == item.id and a["state"] == "complete"
            }
            assert {a.rater: a.values() for a in item.annotations} == expected
            assert {a.study for a in item.annotations} <= {"Synthetic Study"}
        assert [a.rater for a in items[3].annotations] == ["User AAAA"]  # BBBB's is incomplete
        assert faults.total > 0
        tokens = {h.get("Girder-Token") for _, _, h in server.log if not h.get("Authorization")}
        assert None not in tokens  # every request after login carried the token


def test_the_real_superpixels_of_isic_0000000(fixtures, study):
    images, segs = fixtures
    with V1Server(images, segs, studies=[study]) as server:
        source = IsicStudySource(_api(server), "Synthetic Study", names=["ISIC_0000000", "ISIC_9999999"])
        item, = list(source)
        problems = [(p.item_id, "not an image of study 'Synthetic Study'" in p.reason) for p in source.problems]
        assert problems == [("ISIC_9999999", True)]
        index = decode_superpixels(item.superpixels())
        assert index.shape == (480, 640) and int(index.max()) + 1 == 996
        assert all(len(v) == 996 for a in item.annotations for v in a.values().values())


def test_unknown_study_lists_the_closest_names(fixtures, study):
    images, segs = fixtures
    with V1Server(images, segs, studies=[study]) as server:
        api = _api(server)
        with pytest.raises(KeyError, match="closest: 'Synthetic Study'"):
            api.study("Synthetic Studdy")
        assert api.study(study[0]["_id"])["name"] == "Synthetic Study"


def test_login_failure_does_not_leak_the_password(fixtures):
    images, segs = fixtures
    with V1Server(images, segs, users={"alice": "right"}) as server:
        with pytest.raises(APIError) as info:
            _api(server, username="alice", password="wrong-secret")
        assert info.value.status == 401 and "wrong-secret" not in str(info.value)


def test_unreachable_image_is_reported_against_its_item(fixtures, study):
    images, segs = fixtures
    with V1Server(dict(images), segs, studies=[study]) as server:  # a copy: the test deletes from it
        source = IsicStudySource(_api(server), "Synthetic Study", names=NAMES[:2])
        item = next(iter(source))
        del server.images[item.metadata["_id"]]  # the image goes away after listing
        with pytest.raises(BadItem) as info:
            item.image()
        assert info.value.item_id == item.id and "404" in info.value.reason


def test_girder_paging_and_cache(fixtures, study, tmp_path):
    images, segs = fixtures
    first = sorted(r["name"] for r in images.values())[:30]
    with V1Server(images, segs, studies=[study]) as server:
        api = _api(server, cache_dir=str(tmp_path))
        assert [r["name"] for r in api.images(page_size=7, limit=30)] == first
        assert len(server.requests_to("image")) == 5
        datasets = api.datasets()
        assert {d["name"] for d in datasets} >= {"UDA-1"}
        first_pass = IsicStudySource(api, "Synthetic Study", names=NAMES[:2])
        assert len(list(first_pass)) == 2 and first_pass.problems == []
        before = len(server.log)
        again = list(IsicStudySource(_api(server, cache_dir=str(tmp_path)), "Synthetic Study", names=NAMES[:2]))
        assert server.log[before:] == []  # listings and records came from the cache
        assert [it.id for it in again] == NAMES[:2]


def test_ingest_a_study_through_faults_stores_every_item_once(fixtures, study, tmp_path):
    images, segs = fixtures
    faults = Faults(rate=0.2, seed=5)
    with V1Server(images, segs, studies=[study], faults=faults) as server:
        store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
        report = archivestore.ingest(store, IsicStudySource(_api(server), "Synthetic Study"), workers=3, progress=False)
        assert report.ok, report.failed
        assert sorted(report.ingested) == NAMES and faults.total > 0
        assert sorted(store.image_ids()) == NAMES
        ds = store.study("Synthetic Study")
        assert sorted(str(r) for r in ds["rater"].values) == ["User AAAA", "User BBBB"]
        _, annotations, values = study
        for a in annotations:
            if a["state"] != "complete":
                continue
            for feature, vals in values[a["_id"]].items():
                got = ds["annotation"].sel(image=a["image"]["name"], feature=feature, rater=a["user"]["name"]).values
                np.testing.assert_array_equal(got[: len(vals)], np.asarray(vals, dtype=np.float32))
                assert np.isnan(got[len(vals) :]).all()
        # BBBB left ISIC_0000003 incomplete: no values
        assert np.isnan(ds["annotation"].sel(image="ISIC_0000003", rater="User BBBB").values).all()
        record = store.metadata_records()["ISIC_0000001"]
        assert record == next(r for r in images.values() if r["name"] == "ISIC_0000001")
        # a rerun downloads no image, superpixels or mask again (the ingest re-reads annotation values)
        def downloads():
            fetched = [p for p, _, _ in server.log if p.endswith(("/download", "/superpixels", "/mask"))]
            return [p for p in fetched if not p.startswith("/api/v1/annotation/")]

        before = len(downloads())
        again = archivestore.ingest(store, IsicStudySource(_api(server), "Synthetic Study"), progress=False)
        assert again.ok and sorted(again.ingested + again.skipped) == NAMES
        assert len(downloads()) == before


def test_cli_ingest_isic_study(fixtures, study, tmp_path, capsys):
    images, segs = fixtures
    with V1Server(images, segs, studies=[study], users={"alice": "pa55word"}, require_login=True) as server:
        store = str(tmp_path / "cli.zarr")
        argv = ["ingest", "isic-study", "Synthetic Study", "--store", store, "--base-url", server.url,
                "--username", "alice", "--password", "pa55word", "--image", "ISIC_0000001", "--image", "ISIC_0000002",
                "--backoff", "0", "--no-progress", "--debug"]
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "2 ingested" in captured.out and "pa55word" not in captured.out + captured.err
        assert "GET http://127.0.0.1" in captured.err
        for token in server.tokens:
            assert token not in captured.err
        assert sorted(archivestore.open_store(store).image_ids()) == ["ISIC_0000001", "ISIC_0000002"]
        argv[2] = "Synthetic Studdy"
        assert main(argv) == 2
        assert "closest: 'Synthetic Study'" in capsys.readouterr().err


class _OneBadDownload(V1Server):
    """Answers 404 to the image download of one image."""

    broken = "ISIC_0000002"

    def route(self, request):
        record = self.by_name[self.broken]
        if request.path == f"{self.prefix}image/{record['_id']}/download":
            return error_answer(404, "gone")
        return super().route(request)


class TestIsicStudySource(SourceTests):
    @pytest.fixture
    def server(self, fixtures, study):
        with V1Server(*fixtures, studies=[study]) as server:
            yield server

    @pytest.fixture
    def source(self, server):
        return IsicStudySource(_api(server), "Synthetic Study", names=NAMES[1:4])

    @pytest.fixture
    def bad_source(self, fixtures, study):
        with _OneBadDownload(*fixtures, studies=[study]) as server:
            yield IsicStudySource(_api(server), "Synthetic Study", names=NAMES[1:4])

    @pytest.fixture
    def bad_item_id(self):
        return _OneBadDownload.broken

    @pytest.fixture
    def byte_reads(self, server):
        def fetched(path):
            return path.endswith(("/download", "/superpixels", "/mask")) or path.startswith("/api/v1/annotation/")

        return lambda: sum(fetched(path) for path, _, _ in server.log)


def test_the_retired_public_v1_is_refused_at_once(tmp_path, capsys):
    from archivestore.errors import InvalidInputError
    from archivestore.sources.isic.v1 import RETIRED_V1_URL

    for url in (RETIRED_V1_URL, "http://www.isic-archive.com/api/v1", ""):
        with pytest.raises(InvalidInputError, match="retired in 2022.*ingest challenge.*ingest isic"):
            IsicV1(url)
    store = tmp_path / "s.zarr"
    assert main(["ingest", "isic-study", "ISIC Annotation Study", "--store", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "retired" in err
    assert "'ingest challenge'" in err and "'ingest isic'" in err and not store.exists()
