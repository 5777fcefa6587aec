"""The paper's model sizes (Table 15) as named presets."""

import pytest
import torch

from multibyte.flops import stack_parameters
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.model.presets import MEGABYTE_PRESETS

# The paper names its sizes after GPT-3 models (Table 14), whose counts include a 50,257-entry
# token table and 2,048 learned positions at the model width. A byte model has neither, so the
# comparable figure is the named size less those embeddings: 52,305 * D.
GPT3_EMBEDDING_ROWS = 50257 + 2048

PAPER_SIZES = {  # preset: ((global params, D, L), (local params, D, L))
    "imagenet64": ((2.7e9, 2560, 32), (350e6, 1024, 24)),
    "audio": ((350e6, 1024, 24), (125e6, 768, 12)),
    "pg19": ((758e6, 2048, 14), (262e6, 1024, 18)),
}


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_presets_match_table_15(name):
    config = MegabyteConfig.preset(name)
    (global_size, global_dim, global_layers), (local_size, local_dim, local_layers) = PAPER_SIZES[
        name
    ]
    assert (config.global_dim, config.global_layers) == (global_dim, global_layers)
    assert (config.local_dim, config.local_layers) == (local_dim, local_layers)
    with torch.device("meta"):  # count without allocating billions of weights
        model = Megabyte(config)
    global_params = sum(p.numel() for p in model.stages[0].transformer.parameters())
    local_params = sum(p.numel() for p in model.stages[1].transformer.parameters())
    for ours, (paper, dim) in (
        (global_params, (global_size, global_dim)),
        (local_params, (local_size, local_dim)),
    ):
        comparable = paper - GPT3_EMBEDDING_ROWS * dim
        assert abs(ours / comparable - 1) < 0.10, (name, ours, comparable)
    assert abs(global_params / stack_parameters(global_dim, global_layers, 4.0) - 1) < 0.01


def test_presets_have_the_papers_patches_and_lengths():
    assert (
        MegabyteConfig.preset("imagenet64").patch_size,
        MegabyteConfig.preset("imagenet64").max_seq_len,
    ) == (12, 12288)
    assert (
        MegabyteConfig.preset("audio").patch_size,
        MegabyteConfig.preset("audio").max_seq_len,
    ) == (32, 524288)
    assert (
        MegabyteConfig.preset("pg19").patch_size,
        MegabyteConfig.preset("pg19").max_seq_len,
    ) == (8, 8192)


@pytest.mark.parametrize("name", sorted(n for n in MEGABYTE_PRESETS if n.endswith("-tiny")))
def test_tiny_presets_build_and_run_on_cpu(name):
    config = MegabyteConfig.preset(name)
    model = Megabyte(config)
    assert sum(p.numel() for p in model.parameters()) < 20e6
    x = torch.randint(0, 256, (1, 4 * config.patch_size))
    assert model(x).shape == (1, 4 * config.patch_size, 256)


def test_unknown_preset_and_overrides():
    with pytest.raises(ValueError, match="unknown MEGABYTE preset"):
        MegabyteConfig.preset("imagenet128")
    assert MegabyteConfig.preset("pg19-tiny", cross_patch=4).cross_patch == 4
