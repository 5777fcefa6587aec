"""Image predictors: residual bytes that are a prefix-wise bijection of the pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

import modalities
from modalities.predictors import PREDICTORS, ZERO, from_residuals, to_residuals

PREDICTING = [p for p in PREDICTORS if p != "none"]
LAYOUTS = [("raster", 12, 8), ("patch", 12, 8), ("patch", 27, 9), ("raster", 12, 5)]


def _photo(size: int, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus noise: residuals small but not all zero."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([4 * x + 3 * y, 2 * x + 5 * y, 60 + 3 * x], -1)
    return ((base + rng.integers(-3, 4, base.shape)) % 256).astype(np.uint8)


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("shape", [(3, 8, 8, 3), (1, 1, 1, 3), (2, 5, 7, 3), (1, 9, 1, 3)])
def test_residuals_round_trip_any_values(predictor, shape):
    pixels = np.random.default_rng(7).integers(0, 256, shape).astype(np.uint8)
    residuals = to_residuals(pixels, predictor)
    assert residuals.dtype == np.uint8 and residuals.shape == shape
    assert np.array_equal(from_residuals(residuals, predictor), pixels)


@pytest.mark.parametrize("predictor", PREDICTING)
def test_a_flat_image_is_all_zero_residuals_after_its_first_pixel(predictor):
    pixels = np.full((1, 6, 6, 3), 200, np.uint8)
    residuals = to_residuals(pixels, predictor).reshape(-1, 3)
    first = [(200 + ZERO) % 256] * 3 if predictor == "med" else [(200 + ZERO) % 256, ZERO, ZERO]
    assert residuals[0].tolist() == first  # the first pixel is predicted as 0
    assert (residuals[1:] == ZERO).all()


def test_med_is_the_median_edge_detector():
    # A vertical edge: the pixel right of it is predicted from above (c <= min(a, b) picks b).
    pixels = np.zeros((1, 3, 3, 3), np.uint8)
    pixels[0, :, 2] = 90
    residuals = to_residuals(pixels, "med").astype(int) - ZERO
    assert residuals[0, 0, 2, 0] == 90  # first row: predicted from the left (0)
    assert (residuals[0, 1:, 2] == 0).all()  # a=0, b=90, c=0: c <= min(a, b), so max = 90


@pytest.mark.parametrize("predictor", PREDICTING)
def test_residuals_shrink_what_a_smooth_picture_spreads(predictor):
    pixels = _photo(32)[None]
    residuals = to_residuals(pixels, predictor)
    assert _entropy(pixels) > 7  # the values cover most bytes
    assert _entropy(residuals) < 4.5  # the ramps are predicted; about the noise is left
    assert np.abs(residuals[:, 1:, 1:].astype(int) - ZERO).max() <= 20


def _entropy(values: np.ndarray) -> float:
    counts = np.bincount(values.ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("predictor", PREDICTING)
@pytest.mark.parametrize(("order", "patch_size", "size"), LAYOUTS)
def test_each_byte_depends_only_on_the_pixels_before_it(predictor, order, patch_size, size):
    # So the residual stream is a bijection on every prefix: bits per dim stay exact.
    adapter = modalities.get(
        "image", size=size, order=order, patch_size=patch_size, predictor=predictor
    )
    layout = adapter.order_pixels(_photo(size))[0]
    data = adapter.encode(adapter.unorder(layout))
    for j in range(adapter.seq_len):
        changed = layout.copy()
        changed[j] ^= 0x5A
        other = adapter.encode(adapter.unorder(changed))
        assert other[:j] == data[:j] and other[j] != data[j], j


@pytest.mark.parametrize("predictor", PREDICTING)
@pytest.mark.parametrize(("order", "patch_size", "size"), LAYOUTS)
def test_adapter_encodes_residuals_and_decodes_pixels(predictor, order, patch_size, size):
    options = dict(size=size, order=order, patch_size=patch_size)
    adapter = modalities.get("image", **options, predictor=predictor)
    plain = modalities.get("image", **options)
    pixels = _photo(size)
    data = adapter.encode(pixels)
    assert data != plain.encode(pixels)
    assert np.array_equal(np.asarray(adapter.decode(data)), pixels)
    assert adapter.options["predictor"] == predictor
    assert modalities.get(**adapter.options) == adapter
    with pytest.raises(ValueError, match="option predictor='paeth' is not one of"):
        modalities.get("image", predictor="paeth")


@pytest.mark.parametrize("view", ["hflip", "rot90", "transpose", "gbr", "bgr"])
@pytest.mark.parametrize("order", ["raster", "patch"])
def test_augmentations_view_the_picture_not_the_residuals(view, order):
    adapter = modalities.get("image", size=8, order=order, predictor="med_colour")
    plain = modalities.get("image", size=8, order=order)
    image = Image.fromarray(_photo(8), "RGB")
    viewed = adapter.rearrange(adapter.encode(image), view)
    expected = plain.decode(plain.rearrange(plain.encode(image), view))
    assert np.array_equal(np.asarray(adapter.decode(viewed)), np.asarray(expected))
    if view == "hflip":
        assert np.array_equal(
            np.asarray(adapter.decode(viewed)), np.asarray(ImageOps.mirror(image))
        )


def test_png_and_webp_see_the_picture():
    adapter = modalities.get("image", size=8, order="patch", predictor="med")
    pixels = _photo(8)
    codecs, _ = adapter.codecs()
    for codec in codecs.values():
        with Image.open(io.BytesIO(codec.compress(adapter.encode(pixels)))) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), pixels)


def test_render_blacks_out_the_rows_after_the_prompt(tmp_path):
    adapter = modalities.get("image", size=8, predictor="med_colour")
    pixels = _photo(8)
    path = tmp_path / "p.png"
    Image.fromarray(pixels, "RGB").save(path)
    prompt = adapter.read_prompt(path, 0.5)
    sample = adapter.encode(_photo(8, seed=1))
    (out,) = adapter.render([sample], tmp_path / "grid.png", prompt)
    grid = np.asarray(Image.open(out))
    cell = 8 + 2
    seen = grid[2 : 2 + 8, 2 + cell : 2 + cell + 8]
    assert np.array_equal(seen[:4], pixels[:4]) and (seen[4:] == 0).all()
    assert np.array_equal(grid[2 + cell : 2 + cell + 8, 2 : 2 + 8], _photo(8, seed=1))
