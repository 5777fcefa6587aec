from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import modalities
from modalities.image import save_grid, to_rgb


def _random_image(rng, size):
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("order", ["raster", "patch"])
@pytest.mark.parametrize(("size", "patch_size"), [(64, 12), (32, 12), (16, 48), (6, 27)])
def test_round_trip(order, size, patch_size):
    rng = np.random.default_rng(size)
    adapter = modalities.get("image", size=size, order=order, patch_size=patch_size)
    for _ in range(3):
        data = adapter.encode(_random_image(rng, size))
        assert len(data) == size * size * 3 == adapter.seq_len
        image = adapter.decode(data)
        assert image.mode == "RGB" and image.size == (size, size)
        assert adapter.encode(image) == data


def test_known_bytes_2x2_raster():
    pixels = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], np.uint8)
    adapter = modalities.get("image", size=2)
    assert adapter.encode(Image.fromarray(pixels, "RGB")) == bytes(range(1, 13))


def test_known_bytes_4x4_patch_order():
    # pixel (y, x) has value (10*y + x) in all three channels
    pixels = np.array([[[10 * y + x] * 3 for x in range(4)] for y in range(4)], np.uint8)
    image = Image.fromarray(pixels, "RGB")
    raster = modalities.get("image", size=4).encode(image)
    patch = modalities.get("image", size=4, order="patch", patch_size=12).encode(image)
    assert raster[::3] == bytes([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33])
    # 2x2 blocks, blocks in raster order, raster inside each block
    assert patch[::3] == bytes([0, 1, 10, 11, 2, 3, 12, 13, 20, 21, 30, 31, 22, 23, 32, 33])
    assert patch[:12] == bytes([0, 0, 0, 1, 1, 1, 10, 10, 10, 11, 11, 11])


def test_box_resize_squashes_whole_image():
    # 4x2 image: left half black, right half white -> 2x2 keeps both halves (no crop)
    array = np.zeros((2, 4, 3), np.uint8)
    array[:, 2:] = 255
    data = modalities.get("image", size=2).encode(Image.fromarray(array, "RGB"))
    assert data == bytes([0, 0, 0, 255, 255, 255] * 2)
    # box filter averages: 2x2 of values 0, 100, 200, 60 -> one pixel of mean 90
    gray = np.array([[0, 100], [200, 60]], np.uint8)
    assert modalities.get("image", size=1).encode(Image.fromarray(gray, "L")) == bytes([90] * 3)


@pytest.mark.parametrize(
    ("mode", "make", "expected"),
    [
        ("L", lambda: Image.new("L", (2, 2), 77), (77, 77, 77)),
        ("LA", lambda: Image.new("LA", (2, 2), (77, 0)), (77, 77, 77)),
        ("RGBA", lambda: Image.new("RGBA", (2, 2), (1, 2, 3, 0)), (1, 2, 3)),
        ("CMYK", lambda: Image.new("CMYK", (2, 2), (0, 0, 0, 0)), (255, 255, 255)),
        ("I;16", lambda: Image.new("I;16", (2, 2), 0x1234), (0x12, 0x12, 0x12)),
        ("I", lambda: Image.new("I", (2, 2), 0xFF00), (0xFF, 0xFF, 0xFF)),
        ("F", lambda: Image.new("F", (2, 2), 12.4), (12, 12, 12)),
        ("1", lambda: Image.new("1", (2, 2), 1), (255, 255, 255)),
    ],
)
def test_mode_conversion(mode, make, expected):
    image = make()
    assert image.mode == mode
    assert to_rgb(image).mode == "RGB"
    data = modalities.get("image", size=2).encode(image)
    assert data == bytes(expected * 4)


def test_palette_mode():
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 9, 8, 7] + [0] * 762)
    assert modalities.get("image", size=2).encode(image) == bytes([9, 8, 7] * 4)


def test_decode_wrong_length():
    with pytest.raises(ValueError, match="12288"):
        modalities.get("image").decode(b"\x00" * 100)


def test_save_png_and_encode_file(tmp_path):
    rng = np.random.default_rng(0)
    adapter = modalities.get("image", size=8, order="patch")
    data = adapter.encode(_random_image(rng, 8))
    adapter.save(data, tmp_path / "x.png")
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert adapter.encode_file(tmp_path / "x.png") == data


def test_save_grid(tmp_path):
    rng = np.random.default_rng(1)
    adapter = modalities.get("image", size=4, order="patch")
    samples = [adapter.encode(_random_image(rng, 4)) for _ in range(5)]
    save_grid(adapter, samples, tmp_path / "g.png", columns=3, padding=1)
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert (grid[1:5, 6:10] == np.asarray(adapter.decode(samples[1]))).all()
    assert (grid[6:10, 6:10] == np.asarray(adapter.decode(samples[4]))).all()
    assert (grid[6:10, 11:15] == 0).all()  # empty cell


def test_truncated_png_raises(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(OSError):
        modalities.get("image").encode_file(path)


def test_npz_batches_are_read_with_or_without_their_suffix(tmp_path):
    adapter = modalities.get("image", size=2)
    hwc = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    np.savez(tmp_path / "batch.npz", data=hwc.transpose(0, 3, 1, 2).reshape(2, -1), labels=[3, 1])
    (tmp_path / "batch.npz").rename(tmp_path / "train_data_batch_1")
    path = tmp_path / "train_data_batch_1"
    assert adapter.recognises(path) and adapter.accepts(path, named=False)
    units = adapter.units(path)
    assert [u.name for u in units] == ["#0", "#1"]  # every row goes to a split on its own
    assert [u.records[0].data for u in units] == [hwc[0].tobytes(), hwc[1].tobytes()]
    assert [u.records[0].meta for u in units] == [
        {"index": 0, "label": 3},
        {"index": 1, "label": 1},
    ]
    (tmp_path / "readme").write_text("not a zip")
    assert not adapter.recognises(tmp_path / "readme")


@pytest.mark.parametrize(("order", "rows"), [("raster", 3), ("patch", 2)])
def test_prompt_keeps_whole_rows_and_samples_are_whole_images(tmp_path, order, rows):
    adapter = modalities.get("image", size=4, order=order, patch_size=12)
    _random_image(np.random.default_rng(0), 4).save(tmp_path / "p.png")
    prompt = adapter.read_prompt(tmp_path / "p.png", 0.7)  # 2.8 rows -> 3, patch: whole blocks
    assert len(prompt.data) == rows * 4 * 3 and prompt.whole.startswith(prompt.data)
    assert adapter.plan_sample(prompt, None, max_seq_len=48) == (prompt, 48 - len(prompt.data))
    with pytest.raises(ValueError, match="--max-new-bytes does not apply"):
        adapter.plan_sample(prompt, 10, max_seq_len=48)
    with pytest.raises(ValueError, match="longer than the model's max_seq_len 47"):
        adapter.plan_sample(prompt, None, max_seq_len=47)


def test_a_prompt_of_another_size_is_resized_with_a_note(tmp_path):
    adapter = modalities.get("image", size=4)
    Image.new("RGB", (8, 6), (9, 9, 9)).save(tmp_path / "big.png")
    prompt = adapter.read_prompt(tmp_path / "big.png", 0.5)
    assert prompt.whole == bytes([9]) * 48 and "8x6; resized to 4x4" in prompt.notes[0]
