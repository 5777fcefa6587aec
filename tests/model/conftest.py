import pytest
import torch

from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig


def tiny_megabyte(**options) -> Megabyte:
    fields = dict(
        patch_size=4,
        max_seq_len=48,
        global_dim=32,
        global_layers=2,
        global_heads=4,
        local_dim=16,
        local_layers=2,
        local_heads=2,
    )
    fields.update(options)
    if "patch_sizes" in fields:
        fields.pop("patch_size")
    torch.manual_seed(0)
    return Megabyte(MegabyteConfig(**fields)).eval()


def tiny_transformer(**options) -> ByteTransformer:
    fields = dict(max_seq_len=48, dim=32, layers=2, heads=4)
    fields.update(options)
    torch.manual_seed(0)
    return ByteTransformer(ByteTransformerConfig(**fields)).eval()


# Every MEGABYTE option, alone and combined, plus the N-stage model.
MEGABYTE_VARIANTS = {
    "plain": {},
    "P=3": dict(patch_size=3),
    "P=8": dict(patch_size=8),
    "cross_patch": dict(cross_patch=2),
    "cross_patch_full": dict(cross_patch=4),
    "conv_encoder": dict(conv_encoder=True),
    "qk_norm": dict(qk_norm=True),
    "rotary": dict(rotary=True),
    "projected_global": dict(global_dim=36, global_heads=3),
    "gelu_untied": dict(activation="gelu", tie_embeddings=False),
    "three_stage": dict(patch_sizes=(8, 2)),
    "three_stage_all": dict(
        patch_sizes=(12, 4),
        stage_dims=(24,),
        stage_layers=(1,),
        stage_heads=(2,),
        cross_patch=2,
        conv_encoder=True,
        qk_norm=True,
    ),
    "four_stage": dict(patch_sizes=(16, 4, 2)),
    # the architecture options (test_architecture.py): megabyte-pytorch's, and N stages with them
    "peer": dict(architecture="peer"),
    "peer_three_stage": dict(
        architecture="peer",
        patch_sizes=(8, 2),
        positions=("rotary", "learned", "none"),
    ),
    "peer_cross_patch": dict(architecture="peer", cross_patch=2, first_byte="context"),
}


@pytest.fixture(params=sorted(MEGABYTE_VARIANTS))
def variant(request):
    return request.param, MEGABYTE_VARIANTS[request.param]


@pytest.fixture
def make_megabyte():
    return tiny_megabyte


@pytest.fixture
def make_transformer():
    return tiny_transformer
