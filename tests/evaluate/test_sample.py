"""`multibyte sample`: valid PNG grids, WAVs at the model's rate, text; deterministic by seed."""

from __future__ import annotations

import numpy as np
import soundfile
import torch
from PIL import Image
from torch._dynamo.utils import counters

import multibyte
from multibyte.cli import main as cli
from multibyte.sample import generate


def sample(*argv):
    return cli(["sample", *map(str, argv), "--quiet"])


def test_unconditional_image_grid(image_ckpt, tmp_path):
    out = tmp_path / "grid.png"
    assert sample("--ckpt", image_ckpt, "--out", out, "--n", "3", "--seed", "1") == 0
    with Image.open(out) as image:
        # save_grid: 3 columns of 8px cells with 2px padding, one row.
        assert image.format == "PNG" and image.size == (3 * 10 + 2, 12)
    again = tmp_path / "again.png"
    assert sample("--ckpt", image_ckpt, "--out", again, "--n", "3", "--seed", "1") == 0
    assert out.read_bytes() == again.read_bytes()


def test_compiled_sampling_writes_the_same_grid(image_ckpt, tmp_path):
    eager, compiled = tmp_path / "eager.png", tmp_path / "compiled.png"
    assert sample("--ckpt", image_ckpt, "--out", eager, "--n", "2", "--seed", "3") == 0
    frames = counters["stats"]["unique_graphs"]
    assert (
        sample("--ckpt", image_ckpt, "--out", compiled, "--n", "2", "--seed", "3", "--compile") == 0
    )
    assert counters["stats"]["unique_graphs"] > frames  # the steps did run compiled
    assert compiled.read_bytes() == eager.read_bytes()


def test_image_completion_resizes_a_wrong_size_prompt_and_says_so(image_ckpt, tmp_path, capsys):
    prompt = tmp_path / "big.png"
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8), "RGB").save(prompt)
    out = tmp_path / "completion.png"
    code = sample(
        "--ckpt",
        image_ckpt,
        "--out",
        out,
        "--prompt",
        prompt,
        "--n",
        "2",
        "--prompt-fraction",
        "0.5",
        "--temperature",
        "0.7",
        "--top-k",
        "40",
    )
    assert code == 0
    assert "16x16; resized to 8x8" in capsys.readouterr().err
    with Image.open(out) as image:
        grid = np.asarray(image.convert("RGB"))
    assert grid.shape == (2 * 10 + 2, 2 * 10 + 2, 3)  # prompt row + one row of 2 samples
    # The top half of every completion is the prompt's (box-resized 200 stays 200).
    completion = grid[12:20, 2:10]
    assert (completion[:4] == 200).all()


def test_audio_continuation_wav_rate_and_length(audio_ckpt, audio_folder, tmp_path):
    out = tmp_path / "cont.wav"
    prompt = audio_folder / "clip0.wav"
    code = sample(
        "--ckpt",
        audio_ckpt,
        "--out",
        out,
        "--prompt",
        prompt,
        "--n",
        "2",
        "--max-new-bytes",
        "100",
        "--prompt-fraction",
        "0.2",
        "--seed",
        "3",
    )
    assert code == 0
    # 20% of 600 bytes kept (120 bytes = 60 samples), then 100 new bytes = 50 samples.
    for i in range(2):
        info = soundfile.info(tmp_path / f"cont-{i}.wav")
        assert info.samplerate == 8000 and info.frames == 110
    first = (tmp_path / "cont-0.wav").read_bytes()
    assert (
        sample(
            "--ckpt",
            audio_ckpt,
            "--out",
            out,
            "--prompt",
            prompt,
            "--n",
            "2",
            "--max-new-bytes",
            "100",
            "--prompt-fraction",
            "0.2",
            "--seed",
            "3",
            "--overwrite",  # the same run again: an existing sample is replaced only when asked
        )
        == 0
    )
    assert (tmp_path / "cont-0.wav").read_bytes() == first


def test_text_continuation_printed_and_saved(trained_text_ckpt, tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("It was the ")
    out = tmp_path / "out.txt"
    argv = [
        "--ckpt",
        trained_text_ckpt,
        "--out",
        out,
        "--prompt",
        prompt,
        "--n",
        "1",
        "--max-new-bytes",
        "30",
        "--seed",
        "5",
        "--top-p",
        "0.9",
    ]
    assert sample(*argv) == 0
    data = out.read_bytes()
    assert data.startswith(b"It was the ") and len(data) == 11 + 30
    assert data.decode("utf-8", errors="replace") in capsys.readouterr().out
    assert sample(*argv) == 2 and out.read_bytes() == data  # never replaced unasked
    assert sample(*argv, "--overwrite") == 0 and out.read_bytes() == data


def test_sample_errors(image_ckpt, tmp_path, capsys):
    assert sample("--ckpt", tmp_path / "missing.ckpt", "--out", tmp_path / "x.png") == 2
    assert "missing.ckpt" in capsys.readouterr().err
    code = sample("--ckpt", image_ckpt, "--out", tmp_path / "x.png", "--prompt", tmp_path / "p")
    assert code == 2 and "prompt file not found" in capsys.readouterr().err


def test_progress_generate_equals_plain_generate(trained_text_ckpt):
    model = multibyte.load(trained_text_ckpt)
    prompt = torch.tensor([list(b"It was")])
    ours = generate(model, prompt, 10, generator=torch.Generator().manual_seed(0), progress=True)
    plain = model.generate(prompt, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours, plain)
    assert "decoder" not in vars(model)  # the per-call shadow is removed


def test_image_samples_are_whole_images(image_ckpt, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert sample("--ckpt", image_ckpt, "--out", out, "--max-new-bytes", "10") == 2
    assert "--max-new-bytes does not apply to image" in capsys.readouterr().err
    assert sample("--ckpt", image_ckpt, "--out", out, "--prompt-fraction", "1.5") == 2
    assert "--prompt-fraction must be in [0, 1]" in capsys.readouterr().err
    assert not out.exists()


def test_another_modality_than_the_checkpoints_is_sampled_with_a_note(image_ckpt, tmp_path, capsys):
    out = tmp_path / "t.txt"
    argv = [
        "--ckpt",
        image_ckpt,
        "--modality",
        "text",
        "--out",
        out,
        "--n",
        "1",
        "--max-new-bytes",
        "5",
    ]
    assert sample(*argv) == 0
    assert "trained on image; sampling it as text" in capsys.readouterr().err
    assert len(out.read_bytes()) == 5
