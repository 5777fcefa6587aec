"""Lossless pixel predictors: an image as the residuals of a fixed predictor, and back.

A predictor replaces each byte by its difference from a guess made only from bytes before it
(the pixels to its left and above, the channels before it in the same pixel), modulo 256. The
map is a bijection on every prefix of the byte stream, so a model's likelihood of the
residuals *is* its likelihood of the pixels: bits per dim stay exact. It only changes what is
easy to learn: residuals of natural images are small, so a tiny model starts near the
predictor's order-0 entropy instead of near 8 bits (PNG and WebP-lossless filter the same way).

- ``"med"``: LOCO-I's median edge detector (JPEG-LS), per channel, from the left (a), upper
  (b) and upper-left (c) pixels: min(a, b) if c >= max(a, b), max(a, b) if c <= min(a, b),
  else a + b - c. The first row predicts from the left, the first column from above, the
  first pixel 0.
- ``"med_colour"``: ``"med"``, then each channel's residual minus the previous channel's
  (R, G - R, B - G), which removes most of what the channels' residuals share.

Residuals are stored plus 128, so a zero residual is byte 128 and small ones of either sign
are bytes near it: neighbouring values stay neighbours, as ``byte_init: ordinal`` expects.
"""

from __future__ import annotations

import numpy as np

from modalities.base import check_choice

PREDICTORS = ("none", "med", "med_colour")
ZERO = 128  # the byte that stores a zero residual


def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    high, low = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= high, low, np.where(c <= low, high, a + b - c))


def med_prediction(pixels: np.ndarray) -> np.ndarray:
    """The median-edge prediction of every pixel of int64 ``[N, H, W, C]`` pixels."""
    a = np.zeros_like(pixels)
    a[:, :, 1:] = pixels[:, :, :-1]
    a[:, 1:, 0] = pixels[:, :-1, 0]  # first column: the pixel above
    b = a.copy()
    b[:, 1:] = pixels[:, :-1]  # first row: b = a
    c = b.copy()
    c[:, 1:, 1:] = pixels[:, :-1, :-1]  # first row or column: c = b
    return _med(a, b, c)


def to_residuals(pixels: np.ndarray, predictor: str) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` pixels as uint8 residual bytes of the same shape."""
    check_predictor(predictor)
    if predictor == "none":
        return pixels
    values = pixels.astype(np.int64)
    residuals = values - med_prediction(values)
    if predictor == "med_colour":
        residuals[..., 1:] -= residuals[..., :-1].copy()
    return ((residuals + ZERO) % 256).astype(np.uint8)


def from_residuals(residuals: np.ndarray, predictor: str) -> np.ndarray:
    """The pixels that ``to_residuals`` turned into these bytes (uint8 ``[N, H, W, 3]``).

    A pixel's prediction needs its decoded left and upper neighbours, so pixels are rebuilt one
    anti-diagonal (y + x = d) at a time, each diagonal in one vectorised step.
    """
    check_predictor(predictor)
    if predictor == "none":
        return residuals
    delta = residuals.astype(np.int64) - ZERO
    if predictor == "med_colour":
        delta = np.cumsum(delta, axis=-1)
    n, height, width, channels = delta.shape
    pixels = np.zeros_like(delta)
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(d, height - 1) + 1)
        xs = d - ys
        left, up = (xs > 0)[:, None], (ys > 0)[:, None]
        # Reads at index -1 wrap around, and are masked out by the conditions.
        a = np.where(left, pixels[:, ys, xs - 1], np.where(up, pixels[:, ys - 1, xs], 0))
        b = np.where(up, pixels[:, ys - 1, xs], a)
        c = np.where(left & up, pixels[:, ys - 1, xs - 1], b)
        pixels[:, ys, xs] = (_med(a, b, c) + delta[:, ys, xs]) % 256
    return pixels.astype(np.uint8)


def check_predictor(predictor: str) -> None:
    check_choice("predictor", predictor, PREDICTORS)
