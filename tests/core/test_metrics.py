import math

import pytest
import torch

from multibyte import bits_per_byte
from multibyte.metrics import nll_bits


def test_uniform_logits_give_exactly_eight_bits():
    x = torch.randint(0, 256, (3, 77))
    assert bits_per_byte(torch.zeros(3, 77, 256), x) == pytest.approx(8.0, abs=1e-12)


def test_known_distribution_gives_the_analytic_cross_entropy():
    q = torch.softmax(torch.randn(256, dtype=torch.float64), 0)
    x = torch.multinomial(q, 5000, replacement=True, generator=torch.Generator().manual_seed(0))
    logits = q.log().float().expand(5000, 256)
    expected = float(-(q.log()[x]).sum() / math.log(2) / 5000)
    assert bits_per_byte(logits, x) == pytest.approx(expected, abs=1e-6)


def test_bf16_logits_are_upcast_and_summed_in_float64():
    x = torch.randint(0, 256, (4, 1000))
    logits = torch.randn(4, 1000, 256)
    assert nll_bits(logits.bfloat16(), x).dtype == torch.float64
    assert bits_per_byte(logits.bfloat16(), x) == pytest.approx(
        bits_per_byte(logits.bfloat16().float(), x), abs=1e-9
    )


def test_every_byte_value_counts_including_zero():
    x = torch.arange(256)[None]
    logits = torch.full((1, 256, 256), -20.0)
    logits[0, :, 0] = 20.0  # confident in byte 0 everywhere
    per_byte = nll_bits(logits, x)
    assert per_byte[0, 0] < 1e-6 and (per_byte[0, 1:] > 40).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        bits_per_byte(torch.zeros(2, 5, 256), torch.zeros(2, 4, dtype=torch.long))
