"""`multibyte export` and `from_pretrained`: a checkpoint as model.safetensors + config.json +
README.md, loaded without Lightning or pickle, and accepted as `--ckpt` by every command."""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from PIL import Image

import modalities
from multibyte.checkpoint import CheckpointError, export, load
from multibyte.cli import main as cli
from multibyte.compression import model_fingerprint
from multibyte.data.header import HeaderTable
from multibyte.export import ExportError, export_model
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig
from multibyte.model.pretrained import initialisation_skipped

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = dict(
    patch_size=4,
    max_seq_len=64,
    global_dim=32,
    global_layers=1,
    global_heads=2,
    local_dim=16,
    local_layers=1,
    local_heads=2,
)
TEXT = b"Bytes in, bytes out: the same model from a .ckpt or its export."


def tiny_megabyte(seed: int = 0, **overrides) -> Megabyte:
    torch.manual_seed(seed)
    return Megabyte(MegabyteConfig(**{**TINY, **overrides})).eval()


def run(capsys, *argv) -> types.SimpleNamespace:
    """The console script in this process: exit status, stdout, stderr."""
    capsys.readouterr()
    try:
        status = cli([str(a) for a in argv])
    except SystemExit as exit_:  # argparse
        status = exit_.code
    captured = capsys.readouterr()
    return types.SimpleNamespace(status=int(status or 0), out=captured.out, err=captured.err)


def assert_one_line_error(result, *names: str) -> None:
    assert result.status == 2, (result.status, result.err)
    assert "Traceback" not in result.err + result.out
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory) -> Path:
    """A text model (the paper's architecture: tied head) as a small .ckpt."""
    path = tmp_path_factory.mktemp("ckpt") / "text.ckpt"
    export(tiny_megabyte(), path, {"name": "text", "patch_size": 4})
    return path


@pytest.fixture(scope="module")
def text_export(text_ckpt, tmp_path_factory) -> Path:
    return export_model(text_ckpt, tmp_path_factory.mktemp("exports") / "text")


def copy_export(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("model.safetensors", "config.json", "README.md"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


# -- export -> from_pretrained -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: tiny_megabyte(),  # tied head: saved once, tied again on load
        lambda: tiny_megabyte(1, architecture="tuned", first_byte="context", cross_patch=2),
        lambda: tiny_megabyte(2, patch_size=8, patch_sizes=(8, 4), max_seq_len=64),
        lambda: (torch.manual_seed(3), ByteTransformer(ByteTransformerConfig(64, 32, 1, 2)))[1],
    ],
    ids=["paper", "tuned", "three-stage", "transformer"],
)
def test_export_loads_back_to_the_same_logits(make, tmp_path):
    model = make().eval()
    ckpt = tmp_path / "model.ckpt"
    export(model, ckpt, {"name": "text", "patch_size": 4})
    out = export_model(ckpt, tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = type(model).from_pretrained(out)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config and loaded.modality == {"name": "text", "patch_size": 4}
    x = torch.randint(0, 256, (3, 61), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), load(ckpt)(x))
        assert torch.equal(load(out)(x), model(x))  # multibyte.load takes the folder too
    if model.config.tie_embeddings:
        embed = loaded.embed if isinstance(loaded, ByteTransformer) else loaded.local_model.embed
        assert loaded.head.weight is getattr(embed, "byte_embed", embed).weight


def test_save_pretrained_round_trip_without_a_checkpoint(tmp_path):
    model = tiny_megabyte(5, conv_encoder=True, qk_norm=True)
    model.save_pretrained(tmp_path / "m", modality={"name": "image", "size": 8})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = Megabyte.from_pretrained(tmp_path / "m")
    assert loaded.modality == {"name": "image", "size": 8}
    for (name, mine), (other, theirs) in zip(
        model.state_dict().items(), loaded.state_dict().items()
    ):
        assert name == other and mine.dtype == theirs.dtype == torch.float32
        assert torch.equal(mine, theirs), name


def test_loading_reads_no_pickle(text_export, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle or torch.load used to read an export")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load(text_export).modality == {"name": "text", "patch_size": 4}


def test_the_weights_file_is_the_weights_only(text_export):
    config = json.loads((text_export / "config.json").read_text())
    model = Megabyte.from_pretrained(text_export)
    parameters = sum(p.numel() for p in model.parameters())  # the tied head counted once
    assert config["weights"]["parameters"] == parameters
    assert config["weights"]["dtypes"] == ["float32"]
    size = (text_export / "model.safetensors").stat().st_size
    assert config["weights"]["bytes"] == size
    assert 4 * parameters < size < 4 * parameters + 16_384  # the tensors plus a JSON header
    assert config["format"] == "multibyte" and config["format_version"] == 1
    assert config["model"]["class"] == "Megabyte"
    assert config["model"]["config"]["global_dim"] == 32
    assert config["byte_layout"]["kind"] == "modality" and config["byte_layout"]["stream"]


TINY_RECIPES = ["imagenet64-tiny", "audio-tiny", "pg19-tiny", "multimodal-tiny"]


@pytest.mark.parametrize("recipe", TINY_RECIPES)
def test_tiny_recipe_exports_within_five_percent_of_its_float32_weights(recipe, tmp_path):
    settings = yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())
    with initialisation_skipped():  # the values do not matter here; drawing them takes seconds
        model = Megabyte(MegabyteConfig(**settings["model"]["model"]["init_args"]["config"]))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    ckpt = tmp_path / "model.ckpt"
    export(model, ckpt, (settings.get("data") or {}).get("modality"))
    out = export_model(ckpt, tmp_path / recipe)
    folder = sum(p.stat().st_size for p in out.iterdir())
    weights = 4 * sum(p.numel() for p in model.parameters())
    assert folder <= 1.05 * weights, (folder, weights, folder / weights)


# -- every command takes the folder ------------------------------------------------------------


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> types.SimpleNamespace:
    """A multimodal checkpoint (8x8 images, 8 kHz audio, text), its export, and one folder of
    data per modality."""
    root = tmp_path_factory.mktemp("mixture")
    options = [
        modalities.get(name="image", size=8).options,
        modalities.get(name="audio", sample_rate=8000, seq_len=192).options,
        modalities.get(name="text").options,
    ]
    table = HeaderTable.build(options, patch_size=4, data_len=192)
    model = tiny_megabyte(7, max_seq_len=table.seq_len)
    ckpt = root / "mixture.ckpt"
    export(model, ckpt, table.entry())
    rng = np.random.default_rng(0)
    folders = [root / name for name in ("images", "audio", "text")]
    for folder in folders:
        folder.mkdir()
    for i in range(2):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folders[0] / f"img{i}.png")
    tone = 0.1 * np.sin(np.arange(96 * 2) / 5.0).astype(np.float32)
    soundfile.write(folders[1] / "tone.wav", tone, 8000, subtype="PCM_16")
    (folders[2] / "book.txt").write_bytes(TEXT * 4)
    return types.SimpleNamespace(ckpt=ckpt, out=root / "exported", folders=folders, root=root)


def test_multimodal_export_evaluates_per_modality_from_the_folder(mixture, capsys):
    common = ["--limit", "1", "--no-codecs", "--quiet", "--device", "cpu", "--data"]
    first = mixture.root / "ckpt.json"
    result = run(
        capsys, "evaluate", "--ckpt", mixture.ckpt, *common, *mixture.folders, "--json", first
    )
    assert result.status == 0, result.err
    exported = run(capsys, "export", "--ckpt", mixture.ckpt, "--out", mixture.out, "--eval", first)
    assert exported.status == 0, exported.err
    second = mixture.root / "folder.json"
    result = run(
        capsys, "evaluate", "--ckpt", mixture.out, *common, *mixture.folders, "--json", second
    )
    assert result.status == 0, result.err
    reports, again = json.loads(first.read_text()), json.loads(second.read_text())
    assert [r["modality"] for r in again] == ["image", "audio", "text"]
    assert [r["unit"] for r in again] == ["bits/dim", "bits/sample", "bits/byte"]
    for a, b in zip(reports, again):
        assert b["bits_per_byte"] == a["bits_per_byte"] and b["bytes"] == a["bytes"] > 0
    config = json.loads((mixture.out / "config.json").read_text())
    layout = config["byte_layout"]
    assert layout["kind"] == "mixture" and layout["header_length"] % 4 == 0
    assert [m["header"].split()[0] for m in layout["modalities"]] == ["image", "audio", "text"]
    assert {m["window"] for m in layout["modalities"]} == {layout["data_bytes"]}
    assert [e["value_in_unit"] for e in config["evaluation"]] == [
        r["value_in_unit"] for r in reports
    ]
    card = (mixture.out / "README.md").read_text()
    for r in reports:  # each modality's held-out value in its unit
        assert f"| {r['modality']} | {r['value_in_unit']:.4f} | {r['unit']} |" in card


def test_sample_takes_the_folder(mixture, capsys):
    if not mixture.out.is_dir():
        export_model(mixture.ckpt, mixture.out)
    out = mixture.root / "s.png"
    result = run(
        capsys,
        "sample",
        "--ckpt",
        mixture.out,
        "--modality",
        "image",
        "--out",
        out,
        "--n",
        "1",
        "--seed",
        "0",
        "--quiet",
    )
    assert result.status == 0, result.err
    assert Image.open(out).size[0] >= 8


def test_decompressing_across_the_checkpoint_and_its_export_is_exact(
    text_ckpt, text_export, tmp_path, capsys
):
    assert model_fingerprint(load(text_ckpt)) == model_fingerprint(load(text_export))
    source = tmp_path / "note.txt"
    source.write_bytes(TEXT)
    for way, (made_with, read_with) in enumerate(
        [(text_ckpt, text_export), (text_export, text_ckpt)]
    ):
        packed = tmp_path / f"way{way}" / "note.mbz"
        result = run(capsys, "compress", "--ckpt", made_with, source, "--out", packed, "--quiet")
        assert result.status == 0, result.err
        out = tmp_path / f"out{way}"
        result = run(capsys, "decompress", "--ckpt", read_with, packed, "--out", out, "--quiet")
        assert result.status == 0, result.err
        assert (out / "note.txt").read_bytes() == TEXT


# -- bad exports are refused -------------------------------------------------------------------


def truncate(folder: Path) -> str:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return "truncated"


def flip_a_byte(folder: Path) -> str:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    return "damaged"


def edit_config(change):
    def damage(folder: Path) -> str:
        path = folder / "config.json"
        config = json.loads(path.read_text())
        hint = change(config)
        path.write_text(json.dumps(config))
        return hint

    return damage


def wider(config) -> str:
    config["model"]["config"]["global_dim"] = 64
    return "does not match"


def deeper(config) -> str:
    config["model"]["config"]["local_layers"] = 2
    return "does not match"


def newer(config) -> str:
    config["format_version"] = 2
    return "format version 2"


DAMAGES = {
    "truncated": truncate,
    "flipped byte": flip_a_byte,
    "wider config": edit_config(wider),
    "deeper config": edit_config(deeper),
    "other version": edit_config(newer),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_bad_export_is_refused_by_from_pretrained(damage, text_export, tmp_path):
    folder = copy_export(text_export, tmp_path / "bad")
    hint = DAMAGES[damage](folder)
    with pytest.raises(CheckpointError, match=hint):
        Megabyte.from_pretrained(folder)


@pytest.mark.parametrize(
    ("damage", "command"),
    [
        ("truncated", "sample"),
        ("truncated", "evaluate"),
        ("wider config", "evaluate"),
        ("deeper config", "compress"),
        ("flipped byte", "decompress"),
        ("other version", "sample"),
        ("truncated", "export"),
    ],
)
def test_a_bad_export_is_one_line_and_exit_2(damage, command, text_export, tmp_path, capsys):
    folder = copy_export(text_export, tmp_path / "bad")
    hint = DAMAGES[damage](folder)
    text = tmp_path / "note.txt"
    text.write_bytes(TEXT)
    argv = {
        "sample": ["--out", tmp_path / "s.bin", "--quiet"],
        "evaluate": ["--data", text, "--quiet", "--no-codecs", "--device", "cpu"],
        "compress": [text, "--out", tmp_path / "note.mbz", "--quiet"],
        "decompress": [tmp_path / "packed.mbz", "--out", tmp_path / "out", "--quiet"],
        "export": ["--out", tmp_path / "again"],
    }[command]
    if command == "decompress":  # a real file, so the model is what gets refused
        result = run(capsys, "compress", "--ckpt", text_export, text, "--out", argv[0], "--quiet")
        assert result.status == 0, result.err
    result = run(capsys, command, "--ckpt", folder, *argv)
    assert_one_line_error(result, hint)
    assert not (tmp_path / "again").exists() and not (tmp_path / "out").exists()


def test_fit_does_not_resume_from_an_export(text_export, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["multibyte"])  # LightningCLI warns of pytest's arguments
    result = run(
        capsys,
        "fit",
        "--config",
        RECIPES / "pg19-tiny.yaml",
        "--data.path",
        text_export,
        "--ckpt_path",
        text_export,
    )
    assert_one_line_error(result, "--ckpt_path", "a .ckpt")


# -- the output folder -------------------------------------------------------------------------


def test_a_folder_holding_other_files_is_refused_even_with_overwrite(text_ckpt, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        result = run(capsys, "export", "--ckpt", text_ckpt, "--out", out, *extra)
        assert_one_line_error(result, str(out), "notes.txt")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_earlier_export_is_replaced_only_with_overwrite(text_ckpt, tmp_path, capsys):
    out = tmp_path / "exported"
    assert run(capsys, "export", "--ckpt", text_ckpt, "--out", out).status == 0
    card = out / "README.md"
    card.write_text("edited")
    assert_one_line_error(run(capsys, "export", "--ckpt", text_ckpt, "--out", out), "--overwrite")
    assert card.read_text() == "edited"
    assert run(capsys, "export", "--ckpt", text_ckpt, "--out", out, "--overwrite").status == 0
    assert card.read_text().startswith("---\nlibrary_name: multibyte")
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]  # no staging folder left


def test_an_empty_folder_is_filled(text_ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    out = export_model(text_ckpt, tmp_path / "empty")
    assert len(list(out.iterdir())) == 3


def test_a_failure_while_writing_leaves_nothing(text_ckpt, tmp_path, monkeypatch):
    def broken(self, folder, **kwargs):
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Megabyte, "save_pretrained", broken)
    with pytest.raises(OSError):
        export_model(text_ckpt, tmp_path / "deep" / "exported")
    assert list(tmp_path.iterdir()) == []


def test_an_evaluation_of_another_model_is_refused(text_ckpt, tmp_path, capsys):
    other = tmp_path / "other.ckpt"
    export(tiny_megabyte(global_dim=64), other, {"name": "text", "patch_size": 4})
    text = tmp_path / "note.txt"
    text.write_bytes(TEXT * 2)
    report = tmp_path / "e.json"
    result = run(
        capsys,
        "evaluate",
        "--ckpt",
        other,
        "--data",
        text,
        "--no-codecs",
        "--quiet",
        "--device",
        "cpu",
        "--json",
        report,
    )
    assert result.status == 0, result.err
    with pytest.raises(ExportError, match="another model"):
        export_model(text_ckpt, tmp_path / "out", report)
    report.write_text("{not json")
    result = run(capsys, "export", "--ckpt", text_ckpt, "--out", tmp_path / "out", "--eval", report)
    assert_one_line_error(result, "--eval", "not valid JSON")
    assert not (tmp_path / "out").exists()


def test_the_card_names_the_training_run(tmp_path):
    """A checkpoint beside `fit`'s config.yaml: steps, recipe settings and bytes trained on."""
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    model = tiny_megabyte()
    payload = {
        "multibyte": {
            "format": 1,
            "model": {"class": "Megabyte", "config": model.config.to_dict()},
            "modality": {"name": "text"},
        },
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "global_step": 12,
    }
    torch.save(payload, ckpt)
    run_config = {
        "trainer": {"devices": 1, "num_nodes": 1, "accumulate_grad_batches": 2, "max_steps": 12},
        "model": {"model": {"init_args": {"config": {"preset_name": "pg19-tiny"}}}, "lr": 0.002},
        "data": {"batch_size": 3, "seq_len": 64},
    }
    (ckpt.parent / "config.yaml").write_text(yaml.safe_dump(run_config))
    out = export_model(ckpt, tmp_path / "exported")
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["steps"] == 12 and training["bytes"] == 12 * 3 * 2 * 64
    card = (out / "README.md").read_text()
    assert "- Steps: 12" in card and "- Training bytes: 4,608" in card
    assert "preset_name pg19-tiny" in card and "No evaluation was given" in card
