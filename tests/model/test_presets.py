"""The paper's model sizes (Table 15) as named presets."""

import pytest
import torch

from multibyte.flops import stack_parameters
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.model.config import DEFAULTS
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
    global_params = sum(p.numel() for p in model.global_model.transformer.parameters())
    local_params = sum(p.numel() for p in model.local_model.transformer.parameters())
    for ours, (paper, dim) in (
        (global_params, (global_size, global_dim)),
        (local_params, (local_size, local_dim)),
    ):
        comparable = paper - GPT3_EMBEDDING_ROWS * dim
        assert abs(ours / comparable - 1) < 0.10, (name, ours, comparable)
    assert abs(global_params / stack_parameters(global_dim, global_layers, 4.0) - 1) < 0.01


@pytest.mark.parametrize("name", sorted(n for n in MEGABYTE_PRESETS if n.endswith("-tiny")))
def test_tiny_presets_build_and_run_on_cpu(name):
    config = MegabyteConfig.preset(name)
    model = Megabyte(config)
    assert sum(p.numel() for p in model.parameters()) < 20e6
    x = torch.randint(0, 256, (1, 4 * config.patch_size))
    assert model(x).shape == (1, 4 * config.patch_size, 256)


def test_unknown_preset_is_refused_with_the_known_names():
    with pytest.raises(
        ValueError, match="preset_name: unknown MEGABYTE preset 'imagenet128'.*pg19"
    ):
        MegabyteConfig.preset("imagenet128")


def test_a_preset_fills_only_the_fields_left_unset():
    preset = MEGABYTE_PRESETS["pg19"]
    config = MegabyteConfig(preset_name="pg19", global_layers=2, cross_patch=4)
    assert config.global_layers == 2 and config.cross_patch == 4  # explicit values win
    assert config.global_dim == preset["global_dim"] and config.dropout == preset["dropout"]
    # an explicit value equal to the built-in default still wins over the preset's
    assert MegabyteConfig(preset_name="pg19", dropout=DEFAULTS["dropout"]).dropout == 0.0
    assert MegabyteConfig.preset("pg19", global_layers=2, cross_patch=4) == config
    # without a preset, the built-in defaults
    assert MegabyteConfig().to_dict() == {**MegabyteConfig().to_dict(), **DEFAULTS}


def test_patch_sizes_set_the_patch_size_before_the_preset_does():
    config = MegabyteConfig.preset("pg19-tiny", patch_sizes=(4, 2))
    assert config.patch_size == 4 and config.token_bytes == (4, 2, 1)


@pytest.mark.parametrize("name", sorted(MEGABYTE_PRESETS))
def test_every_preset_sets_only_fields_a_preset_may_set(name):
    # a field outside DEFAULTS has a non-None default, so a preset value for it would be ignored
    assert set(MEGABYTE_PRESETS[name]) <= set(DEFAULTS)
    config = MegabyteConfig.preset(name)
    assert {k: getattr(config, k) for k in MEGABYTE_PRESETS[name]} == MEGABYTE_PRESETS[name]


def test_the_preset_name_is_provenance_not_architecture():
    named = MegabyteConfig.preset("pg19-tiny")
    spelled = MegabyteConfig(**MEGABYTE_PRESETS["pg19-tiny"])
    assert named == spelled and named.to_dict() == spelled.to_dict()
    assert "preset_name" not in named.to_dict()
