"""ByteTransformer: the baseline has MEGABYTE's call contract."""

import pytest
import torch

from multibyte.model import ByteTransformerConfig


@pytest.mark.parametrize("options", [{}, {"rotary": True, "qk_norm": True}])
def test_causal_and_shifted(make_transformer, options):
    model = make_transformer(**options)
    x = torch.randint(0, 256, (2, 30))
    logits = model(x)
    assert logits.shape == (2, 30, 256)
    for t in (0, 9, 29):
        changed = x.clone()
        changed[:, t:] = (changed[:, t:] + 17) % 256
        assert torch.allclose(model(changed)[:, : t + 1], logits[:, : t + 1], atol=1e-6)
        if t + 1 < 30:
            assert not torch.allclose(model(changed)[:, t + 1 :], logits[:, t + 1 :])


def test_gradient_reaches_every_parameter(make_transformer):
    model = make_transformer(dropout=0.1).train()
    x = torch.zeros(2, 40, dtype=torch.long)
    torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        (dict(dim=30, heads=4), "heads"),
        (dict(layers=0), "layers"),
        (dict(max_seq_len=-1), "max_seq_len"),
        (dict(dropout=-0.1), "dropout"),
    ],
)
def test_bad_configuration_names_the_field(fields, name):
    with pytest.raises(ValueError, match=name):
        ByteTransformerConfig(**{"max_seq_len": 64, "dim": 32, "layers": 2, "heads": 4, **fields})
