"""Integer frequencies: one deterministic rounding, a floor of one count, and constriction
coding with exactly those frequencies."""

from __future__ import annotations

import constriction
import numpy as np
import pytest
import torch

from multibyte.compression.coder import (
    FREE_WEIGHT,
    PRECISION,
    CodingError,
    code_lengths_bits,
    quantize,
)


def test_weights_are_integers_summing_to_the_free_weight():
    logits = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) * 6
    logits[0] = 0.0  # uniform: every byte gets (2^24 - 256) / 256 counts
    logits[1, 7] = 1e4  # one certain byte: everything else gets only the floor
    weights = quantize(logits)
    assert weights.dtype == np.float64 and weights.shape == (64, 256)
    assert (weights == np.floor(weights)).all() and (weights >= 0).all()
    assert (weights.sum(axis=1) == FREE_WEIGHT).all()
    assert (weights[0] == FREE_WEIGHT // 256).all()
    assert weights[1, 7] == FREE_WEIGHT and (np.delete(weights[1], 7) == 0).all()
    # Frequencies weight + 1 of 2^24 stay within one count of the float64 probabilities.
    probs = torch.softmax(logits.double(), -1).numpy()
    assert np.abs(weights + 1 - probs * (1 << PRECISION)).max() <= 257


def test_same_logits_same_weights_whatever_the_dtype_or_batch():
    logits = torch.randn(8, 256, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(quantize(logits), quantize(logits.clone()))
    assert np.array_equal(quantize(logits)[3:4], quantize(logits[3:4]))  # rows are independent
    assert np.array_equal(quantize(logits), quantize(logits.double()))  # float32 -> float64 exact


def test_non_finite_logits_are_refused():
    logits = torch.zeros(2, 256)
    logits[1, 3] = float("nan")
    with pytest.raises(CodingError, match="non-finite"):
        quantize(logits)


@pytest.mark.parametrize("weight", [0, 1, 5])
def test_constriction_codes_with_exactly_our_frequency(weight):
    """A symbol of weight w costs exactly PRECISION - log2(w + 1) bits. For these rare symbols
    one count more or less inside constriction (a second rounding, or perfect=True moving
    counts) changes every symbol's cost by >= 0.2 bits: hundreds of bits after 4000 symbols."""
    weights = np.full((1, 256), 0.0)
    weights[0, 200] = weight
    weights[0, 0] = FREE_WEIGHT - weight
    n = 4000
    family = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    symbol = np.array([200], dtype=np.int32)
    for _ in range(n):
        encoder.encode(symbol, family, weights)
    ideal = n * float(code_lengths_bits(weights, symbol)[0])
    assert ideal == pytest.approx(n * (PRECISION - np.log2(weight + 1)))
    assert ideal <= encoder.num_bits() <= ideal + 64
    decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
    assert all(decoder.decode(family, weights)[0] == 200 for _ in range(n))
