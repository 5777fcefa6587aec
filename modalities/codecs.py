"""Format-aware lossless baselines are each adapter's own ``codecs()`` method.

PNG and WebP-lossless live with the image adapter, FLAC with the audio adapter. This module
keeps the older spelling ``codecs_for(adapter)`` for callers written against it.
"""

from __future__ import annotations

from modalities.audio import flac_codec
from modalities.base import Adapter
from multibyte.codecs import Codec


def codecs_for(adapter: Adapter) -> tuple[dict[str, Codec], dict[str, str]]:
    """``adapter.codecs()``: format codecs for its bytes, and why the others do not apply."""
    return adapter.codecs()


__all__ = ["codecs_for", "flac_codec"]
