"""Images: size×size RGB, 3 bytes per pixel (R, G, B), in raster or the paper's patch order."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modalities.base import check_choice, check_positive_int

ORDERS = ("raster", "patch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB.

    Alpha is dropped (the colour channels are kept as stored, not composited). 16- and 32-bit
    integer modes (``I;16*``, ``I``) are taken as 16-bit values and scaled by ``>> 8``; ``F``
    is clipped to [0, 255]. Everything else goes through PIL's own ``convert("RGB")``
    (L, LA, P, PA, RGBA, CMYK, YCbCr, 1, ...).
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):
        array = np.asarray(image).astype(np.int64)
        gray = (np.clip(array, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "F":
        gray = np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return image.convert("RGB")


class ImageAdapter:
    """``PIL.Image`` <-> ``size*size*3`` bytes.

    ``order="raster"``: row-major pixels, each R, G, B. ``order="patch"``: p×p-pixel blocks with
    p = sqrt(patch_size / 3), blocks in raster order and pixels in raster order inside a block,
    so one model patch of ``patch_size`` bytes is exactly one block.
    """

    name = "image"
    unit = "bits/dim"

    def __init__(self, size: int = 64, order: str = "raster", patch_size: int = 12) -> None:
        check_positive_int("size", size)
        check_choice("order", order, ORDERS)
        check_positive_int("patch_size", patch_size)
        self.size = size
        self.order = order
        self.default_patch_size = patch_size
        self.block = 0
        if order == "patch":
            block = math.isqrt(patch_size // 3)
            if patch_size % 3 or block * block * 3 != patch_size:
                raise ValueError(
                    f"option patch_size={patch_size} must be 3·p² (12, 27, 48, ...) for "
                    'order="patch"'
                )
            if size % block:
                raise ValueError(f"option size={size} must be a multiple of the {block}px block")
            self.block = block

    @property
    def seq_len(self) -> int:
        return self.size * self.size * 3

    @property
    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "order": self.order,
            "patch_size": self.default_patch_size,
        }

    # -- arrays ---------------------------------------------------------------------------------

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """RGB uint8 [size, size, 3]: mode converted, whole image box-resized (squashed)."""
        image = to_rgb(image)
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(image, dtype=np.uint8)

    def order_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """HWC pixels (or a batch [N, H, W, 3]) as flat bytes in this adapter's order."""
        batch = pixels.reshape(-1, self.size, self.size, 3)
        if self.order == "patch":
            b, n = self.block, self.size // self.block
            batch = batch.reshape(-1, n, b, n, b, 3).transpose(0, 1, 3, 2, 4, 5)
        return np.ascontiguousarray(batch).reshape(len(batch), -1)

    def unorder(self, data: bytes | np.ndarray) -> np.ndarray:
        """Flat bytes in this order back to HWC pixels [size, size, 3]."""
        flat = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data
        if flat.size != self.seq_len:
            raise ValueError(
                f"expected {self.seq_len} bytes for a {self.size}px image, got {flat.size}"
            )
        if self.order == "patch":
            b, n = self.block, self.size // self.block
            return (
                flat.reshape(n, n, b, b, 3)
                .transpose(0, 2, 1, 3, 4)
                .reshape(self.size, self.size, 3)
            )
        return flat.reshape(self.size, self.size, 3)

    # -- protocol -------------------------------------------------------------------------------

    def encode(self, obj: Image.Image | np.ndarray) -> bytes:
        """A PIL image (any mode and size) or an HWC uint8 array of this size, as bytes."""
        if isinstance(obj, np.ndarray):
            if obj.dtype != np.uint8 or obj.shape != (self.size, self.size, 3):
                raise ValueError(
                    f"arrays must be uint8 [{self.size}, {self.size}, 3], got {obj.shape}"
                )
            pixels = obj
        else:
            pixels = self.to_pixels(obj)
        return self.order_pixels(pixels).tobytes()

    def decode(self, data: bytes) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.unorder(data)), "RGB")

    def encode_file(self, path: str | os.PathLike) -> bytes:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated or garbage file raises here
            return self.encode(image)

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        """Write one sample as a PNG."""
        self.decode(data).save(path, format="PNG")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageAdapter) and other.options == self.options

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if k != "name")
        return f"ImageAdapter({opts})"

    # -- exact (lossless) coding --
    # Only what the bytes hold exactly: an 8-bit RGB PNG of size x size, no colour key, one frame.
    # Anything else (another size, grey or palette, alpha, 16 bits, JPEG) is refused, not
    # converted, so a decompressed PNG always has the input's pixels.

    def encode_exact(self, path: str | os.PathLike) -> bytes:
        """The pixels of an 8-bit RGB PNG of size x size, in this adapter's order."""
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(
                    f"{image.format or 'unknown'} image; only PNG images are coded exactly"
                )
            tile = image.tile[0] if image.tile else None
            rawmode = tile[3] if tile and isinstance(tile[3], str) else (tile[3][0] if tile else "")
            if image.mode != "RGB" or rawmode != "RGB":
                raise ValueError(
                    f"PNG mode {image.mode} ({rawmode or 'unknown layout'}); only 8-bit RGB is "
                    "coded exactly (convert it to 8-bit RGB first)"
                )
            if getattr(image, "n_frames", 1) != 1:
                raise ValueError("animated PNG; only single images are coded exactly")
            if "transparency" in image.info:
                raise ValueError("PNG with a transparent colour key; it would be lost")
            if image.size != (self.size, self.size):
                width, height = image.size
                raise ValueError(
                    f"{width}x{height} image; this model codes exactly {self.size}x{self.size} "
                    "(resizing would change the pixels)"
                )
            pixels = np.asarray(image, dtype=np.uint8)
        return self.order_pixels(pixels).tobytes()

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None:
        """Write the pixels as an 8-bit RGB PNG (whatever the suffix: it is the only format)."""
        self.decode(data).save(path, format="PNG")


def save_grid(
    adapter: ImageAdapter,
    samples: Sequence[bytes],
    path: str | os.PathLike,
    columns: int | None = None,
    padding: int = 2,
) -> None:
    """Write many samples as one PNG grid (``columns`` default: about square), black padding."""
    if not samples:
        raise ValueError("save_grid needs at least one sample")
    columns = columns or math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / columns)
    cell = adapter.size + padding
    grid = np.zeros((rows * cell + padding, columns * cell + padding, 3), np.uint8)
    for i, sample in enumerate(samples):
        r, c = divmod(i, columns)
        y, x = padding + r * cell, padding + c * cell
        grid[y : y + adapter.size, x : x + adapter.size] = adapter.unorder(sample)
    Image.fromarray(grid, "RGB").save(Path(path), format="PNG")


def image_files(path: str | os.PathLike) -> list[Path]:
    """A file itself, or every image file under a folder (recursively), sorted."""
    path = Path(path)
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no such file or folder: {path}")
