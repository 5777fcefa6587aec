import pytest

from multibyte.flops import flops_per_byte, non_embedding_parameters, paper_estimate
from multibyte.model import ByteTransformerConfig, MegabyteConfig


def test_megabyte_flops_by_hand():
    # P=4, T=32: K=8 patches. D_G = 64/4 = 16, so no patch projection.
    config = MegabyteConfig(
        patch_size=4, max_seq_len=32, global_dim=64, global_layers=2, global_heads=4,
        local_dim=32, local_layers=1, local_heads=4,
    )  # fmt: skip
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
