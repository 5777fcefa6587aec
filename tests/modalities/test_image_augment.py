"""The image adapter's training augmentations: byte permutations, right in either byte order.

``hflip`` and ``vflip`` mirror, ``rotate`` applies one of the 8 symmetries of the square,
``channels`` one of the 6 orders of the RGB planes.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

import modalities


def _gradient(size: int = 64) -> Image.Image:
    """A picture that no mirror leaves unchanged: red rises left to right, green top to bottom."""
    ramp = np.linspace(0, 255, size)
    red = np.tile(ramp, (size, 1))
    green = red.T
    blue = (red * green / 255.0 + 17 * np.arange(size)[None, :] % 256) % 256
    return Image.fromarray(np.stack([red, green, blue], -1).astype(np.uint8), "RGB")


# (order, patch_size, size): both orders, every block size, square and odd sizes.
LAYOUTS = [
    ("raster", 12, 64),
    ("patch", 12, 64),
    ("patch", 27, 48),
    ("patch", 48, 64),
    ("raster", 12, 5),
    ("patch", 27, 12),
    ("patch", 3, 7),
]


@pytest.mark.parametrize(("order", "patch_size", "size"), LAYOUTS)
def test_mirror_is_pils_mirror_in_every_order(order, patch_size, size):
    adapter = modalities.get("image", size=size, order=order, patch_size=patch_size)
    image = _gradient(size)
    data = adapter.encode(image)
    mirrored = adapter.mirror(data)
    assert mirrored != data
    assert np.array_equal(np.asarray(adapter.decode(mirrored)), np.asarray(ImageOps.mirror(image)))
    assert adapter.mirror(mirrored) == data  # twice is the identity


@pytest.mark.parametrize(("order", "patch_size", "size"), LAYOUTS[:3])
def test_hflip_flips_about_half_and_leaves_the_rest_unchanged(order, patch_size, size):
    adapter = modalities.get("image", size=size, order=order, patch_size=patch_size)
    hflip = adapter.augmentations()["hflip"]
    data = adapter.encode(_gradient(size))
    mirrored = adapter.mirror(data)
    flipped = 0
    for seed in range(2000):
        out = hflip(data, np.random.default_rng(seed))
        assert out in (data, mirrored)
        flipped += out == mirrored
    # Binomial(2000, 0.5): sd 22.4, so 850..1150 is more than 6 sd either way.
    assert 850 < flipped < 1150


def test_hflip_depends_only_on_the_generator():
    adapter = modalities.get("image")
    hflip = adapter.augmentations()["hflip"]
    data = adapter.encode(_gradient())
    draws = [hflip(data, np.random.default_rng([3, i])) for i in range(50)]
    assert draws == [hflip(data, np.random.default_rng([3, i])) for i in range(50)]


def test_hflip_refuses_a_piece_of_an_image_whatever_the_draw():
    adapter = modalities.get("image", size=8)
    hflip = adapter.augmentations()["hflip"]
    for seed in range(8):
        with pytest.raises(ValueError, match="one whole 8px image of 192 bytes, got 96"):
            hflip(bytes(96), np.random.default_rng(seed))


# Each view against PIL / numpy doing the same to the decoded picture.
PIL_VIEWS = {
    "hflip": ImageOps.mirror,
    "vflip": ImageOps.flip,
    "rot90": lambda image: image.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda image: image.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda image: image.transpose(Image.Transpose.ROTATE_270),
    "transpose": lambda image: image.transpose(Image.Transpose.TRANSPOSE),
    "antitranspose": lambda image: image.transpose(Image.Transpose.TRANSVERSE),
    "bgr": lambda image: Image.fromarray(np.asarray(image)[:, :, ::-1].copy(), "RGB"),
    "gbr": lambda image: Image.fromarray(np.asarray(image)[:, :, [1, 2, 0]].copy(), "RGB"),
}


@pytest.mark.parametrize("view", PIL_VIEWS)
@pytest.mark.parametrize(("order", "patch_size", "size"), LAYOUTS)
def test_every_view_is_pils_in_every_order(view, order, patch_size, size):
    adapter = modalities.get("image", size=size, order=order, patch_size=patch_size)
    image = _gradient(size)
    data = adapter.encode(image)
    viewed = adapter.rearrange(data, view)
    assert viewed != data
    assert np.array_equal(np.asarray(adapter.decode(viewed)), np.asarray(PIL_VIEWS[view](image)))
    assert sorted(viewed) == sorted(data)  # a permutation: no value made or lost


@pytest.mark.parametrize(
    ("name", "outcomes"),
    [
        ("vflip", ["identity", "vflip"]),
        (
            "rotate",
            [
                "identity",
                "hflip",
                "vflip",
                "rot90",
                "rot180",
                "rot270",
                "transpose",
                "antitranspose",
            ],
        ),
        ("channels", ["rgb", "rbg", "grb", "gbr", "brg", "bgr"]),
    ],
)
def test_random_views_draw_each_outcome_evenly(name, outcomes):
    adapter = modalities.get("image", size=16, order="patch", patch_size=12)
    augment = adapter.augmentations()[name]
    data = adapter.encode(_gradient(16))
    expected = {
        adapter.rearrange(data, v) if v not in ("identity", "rgb") else data: v for v in outcomes
    }
    assert len(expected) == len(outcomes)  # the gradient tells every outcome apart
    counts = dict.fromkeys(outcomes, 0)
    draws = 2400
    for seed in range(draws):
        out = augment(data, np.random.default_rng(seed))
        counts[expected[out]] += 1  # a KeyError would be an outcome outside the set
    share = draws / len(outcomes)  # 300 or 400 or 1200; 6 sd below and above
    sd = (draws * (1 / len(outcomes)) * (1 - 1 / len(outcomes))) ** 0.5
    assert all(abs(count - share) < 6 * sd for count in counts.values()), counts


@pytest.mark.parametrize("name", ["hflip", "vflip", "rotate", "channels"])
def test_each_augmentation_refuses_a_piece_of_an_image(name):
    augment = modalities.get("image", size=8).augmentations()[name]
    for seed in range(8):
        with pytest.raises(ValueError, match=f"{name} needs one whole 8px image of 192 bytes"):
            augment(bytes(96), np.random.default_rng(seed))


def test_only_the_image_adapter_offers_augmentations():
    assert list(modalities.get("image").augmentations()) == ["hflip", "vflip", "rotate", "channels"]
    assert modalities.get("text").augmentations() == {}
    assert modalities.get("audio").augmentations() == {}
