"""Every numeric, path and device option is checked before any work, with one line naming it
(exit 2, no traceback, nothing written); fit's configuration mistakes leave nothing behind;
Ctrl-C in fit names the last checkpoint and the exact resume command (exit 130)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

import multibyte.checkpoint
from multibyte.checkpoint import export
from multibyte.cli import main as cli
from multibyte.data.header import HeaderTable
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.train.module import ByteLM
from tests.faults.conftest import ROOT, Result, console, tree
from tests.faults.test_damage import fit_args


def tiny(max_seq_len: int = 64) -> Megabyte:
    torch.manual_seed(0)
    return Megabyte(
        MegabyteConfig(
            patch_size=4,
            max_seq_len=max_seq_len,
            global_dim=16,
            global_layers=1,
            global_heads=2,
            local_dim=16,
            local_layers=1,
            local_heads=2,
        )
    )


def error_line(result: Result) -> str:
    """The one line that says what went wrong (fit also prints its precision and Lightning's
    notes)."""
    lines = [line for line in (result.err + result.out).splitlines() if "error" in line]
    assert len(lines) == 1, result.err
    return lines[0]


def sample_args(checkpoint: Path, out: Path, *extra: str) -> tuple[str, ...]:
    return ("sample", "--ckpt", checkpoint, "--out", out, "--quiet", "--n", "1", *extra)


# -- the console script itself ------------------------------------------------------------------


def test_no_command_is_a_usage_error():
    result = console()
    assert result.status == 2 and "usage: multibyte COMMAND" in result.err and not result.out
    assert console("--help").status == 0


# -- evaluate and sample: numbers, devices, files -----------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"), [("--batch-size", "0"), ("--seq-len", "0"), ("--batch-size", "-3")]
)
def test_evaluate_numbers_are_checked(shards, checkpoint, tmp_path, in_process, flag, value):
    report = tmp_path / "r.json"
    result = in_process(
        "evaluate",
        "--ckpt",
        checkpoint,
        "--data",
        shards,
        "--no-codecs",
        "--quiet",
        "--json",
        report,
        flag,
        value,
    )
    text = result.assert_user_error(f"{flag} must be positive, got {value}")
    assert len(text.strip().splitlines()) == 1 and not report.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--temperature", "nan"), "--temperature"),
        (("--temperature", "inf"), "--temperature"),
        (("--temperature", "-1"), "--temperature"),
        (("--top-k", "0"), "--top-k"),
        (("--top-p", "0"), "--top-p"),
        (("--top-p", "1.5"), "--top-p"),
        (("--n", "0"), "--n"),
    ],
)
def test_sample_settings_are_checked(checkpoint, tmp_path, in_process, flags, named):
    out = tmp_path / "s.txt"
    in_process(*sample_args(checkpoint, out, *flags)).assert_user_error(named, flags[1])
    assert list(tmp_path.iterdir()) == []


def test_sample_refuses_a_batch_larger_than_memory(checkpoint, tmp_path, in_process):
    out = tmp_path / "s.txt"
    result = in_process("sample", "--ckpt", checkpoint, "--out", out, "--quiet", "--n", "100000000")
    result.assert_user_error("--n 100000000", "GB", "sample fewer")
    assert list(tmp_path.iterdir()) == []


def test_pcm16_samples_come_in_whole_frames(tmp_path, in_process):
    audio = tmp_path / "audio.ckpt"
    export(tiny(), audio, {"name": "audio", "encoding": "pcm16", "seq_len": 64})
    out = tmp_path / "clip.wav"
    in_process(*sample_args(audio, out, "--max-new-bytes", "7")).assert_user_error(
        "--max-new-bytes 7", "frames of 2 bytes", "encoding=pcm16"
    )
    assert not out.exists()
    result = in_process(*sample_args(audio, out, "--max-new-bytes", "8"))
    assert result.status == 0, result.err
    assert out.is_file()


@pytest.mark.parametrize("command", ["evaluate", "sample"])
def test_an_unusable_device_is_named_not_the_checkpoint(
    shards, checkpoint, tmp_path, in_process, monkeypatch, command
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    extra = ("--data", shards) if command == "evaluate" else ("--out", tmp_path / "s.txt")
    for device, reason in (("banana", "unknown device"), ("cuda", "no cuda device")):
        text = in_process(
            command, "--ckpt", checkpoint, *extra, "--device", device
        ).assert_user_error(f"--device {device}", reason)
        assert "checkpoint" not in text
    assert list(tmp_path.iterdir()) == []


def test_compress_names_an_unknown_device(checkpoint, tmp_path, in_process):
    source = tmp_path / "a.txt"
    source.write_text("hello")
    result = in_process(
        "compress", "--ckpt", checkpoint, source, "--out", tmp_path / "out", "--device", "banana"
    )
    text = result.assert_user_error("--device banana", "unknown device")
    assert "not a multibyte checkpoint" not in text
    assert list(tmp_path.iterdir()) == [source]


def test_an_unreadable_checkpoint_says_why(shards, checkpoint, tmp_path, in_process, monkeypatch):
    # tests may run as root, where chmod cannot make a file unreadable: fail its open instead
    def unreadable(path, *args, **kwargs):
        if str(path) == str(checkpoint):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(multibyte.checkpoint, "open", unreadable, raising=False)
    for command, extra in (("evaluate", ("--data", shards)), ("sample", ("--out", tmp_path / "s"))):
        text = in_process(command, "--ckpt", checkpoint, *extra).assert_user_error(
            checkpoint, "cannot be read", "Permission denied"
        )
        assert "not a multibyte checkpoint" not in text


def test_compress_with_a_multimodal_checkpoint_says_what_it_needs(tmp_path, in_process):
    table = HeaderTable.build([{"name": "text"}, {"name": "image", "size": 4}], 4, 48)
    multi = tmp_path / "multi.ckpt"
    export(tiny(), multi, table.entry())
    source = tmp_path / "a.txt"
    source.write_text("hello")
    out = tmp_path / "out"
    for extra in ((), ("--modality", "text")):
        in_process("compress", "--ckpt", multi, source, "--out", out, *extra).assert_user_error(
            "multimodal checkpoint", "text, image"
        )
    assert not out.exists()
    in_process(*sample_args(multi, tmp_path / "s.txt")).assert_user_error(
        "multimodal checkpoint", "--modality", "text, image"
    )


# -- fit: configuration checked before any work, nothing left behind ----------------------------


def test_trainer_numbers_are_checked_before_work(shards, tmp_path, in_process):
    root = tmp_path / "run"
    result = in_process(*fit_args(shards, root), "--trainer.max_steps", "-5")
    result.assert_user_error()
    assert "max_steps" in error_line(result) and "-5" in error_line(result)
    assert not root.exists()


def test_a_gpu_recipe_without_a_gpu_is_one_line(shards, tmp_path, in_process, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = tmp_path / "run"
    result = in_process(
        "fit",
        "--config",
        ROOT / "recipes" / "pg19-small.yaml",
        "--data.path",
        shards,
        "--trainer.default_root_dir",
        root,
    )
    result.assert_user_error("no CUDA GPU", "--trainer.accelerator cpu")
    assert not root.exists()


@pytest.mark.parametrize("size", [300, 16])
def test_text_shorter_than_one_window_is_named(tmp_path, in_process, size):
    short = tmp_path / "short.txt"
    short.write_bytes(b"x" * (size - 1) + b"\n")
    root = tmp_path / "run"
    result = in_process(
        "fit",
        "--config",
        ROOT / "recipes" / "pg19-tiny.yaml",
        "--data.path",
        short,
        "--trainer.default_root_dir",
        root,
    )
    result.assert_user_error(short, "shorter than one sequence", "data.seq_len=1024")
    assert not root.exists()


def test_a_failed_fit_leaves_nothing_it_did_not_find(shards, tmp_path, in_process):
    # every training shard cut: the run fails at its first read, after it set up its folders
    folder = tmp_path / "cut"
    folder.mkdir()
    for item in shards.iterdir():
        data = item.read_bytes()
        (folder / item.name).write_bytes(data[:700] if item.name.startswith("train") else data)
    root = tmp_path / "run"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    (root / "csv").mkdir()
    (root / "csv" / "keep.csv").write_text("mine too")
    before = tree(root)
    in_process(*fit_args(folder, root)).assert_user_error(folder, "truncated")
    assert tree(root) == before
    fresh = tmp_path / "fresh"
    in_process(*fit_args(folder, fresh)).assert_user_error(folder, "truncated")
    assert not fresh.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 1-step run of the tiny text recipe (a Lightning checkpoint to resume from)."""
    from tests.faults.conftest import TEXT

    src = tmp_path_factory.mktemp("text")
    (src / "book.txt").write_bytes(TEXT * 40)
    root = tmp_path_factory.mktemp("trained")
    assert cli(fit_args(src, root)) == 0
    return root / "checkpoints" / "last.ckpt"


def test_resuming_another_model_is_one_line(shards, checkpoint, trained, tmp_path, in_process):
    root = tmp_path / "run"
    other = ("--model.model.init_args.config.global_byte_dim", "32")
    result = in_process(*fit_args(shards, root), *other, "--ckpt_path", trained)
    result.assert_user_error()
    line = error_line(result)
    assert str(trained) in line and "another model" in line, line
    assert "[256, 96] there, [256, 32] here" in line, line
    in_process(*fit_args(shards, root), "--ckpt_path", checkpoint).assert_user_error(
        checkpoint, "not a training checkpoint"
    )
    assert not root.exists()


def test_an_int_limit_counts_batches(shards, tmp_path, in_process, monkeypatch):
    calls = []
    step = ByteLM.validation_step
    monkeypatch.setattr(ByteLM, "validation_step", lambda *a, **k: calls.append(1) or step(*a, **k))
    args = [a for a in fit_args(shards, tmp_path / "run")]
    args[args.index("--trainer.limit_val_batches") + 1] = "1"
    result = in_process(*args)
    assert result.status == 0, result.err
    assert len(calls) == 1  # one validation, of one batch (the split holds many)


def test_ctrl_c_names_the_last_checkpoint_and_the_resume_command(
    shards, tmp_path, in_process, monkeypatch
):
    step = ByteLM.training_step

    def interrupted(self, *args, **kwargs):
        if self.global_step >= 2:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(ByteLM, "training_step", interrupted)
    root = tmp_path / "run"
    args = fit_args(shards, root)
    args[args.index("--trainer.max_steps") + 1] = "4"
    args[args.index("--trainer.limit_val_batches") + 1] = "1"  # one batch: a short test
    result = in_process(*args)
    assert result.status == 130, result.err
    assert "Traceback" not in result.err
    last = root / "checkpoints" / "last.ckpt"
    line = next(line for line in result.err.splitlines() if "resume with" in line)
    assert f"last checkpoint: {last}" in line and "step 2" in line
    command = shlex.split(line.split("resume with `", 1)[1].rstrip("`"))
    assert command == ["multibyte", *args, "--ckpt_path", str(last)]
    monkeypatch.setattr(ByteLM, "training_step", step)
    resumed = in_process(*command[1:])
    assert resumed.status == 0, resumed.err
    assert torch.load(last, weights_only=True)["global_step"] == 4


def test_bad_yaml_in_a_flag_is_one_line(tmp_path, in_process):
    root = tmp_path / "run"
    result = in_process(
        "fit",
        "--config",
        ROOT / "recipes" / "multimodal-tiny.yaml",
        "--data.sources",
        "[{path: a, weight: 1}, {path: b",
        "--trainer.default_root_dir",
        root,
    )
    text = result.assert_user_error("--data.sources", "not valid YAML", "line 1")
    assert len(text.strip().splitlines()) == 1 and "usage" not in text
    assert not root.exists()
