"""Exact range coding of byte chunks, driven step by step by a model's cached decoder.

The encoder and the decoder run one function, `run_lockstep`: the chunks of a batch are rows of
one buffer, and at step t every row gets the model's logits for its byte t, quantized to integer
frequencies (`quantize`). The encoder then writes the known bytes into its range coders, the
decoder reads them out of its own; either way byte t goes into the buffer before step t + 1.
So both sides feed the model the same tensors of the same shapes in the same order, and get
bit-identical logits as long as the arithmetic underneath is the same (see docs/compression.md).

The coder is `constriction`'s range coder (32-bit words, 24-bit probabilities) with its lazy
categorical family, `perfect=False`. That family turns float weights w into the cumulative counts
floor(cumsum(w) * (2^24 - 256) / sum(w)) + index. `quantize` hands it integers that already sum
to 2^24 - 256, so the scale is exactly 1, every sum is exact, and the coder's frequency of byte i
is exactly our weight + 1: the probabilities are rounded once, here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import constriction
import numpy as np
import torch
from torch import nn

from multibyte.compression.container import CompressionError

PRECISION = 24
"""Bits of the coder's probabilities: every frequency is an integer out of 2^24."""
SYMBOLS = 256
FREE_WEIGHT = (1 << PRECISION) - SYMBOLS
"""Counts shared out by the model; each byte first gets one count (the floor)."""

# Callback of one lockstep: (step t, weights [rows, 256], active rows) -> the bytes at t [rows].
Choose = Callable[[int, np.ndarray, list[int]], np.ndarray]


class CodingError(CompressionError):
    """The model or the coded data cannot be coded exactly (non-finite logits, bad stream)."""


def quantize(logits: torch.Tensor) -> np.ndarray:
    """Logits [rows, 256] -> integer weights [rows, 256] (float64), each row summing to 2^24-256.

    One deterministic step on the CPU in float64: softmax, scale by 2^24 - 256, floor, and the
    few counts the floors leave over go to the most likely byte (the first on ties). The coder
    adds one count to every byte, so no byte ever has probability zero: the frequency of byte i
    is weights[i] + 1 out of 2^24.
    """
    logits = logits.detach().to("cpu", torch.float64)
    if not torch.isfinite(logits).all():
        raise CodingError("the model produced non-finite logits (NaN or Inf); cannot code with it")
    weights = torch.floor(torch.softmax(logits, dim=-1) * FREE_WEIGHT)
    # The floors sum to at most FREE_WEIGHT (the scaled probabilities sum to < FREE_WEIGHT + 1).
    leftover = FREE_WEIGHT - weights.sum(dim=-1)
    rows = torch.arange(weights.shape[0])
    weights[rows, weights.argmax(dim=-1)] += leftover
    return weights.numpy()


def code_lengths_bits(weights: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Ideal code length in bits of each symbol under the quantized frequencies (float64)."""
    freq = weights[np.arange(len(symbols)), symbols] + 1.0
    return PRECISION - np.log2(freq)


def chunk_lengths(length: int, chunk: int) -> list[int]:
    """Lengths of the independent chunks `length` bytes are cut into (the last may be short)."""
    full, rest = divmod(length, chunk)
    return [chunk] * full + ([rest] if rest else [])


def batches(count: int, batch: int) -> list[range]:
    """Consecutive groups of at most `batch` chunk indices (each group is coded in lockstep)."""
    return [range(lo, min(lo + batch, count)) for lo in range(0, count, batch)]


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def run_lockstep(
    model: nn.Module,
    lengths: Sequence[int],
    choose: Choose,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> None:
    """Step every row (chunk) of one batch through the model in lockstep.

    Uses `model.decoder(buffer)` (prefill at 0, advance after) when the model has one, else a
    full forward pass per step. Rows that are finished (shorter chunks) stay in the batch as
    padding: their logits are computed and ignored, and their bytes stay 0, on both sides.
    `compile`: the decoder's compiled step (`model.decoder(buffer, compile=True)`), whose
    floats differ from the eager step's, so both sides must make the same choice.
    """
    rows, steps = len(lengths), max(lengths)
    device = model_device(model)
    buffer = torch.zeros(rows, steps, dtype=torch.long, device=device)
    has_decoder = callable(getattr(model, "decoder", None))
    if compile and not has_decoder:
        raise CodingError("a compiled decode step needs a model with a cached decoder")
    if compile:
        decoder = model.decoder(buffer, compile=True)
    else:
        decoder = model.decoder(buffer) if has_decoder else None
    for t in range(steps):
        if decoder is None:
            logits = model(buffer[:, : t + 1])[:, t]
        else:
            logits = decoder.prefill(t) if t == 0 else decoder.advance(t)
        active = [r for r in range(rows) if lengths[r] > t]
        symbols = choose(t, quantize(logits), active)
        buffer[:, t] = torch.from_numpy(symbols.astype(np.int64)).to(device)
        if progress is not None:
            progress(len(active))


def _family() -> constriction.stream.model.Categorical:
    # perfect=False: the lazy quantizer described in the module docstring (exact for our weights).
    return constriction.stream.model.Categorical(perfect=False)


def encode_batch(
    model: nn.Module,
    chunks: Sequence[bytes],
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> list[bytes]:
    """Range-code each chunk of one batch; returns one stream (little-endian u32 words) each."""
    family = _family()
    data = np.zeros((len(chunks), max(len(c) for c in chunks)), dtype=np.int32)
    for r, chunk in enumerate(chunks):
        data[r, : len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    encoders = [constriction.stream.queue.RangeEncoder() for _ in chunks]

    def choose(t: int, weights: np.ndarray, active: list[int]) -> np.ndarray:
        for r in active:
            encoders[r].encode(data[r, t : t + 1], family, weights[r : r + 1])
        return data[:, t]

    run_lockstep(model, [len(c) for c in chunks], choose, progress, compile)
    return [encoder.get_compressed().astype("<u4").tobytes() for encoder in encoders]


def decode_batch(
    model: nn.Module,
    streams: Sequence[bytes],
    lengths: Sequence[int],
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> list[bytes]:
    """Invert `encode_batch` (with the same `compile`): the chunks of `lengths` bytes."""
    family = _family()
    decoders = []
    for stream in streams:
        if len(stream) % 4:
            raise CodingError(f"a coded stream must be whole 32-bit words, got {len(stream)} bytes")
        words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
        decoders.append(constriction.stream.queue.RangeDecoder(words))
    out = np.zeros((len(streams), max(lengths)), dtype=np.int32)

    def choose(t: int, weights: np.ndarray, active: list[int]) -> np.ndarray:
        for r in active:
            try:
                out[r, t] = decoders[r].decode(family, weights[r : r + 1])[0]
            except (ValueError, RuntimeError) as error:  # the stream ran out or is inconsistent
                raise CodingError(f"chunk {r} of this batch does not decode: {error}") from error
        return out[:, t]

    run_lockstep(model, lengths, choose, progress, compile)
    return [out[r, :n].astype(np.uint8).tobytes() for r, n in enumerate(lengths)]


__all__ = [
    "FREE_WEIGHT",
    "PRECISION",
    "CodingError",
    "batches",
    "chunk_lengths",
    "code_lengths_bits",
    "decode_batch",
    "encode_batch",
    "quantize",
    "run_lockstep",
]
