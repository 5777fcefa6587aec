from dataclasses import replace

import pytest

from multibyte.flops import (
    MATCH_LIMITS,
    flops_per_byte,
    matched_baseline,
    non_embedding_parameters,
    paper_estimate,
    stack_parameters,
)
from multibyte.model import ByteTransformerConfig, MegabyteConfig


def test_megabyte_flops_by_hand():
    # P=4, T=32: K=8 patches. D_G = 64/4 = 16, so no patch projection.
    config = MegabyteConfig(
        patch_size=4,
        max_seq_len=32,
        global_dim=64,
        global_layers=2,
        global_heads=4,
        local_dim=32,
        local_layers=1,
        local_heads=4,
    )
    d_g, d_l = 64, 32
    global_token = 2 * 2 * (4 * d_g**2 + 2 * d_g * 4 * d_g) + 4 * 2 * d_g * 8
    local_token = 2 * 1 * (4 * d_l**2 + 2 * d_l * 4 * d_l) + 4 * 1 * d_l * 4
    w_gl = 2 * 16 * d_l  # one D_G -> D_L map per byte
    head = 2 * d_l * 256
    expected = global_token / 4 + local_token + w_gl + head
    flops = flops_per_byte(config)
    assert flops.forward == pytest.approx(expected)
    assert flops.train == pytest.approx(3 * expected)


def test_transformer_flops_by_hand():
    config = ByteTransformerConfig(max_seq_len=128, dim=32, layers=3, heads=4)
    expected = 2 * 3 * (4 * 32**2 + 2 * 32 * 128) + 4 * 3 * 32 * 128 + 2 * 32 * 256
    assert flops_per_byte(config).forward == pytest.approx(expected)
    assert flops_per_byte(config, seq_len=64).forward < expected


def test_paper_estimate_is_the_leading_term():
    mega = MegabyteConfig.preset("pg19")
    m_g = 14 * 12 * 2048**2
    m_l = 18 * 12 * 1024**2
    assert paper_estimate(mega) == pytest.approx(2 * (m_g / 8 + m_l))
    assert non_embedding_parameters(mega) == m_g + m_l
    # the full count adds attention and projections, a modest amount at T = 8192
    assert 1.0 < flops_per_byte(mega).forward / paper_estimate(mega) < 1.5


def test_megabyte_needs_fewer_flops_than_an_equal_size_transformer():
    mega = MegabyteConfig.preset("pg19")
    baseline = ByteTransformerConfig(max_seq_len=8192, dim=2048, layers=14 + 5, heads=16)
    assert flops_per_byte(mega).train < flops_per_byte(baseline).train / 2


# The byte transformers `make demo` trains next to the three tiny recipes (their dims and depths
# as the quickstart's FLOPs matcher chose them before there was one matcher): the demo's
# numbers change if these do.
DEMO_BASELINES = {
    "imagenet64-tiny": (12288, dict(max_seq_len=12288, activation="gelu"), (32, 1)),
    "audio-tiny": (4096, dict(max_seq_len=16384, activation="gelu"), (32, 1)),
    "pg19-tiny": (1024, dict(max_seq_len=1024, activation="gelu"), (32, 6)),
}


@pytest.mark.parametrize("preset", sorted(DEMO_BASELINES))
def test_the_flops_matcher_keeps_the_demos_baselines(preset):
    seq_len, overrides, (dim, layers) = DEMO_BASELINES[preset]
    mega = MegabyteConfig.preset(preset, **overrides)
    baseline = matched_baseline(mega, seq_len)
    assert (baseline.dim, baseline.layers, baseline.heads) == (dim, layers, 1)
    assert baseline.max_seq_len == seq_len and baseline.activation == "gelu"


def test_the_flops_matcher_picks_the_closest_shape_in_its_grid():
    mega = MegabyteConfig.preset("pg19-tiny", max_seq_len=1024)
    target = flops_per_byte(mega, 1024).train
    best = matched_baseline(mega, 1024, by="flops")
    gap = abs(flops_per_byte(best, 1024).train / target - 1)
    for dim in MATCH_LIMITS["flops"]["dims"]:
        for layers in range(1, MATCH_LIMITS["flops"]["max_layers"] + 1):
            other = replace(best, dim=dim, layers=layers, heads=max(1, dim // 32))
            assert gap <= abs(flops_per_byte(other, 1024).train / target - 1)
    wider = matched_baseline(mega, 1024, dims=(512,), max_layers=2)  # limits narrow the search
    assert (wider.dim, wider.heads) == (512, 16) and wider.layers <= 2


def test_the_parameter_matcher_matches_non_embedding_parameters():
    mega = MegabyteConfig.preset("imagenet64-small")
    baseline = matched_baseline(mega, 12288, by="params")
    m = non_embedding_parameters(mega)
    assert abs(non_embedding_parameters(baseline) / m - 1) < 0.02
    assert baseline.dim % 64 == 0 and baseline.heads == baseline.dim // 64
    assert baseline.dim >= 16 * baseline.layers  # a usual aspect ratio
    assert baseline.dropout == mega.dropout == 0.1  # trains like the MEGABYTE it is compared to
    # no width in steps of a head, at its nearest depth and a usual aspect ratio, is closer
    gap = abs(non_embedding_parameters(baseline) - m)
    for dim in range(64, 4097, 64):
        layers = max(1, round(m / stack_parameters(dim, 1, 4.0)))
        if dim >= 16 * layers:
            assert abs(stack_parameters(dim, layers, 4.0) - m) >= gap, (dim, layers)


def test_the_matcher_refuses_what_it_would_ignore():
    mega = MegabyteConfig.preset("pg19-tiny")
    with pytest.raises(ValueError, match="by must be one of"):
        matched_baseline(mega, 1024, by="bytes")
    with pytest.raises(ValueError, match="takes limits"):
        matched_baseline(mega, 1024, by="params", dims=(64,))


@pytest.mark.parametrize("architecture", ["paper", "peer", "tuned"])
def test_a_sequence_shorter_than_a_patch_is_counted_not_a_crash(architecture):
    # The last piece of an audio clip can be shorter than one 32-byte patch; training counts
    # FLOPs for every batch shape, so this must be a number (it was a ZeroDivisionError).
    config = MegabyteConfig.preset("audio-tiny", max_seq_len=4096, architecture=architecture)
    short, whole = flops_per_byte(config, 16), flops_per_byte(config, 32)
    assert 0 < short.train <= whole.train and 0 < short.generate <= whole.generate
