"""Bad input to the commands that import torch (in-process, as the console script calls them):
one line naming the file and the reason, exit 2, no traceback unless --debug asks for one."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from multibyte.data import ShardError
from tests.faults.conftest import ROOT, tree
from tests.faults.data import png
from tests.faults.test_damage import fit_args


def test_yaml_syntax_error_names_the_config_without_usage(tmp_path, in_process):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_steps: [1, 2\nmodel: {\n")
    result = in_process("fit", "--config", bad)
    text = result.assert_user_error(bad, "not valid YAML", "line")
    assert len(text.strip().splitlines()) == 1 and "usage" not in text


def test_seq_len_not_a_multiple_of_the_patch(shards, tmp_path, in_process):
    result = in_process(*fit_args(shards, tmp_path), "--data.seq_len", "60")
    result.assert_user_error("seq_len=60", "patch_size=8")


def test_incomplete_prepare_is_refused_with_both_ways_out(shards, checkpoint, tmp_path, in_process):
    folder = tmp_path / "partial"
    folder.mkdir()
    for item in shards.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["complete"] = False
    (folder / "manifest.json").write_text(json.dumps(manifest))
    evaluate = ("evaluate", "--ckpt", checkpoint, "--data", folder, "--no-codecs", "--quiet")
    in_process(*evaluate).assert_user_error(folder, "incomplete", "--resume", "--allow-incomplete")
    assert in_process(*evaluate, "--allow-incomplete").status == 0
    in_process(*fit_args(folder, tmp_path / "run")).assert_user_error(
        folder, "incomplete", "--resume", "--data.allow_incomplete true"
    )
    in_process("verify", folder).assert_user_error(folder, "did not complete", status=1)


def test_checkpoint_mistakes(checkpoint, tmp_path, in_process):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    image = png(tmp_path / "picture.png")
    for wrong in (text_file, image):
        for command in ("evaluate", "sample"):
            extra = ("--data", text_file) if command == "evaluate" else ("--out", tmp_path / "s")
            text = in_process(command, "--ckpt", wrong, *extra).assert_user_error(
                wrong, "not a multibyte checkpoint"
            )
            assert "weights_only" not in text and "succeed" not in text
    in_process("sample", "--ckpt", tmp_path, "--out", tmp_path / "s").assert_user_error(
        tmp_path, "is not an exported model", "no config.json"
    )
    odd = tmp_path / "odd.ckpt"  # a newer or edited file: a config field this version lacks
    torch.save(
        {
            "multibyte": {"format": 1, "model": {"class": "Megabyte", "config": {"x": 1}}},
            "state_dict": {},
        },
        odd,
    )
    in_process("evaluate", "--ckpt", odd, "--data", text_file).assert_user_error(odd, "config")
    in_process("sample", "--ckpt", odd, "--out", tmp_path / "s").assert_user_error(odd, "config")


def test_sample_refuses_zero_bytes_and_a_prompt_of_another_modality(
    checkpoint, tmp_path, in_process
):
    out = tmp_path / "sample.txt"
    in_process(
        "sample", "--ckpt", checkpoint, "--out", out, "--max-new-bytes", "0"
    ).assert_user_error("--max-new-bytes", "0")
    assert not out.exists()
    image = png(tmp_path / "prompt.png")
    sample = in_process("sample", "--ckpt", checkpoint, "--out", out, "--prompt", image, "--quiet")
    evaluate = in_process("evaluate", "--ckpt", checkpoint, "--data", image, "--quiet")
    for result in (sample, evaluate):
        result.assert_user_error(image, "looks like image", "trained on text", "--modality image")


def test_hostile_tar_members_write_nothing_and_are_reported(
    shards, checkpoint, tmp_path, in_process
):
    folder = tmp_path / "hostile"
    folder.mkdir()
    for item in shards.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../../escape.bin", "/tmp/absolute.bin", "s000000000.bin"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"evil!"))
    victim = sorted(folder.glob("val-*.tar"))[0]
    victim.write_bytes(buffer.getvalue())
    before = tree(tmp_path.parent)
    in_process("verify", folder).assert_user_error(victim, status=1)
    in_process(
        "evaluate", "--ckpt", checkpoint, "--data", folder, "--no-codecs", "--quiet"
    ).assert_user_error(victim)
    assert tree(tmp_path.parent) == before
    assert not Path("/tmp/absolute.bin").exists()


def test_debug_shows_the_traceback(shards, checkpoint, tmp_path, in_process, monkeypatch):
    folder = tmp_path / "cut"
    folder.mkdir()
    for item in shards.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    shard = sorted(folder.glob("val-*.tar"))[0]
    shard.write_bytes(shard.read_bytes()[:1000])
    evaluate = ("evaluate", "--ckpt", checkpoint, "--data", folder, "--no-codecs", "--quiet")
    in_process(*evaluate).assert_user_error(shard)
    with pytest.raises(ShardError, match="truncated"):
        in_process(*evaluate, "--debug")
    monkeypatch.setenv("MULTIBYTE_DEBUG", "1")
    from multibyte.cli import main

    with pytest.raises(ShardError):
        main([str(a) for a in evaluate])
    assert ROOT.is_dir()


def test_resume_from_a_file_that_would_run_code_is_refused_by_name(shards, tmp_path, in_process):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"multibyte": Payload(), "state_dict": {}}, evil)
    result = in_process(*fit_args(shards, tmp_path / "run"), "--ckpt_path", evil)
    text = result.assert_user_error(evil, "refusing to load")
    assert "this must never run" not in text
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


def test_compile_without_a_cpu_compiler_is_refused_before_training(
    shards, tmp_path, in_process, monkeypatch
):
    from torch._inductor import cpp_builder, exc

    def no_compiler():
        raise exc.InvalidCxxCompiler

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    result = in_process(*fit_args(shards, tmp_path / "run"), "--model.compile", "true")
    result.assert_user_error("model.compile", "C++ compiler", "false")
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # refused before the first step
