"""Format-aware lossless baselines: PNG and WebP-lossless for images, FLAC for pcm16 audio.

Each codec maps the adapter's bytes (one sample) to a file and back, so its rate is measured on
exactly the bytes a model is scored on: ``8 * len(file) / len(sample)`` bits per byte, headers
included. ``codecs_for(adapter)`` returns the ones that fit an adapter, and a reason for each
one that does not (e.g. FLAC on mu-law audio). Other modalities register theirs with
``register(name, factory)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from multibyte.codecs import Codec, CodecUnavailable

# modality name -> factory(adapter) -> (codecs by name, reasons by name for those that do not apply)
Factory = Callable[[Any], tuple[dict[str, Codec], dict[str, str]]]
_FACTORIES: dict[str, Factory] = {}


def register(modality: str, factory: Factory) -> None:
    """Add the format codecs of ``modality`` (replaces any registered before)."""
    _FACTORIES[modality] = factory


def codecs_for(adapter: Any) -> tuple[dict[str, Codec], dict[str, str]]:
    """Format codecs for ``adapter``'s bytes, and why the others of its modality do not apply."""
    factory = _FACTORIES.get(getattr(adapter, "name", None))
    return factory(adapter) if factory is not None else ({}, {})


# -- images ------------------------------------------------------------------------------------


def _image_codec(adapter: Any, name: str, save: dict[str, Any]) -> Codec:
    from PIL import Image

    def compress(data: bytes) -> bytes:
        if len(data) != adapter.seq_len:
            raise CodecUnavailable(f"{len(data)} bytes is not one {adapter.size}px image")
        # The adapter's order is undone first: the codec sees the picture, not the byte order.
        pixels = np.ascontiguousarray(adapter.unorder(data))
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, **save)
        return out.getvalue()

    def decompress(blob: bytes) -> bytes:
        with Image.open(io.BytesIO(blob)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return adapter.order_pixels(pixels).tobytes()

    return Codec(name, compress, decompress)


def image_codecs(adapter: Any) -> tuple[dict[str, Codec], dict[str, str]]:
    """PNG (zlib level 9) and WebP lossless (quality 100 = most effort, method 6)."""
    from PIL import features

    codecs = {"png": _image_codec(adapter, "png", {"format": "PNG", "compress_level": 9})}
    notes = {}
    if features.check("webp"):
        webp = {"format": "WEBP", "lossless": True, "quality": 100, "method": 6, "exact": True}
        codecs["webp"] = _image_codec(adapter, "webp", webp)
    else:
        notes["webp"] = "n/a: this Pillow has no WebP support"
    return codecs, notes


# -- audio -------------------------------------------------------------------------------------


def flac_codec(sample_rate: int) -> Codec:
    """FLAC (libsndfile's default compression) of mono pcm16 little-endian bytes."""
    import soundfile as sf

    def compress(data: bytes) -> bytes:
        if len(data) % 2:
            raise CodecUnavailable(f"pcm16 needs an even number of bytes, got {len(data)}")
        out = io.BytesIO()
        samples = np.frombuffer(data, "<i2")
        sf.write(out, samples, sample_rate, format="FLAC", subtype="PCM_16")
        return out.getvalue()

    def decompress(blob: bytes) -> bytes:
        samples, _ = sf.read(io.BytesIO(blob), dtype="int16", always_2d=False)
        return np.asarray(samples, dtype="<i2").tobytes()

    return Codec("flac", compress, decompress)


def audio_codecs(adapter: Any) -> tuple[dict[str, Codec], dict[str, str]]:
    """FLAC for pcm16; for 8-bit encodings FLAC is reported as not applicable."""
    if adapter.encoding == "pcm16":
        return {"flac": flac_codec(adapter.sample_rate)}, {}
    return {}, {"flac": f"n/a: FLAC baseline is for pcm16, not {adapter.encoding}"}


register("image", image_codecs)
register("audio", audio_codecs)

__all__ = ["audio_codecs", "codecs_for", "flac_codec", "image_codecs", "register"]
