"""The decoders of archive image files, against values computed independently of them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.testing.sample import png


def _rgb_png(index: np.ndarray, alpha: bool = False) -> bytes:
    """The archive's RGB encoding (index = R + 256*G + 65536*B), spelled out channel by channel."""
    channels = [(index >> shift) & 0xFF for shift in (0, 8, 16)]
    if alpha:
        channels.append(np.full(index.shape, 255, dtype=np.uint32))
    return png(np.stack(channels, axis=-1).astype(np.uint8), "RGBA" if alpha else "RGB")


@pytest.mark.parametrize("top", [255, 65535, 65536, 2**24 - 1])
def test_rgb_superpixels_are_the_index_in_the_smallest_dtype(top):
    rng = np.random.default_rng(top)
    index = rng.integers(0, top + 1, size=(37, 53), dtype=np.uint32)
    index[0, 0] = top
    out = decode_superpixels(_rgb_png(index))
    assert out.dtype == (np.uint16 if top <= 65535 else np.uint32)
    assert out.shape == index.shape
    np.testing.assert_array_equal(out, index)


def test_rgba_superpixels_ignore_alpha():
    index = np.arange(70_000, dtype=np.uint32).reshape(200, 350)
    np.testing.assert_array_equal(decode_superpixels(_rgb_png(index, alpha=True)), index)


def _tiff(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("dtype, mode", [(np.uint8, "L"), (np.uint16, "I;16"), (np.int32, "I")])
def test_label_image_superpixels(dtype, mode):
    index = (np.arange(24 * 31).reshape(24, 31) % 250).astype(dtype)
    data = _tiff(index) if mode == "I" else png(index)  # PNG has no 32-bit gray
    assert Image.open(io.BytesIO(data)).mode == mode
    out = decode_superpixels(data)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, index)


def test_negative_labels_are_refused():
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[1, 1] = -3
    with pytest.raises(ValueError, match="negative"):
        decode_superpixels(_tiff(labels))


@pytest.mark.parametrize("values, expected", [
    ([0, 255], [0, 1]),
    ([0, 1], [0, 1]),
    ([0, 128, 129, 200], [0, 0, 1, 1]),  # the challenge scoring's > 128
])
def test_masks_are_0_1(values, expected):
    mask = np.array(values * 6, dtype=np.uint8).reshape(6, len(values))
    out = decode_mask(png(mask, "L"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.array(expected * 6, dtype=np.uint8).reshape(mask.shape))


def test_bilevel_and_colour_masks():
    inside = np.zeros((9, 12), dtype=bool)
    inside[2:6, 3:9] = True
    buf = io.BytesIO()
    Image.fromarray(inside).convert("1").save(buf, format="PNG")
    np.testing.assert_array_equal(decode_mask(buf.getvalue()), inside.astype(np.uint8))
    rgb = np.stack([inside * 255, np.zeros_like(inside, np.uint8), inside * 7], axis=-1).astype(np.uint8)
    np.testing.assert_array_equal(decode_mask(png(rgb, "RGB")), inside.astype(np.uint8))


def test_sixteen_bit_gray_masks_are_refused():
    with pytest.raises(ValueError, match="8-bit"):
        decode_mask(png(np.array([[0, 1000]], dtype=np.uint16)))


def test_images_are_pillows_rgb_pixels():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = decode_image(png(rgb, "RGB"))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, rgb)
    gray = rgb[..., 0]
    np.testing.assert_array_equal(decode_image(png(gray, "L")), np.repeat(gray[..., None], 3, axis=-1))


def test_undecodable_bytes_are_a_value_error():
    with pytest.raises(ValueError, match="cannot decode"):
        decode_superpixels(b"not an image")
