"""The benchmark harness and every case at smoke sizes (seconds), so that none of them rots."""

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` lives at the repo root and is not installed
    sys.path.insert(0, str(ROOT))

import modalities  # noqa: E402
from benchmarks import (  # noqa: E402, F401 (each module registers its cases)
    compression,
    cpu_bf16,
    fit_precision,
    generate,
    multimodal,
    quality,
    scaling,
    train_step,
)
from benchmarks import harness as h  # noqa: E402
from multibyte.checkpoint import export  # noqa: E402
from multibyte.flops import non_embedding_parameters  # noqa: E402
from multibyte.model import ByteTransformerConfig, Megabyte, MegabyteConfig  # noqa: E402

TINY = h.SMOKE_PAIR["megabyte"] | {"max_seq_len": 16}


def positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values)


def run(name: str, tmp_path: Path, *extra: str) -> dict:
    """Run a case at smoke sizes; it must write its JSON and only its own doc section."""
    doc = tmp_path / "benchmarks.md"
    other = "<!-- benchmark:other:begin -->\nkept\n<!-- benchmark:other:end -->\n"
    doc.write_text(f"# Benchmarks\n\nprose\n\n{other}")
    returned = h.run_case(name, ["--smoke", "--out", str(tmp_path), "--doc", str(doc), *extra])
    output = f"gpu_{name}" if "--gpu" in extra else name
    written = json.loads((tmp_path / f"{output}.json").read_text())
    assert written == json.loads(json.dumps(returned))
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n") and "\nkept\n" in text
    section = text.split(f"<!-- benchmark:{output}:begin -->\n")[1].split("<!-- benchmark:")[0]
    assert section.startswith("Machine: ")
    assert f"Reproduce: `python -m benchmarks run {name} --smoke" in section
    assert written["load_average_1min"]["end"] is not None and written["machine"]["cpu"]
    return written


def check_train_rows(rows: dict) -> None:
    for per_len in rows.values():
        for t in per_len.values():
            assert positive(t["bytes_per_s"], t["model_flops_per_s"], t["fraction_of_ceiling"])
            assert positive(t["step"]["median_s"], t["step"]["best_s"], t["memory"]["peak_bytes"])


def test_cases_are_registered_and_listed(capsys):
    assert set(h.CASES) == {
        "compression",
        "cpu_bf16",
        "fit_precision",
        "train_step",
        "generate",
        "scaling",
        "multimodal",
        "quality",
    }
    assert h.cli(["list"]) == 0
    assert set(capsys.readouterr().out.split()) == set(h.CASES)


def test_run_all_gives_each_case_its_documented_options_unless_smoke(monkeypatch):
    commands = []
    monkeypatch.setattr(
        h.subprocess, "run", lambda c: commands.append(c) or SimpleNamespace(returncode=0)
    )
    assert h.cli(["run", "all", "--folder", "x"]) == 0
    by_case = {c[4]: c[5:] for c in commands}
    assert list(by_case) == list(h.CASES)
    assert by_case["quality"] == [*quality.DOCUMENTED, "--folder", "x"]  # the user's last: it wins
    assert by_case["scaling"] == ["--folder", "x"]
    commands.clear()
    assert h.cli(["run", "all", "--smoke"]) == 0
    assert all(c[5:] == ["--smoke"] for c in commands)


def test_train_step_smoke(tmp_path):
    result = run("train_step", tmp_path)
    assert positive(result["ceiling"]["flops_per_s"], result["ceiling"]["matvec_bytes_per_s"])
    assert list(result["train"]) == ["32", "64"] and set(result["train"]["32"]) == set(h.PAIR)
    check_train_rows(result["train"])
    assert set(result["train"]["64"]) == {"megabyte"}  # the baseline up to baseline_max_len


def test_cpu_bf16_smoke(tmp_path):
    result = run("cpu_bf16", tmp_path)
    assert list(result["attention"]) == ["8", "32"]
    for timing in result["attention"].values():
        assert positive(timing["fused_bf16"], timing["fused_float32"], timing["written_out"])
    assert positive(*(c["flops_per_s"] for c in result["ceilings"].values()))


@pytest.mark.slow  # compiles the decode step for two batch sizes: `pytest -m slow`
def test_generate_smoke(tmp_path):
    result = run("generate", tmp_path)
    rows, (b1, b8) = result["generate"], result["sizes"]["batches"]
    expected = {f"megabyte/{kind}/{b}" for kind in ("eager", "compiled") for b in (b1, b8)}
    assert set(rows) == expected | {"byte_transformer/eager/1"}
    assert all(positive(g["bytes_per_s"], g["ms_per_step"]) for g in rows.values())
    assert set(result["floors"]) == set(h.PAIR)
    for f in result["floors"].values():
        assert positive(f["matvec_bytes_per_s"], f["weight_bytes_per_byte"], f["floor_s_per_byte"])
        assert positive(*f["linears_alone_s_per_step"].values())


def test_scaling_smoke(tmp_path):
    result = run("scaling", tmp_path)
    for name in h.PAIR:
        assert result["longest"][name]["seq_len"] == 64
        (attempt,) = result["attempts"][name]
        assert attempt["ok"] and positive(attempt["seconds"], attempt["peak_bytes"])


def check_compression_run(run: dict, batch: int) -> None:
    for row in run["files"]:
        assert row["mbz_bytes"] == row["header_bytes"] + row["payload_bytes"] > row["header_bytes"]
        # the coded streams are the model's bits, plus at most two 32-bit words of flush a chunk
        bits = row["model_bits"]
        assert 0.99 * bits <= 8 * row["payload_bytes"] <= bits + 64 * row["chunks"]
        assert row["chunks"] == -(-row["bytes"] // run["chunk"])
        assert {"gzip", "bz2", "xz"} <= set(row["codec_bytes"]) and positive(
            *row["codec_bytes"].values()
        )
    speed = run["speed"]
    assert speed["batch_1"]["chunks_per_batch"] == 1
    chunks = -(-speed["bytes"] // speed["chunk"])
    assert speed[f"batch_{batch}"]["chunks_per_batch"] == min(batch, chunks)
    for key in ("batch_1", f"batch_{batch}", "xz"):
        assert positive(speed[key]["compress_bytes_per_s"], speed[key]["decompress_bytes_per_s"])


def test_compression_smoke_measures_every_modality_the_demo_trains(tmp_path):
    from multibyte.plans import PLANS

    result = run("compression", tmp_path)
    runs = result["runs"]
    assert [r["adapter"] for r in runs] == [plan.name for plan in PLANS]
    codecs = set()
    for r in runs:
        (row,) = r["files"]  # the miniature sample pack holds one file per modality
        assert row["file"].startswith("held-out") and row["not_exact"] is None
        seq_len = modalities.get(**r["modality"]).seq_len or 1 << 30
        assert r["chunk"] == min(seq_len, r["max_seq_len"])
        check_compression_run(r, batch=32)
        codecs |= set(row["codec_bytes"]) | set(row["codec_notes"])
    assert {"png", "webp", "flac"} <= codecs  # the format codecs of the demo's modalities
    section = (tmp_path / "benchmarks.md").read_text()
    assert all(f"| {r['adapter']} | held-out" in section for r in runs) and "| xz -9 |" in section


def test_compression_of_given_files_codes_prepared_content_and_skips_unreadable(tmp_path):
    shape = h.SMOKE_PAIR["megabyte"]
    torch.manual_seed(0)
    ckpt = tmp_path / "image.ckpt"
    export(Megabyte(h.megabyte_config(shape, 192)), ckpt, {"name": "image", "size": 8})
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"not an image")
    files = [str(tmp_path / name) for name in ("a.png", "b.png", "c.png")]
    options = ["--ckpt", str(ckpt), "--files", *files, "--batch", "2", "--speed-bytes", "64"]
    result = run("compression", tmp_path, *options)
    (r,) = result["runs"]
    assert [row["file"] for row in r["files"]] == ["a.png", "b.png"]
    assert r["files"][0]["not_exact"] is None and "12x10" in r["files"][1]["not_exact"]
    assert all(row["bytes"] == 192 for row in r["files"])  # b.png as prepare makes it: 8x8
    assert [row["file"] for row in r["skipped"]] == [files[2]]
    check_compression_run(r, batch=2)
    assert result["settings"]["files_per_modality"] == 0  # --files: all of them


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--demo", "{tmp}/none"], "{tmp}/none: no demo checkpoint"),
        (["--ckpt", "{tmp}/x.ckpt"], "--ckpt and --files go together"),
        (["--ckpt", "{tmp}/x.ckpt", "--files", "{tmp}/missing.png"], "missing.png: file not found"),
        (["--batch", "0"], "--batch 0: must be at least 1"),
    ],
)
def test_compression_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    with pytest.raises(SystemExit) as exit:
        h.run_case("compression", [*argv, "--out", str(tmp_path), "--no-doc"])
    assert exit.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m benchmarks run compression: error: ")
    assert message.format(tmp=tmp_path) in line
    assert "make demo" in line or "--demo" not in argv


def test_train_step_on_the_gpu_runs_on_cpu_at_smoke_sizes(tmp_path):
    result = run("train_step", tmp_path, "--gpu")
    check_train_rows(result["train"])
    assert result["device"] == "cpu (smoke)" and result["compile"] is False
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu.sh")]).returncode == 0


@pytest.mark.slow  # compiles the decode step of both models at two batch sizes: `pytest -m slow`
def test_generate_on_the_gpu_runs_on_cpu_at_smoke_sizes(tmp_path):
    result = run("generate", tmp_path, "--gpu")
    kinds, batches = ("eager", "compiled"), result["sizes"]["batches"]
    expected = {f"{n}/{k}/{b}" for n in h.PAIR for k in kinds for b in batches}
    assert set(result["generate"]) == expected and result["device"] == "cpu (smoke)"
    assert all(positive(g["bytes_per_s"]) for g in result["generate"].values())


def test_generation_references_on_a_tiny_model():
    model = Megabyte(MegabyteConfig(**h.SMOKE_PAIR["megabyte"] | {"max_seq_len": 32})).eval()
    assert positive(generate.timed(model, 2, 4, 12, compile=False))
    floor = generate.floor(model, (1, 2), 64)
    assert positive(floor["floor_s_per_byte"], *floor["linears_alone_s_per_step"].values())
    assert floor["weight_bytes_per_byte"] == generate.weight_bytes_per_byte(model)


def test_the_benchmarks_step_is_the_one_training_takes():
    from multibyte.train import ByteLM

    torch.manual_seed(0)
    model = Megabyte(MegabyteConfig(**TINY))
    x = h.random_bytes(2, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        expected = ByteLM(model).training_step(x, 0).detach()
    before = [p.detach().clone() for p in model.parameters()]
    assert torch.equal(h.training_step(model, x)(), expected)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # AdamW ran


def test_measure_interleaves_warms_up_and_measures_memory():
    calls = []
    workloads = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    timings = h.measure(workloads, repeats={"a": 3, "b": 1}, warmup=1, memory="cpu")
    assert calls == ["a", "a", "b", "b", "a", "a", "b", "a"]  # warm-up + memory, then spread
    assert [len(timings[k].seconds) for k in "ab"] == [3, 1]
    assert timings["a"].best <= timings["a"].median and positive(timings["b"].memory["peak_bytes"])


def test_update_doc_section_replaces_only_its_own_section(tmp_path):
    def section(name: str, body: str) -> str:
        return f"<!-- benchmark:{name}:begin -->\n{body}\n<!-- benchmark:{name}:end -->\n"

    doc = tmp_path / "b.md"
    doc.write_text(f"# T\n\nbefore\n{section('x', 'old')}between\n{section('y', 'other')}after\n")
    h.update_doc_section("x", "new", path=doc)
    expected = f"# T\n\nbefore\n{section('x', 'new')}between\n{section('y', 'other')}after\n"
    assert doc.read_text() == expected
    h.update_doc_section("z", "added", path=doc)
    assert doc.read_text() == expected + "\n" + section("z", "added")


def test_the_equal_pair_has_equal_non_embedding_parameters():
    megabyte = h.megabyte_config(h.PAIR["megabyte"], 8192)
    transformer = ByteTransformerConfig(max_seq_len=8192, **h.PAIR["byte_transformer"])
    counts = {non_embedding_parameters(megabyte), non_embedding_parameters(transformer)}
    assert counts == {14_155_776}
    assert h.megabyte_config(h.PAIR["megabyte"], 8207).max_seq_len == 8208  # whole patches


@pytest.mark.parametrize("shape", [dict(global_dim=256, local_dim=128), {}])
def test_matched_transformer_is_within_ten_percent(shape):
    config = MegabyteConfig(**(h.PAIR["megabyte"] | shape))
    match, m = h.matched_transformer(config), non_embedding_parameters(config)
    assert abs(match["layers"] * 12 * match["dim"] ** 2 - m) / m < 0.1
    assert match["dim"] % 64 == 0 and match["dim"] >= 16 * match["layers"]


def test_weight_bytes_per_byte_counts_the_global_model_once_per_patch():
    model = Megabyte(MegabyteConfig(**TINY))
    schedule = generate.decode_schedule(model)
    assert len(schedule) == 4  # one patch of P bytes
    global_layers = set(h.megabyte_stages(model)[0]["transformer"])
    assert [len(global_layers & set(step)) for step in schedule] == [4, 0, 0, 0]
    # per byte: global stack 12·32² once per 4 bytes, w_GL (8 -> 16) once per patch,
    # local stack 12·16² and the 16 x 256 head every byte; 4 bytes per fp32 weight
    weights = 12 * 32 * 32 / 4 + 8 * 16 / 4 + 12 * 16 * 16 + 16 * 256
    assert generate.weight_bytes_per_byte(model) == 4 * weights


def test_multimodal_smoke_measures_the_stream_in_a_fresh_process(tmp_path):
    doc = tmp_path / "benchmarks.md"
    result = h.run_case("multimodal", ["--smoke", "--out", str(tmp_path), "--doc", str(doc)])
    assert json.loads((tmp_path / "multimodal_streaming.json").read_text())["rows"]
    assert "<!-- benchmark:multimodal_streaming:begin -->" in doc.read_text()
    (row,) = result["rows"]  # the three sources, a third of the bytes each
    assert 3e6 < row["shard_bytes"] < 7e6 and row["seq_len"] == multimodal.MAX_SEQ_LEN
    assert row["peak_rss_bytes"] >= row["rss_before_bytes"] > 0
    assert positive(row["first_batch_s"], row["per_batch_s"])


def test_fit_precision_smoke(tmp_path):
    result = run("fit_precision", tmp_path)
    (row,) = result["recipes"].values()
    assert row["resolved"] == ("bf16-mixed" if result["bf16_units"] else "32-true")
    assert positive(row["as written"], row["32-true"], row["max_steps"])
