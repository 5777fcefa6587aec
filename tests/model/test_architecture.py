"""The architecture options of MegabyteConfig (config.py `ARCHITECTURES`): each changes the model
as documented, "paper" is today's model exactly, and cached decoding follows every option."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from multibyte.checkpoint import read_checkpoint
from multibyte.flops import non_embedding_parameters
from multibyte.loss import cross_entropy_sum
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.model.blocks import Block, StackConfig
from multibyte.model.config import ARCHITECTURES, architecture_settings
from multibyte.model.decoding import CompiledMegabyteDecoder, megabyte_static_step

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
SIZES = dict(
    patch_size=4,
    max_seq_len=48,
    global_dim=32,
    global_layers=2,
    global_heads=4,
    local_dim=16,
    local_layers=2,
    local_heads=2,
)
NEW_FIELDS = (
    "architecture",
    "token_shift",
    "norm",
    "positions",
    "patch_embedder",
    "context_proj",
    "first_byte",
    "head_bias",
    "embed_init_std",
    "head_dim",
    "byte_init",
)


def build(seed: int = 0, **fields) -> Megabyte:
    options = {**SIZES, **fields}
    if "patch_sizes" in fields:
        options.pop("patch_size")
    torch.manual_seed(seed)
    return Megabyte(MegabyteConfig(**options)).eval()


def bytes_(length: int = 48, batch: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def assert_same_model(a: Megabyte, b: Megabyte) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    x = bytes_()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# -- "paper" is today's model ----------------------------------------------------------------


def test_paper_is_the_model_without_the_new_fields():
    spelled = {k: v for k, v in ARCHITECTURES["paper"].items() if v is not None}
    for fields in ({}, dict(patch_sizes=(8, 2), cross_patch=2, conv_encoder=True, qk_norm=True)):
        old_way = build(**fields)
        assert_same_model(old_way, build(architecture="paper", **fields))
        assert_same_model(old_way, build(**spelled, **fields))
        assert_same_model(old_way, build(embed_init_std=0.02, **fields))  # = init_std
    # and nothing the options add exists in it
    names = set(build().state_dict())
    assert not any("norm" in n and "embed" in n for n in names)
    assert (
        "head.bias" not in names
        and {"global_model.embed.position.weight", "local_model.position.weight"} <= names
    )


@pytest.mark.parametrize("name", ["two_stage", "three_stage"])
def test_a_config_without_the_architecture_fields_builds_the_recorded_paper_model(name):
    # A recorded seed-0 model's config with every architecture field left out: it builds as
    # "paper", and the same seed still gives the recorded weights and logits.
    checkpoint = read_checkpoint(FIXTURES / f"{name}.ckpt")
    stored = checkpoint["multibyte"]["model"]["config"]
    assert stored["architecture"] == "paper"
    sizes = {k: v for k, v in stored.items() if k not in NEW_FIELDS}
    expected = torch.load(FIXTURES / "expected.pt", weights_only=True)
    torch.manual_seed(expected["seed"])
    model = Megabyte(MegabyteConfig(**sizes)).eval()
    assert model.config.architecture == "paper"
    unset = set(ARCHITECTURES["paper"]) - set(sizes) - {"embed_init_std"}
    assert {k: getattr(model.config, k) for k in unset} == {
        k: ARCHITECTURES["paper"][k] for k in unset
    }
    assert model.config.embed_init_std == model.config.init_std
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh[key]), key
    with torch.no_grad():
        torch.testing.assert_close(model(expected["inputs"]), expected[name], rtol=0, atol=1e-6)


# -- each option changes the model as documented ---------------------------------------------


def test_token_shift_feeds_each_sublayer_the_previous_positions_second_half():
    torch.manual_seed(0)
    dim = 8
    block = Block(StackConfig(dim=dim, layers=1, heads=2, token_shift=True)).eval()
    with torch.no_grad():
        block.attn.proj.weight.zero_()  # attention adds nothing: only the MLP mixes positions
    x = torch.randn(1, 6, dim)
    t = 3

    def out_at_t(changed: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return block(changed)[0, t]

    base = out_at_t(x)
    first_half, second_half, earlier = x.clone(), x.clone(), x.clone()
    first_half[0, t - 1, : dim // 2] += 1.0
    second_half[0, t - 1, dim // 2 :] += 1.0
    earlier[0, t - 2] += 1.0
    assert torch.equal(out_at_t(first_half), base)  # kept channels stay at their position
    assert not torch.allclose(out_at_t(second_half), base)  # shifted channels arrive one later
    assert torch.equal(out_at_t(earlier), base)  # exactly one position back
    # the residual adds to the unshifted stream; position 0 reads zeros
    shifted = torch.cat([x[..., : dim // 2], F.pad(x[..., dim // 2 :], (0, 0, 1, -1))], -1)
    with torch.no_grad():
        expected = x + block.mlp(block.mlp_norm(shifted))
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-6)
    unshifted = Block(StackConfig(dim=dim, layers=1, heads=2)).eval()
    unshifted.load_state_dict(block.state_dict())  # same parameters, no new ones
    with torch.no_grad():
        assert torch.equal(unshifted(second_half)[0, t], unshifted(x)[0, t])


def test_token_shift_adds_no_parameters_and_starts_afresh_in_every_patch():
    plain, shifted = build(), build(token_shift=True)
    assert list(plain.state_dict()) == list(shifted.state_dict())
    x = bytes_()
    with torch.no_grad():
        assert not torch.allclose(plain(x), shifted(x))
        # the local model of patch k never reads the last position of patch k - 1: the first
        # byte's logits of a patch depend on the patch before only through the global model
        local = shifted.local_model
        parent = torch.randn(2, 2, 32)  # 2 rows of 2 patches
        a = local(parent, x[:, :8], rows=2)  # [row 0 patch 0, row 0 patch 1, row 1 ...]
        changed = x[:, :8].clone()
        changed[:, 2] = (changed[:, 2] + 1) % 256  # the input of patch 0's last position
        b = local(parent, changed, rows=2)
        assert torch.equal(a[1::2][:, 0], b[1::2][:, 0])  # patch 1's first position
        assert not torch.allclose(a[::2][:, 3], b[::2][:, 3])  # patch 0's last one did change


def test_rmsnorm_replaces_every_norm_of_the_stacks_only():
    model = build(norm="rmsnorm", qk_norm=True, patch_embedder="norm_proj")
    for stage in model.stages:
        norms = [
            m for m in stage.transformer.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))
        ]
        assert norms and all(isinstance(m, nn.RMSNorm) for m in norms)
        assert len(norms) == 4 * len(stage.transformer.blocks) + 1  # attn, mlp, q, k; final
    assert isinstance(model.global_model.embed.in_norm, nn.LayerNorm)  # the embedder's own
    assert not any(isinstance(m, nn.LayerNorm) for m in build(norm="rmsnorm").modules())
    h = torch.randn(3, 5, 16) * 4 + 2
    final = build(norm="rmsnorm").local_model.transformer.norm
    torch.testing.assert_close(
        final(h), h / h.pow(2).mean(-1, keepdim=True).sqrt(), atol=1e-5, rtol=1e-5
    )


def patch_permutation_changes_the_global_output(model: Megabyte) -> bool:
    """Whether swapping patches 0 and 1 changes the one-layer global output at patch 3 (which
    sees both): without any positions, one causal attention layer sees what is before as a set
    (only causality orders it: with more layers, earlier outputs saw different prefixes)."""
    x = bytes_(16, batch=1)
    swapped = torch.cat([x[:, 4:8], x[:, :4], x[:, 8:]], 1)
    with torch.no_grad():
        a, b = model.global_model(x)[0, 3], model.global_model(swapped)[0, 3]
    assert not torch.allclose(model.global_model(x)[0, 1], model.global_model(swapped)[0, 1])
    return not torch.allclose(a, b, atol=1e-6)


def test_positions_per_stage():
    none = build(positions=("none",), global_layers=1)
    assert none.global_model.embed.position is None and none.local_model.position is None
    assert all(s.transformer.blocks[0].attn.rotary is None for s in none.stages)
    assert not patch_permutation_changes_the_global_output(none)
    assert patch_permutation_changes_the_global_output(build(global_layers=1))  # E_pos
    mixed = build(positions=("rotary", "learned"), global_layers=1)  # global first
    assert mixed.global_model.embed.position is None
    assert mixed.global_model.transformer.blocks[0].attn.rotary is not None
    assert mixed.local_model.position is not None
    assert mixed.local_model.transformer.blocks[0].attn.rotary is None
    assert patch_permutation_changes_the_global_output(mixed)
    assert mixed.config.stages[0].rotary and not mixed.config.stages[1].rotary
    # legacy rotary=True: rotary in every stage, tables kept; cross_patch forces local rotary
    both = build(rotary=True)
    assert both.local_model.position is not None
    assert all(s.transformer.blocks[0].attn.rotary is not None for s in both.stages)
    crossed = build(positions=("none",), cross_patch=2)
    assert crossed.local_model.transformer.blocks[0].attn.rotary is not None
    assert crossed.local_model.position is None
    three = build(patch_sizes=(8, 2), positions=("none", "learned", "rotary"))
    assert [s.learned_positions for s in three.config.stages] == [False, True, False]
    assert three.middle_models[0].position is not None and three.local_model.position is None


def test_positions_none_local_inputs_are_context_plus_shifted_bytes_only():
    model = build(positions=("none",))
    local, x, parent = model.local_model, bytes_(8), torch.randn(4, 32)
    with torch.no_grad():
        tokens = local.embed(x.reshape(4, 4))
        shifted = torch.cat([local.pad.expand(4, 1, -1), tokens[:, :-1]], 1)
        expected = local.transformer(local.context(parent) + shifted, rows=2)
        assert torch.equal(local(parent, x, rows=2), expected)


def test_norm_proj_patch_embedder_normalises_projects_and_normalises():
    model = build(patch_embedder="norm_proj", global_byte_dim=8)
    embed = model.global_model.embed
    assert isinstance(embed.in_norm, nn.LayerNorm) and embed.in_norm.normalized_shape == (32,)
    assert embed.token_proj.weight.shape == (32, 32) and embed.token_proj.bias is not None
    assert isinstance(embed.out_norm, nn.LayerNorm)
    local = model.local_model.embed  # one byte per token: a plain embedding, as the peer's
    assert isinstance(local.in_norm, nn.Identity) and isinstance(local.token_proj, nn.Identity)
    x = bytes_(16)
    with torch.no_grad():
        tokens = embed(x)
        vectors = (embed.byte_embed(x) + embed.position.weight[:16]).reshape(2, 4, 32)
        expected = F.layer_norm(embed.token_proj(F.layer_norm(vectors, (32,))), (32,))
        torch.testing.assert_close(tokens, expected, rtol=0, atol=1e-5)  # init: unit affine
    # the paper's concatenation keeps P * D_G == width unprojected
    assert isinstance(build(global_byte_dim=8).global_model.embed.token_proj, nn.Identity)


def test_dense_context_maps_the_whole_parent_vector_to_every_position():
    split, dense = build().local_model, build(context_proj="dense").local_model
    assert dense.parent_to_child.weight.shape == (4 * 16, 32)
    assert dense.parent_to_child.bias is not None and isinstance(dense.parent_proj, nn.Identity)
    parent = torch.randn(3, 32)
    moved = parent.clone()
    moved[:, :8] += 1.0  # the slice the paper's w_GL gives position 0 only
    with torch.no_grad():
        assert torch.equal(split.context(parent)[:, 1:], split.context(moved)[:, 1:])
        assert not torch.allclose(dense.context(parent)[:, 1:], dense.context(moved)[:, 1:])
        layer = dense.parent_to_child
        expected = (parent @ layer.weight.T + layer.bias).reshape(3, 4, 16)
        torch.testing.assert_close(dense.context(parent), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("first_byte", ["context", "previous_patch"])
def test_first_byte_of_a_patch_is_predicted_by_its_own_or_the_previous_patchs_sequence(
    first_byte,
):
    model = build(first_byte=first_byte, global_layers=1, local_layers=1)
    padded = first_byte == "previous_patch"
    assert model.local_model.position.num_embeddings == 4 + padded  # the pad has a position
    assert model.config.stages[-1].sequence == 4 + padded
    with torch.no_grad():  # cut the global model off: the local sequences alone remain
        model.local_model.parent_to_child.weight.zero_()
    x = bytes_(16, batch=1)
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 256  # the last byte of patch 1
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    if padded:  # patch 1's sequence reads byte 7 and predicts byte 8, patch 2's first byte
        assert not torch.allclose(a[8], b[8])
    else:  # patch 2's sequence starts afresh from the pad and its (now empty) context
        assert torch.equal(a[8], b[8]) and torch.equal(a[8], a[4]) and torch.equal(a[8], a[0])
    # either way nothing else reads byte 7 without the global model
    assert torch.equal(a[:8], b[:8]) and torch.equal(a[9:], b[9:])


def test_untied_head_with_a_bias_trains_through_the_chunked_loss():
    model = build(tie_embeddings=False, head_bias=True)
    assert model.head.weight is not model.local_model.embed.byte_embed.weight
    with torch.no_grad():
        model.head.bias.copy_(torch.linspace(-2, 2, 256))
    x = bytes_()
    with torch.no_grad():
        reference = F.cross_entropy(model(x).flatten(0, 1), x.flatten(), reduction="sum")
        for chunk in (None, 7):  # the training loss reads the bias too
            chunked = cross_entropy_sum(model.hidden(x), model.head, x, chunk)
            torch.testing.assert_close(chunked, reference, rtol=1e-6, atol=1e-4)
    assert build().head.bias is None and build(architecture="peer").head.bias is not None


def test_embed_init_std_sets_the_byte_embeddings_and_pads_apart_from_the_matrices():
    model = build(seed=1, embed_init_std=1.0, global_layers=1)
    for stage in model.stages:
        assert 0.75 < stage.embed.byte_embed.weight.std().item() < 0.95  # truncated at 2 std
        assert 0.4 < stage.pad.std().item() < 1.6
        assert stage.transformer.blocks[0].attn.qkv.weight.std().item() < 0.02
    assert model.global_model.embed.position.weight.std().item() < 0.02


def test_ordinal_byte_init_makes_rows_smooth_in_the_byte_value_at_the_same_std():
    def cosine(table: torch.Tensor, a: int, b: int) -> float:
        return F.cosine_similarity(table[a], table[b], dim=0).item()

    random = build(seed=1, architecture="peer", global_layers=1, global_byte_dim=16)
    ordinal = build(
        seed=1, architecture="peer", global_layers=1, global_byte_dim=16, byte_init="ordinal"
    )
    tables = {"head": (ordinal.head.weight, random.head.weight)}
    for i, (stage, plain) in enumerate(zip(ordinal.stages, random.stages)):
        tables[f"stage {i}"] = (stage.embed.byte_embed.weight, plain.embed.byte_embed.weight)
    for name, (smooth, plain) in tables.items():
        assert smooth.shape == plain.shape
        assert abs(smooth.std().item() / plain.std().item() - 1) < 0.25, name
        with torch.no_grad():
            near = [cosine(smooth, v, v + 1) for v in range(0, 255, 15)]
            far = [abs(cosine(smooth, v, (v + 128) % 256)) for v in range(0, 256, 15)]
            plain_near = [cosine(plain, v, v + 1) for v in range(0, 255, 15)]
        # neighbours alike, distant ones not (16-wide rows: chance cosines of ~0.25 either way)
        assert sum(near) / len(near) > 0.7 and sum(far) / len(far) < 0.35, name
        assert sum(plain_near) / len(plain_near) < 0.3, name  # random rows: no such order
        assert torch.linalg.matrix_rank(smooth.double()) == min(smooth.shape), name  # distinct
    # everything else is the random model's, weight for weight (the rows are drawn last)
    state, plain_state = ordinal.state_dict(), random.state_dict()
    moved = {"head.weight", *(k for k in state if k.endswith("embed.byte_embed.weight"))}
    assert len(moved) == 3
    for key in state:
        assert torch.equal(state[key], plain_state[key]) != (key in moved), key


def test_ordinal_byte_init_with_a_tied_head_sets_the_embeddings_it_shares():
    model = build(seed=2, byte_init="ordinal")  # paper: the head is E_local
    assert model.head.weight is model.local_model.embed.byte_embed.weight
    table = model.head.weight.detach()
    assert F.cosine_similarity(table[100], table[101], dim=0) > 0.6


def test_head_dim_sets_the_attention_width_apart_from_the_model_width():
    model = build(head_dim=6, global_heads=3)  # 3 heads do not divide 32: fine with head_dim
    attn = model.global_model.transformer.blocks[0].attn
    assert attn.qkv.weight.shape == (3 * 18, 32) and attn.proj.weight.shape == (32, 18)
    local = model.local_model.transformer.blocks[0].attn
    assert local.qkv.weight.shape == (3 * 12, 16)  # 2 heads of 6
    cache = model.global_model.transformer.new_caches(1, 4, model.head.weight)[0]
    assert cache.keys.shape == (1, 3, 4, 6)
    # the FLOPs module counts the attention width
    matrices = sum(
        m.weight.numel()
        for stage in model.stages
        for m in stage.transformer.modules()
        if isinstance(m, nn.Linear)
    )
    assert non_embedding_parameters(model.config) == matrices


def test_peer_is_megabyte_pytorchs_architecture():
    config = MegabyteConfig(**SIZES, architecture="peer")
    assert (config.token_shift, config.norm, config.positions, config.patch_embedder) == (
        True,
        "rmsnorm",
        ("none",),
        "norm_proj",
    )
    assert (config.context_proj, config.tie_embeddings, config.head_bias) == ("dense", False, True)
    assert config.first_byte == "previous_patch"
    assert (config.activation, config.embed_init_std, config.head_dim) == ("gelu", 1.0, 64)
    # a field set explicitly wins over the architecture, and over a preset's sizes alike
    assert MegabyteConfig(**SIZES, architecture="peer", norm="layernorm").norm == "layernorm"
    tiny = MegabyteConfig.preset("imagenet64-tiny", architecture="peer", tie_embeddings=True)
    assert tiny.global_dim == 192 and tiny.tie_embeddings and tiny.norm == "rmsnorm"


# -- cached decoding equals the full forward pass --------------------------------------------

OPTIONS = {
    "token_shift": dict(token_shift=True),
    "rmsnorm": dict(norm="rmsnorm", qk_norm=True),
    "positions_none": dict(positions=("none",)),
    "positions_rotary": dict(positions=("rotary",)),
    "positions_mixed": dict(positions=("rotary", "learned")),
    "norm_proj": dict(patch_embedder="norm_proj"),
    "dense_context": dict(context_proj="dense"),
    "head_bias_untied": dict(tie_embeddings=False, head_bias=True),
    "embed_init_std": dict(embed_init_std=1.0),
    "head_dim": dict(head_dim=6, global_heads=3),
    "first_byte": dict(first_byte="previous_patch"),
    "first_byte_rotary": dict(first_byte="previous_patch", positions=("learned", "rotary")),
    "peer": dict(architecture="peer"),
    "three_stage_shift": dict(
        patch_sizes=(8, 2),
        token_shift=True,
        patch_embedder="norm_proj",
        positions=("rotary", "none", "learned"),
        context_proj="dense",
    ),
    "cross_patch_shift": dict(cross_patch=2, token_shift=True),
}


def decode(model: Megabyte, x: torch.Tensor, start: int, static: bool) -> list[torch.Tensor]:
    """Logits of every byte from `start` on, by the eager decoder or (static) by the compiled
    decoder's static step, run eagerly here (the graph itself is tested below)."""
    decoder = model.decoder(x.clone(), compile=static)
    if static:
        decoder.step = megabyte_static_step
    return [decoder.prefill(t) if t == start else decoder.advance(t) for t in range(start, 48)]


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_cached_logits_equal_the_full_forward_pass(name):
    model = build(**OPTIONS[name])
    x = bytes_()
    with torch.inference_mode():
        full = model(x)
        scale = full.abs().max().item()
        kinds = [False] if model.config.cross_patch else [False, True]
        for static in kinds:
            # from the start, a patch's first byte, within a patch (the eager prefill is shared)
            for start in (0, 9) if static else (0, 8, 9):
                for t, logits in zip(range(start, 48), decode(model, x, start, static)):
                    torch.testing.assert_close(
                        logits,
                        full[:, t],
                        rtol=0,
                        atol=2e-6 * max(1.0, scale),
                        msg=lambda m, t=t, s=static: f"{name} static={s} byte {t}: {m}",
                    )


@pytest.mark.slow  # a minute of compiling on 2 cores; the default run compiles the cross model
def test_compiled_decoding_of_every_option_at_once():
    # One compiled graph per step kind; the options' code paths (token shift under the position
    # mask, norm_proj in a middle stage, the dense context, rotary/none/learned, head bias) all
    # inside them.
    model = build(**OPTIONS["three_stage_shift"], architecture="peer", head_dim=4)
    x = bytes_(batch=1)
    with torch.inference_mode():
        full = model(x)
        decoder = model.decoder(x.clone(), compile=True)
        assert isinstance(decoder, CompiledMegabyteDecoder)
        for t in range(5, 48):
            logits = decoder.prefill(t) if t == 5 else decoder.advance(t)
            torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        (dict(architecture="mine"), ["architecture", "'mine'", "peer", "paper", "tuned"]),
        (dict(norm="batchnorm"), ["norm", "rmsnorm"]),
        (dict(positions=("learned", "sinusoidal")), ["positions", "sinusoidal"]),
        (dict(positions=("learned",) * 3), ["positions", "1 or 2"]),
        (dict(patch_embedder="conv"), ["patch_embedder", "norm_proj"]),
        (dict(context_proj="full"), ["context_proj", "dense"]),
        (dict(token_shift=1), ["token_shift"]),
        (dict(head_bias="yes"), ["head_bias"]),
        (dict(head_dim=0), ["head_dim"]),
        (dict(embed_init_std=0.0), ["embed_init_std"]),
        (dict(head_dim=5, positions=("rotary",)), ["global_heads", "head_dim", "rotary"]),
        (dict(global_heads=3), ["global_heads", "global_dim"]),  # without head_dim: divide
        (dict(first_byte="next"), ["first_byte", "previous_patch"]),
        (dict(byte_init="smooth"), ["byte_init", "ordinal"]),
        (dict(first_byte="previous_patch", cross_patch=2), ["cross_patch", "first_byte"]),
    ],
)
def test_bad_architecture_values_name_the_field(fields, names):
    with pytest.raises(ValueError) as error:
        MegabyteConfig(**{**SIZES, **fields})
    for name in names:
        assert name in str(error.value), str(error.value)


def test_to_dict_stores_resolved_values_and_round_trips():
    config = MegabyteConfig(**SIZES, architecture="peer", norm="layernorm", positions="rotary")
    stored = config.to_dict()
    assert stored["architecture"] == "peer" and stored["norm"] == "layernorm"
    assert stored["positions"] == ("rotary",) and stored["embed_init_std"] == 1.0
    assert all(stored[name] is not None for name in NEW_FIELDS if name != "head_dim")
    assert MegabyteConfig(**stored) == config
    as_json = {**stored, "positions": list(stored["positions"])}  # as a JSON/YAML file has it
    assert MegabyteConfig(**as_json) == config
    # the stored values, not the table, make the model: another table entry changes nothing
    assert MegabyteConfig(**{**stored, "architecture": "paper"}).to_dict() == {
        **stored,
        "architecture": "paper",
    }
    paper = MegabyteConfig(**SIZES).to_dict()
    assert paper["embed_init_std"] == paper["init_std"] and paper["head_dim"] is None
    old = {k: v for k, v in paper.items() if k not in NEW_FIELDS}
    assert MegabyteConfig(**old) == MegabyteConfig(**SIZES)


def test_every_architecture_names_only_architecture_fields():
    for name in ARCHITECTURES:
        settings = architecture_settings(name)
        assert set(settings) == set(ARCHITECTURES["paper"])
        MegabyteConfig(**SIZES, architecture=name)  # and builds


def test_peer_computes_what_megabyte_pytorch_computes():
    # megabyte-pytorch (the benchmark-only extra) with its weights copied into "peer": the same
    # logits (its logits[:, t] predict byte t + 1, ours byte t) and the same loss.
    megabyte_pytorch = pytest.importorskip("MEGABYTE_pytorch.megabyte")
    torch.manual_seed(0)
    peer = megabyte_pytorch.MEGABYTE(
        num_tokens=256,
        dim=(32, 16),
        depth=(2, 2),
        max_seq_len=(12, 4),
        heads=2,
        dim_head=8,
        pad_id=-1,  # no byte value ignored in its loss
    ).eval()
    ours = build(global_byte_dim=16, global_heads=2, architecture="peer", head_dim=8)
    with torch.no_grad():
        for p in peer.parameters():  # off their init: norm gains and biases matter too
            p.add_(0.1 * torch.randn_like(p))
        ours.global_model.pad.copy_(peer.start_tokens[0])
        ours.local_model.pad.copy_(peer.start_tokens[1])
        ours.local_model.embed.byte_embed.load_state_dict(peer.token_embs[0].state_dict())
        embed, theirs = ours.global_model.embed, peer.token_embs[1]
        for mine, index in (
            (embed.byte_embed, 0),
            (embed.in_norm, 2),
            (embed.token_proj, 3),
            (embed.out_norm, 4),
        ):
            mine.load_state_dict(theirs[index].state_dict())
        for stage, transformer in zip(ours.stages, peer.transformers):
            for block, (attn, ff) in zip(stage.transformer.blocks, transformer.layers):
                block.attn_norm.weight.copy_(attn.norm.g)
                block.attn.qkv.weight.copy_(torch.cat([attn.to_q.weight, attn.to_kv.weight]))
                block.attn.proj.weight.copy_(attn.to_out.weight)
                block.mlp_norm.weight.copy_(ff[0].g)
                block.mlp.up.load_state_dict(ff[1].state_dict())
                block.mlp.down.load_state_dict(ff[4].state_dict())
            stage.transformer.norm.weight.copy_(transformer.norm.g)
        link = peer.to_next_transformer_projections[0][1]
        ours.local_model.parent_to_child.load_state_dict(link.state_dict())
        ours.head.load_state_dict(peer.to_logits.state_dict())
        x = bytes_()
        logits = ours(x)
        torch.testing.assert_close(logits[:, 1:], peer(x)[:, :-1], rtol=0, atol=1e-5)
        loss = F.cross_entropy(logits.flatten(0, 1), x.flatten())
        torch.testing.assert_close(loss, peer(x, return_loss=True), rtol=1e-6, atol=1e-6)
