"""Audio: mono at ``sample_rate``, quantized to pcm16 (default), mulaw8 or pcm8 bytes.

Quantization (after clipping the float waveform to [-1, 1]; NaN or Inf is an error):
- pcm16: q = clip(rint(x · 32768), -32768, 32767) as int16 little-endian (rint rounds half to
  even), so 0.5 -> 16384 -> b"\\x00\\x40" and 1.0 -> 32767. Decoding gives q / 32768.
- pcm8: u = clip(rint(x · 128), -128, 127) + 128 as one unsigned byte. Decoding gives (u-128)/128.
- mulaw8: ``torchaudio.functional.mu_law_encoding(x, 256)``, one byte. Decoding is
  ``mu_law_decoding``.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from modalities.base import (
    BaseAdapter,
    Flag,
    Prompt,
    Record,
    Unit,
    check_choice,
    check_positive_int,
)
from multibyte.codecs import Codec, CodecUnavailable

ENCODINGS = ("pcm16", "mulaw8", "pcm8")
BYTES_PER_SAMPLE = {"pcm16": 2, "mulaw8": 1, "pcm8": 1}
TAILS = ("keep", "drop")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".w64", ".rf64")

# The paper's clip: 524,288 bytes = 16.384 s of pcm16 at 16 kHz. The default stays in bytes for
# every encoding (so one model config fits all), which is 32.768 s for 8-bit encodings.
DEFAULT_SEQ_LEN = 524_288


def mono(waveform: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] float samples as mono float32 [n] (mean over channels)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be [n] or [n, channels], got shape {waveform.shape}")
    return waveform


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``torchaudio.functional.resample`` (windowed sinc) of a mono float32 waveform."""
    if orig_rate == new_rate:
        return waveform
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(waveform)), orig_rate, new_rate)
    return out.numpy().astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(float32 [n, channels], sample rate) through soundfile: WAV, FLAC, OGG and more."""
    waveform, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if waveform.size == 0:
        raise ValueError(f"no audio samples in {path}")
    return waveform, int(rate)


class AudioAdapter(BaseAdapter):
    """``(float32 waveform [n] in [-1, 1], sample_rate)`` <-> bytes at this adapter's rate."""

    name = "audio"
    unit = "bits/sample"
    suffixes = AUDIO_SUFFIXES
    flags = (
        Flag("--sample-rate", "sample_rate", int),
        Flag("--encoding", "encoding", str),
        Flag("--seq-len", "seq_len", int),
        Flag("--tail", "tail", str),
        Flag("--patch-size", "patch_size", int),
    )
    prompt_fraction = 0.5  # the first half of the prompt clip

    def __init__(
        self,
        sample_rate: int = 16_000,
        encoding: str = "pcm16",
        seq_len: int = DEFAULT_SEQ_LEN,
        tail: str = "keep",
        patch_size: int = 32,
    ) -> None:
        check_positive_int("sample_rate", sample_rate)
        check_choice("encoding", encoding, ENCODINGS)
        check_positive_int("seq_len", seq_len)
        check_choice("tail", tail, TAILS)
        check_positive_int("patch_size", patch_size)
        if seq_len % BYTES_PER_SAMPLE[encoding]:
            raise ValueError(f"option seq_len={seq_len} must be a multiple of 2 for pcm16")
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.seq_len = seq_len
        self.tail = tail
        self.default_patch_size = patch_size

    @property
    def bytes_per_sample(self) -> int:
        """Bytes per audio sample: bits/sample = bits/byte × this."""
        return BYTES_PER_SAMPLE[self.encoding]

    @property
    def bytes_per_unit(self) -> int:
        return self.bytes_per_sample

    @property
    def frame_bytes(self) -> int:
        return self.bytes_per_sample

    # Clip length and how a file's last short clip is kept say how files are cut, not what a
    # byte means.
    layout_free = ("patch_size", "seq_len", "tail")

    @property
    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "seq_len": self.seq_len,
            "tail": self.tail,
            "patch_size": self.default_patch_size,
        }

    def quantize(self, waveform: np.ndarray) -> bytes:
        """Mono float samples at this rate as bytes (see the module docstring for rounding)."""
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            raise ValueError("audio contains NaN or Inf samples")
        x = np.clip(x, -1.0, 1.0)
        if self.encoding == "pcm16":
            q = np.clip(np.rint(x.astype(np.float64) * 32768.0), -32768, 32767)
            return q.astype("<i2").tobytes()
        if self.encoding == "pcm8":
            q = np.clip(np.rint(x.astype(np.float64) * 128.0), -128, 127) + 128
            return q.astype(np.uint8).tobytes()
        import torch
        import torchaudio.functional as AF

        q = AF.mu_law_encoding(torch.from_numpy(x), 256)
        return q.numpy().astype(np.uint8).tobytes()

    def dequantize(self, data: bytes) -> np.ndarray:
        """Bytes back to mono float32 samples in [-1, 1]."""
        data = bytes(data)
        if self.encoding == "pcm16":
            if len(data) % 2:
                raise ValueError(f"pcm16 data must have an even length, got {len(data)}")
            return (np.frombuffer(data, "<i2").astype(np.float32) / 32768.0).astype(np.float32)
        u = np.frombuffer(data, np.uint8)
        if self.encoding == "pcm8":
            return ((u.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
        import torch
        import torchaudio.functional as AF

        return (
            AF.mu_law_decoding(torch.from_numpy(u.astype(np.int64)), 256).numpy().astype(np.float32)
        )

    def encode(self, obj: tuple[np.ndarray, int]) -> bytes:
        """``(waveform [n] or [n, channels], rate)``: mixed to mono, resampled, quantized."""
        waveform, rate = obj
        check_positive_int("sample_rate", int(rate))
        return self.quantize(resample(mono(waveform), int(rate), self.sample_rate))

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        return self.dequantize(data), self.sample_rate

    def encode_file(self, path: str | os.PathLike) -> bytes:
        """The whole file as bytes (use ``clips`` to cut it into training sequences)."""
        return self.encode(read_audio(path))

    def clips(self, data: bytes) -> list[bytes]:
        """``data`` cut into ``seq_len``-byte clips; the last, shorter clip per ``tail``."""
        data = bytes(data)
        full = len(data) // self.seq_len * self.seq_len
        out = [data[i : i + self.seq_len] for i in range(0, full, self.seq_len)]
        if self.tail == "keep" and full < len(data):
            out.append(data[full:])
        return out

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        """Write a mono WAV at ``sample_rate``: PCM_16 for pcm16 and mulaw8, PCM_U8 for pcm8."""
        subtype = "PCM_U8" if self.encoding == "pcm8" else "PCM_16"
        sf.write(
            str(Path(path)), self.dequantize(data), self.sample_rate, subtype=subtype, format="WAV"
        )

    def seconds(self, num_bytes: int) -> float:
        """Duration in seconds of ``num_bytes`` of audio."""
        return num_bytes / self.bytes_per_sample / self.sample_rate

    # -- inputs ---------------------------------------------------------------------------------

    def units(self, path: Path) -> list[Unit]:
        """A file's clips, all in one unit: no recording leaks from train into val."""
        clips = self.clips(self.encode_file(path))
        offset = self.seq_len
        return [Unit([Record(c, {"clip": i, "offset": i * offset}) for i, c in enumerate(clips)])]

    # -- metrics --------------------------------------------------------------------------------

    def codecs(self) -> tuple[dict[str, Codec], dict[str, str]]:
        """FLAC for pcm16; for 8-bit encodings FLAC is reported as not applicable."""
        if self.encoding == "pcm16":
            return {"flac": flac_codec(self.sample_rate)}, {}
        return {}, {"flac": f"n/a: FLAC baseline is for pcm16, not {self.encoding}"}

    # -- sampling -------------------------------------------------------------------------------

    def read_prompt(self, path: str | os.PathLike, fraction: float) -> Prompt:
        """The first ``fraction`` of the clip (resampled to this rate), in whole samples."""
        whole = self.encode_file(path)
        keep = int(len(whole) * fraction)
        return Prompt(whole[: keep - keep % self.bytes_per_sample], whole)

    def plan_sample(
        self, prompt: Prompt, max_new_bytes: int | None, max_seq_len: int
    ) -> tuple[Prompt, int]:
        """A continuation of one second by default, in whole samples, within ``max_seq_len``."""
        limit, step = max_seq_len, self.bytes_per_sample
        data, notes = prompt.data, list(prompt.notes)
        if len(data) > limit - step:
            notes.append(f"prompt cut to its last {limit - step} bytes (max_seq_len {limit})")
            data = data[len(data) - (limit - step) :]
        new = max_new_bytes or min(limit - len(data), self.sample_rate * step)
        new -= new % step
        if new <= 0 or len(data) + new > limit:
            raise ValueError(f"prompt + new bytes must fit max_seq_len {limit} and be positive")
        return replace(prompt, data=data, notes=notes), new

    # -- exact (lossless) coding --
    # Only samples the bytes hold exactly: a mono WAV or FLAC at sample_rate whose sample format
    # is this encoding's (PCM_16 for pcm16; 8-bit PCM for pcm8). Stereo, another rate, another
    # sample format, lossy files and mulaw8 (no file format stores its codes) are refused.
    EXACT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
    EXACT_SUBTYPES = {"pcm16": ("PCM_16",), "pcm8": ("PCM_U8", "PCM_S8")}

    def encode_exact(self, path: str | os.PathLike) -> bytes:
        """The samples of a mono WAV/FLAC at this rate and sample format, as this encoding."""
        try:
            info = sf.info(str(path))
        except sf.LibsndfileError as error:
            raise ValueError(f"not a readable audio file ({error})") from error
        if info.format not in ("WAV", "WAVEX", "FLAC"):
            raise ValueError(f"{info.format} audio; only WAV and FLAC are coded exactly")
        if self.encoding not in self.EXACT_SUBTYPES:
            raise ValueError(f"no audio file stores {self.encoding} codes exactly")
        if info.subtype not in self.EXACT_SUBTYPES[self.encoding]:
            raise ValueError(
                f"{info.subtype} samples; this model's {self.encoding} codes exactly "
                f"{' or '.join(self.EXACT_SUBTYPES[self.encoding])}"
            )
        if info.channels != 1:
            raise ValueError(
                f"{info.channels} channels; only mono is coded exactly (mixing would change it)"
            )
        if info.samplerate != self.sample_rate:
            raise ValueError(
                f"{info.samplerate} Hz; this model codes exactly {self.sample_rate} Hz "
                "(resampling would change the samples)"
            )
        samples, _ = sf.read(str(path), dtype="int16", always_2d=False)
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        if self.encoding == "pcm16":
            return samples.astype("<i2").tobytes()
        return ((samples.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()  # 8-bit PCM

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None:
        """Write the samples losslessly: FLAC for a .flac path, WAV for .wav."""
        suffix = Path(path).suffix.lower()
        if suffix not in self.EXACT_FORMATS:
            raise ValueError(
                f"exact audio is written as .wav or .flac, not {suffix or 'no suffix'}"
            )
        if self.encoding not in self.EXACT_SUBTYPES:
            raise ValueError(f"no audio file stores {self.encoding} codes exactly")
        data = bytes(data)
        if self.encoding == "pcm16":
            samples, subtype = np.frombuffer(data, "<i2").astype(np.int16), "PCM_16"
        else:  # 8-bit PCM, written from 16-bit values with the low byte zero: exact
            samples = ((np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
            subtype = "PCM_U8" if suffix == ".wav" else "PCM_S8"
        fmt = self.EXACT_FORMATS[suffix]
        sf.write(str(path), samples, self.sample_rate, subtype=subtype, format=fmt)


def flac_codec(sample_rate: int) -> Codec:
    """FLAC (libsndfile's default compression) of mono pcm16 little-endian bytes."""

    def compress(data: bytes) -> bytes:
        if len(data) % 2:
            raise CodecUnavailable(f"pcm16 needs an even number of bytes, got {len(data)}")
        out = io.BytesIO()
        sf.write(out, np.frombuffer(data, "<i2"), sample_rate, format="FLAC", subtype="PCM_16")
        return out.getvalue()

    def decompress(blob: bytes) -> bytes:
        samples, _ = sf.read(io.BytesIO(blob), dtype="int16", always_2d=False)
        return np.asarray(samples, dtype="<i2").tobytes()

    return Codec("flac", compress, decompress)


__all__ = ["AudioAdapter", "flac_codec", "mono", "read_audio", "resample"]
