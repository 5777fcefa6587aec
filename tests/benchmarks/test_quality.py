"""The quality case: the megabyte-pytorch wrapper, the case at smoke sizes, its doc.

The wrapper tests need megabyte-pytorch (`pip install -e ".[bench]"`, or it on PYTHONPATH); CI
does not install the bench extra, so they skip there, and only there. The smoke run trains ours
alone when it is missing.
"""

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` lives at the repo root and is not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import harness as h  # noqa: E402
from benchmarks import peer, quality  # noqa: E402
from multibyte.checkpoint import CheckpointError  # noqa: E402
from multibyte.loss import cross_entropy_sum, next_byte_loss  # noqa: E402
from multibyte.model import Megabyte, MegabyteConfig  # noqa: E402
from multibyte.plans import PLANS, prepare_flags  # noqa: E402

needs_peer = pytest.mark.skipif(
    not peer.installed(), reason="megabyte-pytorch (the bench extra) is not installed"
)
SMALL = dict(patch_size=4, max_seq_len=32, global_dim=32, global_layers=2, global_heads=2)
SMALL |= dict(local_dim=16, local_layers=2, local_heads=2)


def small_peer(seed: int = 0) -> peer.PeerMegabyte:
    torch.manual_seed(seed)
    return peer.PeerMegabyte(MegabyteConfig(**SMALL), heads=2)


def its_own_loss(model: peer.PeerMegabyte, x: torch.Tensor) -> torch.Tensor:
    """megabyte-pytorch's `forward(x, return_loss=True)`, with its head back in place."""
    capture, model.net.to_logits = model.net.to_logits, model.head
    try:
        return model.net(x, return_loss=True)
    finally:
        model.net.to_logits = capture


@needs_peer
@pytest.mark.parametrize("chunk", [None, 5])
def test_our_loss_on_the_peer_equals_its_own_loss(chunk):
    model = small_peer()
    x = torch.randint(0, 256, (3, 32), generator=torch.Generator().manual_seed(1))
    absent = next(v for v in range(256) if not (x == v).any())
    model.net.pad_id = absent  # so its loss ignores no byte of this batch
    ours = next_byte_loss(model, x, chunk_size=chunk)
    assert ours.item() == pytest.approx(its_own_loss(model, x).item(), abs=1e-5)
    # with pad_id = 0 present in the batch, its own loss drops those bytes and ours does not
    x[:, ::3] = 0
    model.net.pad_id = 0
    assert abs(next_byte_loss(model, x).item() - its_own_loss(model, x).item()) > 1e-3


@needs_peer
def test_the_peer_is_causal_and_takes_any_length():
    model = small_peer().eval()
    x = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 32, 256)
        assert torch.allclose(logits, model.head(model.hidden(x)))
        for t in range(32):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1 + t) % 256
            after = model(changed)
            assert torch.allclose(after[:, : t + 1], logits[:, : t + 1], atol=1e-6), t
            if t < 31:  # the next prediction does see byte t
                assert not torch.allclose(after[:, t + 1], logits[:, t + 1], atol=1e-4), t
        for length in (1, 5, 13):  # not whole patches: padded, and the same predictions
            assert torch.allclose(model(x[:, :length]), logits[:, :length], atol=1e-6)


@needs_peer
def test_byte_lm_trains_the_peer_but_refuses_to_checkpoint_it():
    from multibyte.train import ByteLM

    model = small_peer()
    module = ByteLM(model, lr=1e-2)
    assert module.spec is None
    x = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(3))
    before = model.head.bias.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        loss = module.training_step(x, 0)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.head.bias)  # the bias learns
    with pytest.raises(CheckpointError, match="cannot hold PeerMegabyte"):
        module.on_save_checkpoint({})


@pytest.mark.parametrize("chunk", [None, 3])
def test_the_loss_keeps_a_head_bias(chunk):
    torch.manual_seed(0)
    head, hidden = nn.Linear(8, 256), torch.randn(2, 7, 8)
    targets = torch.randint(0, 256, (2, 7))
    expected = F.cross_entropy(head(hidden).reshape(-1, 256), targets.reshape(-1), reduction="sum")
    assert cross_entropy_sum(hidden, head, targets, chunk).item() == pytest.approx(expected.item())


def test_the_peer_recipe_swaps_the_model_and_drops_checkpoints():
    ours = yaml.safe_load((ROOT / "recipes" / "imagenet64-tiny.yaml").read_text())
    swapped = peer.recipe(ours, heads=4)
    model = swapped["model"]["model"]
    config = ours["model"]["model"]["init_args"]["config"]
    sizes = {key: value for key, value in config.items() if key in peer.SIZES}
    assert sizes["preset_name"] == "imagenet64-tiny" and "architecture" in config
    # The peer takes our sizes only: our architecture fields (and dropout) do not apply to it.
    assert model == {"class_path": peer.CLASS_PATH, "init_args": {"config": sizes, "heads": 4}}
    kept = [c["class_path"] for c in swapped["trainer"]["callbacks"]]
    assert "multibyte.train.Checkpoints" not in kept and "multibyte.train.ByteThroughput" in kept
    assert swapped["trainer"]["enable_checkpointing"] is False
    assert swapped["model"]["lr"] == ours["model"]["lr"] and swapped["data"] == ours["data"]
    # our recipe compiles our blocks; the peer has none and trains eagerly, as it ships
    assert ours["model"]["compile"] is True and "compile" not in swapped["model"]
    assert ours["model"]["model"]["class_path"] == "multibyte.Megabyte"  # the original unchanged


def test_in_memory_evaluation_is_the_evaluate_command(tmp_path):
    import multibyte
    from multibyte.checkpoint import export
    from multibyte.evaluation.command import main as evaluate_main
    from multibyte.prepare import main as prepare_main

    (tmp_path / "train.txt").write_text("a training text, " * 40)
    (tmp_path / "held.txt").write_text("held-out words\n" * 30)
    shards, ckpt, report = tmp_path / "shards", tmp_path / "m.ckpt", tmp_path / "report.json"
    sources = ["--src", str(tmp_path / "train.txt"), "--val-src", str(tmp_path / "held.txt")]
    flags = ["--out", str(shards), "--val-fraction", "0", "--workers", "1", "--quiet"]
    assert prepare_main(["text", *sources, *flags]) == 0
    torch.manual_seed(0)
    export(Megabyte(MegabyteConfig(**SMALL)), ckpt, {"name": "text"})
    flags = ["--json", str(report), "--quiet", "--no-codecs"]
    assert evaluate_main(["--ckpt", str(ckpt), "--data", str(shards), *flags]) == 0
    expected = json.loads(report.read_text())
    model = multibyte.load(ckpt)
    got = peer.evaluate_in_memory(model, str(shards), model.modality)
    assert got["bytes"] == expected["bytes"] >= 30 * 15 and got["window"] == 32
    assert got["bits_per_byte"] == expected["bits_per_byte"] and got["codecs"] == {}
    assert peer.evaluate_in_memory(model, str(shards), model.modality, limit=2)["bytes"] == 64


def test_train_clock_counts_optimizer_steps_and_their_time(tmp_path, monkeypatch):
    now = iter([1.0, 3.0, 6.0])  # training starts; step 1 ends; step 2 ends
    monkeypatch.setattr(peer.time, "perf_counter", lambda: next(now))
    clock = peer.TrainClock(str(tmp_path / "clock.json"))
    trainer = type("Trainer", (), {"global_step": 0})()
    module = type("Module", (), {"model": nn.Linear(3, 2)})()
    clock.on_train_start(trainer, module)
    for step in (1, 1, 2):  # the second: a micro-batch, no optimizer step
        trainer.global_step = step
        clock.on_train_batch_end(trainer)
    clock.on_train_end(trainer, module)
    record = json.loads((tmp_path / "clock.json").read_text())
    assert record == {"parameters": 8, "steps": 2, "seconds": 5.0}


def test_fit_flags_warmup_and_prepare_flags():
    overrides = {"lr": 1e-3, "positions": ["none"], "tie_embeddings": False, "batch_size": 4}
    config = "--model.model.init_args.config"
    assert quality.override_flags(overrides) == [
        *("--model.lr", "0.001", f"{config}.positions", '["none"]'),
        *(f"{config}.tie_embeddings", "false", "--data.batch_size", "4"),
    ]
    recipe = {"model": {"warmup_steps": 20}, "trainer": {"max_steps": 200}}
    assert [quality.warmup_for(recipe, s) for s in (200, 80, 2, 1000)] == [20, 8, 1, 100]
    image = next(p for p in PLANS if p.name == "image")
    patch = {"data": {"modality": {"name": "image", "size": 64, "order": "patch"}}}
    assert prepare_flags(image, patch) == ["--size", "64", "--order", "patch"]
    audio = next(p for p in PLANS if p.name == "audio")
    recipe = {"data": {"modality": {"name": "audio", "seq_len": 8192}}}
    flags = prepare_flags(audio, recipe)
    assert flags[flags.index("--seq-len") + 1] == "8192" and flags.count("--seq-len") == 1


def model_row(bpb: float, steps: int, step_s: float, params: int = 1_000_000) -> dict:
    row = {"parameters": params, "steps": steps, "step_s": step_s, "wall_s": steps * step_s}
    return row | {"bpb": bpb, "in_unit": bpb, "unit": "bits/dim"}


def ablation_row(name: str, change: str, bpb: float | None, step_s: float | None) -> dict:
    error = None if bpb else "refused its options"
    delta = None if bpb is None else bpb - 4.0
    return {"name": name, "change": change, "bpb": bpb, "delta": delta, "step_s": step_s} | {
        "error": error
    }


def test_render_a_made_up_result():
    models = {"ours": model_row(3.5, 200, 0.45), "peer_steps": model_row(3.7, 200, 1.0)}
    models["peer_wall"] = model_row(3.9, 90, 1.0)
    recipe = "recipes/imagenet64-tiny.yaml"
    codecs = {"gzip": 7.5, "png": 4.2, "webp": 2.9}
    rows = [{"modality": "image", "recipe": recipe, "codecs": codecs, "models": models}]
    ablation = {"modality": "image", "recipe": recipe, "steps": 300}
    ablation["rows"] = [
        ablation_row("baseline", "(the recipe)", 4.0, 0.4),
        ablation_row("untied_head", "tie_embeddings=false", 3.9, 0.41),
        ablation_row("rmsnorm", 'norm="rmsnorm"', None, None),
    ]
    settings = {"peer": "megabyte-pytorch 0.3.6", "peer_installed": True}
    text = quality.render({"settings": settings, "comparison": rows, "ablation": ablation})
    ours = "| image | multibyte (`recipes/imagenet64-tiny.yaml`) | 1.00M | 200 | 0.450 | 90 |"
    assert f"{ours} 3.500 | 3.500 bits/dim |" in text
    assert "| image | megabyte-pytorch, equal wall time | 1.00M | 90 | 1.000 | 90 | 3.900 |" in text
    assert "| modality | ours | gzip | png | webp |" in text  # in the order evaluate lists them
    assert "| image | 3.500 | 7.500 | 4.200 | 2.900 |" in text
    assert "| `baseline` | (the recipe) | 4.000 |  | 0.400 |" in text
    assert "| `untied_head` | tie_embeddings=false | 3.900 | -0.100 | 0.410 |" in text
    assert '| `rmsnorm` | norm="rmsnorm" | failed: refused its options | n/a | n/a |' in text
    alone = quality.render({"settings": settings, "comparison": [], "ablation": ablation})
    assert "Held-out" not in alone and "Ablation on image" in alone


def run_smoke(tmp_path: Path, *extra: str) -> dict:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    argv = ["--smoke", "--out", str(tmp_path), "--doc", str(doc), *extra]
    result = h.run_case("quality", argv)
    assert json.loads((tmp_path / "quality.json").read_text()) == json.loads(json.dumps(result))
    assert "<!-- benchmark:quality:begin -->" in doc.read_text()
    return result


def test_quality_smoke_compares_and_ablates_then_reuses_cached_runs(tmp_path):
    folder = tmp_path / "runs"
    quality.ABLATIONS["not_a_field"] = {"not_a_field": 1}
    extra = ["--folder", str(folder), "--ablate", "text", "--only", "local_dim_128,not_a_field"]
    try:
        result = run_smoke(tmp_path, "--modalities", "text", *extra)
        again = run_smoke(tmp_path, "--no-compare", *extra)
    finally:
        del quality.ABLATIONS["not_a_field"]
    (row,) = result["comparison"]
    ours = row["models"]["ours"]
    recipe = ROOT / "recipes" / next(p.recipe for p in PLANS if p.name == "text")
    config = yaml.safe_load(recipe.read_text())["model"]["model"]["init_args"]["config"]
    parameters = sum(p.numel() for p in Megabyte(MegabyteConfig(**config)).parameters())
    assert ours["steps"] == 2 and ours["parameters"] == parameters and ours["wall_s"] > 0
    assert 0 < ours["bpb"] < 9 and ours["unit"] and {"gzip", "bz2", "xz"} <= set(row["codecs"])
    if peer.installed():
        at_steps, at_wall = row["models"]["peer_steps"], row["models"]["peer_wall"]
        assert at_steps["steps"] == 2 and at_steps["parameters"] > ours["parameters"]
        expected = max(1, int(2 * ours["step_s"] / at_steps["step_s"]))
        assert at_wall["steps"] == expected and 0 < at_wall["bpb"] < 9
    else:
        assert set(row["models"]) == {"ours"}
    base, local, refused = result["ablation"]["rows"]
    assert [r["name"] for r in (base, local)] == ["baseline", "local_dim_128"]
    assert all(r["error"] is None and r["step_s"] > 0 for r in (base, local))
    assert local["delta"] == pytest.approx(local["bpb"] - base["bpb"])
    assert local["bpb"] != base["bpb"]  # the override reached the model
    assert "not_a_field" in refused["error"] and refused["bpb"] is None
    assert again["comparison"] == []  # the finished runs come from the cache, the refused again
    assert [r["bpb"] for r in again["ablation"]["rows"]] == [base["bpb"], local["bpb"], None]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ablate", "text", "--only", "nope"], "--only nope: not in the ablation table"),
        (["--only", "untied_head"], "--only is for the ablation: give --ablate MODALITY"),
        (["--no-compare"], "nothing to run"),
        (["--ablate-recipe", "x.yaml"], "--ablate-recipe is for the ablation"),
        (["--ablate", "text", "--ablate-recipe", "{tmp}/none.yaml"], "none.yaml: recipe not found"),
        (["--ablate-steps", "0"], "--ablate-steps 0: must be at least 1"),
        (["--modalities", "video"], "video: not a modality of the demo's plans"),
    ],
)
def test_quality_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    with pytest.raises(SystemExit) as exit_:
        h.run_case(
            "quality", [*argv, "--folder", str(tmp_path), "--out", str(tmp_path), "--no-doc"]
        )
    assert exit_.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("[")]
    assert line.startswith("python -m benchmarks run quality: error: ")
    assert message.format(tmp=tmp_path) in line
