"""multibyte.checkpoint: export and load, refusals, and recorded seed-0 models (numerics)."""

from pathlib import Path

import pytest
import torch

import multibyte
from multibyte.checkpoint import (
    CheckpointError,
    build_model,
    export,
    model_state_dict,
    read_checkpoint,
)
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def tiny_megabyte(**options) -> Megabyte:
    fields = dict(
        patch_size=4,
        max_seq_len=32,
        global_dim=16,
        global_layers=1,
        global_heads=2,
        local_dim=8,
        local_layers=1,
        local_heads=2,
    )
    fields.update(options)
    if "patch_sizes" in options:
        del fields["patch_size"]
    torch.manual_seed(0)
    return Megabyte(MegabyteConfig(**fields))


@pytest.fixture(scope="module")
def expected():
    return torch.load(FIXTURES / "expected.pt", weights_only=True)


# -- export and load ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        tiny_megabyte(cross_patch=2, conv_encoder=True),
        tiny_megabyte(patch_sizes=(8, 2), tie_embeddings=False),
        ByteTransformer(ByteTransformerConfig(max_seq_len=32, dim=16, layers=1, heads=2)),
    ],
    ids=["megabyte", "three_stage", "byte_transformer"],
)
def test_export_then_load_gives_the_same_model_in_eval_mode(model, tmp_path):
    export(model.train(), tmp_path / "model.ckpt", modality={"name": "image", "size": 8})
    loaded = multibyte.load(tmp_path / "model.ckpt")
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    assert loaded.modality == {"name": "image", "size": 8}
    x = torch.randint(0, 256, (2, 30))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    saved = read_checkpoint(tmp_path / "model.ckpt")["multibyte"]
    assert saved["model"]["config"] == model.config.to_dict()  # plain data, all fields resolved


def test_a_preset_is_stored_as_its_resolved_sizes(tmp_path):
    model = Megabyte(MegabyteConfig.preset("pg19-tiny", max_seq_len=64, global_layers=1))
    export(model, tmp_path / "model.ckpt")
    config = read_checkpoint(tmp_path / "model.ckpt")["multibyte"]["model"]["config"]
    assert "preset_name" not in config
    assert config["global_dim"] == 256 and config["global_layers"] == 1
    assert multibyte.load(tmp_path / "model.ckpt").config == model.config


def test_lightning_and_compiled_key_prefixes_are_removed():
    state = {"model.global_model.pad": 1, "model.local_model._orig_mod.pad": 2, "head.weight": 3}
    cleaned = model_state_dict({"state_dict": state})
    assert cleaned == {"global_model.pad": 1, "local_model.pad": 2, "head.weight": 3}


# -- refusals ----------------------------------------------------------------------------------


def test_load_refuses_a_file_that_would_run_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"multibyte": Payload(), "state_dict": {}}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing to load .*evil.ckpt"):
        multibyte.load(tmp_path / "evil.ckpt")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"state_dict": {}}, "not a multibyte checkpoint"),
        ([1, 2, 3], "not a multibyte checkpoint"),
        (b"not a zip".ljust(64, b"\0"), "not a readable checkpoint"),
    ],
    ids=["no_entry", "not_a_dict", "garbage"],
)
def test_load_refuses_what_is_not_a_multibyte_checkpoint(payload, message, tmp_path):
    path = tmp_path / "bad.ckpt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        multibyte.load(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"format": 1}, "no model description"),
        ({"format": 1, "model": "Megabyte"}, "model entry is str"),
        ({"format": 1, "model": {"class": "Megabyte"}}, "Megabyte config is NoneType"),
        ({"format": 1, "model": {"class": "Megabyte", "config": {"bogus": 1}}}, "bogus"),
        ({"format": 1, "model": {"class": "Megabyte", "config": {"patch_size": 0}}}, "patch_size"),
        (
            {"format": 1, "model": {"class": "Megabyte", "config": {}}, "modality": "image"},
            "modality options are not a dict",
        ),
    ],
    ids=[
        "no_model",
        "model_not_a_dict",
        "no_config",
        "unknown_field",
        "refused_value",
        "modality_not_a_dict",
    ],
)
def test_load_refuses_a_malformed_model_description_naming_the_file(entry, message, tmp_path):
    torch.save({"multibyte": entry, "state_dict": {}}, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match=f"odd.ckpt.*{message}"):
        multibyte.load(ckpt_path=tmp_path / "odd.ckpt")


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        multibyte.load(tmp_path / "missing.ckpt")


def test_unknown_model_class_and_mismatched_weights_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="unknown model class 'GPT'"):
        build_model({"class": "GPT", "config": {}})
    model = tiny_megabyte()
    export(model, tmp_path / "model.ckpt")
    checkpoint = read_checkpoint(tmp_path / "model.ckpt")
    del checkpoint["state_dict"]["local_model.pad"]
    checkpoint["state_dict"]["local_model.extra"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match="missing.*local_model.pad.*unexpected.*extra"):
        multibyte.load(tmp_path / "edited.ckpt")


# -- recorded seed-0 models (tests/data/checkpoints, made by make_fixtures.py there) ---------


@pytest.mark.parametrize("name", ["two_stage", "three_stage"])
def test_recorded_checkpoints_load_with_the_same_logits(name, expected):
    model = multibyte.load(FIXTURES / f"{name}.ckpt")
    with torch.no_grad():
        logits = model(expected["inputs"])
    torch.testing.assert_close(logits, expected[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["two_stage", "three_stage"])
def test_the_same_seed_gives_the_recorded_weights(name, expected):
    # The order weights are drawn in fixes what a seed gives, so every recipe's figures.
    spec = read_checkpoint(FIXTURES / f"{name}.ckpt")["multibyte"]["model"]
    torch.manual_seed(expected["seed"])
    fresh = Megabyte(MegabyteConfig(**spec["config"]))
    saved = multibyte.load(FIXTURES / f"{name}.ckpt")
    fresh_state, saved_state = fresh.state_dict(), saved.state_dict()
    assert list(fresh_state) == list(saved_state)
    for key, value in fresh_state.items():
        assert torch.equal(value, saved_state[key]), key
