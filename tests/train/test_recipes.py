"""Recipes name a model preset plus overrides, and LightningCLI resolves them to full configs."""

import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from multibyte.model import MegabyteConfig
from multibyte.model.presets import MEGABYTE_PRESETS
from multibyte.train.cli import MultibyteCLI
from multibyte.train.data import ByteDataModule
from multibyte.train.module import ByteLM

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


class ParseOnly(MultibyteCLI):
    """The recipe as `multibyte fit` parses it, without building a trainer or a model."""

    def instantiate_classes(self) -> None:
        pass


def resolved_model_config(*args: str) -> MegabyteConfig:
    with mock.patch.object(sys, "argv", ["multibyte"]):  # only `args` are the command line
        cli = ParseOnly(ByteLM, ByteDataModule, args=list(args), run=False)
    model = cli.config["model"]["model"]
    assert model["class_path"] == "multibyte.Megabyte"
    return MegabyteConfig(**model["init_args"]["config"].as_dict())


def declared_model_config(recipe: Path) -> dict:
    return dict(yaml.safe_load(recipe.read_text())["model"]["model"]["init_args"]["config"])


@pytest.mark.parametrize("recipe", RECIPES, ids=[path.stem for path in RECIPES])
def test_a_recipe_is_its_preset_plus_its_declared_overrides(recipe):
    declared = declared_model_config(recipe)
    preset = declared.pop("preset_name")
    assert preset in MEGABYTE_PRESETS
    assert resolved_model_config("--config", str(recipe)) == MegabyteConfig.preset(
        preset, **declared
    )
    # overrides change the preset, they do not repeat it (max_seq_len is the recipe's own choice:
    # it must cover data.seq_len, which the command checks against it)
    repeated = [k for k, v in declared.items() if MEGABYTE_PRESETS[preset].get(k) == v]
    assert set(repeated) <= {"max_seq_len"}, f"{recipe.name} repeats its preset: {repeated}"
    assert "presets.py" in recipe.read_text()  # says where its sizes come from


# What pg19-tiny.yaml sets beside its preset (the tuned architecture).
TUNED_RECIPE = dict(
    architecture="tuned", global_byte_dim=96, dropout=0.1, first_byte="context", cross_patch=4
)


def test_command_line_overrides_win_over_the_recipe_and_its_preset():
    recipe = str(Path(RECIPES[0]).with_name("pg19-tiny.yaml"))
    config = resolved_model_config(
        "--config",
        recipe,
        "--model.model.init_args.config.global_dim",
        "64",
        "--model.model.init_args.config.activation",
        "relu",
        "--model.model.init_args.config.local_dim",
        "128",
    )
    expected = MegabyteConfig.preset(
        "pg19-tiny",
        max_seq_len=1024,
        global_dim=64,
        activation="relu",
        local_dim=128,
        **TUNED_RECIPE,
    )
    assert config == expected
    assert config.global_layers == MEGABYTE_PRESETS["pg19-tiny"]["global_layers"]


def test_a_preset_can_be_chosen_on_the_command_line():
    recipe = str(Path(RECIPES[0]).with_name("pg19-tiny.yaml"))
    config = resolved_model_config(
        "--config", recipe, "--model.model.init_args.config.preset_name", "audio-tiny"
    )
    assert config == MegabyteConfig.preset("audio-tiny", max_seq_len=1024, **TUNED_RECIPE)
