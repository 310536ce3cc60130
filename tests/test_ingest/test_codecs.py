"""Each kind of array is compressed with its own codec, and stores mixing codecs read back exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

import archivestore._ingest._item as item_mod
from archivestore import ingest, open_store
from archivestore.errors import InvalidInputError
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.layout import ZSTD_LEVEL, ZSTD_LEVELS, compressors
from archivestore.sources import ChallengeSource


def _compressors(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The bytes-to-bytes codecs of an array's metadata, looking inside a sharding codec."""
    out = []
    for codec in meta["codecs"]:
        if codec["name"] == "sharding_indexed":
            out += _compressors(codec["configuration"])
        elif codec["name"] not in ("bytes", "transpose", "vlen-utf8"):
            out.append(codec)
    return out


def test_compressors_per_kind():
    for kind, level in ZSTD_LEVELS.items():
        (codec,) = compressors(kind)
        assert codec.to_dict() == {"name": "zstd", "configuration": {"level": level, "checksum": False}}
    assert compressors()[0].to_dict()["configuration"]["level"] == ZSTD_LEVEL
    with pytest.raises(InvalidInputError, match="no codec for array kind"):
        compressors("photos")
    with pytest.raises(ValueError):
        compressors("")


def test_ingested_arrays_carry_the_codec_of_their_kind(sample_dirs, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    src = ChallengeSource([sample_dirs["train"], sample_dirs["masks"], sample_dirs["attributes"]])
    assert ingest(store, src, progress=False).ok
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    kinds = {"image": "image", "superpixels": "superpixels", "mask": "mask", "attribute": "mask"}
    for image_id in store.image_ids():
        group = root[f"images/{image_id}"]
        for name, kind in kinds.items():
            meta = group[name].metadata.to_dict()
            assert _compressors(meta) == [compressors(kind)[0].to_dict()], (image_id, name)


def test_a_store_mixing_codecs_reads_back_exactly(sample_dirs, tmp_path, monkeypatch):
    """Arrays written with other codecs (an older store, another level) read as before: the codec is per array."""
    train = sample_dirs["train"]
    ids = sorted(p.stem for p in train.glob("ISIC_???????.jpg"))
    first, rest = ids[:2], ids[2:]
    old = tmp_path / "old"
    new = tmp_path / "new"
    for folder, chosen in ((old, first), (new, rest)):
        folder.mkdir()
        for image_id in chosen:
            for path in (train / f"{image_id}.jpg", train / f"{image_id}_superpixels.png",
                         sample_dirs["masks"] / f"{image_id}_segmentation.png"):
                (folder / path.name).symlink_to(path)
    url = tmp_path / "s.zarr"
    with monkeypatch.context() as m:  # the first images as another writer would have stored them
        m.setattr(item_mod, "compressors", lambda kind=None: (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),))
        assert ingest(open_store(url, mode="a"), ChallengeSource([old]), progress=False).ok
    assert ingest(open_store(url, mode="a"), ChallengeSource([new]), progress=False).ok
    store = open_store(url)
    root = zarr.open_group(str(url), mode="r")
    assert _compressors(root[f"images/{first[0]}/image"].metadata.to_dict())[0]["name"] == "blosc"
    assert _compressors(root[f"images/{rest[0]}/image"].metadata.to_dict())[0]["name"] == "zstd"
    for image_id in ids:
        expected = {"image": decode_image((train / f"{image_id}.jpg").read_bytes()),
                    "superpixels": decode_superpixels((train / f"{image_id}_superpixels.png").read_bytes()),
                    "mask": decode_mask((sample_dirs["masks"] / f"{image_id}_segmentation.png").read_bytes())}
        ds = xr.open_zarr(str(url), group=f"images/{image_id}", consolidated=False)
        for name, want in expected.items():
            np.testing.assert_array_equal(store.read(image_id, name), want)
            np.testing.assert_array_equal(ds[name].values, want)
