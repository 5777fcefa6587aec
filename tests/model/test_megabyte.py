"""MEGABYTE: causality, shapes, gradients, learning and configuration errors."""

import math

import pytest
import torch

from multibyte import bits_per_byte
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.model.megabyte import PatchEmbedder


@pytest.mark.parametrize("length", [1, 5, 12, 29, 48])
def test_changing_the_future_never_changes_the_past(variant, make_megabyte, length):
    name, options = variant
    model = make_megabyte(**options)
    generator = torch.Generator().manual_seed(length)
    x = torch.randint(0, 256, (2, length), generator=generator)
    logits = model(x)
    assert logits.shape == (2, length, 256)
    for t in sorted({0, length // 3, length // 2, length - 1}):
        changed = x.clone()
        changed[:, t:] = torch.randint(0, 256, (2, length - t), generator=generator)
        other = model(changed)
        assert torch.equal(other[:, :t], logits[:, :t]) or torch.allclose(
            other[:, :t], logits[:, :t], atol=1e-6, rtol=0
        ), f"{name}: logits before {t} changed"
        if t < length:  # and the byte at t does reach later positions (the model is not blind)
            changed_one = x.clone()
            changed_one[:, t] = (x[:, t] + 1) % 256
            if t + 1 < length:
                assert not torch.allclose(model(changed_one)[:, t + 1 :], logits[:, t + 1 :])


def test_logits_at_t_do_not_see_byte_t(make_megabyte):
    model = make_megabyte()
    x = torch.randint(0, 256, (1, 20))
    y = x.clone()
    y[0, 7] = (y[0, 7] + 128) % 256
    assert torch.allclose(model(x)[0, :8], model(y)[0, :8], atol=0, rtol=0)


def test_prefix_logits_do_not_depend_on_sequence_length(variant, make_megabyte):
    # internal padding of T up to a multiple of P must never reach real positions
    _, options = variant
    model = make_megabyte(**options)
    x = torch.randint(0, 256, (3, 48))
    full = model(x)
    for length in (1, 7, 13, 30):
        assert torch.allclose(model(x[:, :length]), full[:, :length], atol=1e-5, rtol=0)


def test_gradient_reaches_every_parameter(variant, make_megabyte):
    _, options = variant
    model = make_megabyte(**options).train()
    x = torch.randint(0, 256, (2, 48))
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_zero_bytes_are_data_like_any_other(make_megabyte):
    model = make_megabyte().train()
    zeros = torch.zeros(4, 48, dtype=torch.long)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        logits = model(zeros)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), zeros.flatten())
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[0] > 4.0  # starts near log(256) = 5.5 nats: zeros are scored, not ignored
    assert losses[-1] < 0.1 * losses[0]  # and learned
    with torch.no_grad():
        assert bits_per_byte(model(zeros), zeros) < 1.0


def test_overfits_a_fixed_2kb_string_below_half_a_bit_per_byte():
    torch.manual_seed(0)
    # 2 KB of varied, non-repeating-at-short-range bytes: text plus every byte value
    data = (bytes(range(256)) + b"MEGABYTE models bytes in patches. " * 40)[:2048]
    x = torch.tensor(list(data), dtype=torch.long)[None]
    config = MegabyteConfig(
        patch_size=8,
        max_seq_len=2048,
        global_dim=128,
        global_layers=2,
        global_heads=4,
        local_dim=64,
        local_layers=2,
        local_heads=4,
        activation="gelu",
    )
    model = Megabyte(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    bpb = math.inf
    for step in range(400):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits[0], x[0])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bpb = loss.item() / math.log(2)
        if bpb < 0.5 and step % 10 == 0:
            break
    model.eval()
    with torch.no_grad():
        assert bits_per_byte(model(x), x) < 0.5


def test_dropout_is_active_in_training_only(make_megabyte):
    model = make_megabyte(dropout=0.3)
    x = torch.randint(0, 256, (2, 24))
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_activation_checkpointing_gives_the_same_gradients(make_megabyte):
    x = torch.randint(0, 256, (2, 48))
    grads = []
    for flag in (False, True):
        model = make_megabyte(activation_checkpointing=flag, cross_patch=2).train()
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6), name


def test_global_width_not_divisible_by_patch_is_projected():
    config = MegabyteConfig(
        patch_size=12, max_seq_len=48, global_dim=40, global_heads=4, local_dim=16, local_heads=2
    )
    global_stage, local_stage = config.stages
    assert global_stage.byte_dim == 4  # D_G = ceil(40 / 12)
    model = Megabyte(config)
    assert model.global_model.embed.token_proj.weight.shape == (40, 48)  # P * D_G = 48 -> 40
    assert model.local_model.parent_proj.weight.shape == (48, 40)
    assert model.local_model.parent_to_child.weight.shape == (16, 4)  # one shared w_GL per slice
    assert local_stage.parent_split == 48 and local_stage.length == 12


def test_stage_specs_describe_the_model_that_is_built(variant, make_megabyte):
    # the sizes the decoder and multibyte.flops use are those of the modules the model holds
    _, options = variant
    model = make_megabyte(**options)
    specs = model.config.stages
    assert len(specs) == len(model.stages) == len(model.config.token_bytes)
    assert [spec.token_bytes for spec in specs] == list(model.config.token_bytes)
    for spec, stage in zip(specs, model.stages):
        assert stage.transformer.config.dim == spec.dim
        assert len(stage.transformer.blocks) == spec.layers
        assert stage.transformer.config.heads == spec.heads
        assert stage.embed.byte_embed.embedding_dim == spec.byte_dim
        assert stage.transformer.config.cross_patch == spec.cross_patch
        x = torch.randint(0, 256, (2, 2 * spec.token_bytes))
        assert stage.embed(x).shape == (2, 2, spec.dim)  # the embedder makes the stage's tokens
    assert specs[0].length * specs[0].token_bytes == model.config.max_seq_len
    for parent, child, stage in zip(specs, specs[1:], model.stages[1:]):
        assert child.length * child.token_bytes == parent.token_bytes
        assert stage.context(torch.zeros(3, parent.dim)).shape == (3, child.length, child.dim)


def test_two_stages_are_the_global_and_local_model(make_megabyte):
    model = make_megabyte()
    assert model.stages == (model.global_model, model.local_model)
    assert len(model.middle_models) == 0
    three = make_megabyte(patch_sizes=(8, 2))
    assert three.stages == (three.global_model, three.middle_models[0], three.local_model)


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        (dict(patch_size=8, max_seq_len=100), ["max_seq_len", "patch_size"]),
        (dict(global_dim=30, global_heads=4), ["global_heads", "global_dim"]),
        (dict(local_dim=30, local_heads=4), ["local_heads", "local_dim"]),
        (dict(global_layers=0), ["global_layers"]),
        (dict(local_dim=-4), ["local_dim"]),
        (dict(patch_size=0), ["patch_size"]),
        (dict(max_seq_len=0), ["max_seq_len"]),
        (dict(cross_patch=9), ["cross_patch"]),
        (dict(dropout=1.5), ["dropout"]),
        (dict(patch_sizes=(8, 3)), ["patch_sizes"]),
        (dict(patch_size=4, patch_sizes=(8, 2)), ["patch_size", "patch_sizes"]),
        (dict(patch_sizes=(8, 2), stage_dims=(16, 16)), ["stage_dims"]),
        (dict(activation="swish"), ["activation"]),
        (dict(rotary=True, local_dim=12, local_heads=4), ["local_heads"]),
    ],
)
def test_bad_configuration_names_the_field(fields, names):
    base = dict(
        patch_size=8, max_seq_len=64, global_dim=64, global_heads=4, local_dim=32, local_heads=4
    )
    base.update(fields)
    if "patch_sizes" in fields and "patch_size" not in fields:
        base.pop("patch_size")
    with pytest.raises(ValueError) as error:
        MegabyteConfig(**base)
    for name in names:
        assert name in str(error.value)


def test_input_checks(make_megabyte):
    model = make_megabyte()
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence length"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 4))


def test_a_new_patch_embedder_changes_training_and_decoding_alike(make_megabyte):
    # Every stage turns bytes into tokens through its PatchEmbedder only: replace it and both
    # the forward pass and the cached decoder use the new one.
    class Scaled(PatchEmbedder):
        def forward(self, x, start=0, end=None):
            return 1.5 * super().forward(x, start, end)

    model = make_megabyte(patch_sizes=(8, 2), cross_patch=2, conv_encoder=True)
    x = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = model(x)
        for stage in model.stages:
            stage.embed.__class__ = Scaled
        full = model(x)
        assert not torch.allclose(full, before, atol=1e-3)
        decoder = model.decoder(x.clone())
        for t in range(3, 40):
            logits = decoder.prefill(t) if t == 3 else decoder.advance(t)
            torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)
