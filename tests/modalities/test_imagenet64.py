from __future__ import annotations

import numpy as np
import pytest

import modalities
from modalities.imagenet64 import load_npz_batch, planar_to_hwc


def _write_chrabaszcz(path, hwc, labels, mean=True):
    # The official layout: each row is all R values, then all G, then all B (row-major each).
    planar = hwc.transpose(0, 3, 1, 2).reshape(len(hwc), -1)
    arrays = {"data": planar, "labels": labels}
    if mean:
        arrays["mean"] = planar.mean(axis=0)
    np.savez(path, **arrays)


def test_planar_layout_decodes_to_hwc(tmp_path):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    _write_chrabaszcz(tmp_path / "b.npz", hwc, np.array([1, 5, 1000]))
    pixels, labels = load_npz_batch(tmp_path / "b.npz")
    assert pixels.shape == (3, 8, 8, 3)
    assert (pixels == hwc).all()
    assert labels.tolist() == [1, 5, 1000]
    # reading the planar row as interleaved would give different pixels
    wrong = np.load(tmp_path / "b.npz")["data"].reshape(3, 8, 8, 3)
    assert not (wrong == hwc).all()


def test_known_planar_pixel():
    # one 2x2 image: R plane 0..3, G plane 10..13, B plane 20..23
    row = np.array([[0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]], np.uint8)
    hwc = planar_to_hwc(row)
    assert hwc[0, 0, 1].tolist() == [1, 11, 21]
    assert modalities.get("image", size=2).encode(hwc[0]) == bytes(
        [0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23]
    )


def test_file_without_extension(tmp_path):
    hwc = np.zeros((1, 4, 4, 3), np.uint8)
    _write_chrabaszcz(tmp_path / "train_data_batch_1.npz", hwc, np.array([1]), mean=False)
    (tmp_path / "train_data_batch_1.npz").rename(tmp_path / "train_data_batch_1")
    pixels, _ = load_npz_batch(tmp_path / "train_data_batch_1")
    assert pixels.shape == (1, 4, 4, 3)


def test_missing_data(tmp_path):
    np.savez(tmp_path / "x.npz", labels=np.array([1]))
    with pytest.raises(ValueError, match="no 'data'"):
        load_npz_batch(tmp_path / "x.npz")


def test_wrong_width(tmp_path):
    np.savez(tmp_path / "x.npz", data=np.zeros((2, 100), np.uint8))
    with pytest.raises(ValueError, match="width 100"):
        load_npz_batch(tmp_path / "x.npz")


def test_pickle_refused(tmp_path):
    import pickle

    (tmp_path / "train_data_batch_1").write_bytes(pickle.dumps({"data": [1]}))
    with pytest.raises(ValueError, match="not an npz"):
        load_npz_batch(tmp_path / "train_data_batch_1")
