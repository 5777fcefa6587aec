"""Images: size×size RGB, 3 bytes per pixel (R, G, B), in raster or the paper's patch order."""

from __future__ import annotations

import io
import itertools
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from modalities.base import (
    Augmentation,
    BaseAdapter,
    BitsMap,
    Flag,
    Prompt,
    Record,
    Unit,
    check_choice,
    check_positive_int,
)
from modalities.imagenet64 import load_npz_batch
from modalities.predictors import check_predictor, from_residuals, to_residuals
from multibyte.codecs import Codec, CodecUnavailable

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


MAX_SIZE = 1024
"""Largest image side (pixels): every image is size² · 3 bytes (3 MiB at 1024), in memory
several times while it is encoded, and one sequence for the model."""


class ImageAdapter(BaseAdapter):
    """``PIL.Image`` <-> ``size*size*3`` bytes.

    ``order="raster"``: row-major pixels, each R, G, B. ``order="patch"``: p×p-pixel blocks with
    p = sqrt(patch_size / 3), blocks in raster order and pixels in raster order inside a block,
    so one model patch of ``patch_size`` bytes is exactly one block.

    ``predictor="none"`` stores the pixel values. ``"med"`` and ``"med_colour"`` store each byte's
    residual from a fixed causal predictor instead (``modalities/predictors.py``): the same
    likelihood, so the same bits per dim, but far easier for a small model to learn.
    """

    name = "image"
    unit = "bits/dim"
    # Chrabaszcz et al.'s npz batches first, then picture files.
    suffixes = (".npz", *IMAGE_SUFFIXES)
    flags = (
        Flag("--size", "size", int),
        Flag("--order", "order", str),
        Flag("--patch-size", "patch_size", int),
        Flag("--predictor", "predictor", str),
    )
    prompt_fraction = 0.5  # the top half of the prompt image's rows
    whole_samples = True  # a piece of an image is not an image

    def __init__(
        self, size: int = 64, order: str = "raster", patch_size: int = 12, predictor: str = "none"
    ) -> None:
        check_positive_int("size", size)
        if size > MAX_SIZE:  # size² · 3 bytes per image: refuse before memory runs out
            raise ValueError(
                f"option size={size} is too large: at most {MAX_SIZE} "
                f"({MAX_SIZE}×{MAX_SIZE} pixels, {3 * MAX_SIZE**2:,} bytes per image)"
            )
        check_choice("order", order, ORDERS)
        check_positive_int("patch_size", patch_size)
        check_predictor(predictor)
        self.size = size
        self.order = order
        self.predictor = predictor
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
            "predictor": self.predictor,
        }

    @property
    def layout(self) -> dict[str, Any]:
        # patch_size places the bytes only in patch order
        layout = dict(self.options)
        if self.order != "patch":
            del layout["patch_size"]
        return layout

    # -- arrays ---------------------------------------------------------------------------------

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """RGB uint8 [size, size, 3]: mode converted, whole image box-resized (squashed)."""
        image = to_rgb(image)
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(image, dtype=np.uint8)

    def serialize(self, pixels: np.ndarray) -> np.ndarray:
        """HWC pixels (or a batch [N, H, W, 3]) as this adapter's bytes [N, seq_len]."""
        batch = pixels.reshape(-1, self.size, self.size, 3)
        return self.order_pixels(to_residuals(batch, self.predictor))

    def pixels(self, data: bytes | np.ndarray) -> np.ndarray:
        """This adapter's bytes of one image back to HWC uint8 pixels [size, size, 3]."""
        return from_residuals(self.unorder(data)[None], self.predictor)[0]

    def order_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """HWC values (or a batch [N, H, W, 3]) as flat values in this adapter's byte order."""
        batch = pixels.reshape(-1, self.size, self.size, 3)
        if self.order == "patch":
            b, n = self.block, self.size // self.block
            batch = batch.reshape(-1, n, b, n, b, 3).transpose(0, 1, 3, 2, 4, 5)
        return np.ascontiguousarray(batch).reshape(len(batch), -1)

    def unorder(self, data: bytes | np.ndarray) -> np.ndarray:
        """Flat values in this byte order back to HWC [size, size, 3]: positions, no prediction."""
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
        return self.serialize(pixels).tobytes()

    def decode(self, data: bytes) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.pixels(data)), "RGB")

    def encode_file(self, path: str | os.PathLike) -> bytes:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated or garbage file raises here
            return self.encode(image)

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        """Write one sample as a PNG."""
        self.decode(data).save(path, format="PNG")

    # -- inputs ---------------------------------------------------------------------------------

    def recognises(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes or is_npz_batch(path)

    def units(self, path: Path) -> list[Unit]:
        """One image file, or every row of an npz batch (each row a unit of its own)."""
        if not is_npz_batch(path):
            return [Unit([Record(self.encode_file(path))])]
        pixels, labels = load_npz_batch(path)
        if pixels.shape[1] != self.size:
            # Resizing goes through the same PIL box filter as image files.
            pixels = np.stack([self.to_pixels(Image.fromarray(p, "RGB")) for p in pixels])
        units = []
        for i, row in enumerate(self.serialize(pixels)):
            meta: dict[str, Any] = {"index": i}
            if labels is not None:
                meta["label"] = int(labels[i])  # 1-based, as in the source file
            units.append(Unit([Record(row.tobytes(), meta)], name=f"#{i}"))
        return units

    # -- metrics --------------------------------------------------------------------------------

    def codecs(self) -> tuple[dict[str, Codec], dict[str, str]]:
        """PNG (zlib level 9) and WebP lossless (quality 100 = most effort, method 6)."""
        codecs = {"png": self._codec("png", {"format": "PNG", "compress_level": 9})}
        notes = {}
        if features.check("webp"):
            webp = {"format": "WEBP", "lossless": True, "quality": 100, "method": 6, "exact": True}
            codecs["webp"] = self._codec("webp", webp)
        else:
            notes["webp"] = "n/a: this Pillow has no WebP support"
        return codecs, notes

    def _codec(self, name: str, save: dict[str, Any]) -> Codec:
        def compress(data: bytes) -> bytes:
            if len(data) != self.seq_len:
                raise CodecUnavailable(f"{len(data)} bytes is not one {self.size}px image")
            # Order and predictor are undone first: the codec sees the picture, not our bytes.
            out = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(self.pixels(data)), "RGB").save(out, **save)
            return out.getvalue()

        def decompress(blob: bytes) -> bytes:
            with Image.open(io.BytesIO(blob)) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
            return self.serialize(pixels).tobytes()

        return Codec(name, compress, decompress)

    def bits_map(self, bits: np.ndarray) -> BitsMap:
        """Mean bits per pixel (its R, G and B bytes summed) in image space, whatever the order."""
        values = np.asarray(self.unorder(bits), dtype=np.float64).sum(axis=-1)
        return BitsMap(values, "pixel_bits", "mean bits per pixel", "bits per pixel (R+G+B)")

    # -- sampling -------------------------------------------------------------------------------

    def read_prompt(self, path: str | os.PathLike, fraction: float) -> Prompt:
        """The top ``fraction`` of the image's rows (whole blocks in patch order)."""
        notes = []
        with Image.open(path) as image:
            image.load()
            if image.size != (self.size, self.size):
                notes.append(
                    f"prompt image {path} is {image.size[0]}x{image.size[1]}; resized to "
                    f"{self.size}x{self.size} (box filter, as the data)"
                )
            whole = self.encode(image)
        rows = int(round(fraction * self.size))
        if self.order == "patch":  # whole block rows are a prefix of the patch scan
            rows -= rows % self.block
        return Prompt(whole[: rows * self.size * 3], whole, notes)

    def plan_sample(
        self, prompt: Prompt, max_new_bytes: int | None, max_seq_len: int
    ) -> tuple[Prompt, int]:
        """Every sample is one whole image: the prompt's rows, then the rest."""
        if self.seq_len > max_seq_len:
            raise ValueError(
                f"a {self.size}px image is {self.seq_len} bytes, longer than the model's "
                f"max_seq_len {max_seq_len}"
            )
        if max_new_bytes is not None:
            raise ValueError("--max-new-bytes does not apply to image: a sample is one image")
        return prompt, self.seq_len - len(prompt.data)

    def render(self, samples: Sequence[bytes], out: Path, prompt: Prompt) -> list[Path]:
        """One PNG grid; with a prompt, its first row is the prompt image and what the model saw."""
        columns = max(len(samples), 2)
        if prompt.whole is not None:
            # A prefix of either scan order is whole rows: the rows after it are blacked out.
            seen = self.pixels(prompt.whole).copy()
            seen[len(prompt.data) // (self.size * 3) :] = 0
            blank = [self.serialize(np.zeros_like(seen)).tobytes()] * (columns - 2)
            seen = self.serialize(seen).tobytes()
            samples = [prompt.whole, seen, *blank, *samples]
        save_grid(self, samples, out, columns=columns)
        return [Path(out)]

    # -- training augmentation ------------------------------------------------------------------
    # Each is a byte permutation drawn per sample (a gather, no decode), so it is right for every
    # order and size and keeps the pixel statistics exactly: no resampling, no new values. With a
    # predictor the image is rebuilt, viewed and predicted again (about 2 ms).

    def mirror(self, data: bytes) -> bytes:
        """The image mirrored left-right, as this adapter's bytes (see ``rearrange``)."""
        return self.rearrange(data, "hflip")

    def rearrange(self, data: bytes, view: str, name: str | None = None) -> bytes:
        """The image under one of ``VIEWS`` (a symmetry of the square or an RGB permutation):
        one gather of the bytes, or, with a predictor, the pixels rebuilt, viewed and predicted."""
        self._check_sample(data, name or view)
        if self.predictor != "none":  # residuals are not a permutation of a view's residuals
            return self.serialize(VIEWS[view](self.pixels(data))).tobytes()
        positions = view_positions(self.size, self.order, self.default_patch_size, view)
        return np.frombuffer(bytes(data), np.uint8)[positions].tobytes()

    def _check_sample(self, data: bytes, name: str = "hflip") -> None:
        if len(data) != self.seq_len:
            raise ValueError(
                f"{name} needs one whole {self.size}px image of {self.seq_len} bytes, "
                f"got {len(data)}"
            )

    def augmentations(self) -> dict[str, Augmentation]:
        """Random byte permutations, one draw per sample whatever happens next:

        - ``hflip``: mirror left-right with probability 0.5;
        - ``vflip``: upside down with probability 0.5;
        - ``rotate``: one of the 8 symmetries of the square (rotations by 90°, with or
          without a mirror), each with probability 1/8;
        - ``channels``: the R, G and B planes in one of their 6 orders, each with probability 1/6.
        """

        def choice(name: str, views: tuple[str, ...]) -> Augmentation:
            def augment(data: bytes, rng: np.random.Generator) -> bytes:
                view = views[int(rng.integers(len(views)))]  # always one draw: a fixed stream
                self._check_sample(data, name)  # whatever the draw: a wrong length never passes
                return bytes(data) if view == "identity" else self.rearrange(data, view, name)

            augment.__name__ = name
            return augment

        return {
            "hflip": choice("hflip", ("identity", "hflip")),
            "vflip": choice("vflip", ("identity", "vflip")),
            "rotate": choice("rotate", SQUARE_SYMMETRIES),
            "channels": choice("channels", CHANNEL_ORDERS),
        }

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
        return self.serialize(pixels).tobytes()

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
        grid[y : y + adapter.size, x : x + adapter.size] = adapter.pixels(sample)
    Image.fromarray(grid, "RGB").save(Path(path), format="PNG")


# A view of HWC pixels: the 8 symmetries of the square, and the 6 orders of the RGB planes.
VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda p: p,
    "hflip": lambda p: p[:, ::-1],
    "vflip": lambda p: p[::-1],
    "rot90": lambda p: np.rot90(p, 1),
    "rot180": lambda p: np.rot90(p, 2),
    "rot270": lambda p: np.rot90(p, 3),
    "transpose": lambda p: p.transpose(1, 0, 2),
    "antitranspose": lambda p: np.rot90(p, 2).transpose(1, 0, 2),
    **{
        "".join("rgb"[c] for c in order): (lambda p, order=order: p[:, :, list(order)])
        for order in itertools.permutations(range(3))
    },
}
SQUARE_SYMMETRIES = (
    "identity",
    "hflip",
    "vflip",
    "rot90",
    "rot180",
    "rot270",
    "transpose",
    "antitranspose",
)
CHANNEL_ORDERS = ("rgb", "rbg", "grb", "gbr", "brg", "bgr")


@lru_cache(maxsize=64)
def view_positions(size: int, order: str, patch_size: int, view: str) -> np.ndarray:
    """Byte i of the viewed image is byte ``positions[i]`` of the original, in either order.

    Built once per adapter options and view from the layout itself (positions through
    ``unorder``, the view applied, back through ``order_pixels``), so it is right for every order
    and size.
    """
    adapter = ImageAdapter(size=size, order=order, patch_size=patch_size)
    positions = adapter.unorder(np.arange(adapter.seq_len, dtype=np.int64))
    viewed = adapter.order_pixels(VIEWS[view](positions))[0]
    viewed.flags.writeable = False  # shared by every adapter with these options
    return viewed


def is_npz_batch(path: Path) -> bool:
    """An npz batch: the .npz suffix, or no suffix and a zip file (``train_data_batch_1``)."""
    suffix = path.suffix.lower()
    return suffix == ".npz" or (suffix == "" and zipfile.is_zipfile(path))
