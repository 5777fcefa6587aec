import pytest
import torch

from multibyte.model.generation import sample_next_byte


def _draws(logits, n=4000, **options):
    generator = torch.Generator().manual_seed(0)
    batch = logits.expand(n, -1)
    return sample_next_byte(batch, generator=generator, **options)


def test_temperature_zero_is_argmax():
    logits = torch.randn(5, 256)
    assert torch.equal(sample_next_byte(logits, temperature=0), logits.argmax(-1))


def test_sampling_follows_the_distribution():
    probs = torch.zeros(256)
    probs[[3, 200, 255]] = torch.tensor([0.5, 0.3, 0.2])
    draws = _draws(probs.log()[None])
    counts = torch.bincount(draws, minlength=256).double() / draws.numel()
    assert set(draws.unique().tolist()) == {3, 200, 255}
    assert torch.allclose(counts[[3, 200, 255]], probs[[3, 200, 255]].double(), atol=0.03)


def test_top_k_keeps_only_the_k_most_likely():
    logits = torch.linspace(0, 1, 256)[None]
    assert set(_draws(logits, top_k=3).unique().tolist()) <= {253, 254, 255}


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.full((256,), 1e-6)
    probs[[10, 20, 30]] = torch.tensor([0.6, 0.3, 0.1])
    draws = _draws((probs / probs.sum()).log()[None], top_p=0.85)
    assert set(draws.unique().tolist()) == {10, 20}
    draws = _draws((probs / probs.sum()).log()[None], top_p=0.5)
    assert set(draws.unique().tolist()) == {10}


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_sharpens_or_flattens(temperature):
    logits = torch.tensor([[2.0, 1.0] + [-1e9] * 254])
    draws = _draws(logits, temperature=temperature)
    share = (draws == 0).double().mean().item()
    expected = torch.softmax(logits[0, :2] / temperature, 0)[0].item()
    assert abs(share - expected) < 0.03
