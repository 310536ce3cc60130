"""A small ISIC-like store for the dataset, split and export tests: images with masks, patients, licences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes.s3 import new_bucket, point_s3fs_at

from archivestore import ingest, open_store
from archivestore.sources import Item
from archivestore.testing.sample import png, seed_of

N_IMAGES = 14


def image_arrays(image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The image (y, x, 3) uint8 and mask (y, x) 0/1 of a test image (sizes differ by image)."""
    rng = np.random.default_rng(seed_of("ml", image_id))
    h, w = int(rng.integers(20, 40)), int(rng.integers(24, 50))
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    mask = (rng.random((h, w)) > 0.6).astype(np.uint8)
    return image, mask


def image_ids() -> list[str]:
    ids = [f"ISIC_{k:07d}" for k in range(N_IMAGES - 1)]
    return ids + ["odd id/ü ..1"]  # escaped into a node name by the store


def record(k: int, image_id: str) -> dict[str, Any]:
    """A v2-like record: patients of 1-3 images, two images without a patient, a lesion across two patients."""
    clinical: dict[str, Any] = {"diagnosis_1": ["Benign", "Malignant"][int(k % 3 == 1)], "age_approx": 30 + k}
    if k not in (5, 11):
        clinical["patient_id"] = f"IP_{k // 3:03d}"
    clinical["lesion_id"] = "IL_shared" if k in (2, 3) else f"IL_{k:03d}"  # links patients IP_000 and IP_001
    return {
        "isic_id": image_id,
        "copyright_license": ["CC-0", "CC-BY", "CC-BY-NC"][k % 3],
        "attribution": ["Anonymous", "Hospital A", "Hospital B"][k % 3],
        "metadata": {"clinical": clinical, "acquisition": {"image_type": "dermoscopic"}},
    }


def items() -> list[Item]:
    out = []
    for k, image_id in enumerate(image_ids()):
        image, mask = image_arrays(image_id)
        out.append(Item(id=image_id, metadata=record(k, image_id), image=lambda image=image: png(image),
                        mask=lambda mask=mask: png(mask * 255), where=f"test://{image_id}"))
    return out


def build(url: str) -> str:
    store = open_store(url, mode="a")
    report = ingest(store, items(), progress=False, workers=1)
    assert report.ok, report.failed
    return url


@pytest.fixture(scope="session")
def image_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local store of :func:`items` (read only: tests that write copy it first)."""
    return build(str(tmp_path_factory.mktemp("ml") / "isic.zarr"))


@pytest.fixture
def writable_store(image_store_url: str, tmp_path: Path) -> str:
    """A fresh copy of the image store to write splits into."""
    import shutil

    url = str(tmp_path / "isic.zarr")
    shutil.copytree(image_store_url, url)
    return url


@pytest.fixture(scope="module")
def s3_image_store_url(s3_server: str) -> Iterator[str]:
    """The same store in a bucket of the local S3 server (the environment points s3fs at it)."""
    import s3fs

    with pytest.MonkeyPatch.context() as mp:
        point_s3fs_at(s3_server, mp)
        yield build(f"s3://{new_bucket()}/isic.zarr")
    s3fs.S3FileSystem.clear_instance_cache()
