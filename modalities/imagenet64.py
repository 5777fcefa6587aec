"""Reader for the Chrabaszcz et al. downsampled-ImageNet npz batches (Imagenet64_train_npz).

Each file holds ``data``: uint8 [N, 3·S·S] channel-planar (all R, then all G, then all B, each
row-major), ``labels``: 1-based class ids, and optionally ``mean`` (for normalisation; unused,
since the bytes are the raw pixels). The pickled (non-npz) release is refused: loading it would
run pickle. Files without the .npz extension (``train_data_batch_1``) are fine if they are npz.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np


def planar_to_hwc(data: np.ndarray) -> np.ndarray:
    """[N, 3·S·S] channel-planar rows as HWC pixels [N, S, S, 3]; S is inferred from the width."""
    if data.ndim != 2:
        raise ValueError(f"npz 'data' must be 2-D [N, 3*S*S], got shape {data.shape}")
    width = data.shape[1]
    side = math.isqrt(width // 3)
    if width % 3 or side * side * 3 != width:
        raise ValueError(f"npz 'data' has width {width}, not 3*S*S for a square image")
    return data.reshape(len(data), 3, side, side).transpose(0, 2, 3, 1)


def load_npz_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(HWC uint8 pixels [N, S, S, 3], 1-based labels [N] or None) from one batch file."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an npz file (the pickled release is not read)")
    with np.load(path, allow_pickle=False) as npz:
        if "data" not in npz.files:
            raise ValueError(f"{path} has no 'data' array (found {', '.join(npz.files) or 'none'})")
        data = npz["data"]
        labels = np.asarray(npz["labels"]).reshape(-1) if "labels" in npz.files else None
    if data.dtype != np.uint8:
        raise ValueError(f"npz 'data' must be uint8, got {data.dtype}")
    if labels is not None and len(labels) != len(data):
        raise ValueError(f"npz has {len(data)} images but {len(labels)} labels")
    return planar_to_hwc(data), labels
