"""The mixture commands of docs/recipes.md and the README, run as written on tiny data: only the
paths, the recipe size (tiny for small) and the step counts change."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import multibyte
from multibyte.cli import main

REPO = Path(__file__).resolve().parents[2]
STEPS = [
    "--trainer.max_steps",
    "1",
    "--trainer.val_check_interval",
    "1",
    "--trainer.num_sanity_val_steps",
    "0",
]


def commands(markdown: Path, after: str) -> list[str]:
    """The `multibyte ...` lines of the first code block after the heading or text ``after``."""
    text = markdown.read_text()
    block = re.search(r"```\n(.*?)```", text[text.index(after) :], re.S)[1]
    joined = block.replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.startswith("multibyte")]


def split_folder(source: Path, root: Path, val: int) -> tuple[Path, Path]:
    files = sorted(source.iterdir())
    for name, part in (("train", files[:-val]), ("val", files[-val:])):
        (root / name).mkdir(parents=True)
        for f in part:
            shutil.copy(f, root / name / f.name)
    return root / "train", root / "val"


def test_the_documented_mixture_commands_run_as_written(
    image_folder, audio_folder, text_folder, tmp_path, monkeypatch
):
    documented = commands(REPO / "docs" / "recipes.md", "## One model for several modalities")
    readme = commands(REPO / "README.md", "One model over every modality")
    multimodal = [c for c in readme if "multimodal" in c]
    assert len(multimodal) == 2 and all(c in documented for c in multimodal)

    images = split_folder(image_folder, tmp_path / "in" / "images", 2)
    audio = split_folder(audio_folder, tmp_path / "in" / "audio", 2)
    text = split_folder(text_folder, tmp_path / "in" / "text", 1)
    paths = {  # the documented inputs -> this test's
        "Imagenet64_train_npz/": images[0],
        "Imagenet64_val_npz/": images[1],
        "/data/audio/train": audio[0],
        "/data/audio/val": audio[1],
        "pg19/train": text[0],
        "pg19/validation": text[1],
        "recipes/multimodal-small.yaml": REPO / "recipes" / "multimodal-tiny.yaml",
    }
    monkeypatch.chdir(tmp_path)
    ran = []
    for command in documented:
        argv = shlex.split(command)[1:]
        argv = [str(paths.get(a, a)).replace("multimodal-small", "multimodal-tiny") for a in argv]
        if argv[0] == "prepare":
            argv += ["--workers", "1", "--quiet"]  # not an option of the data: fewer processes
        if argv[0] == "fit":
            argv += STEPS
        assert main(argv) == 0, command
        ran.append(argv[0])
    assert ran == ["prepare"] * 3 + ["fit", "evaluate", "sample"]
    # batches of one modality, each in its own shape, on the shards just prepared
    (by_batch,) = commands(REPO / "docs" / "recipes.md", "Batches of one modality")
    argv = [str(paths.get(a, a)) for a in shlex.split(by_batch)[1:]]
    root = ["--trainer.default_root_dir", str(tmp_path / "by-batch")]
    assert main([*argv, *STEPS, *root]) == 0, by_batch
    model = multibyte.load(tmp_path / "by-batch" / "checkpoints" / "last.ckpt")
    assert model.modality["windows"] == [12288, 12288, 8192]
    manifest = json.loads((tmp_path / "shards" / "audio" / "manifest.json").read_text())
    assert manifest["options"]["seq_len"] == 524288  # audio at the default --seq-len
    assert sorted(p.name for p in tmp_path.glob("text*.txt")) == [f"text-{i}.txt" for i in range(4)]
