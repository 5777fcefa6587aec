"""The benchmark harness and every case at smoke sizes (seconds), so that none of them rots."""

import json
import platform
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
from benchmarks import (  # noqa: E402, F401
    compression,
    core,
    cpu_bf16,
    data,
    diagnostics,
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

TINY = dict(patch_size=4, max_seq_len=16, global_dim=32, global_layers=1, global_heads=2,
            local_dim=16, local_layers=1, local_heads=2)  # fmt: skip


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
        "core",
        "cpu_bf16",
        "fit_precision",
        "train_step",
        "generate",
        "decode",
        "data",
        "scaling",
        "diagnostics",
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
    assert by_case["core"] == ["--folder", "x"]
    commands.clear()
    assert h.cli(["run", "all", "--smoke"]) == 0
    assert all(c[5:] == ["--smoke"] for c in commands)


def test_train_step_smoke(tmp_path):
    result = run("train_step", tmp_path)
    assert positive(result["ceiling"]["flops_per_s"], result["ceiling"]["matvec"]["bytes_per_s"])
    assert list(result["train"]) == ["32", "64"] and set(result["train"]["32"]) == set(h.PAIR)
    check_train_rows(result["train"])
    assert positive(result["baseline_not_timed"]["64"]["estimated_step_s"])
    assert positive(result["ratios_megabyte_vs_transformer"]["32"])


def test_cpu_bf16_smoke(tmp_path):
    result = run("cpu_bf16", tmp_path)
    assert set(result["steps"]) == set(cpu_bf16.RECIPES)
    for row in result["steps"].values():
        for model in row["models"].values():
            assert positive(model["float32"]["median_s"], model["bf16"]["median_s"])
            assert model["speedup"] == model["float32"]["median_s"] / model["bf16"]["median_s"]
    assert list(result["attention"]) == ["8", "32"]
    for timing in result["attention"].values():
        assert positive(timing["fused_bf16"], timing["fused_float32"], timing["written_out"])
    assert positive(*(c["flops_per_s"] for c in result["ceilings"].values()))


def test_core_smoke(tmp_path):
    result = run("core", tmp_path)
    check_train_rows(result["train"])
    assert set(result["generate"]) == {"megabyte_cached/1", "byte_transformer_cached/1",
                                       "megabyte_uncached/1"}  # fmt: skip
    assert all(positive(g["bytes_per_s"], g["seconds"]) for g in result["generate"].values())
    check = result["generate"]["megabyte_uncached/1"]["check"]
    assert positive(check["measured_seconds"], check["integrated_seconds"])
    for profile in result["decoder_step_ms"].values():
        assert len(profile) == 3 and positive(*profile.values())
    assert set(result["ratios"]) == set(core.TARGETS)
    for ratio in result["ratios"].values():
        assert positive(ratio["value"]) and ratio["met"] == (ratio["value"] >= ratio["target"])


def test_generate_smoke(tmp_path):
    result = run("generate", tmp_path)
    rows = result["generate"]
    assert all(positive(g["bytes_per_s"], g["ms_per_step"]) for g in rows.values())
    kinds = {key.split("/")[0] for key in rows}
    assert {"megabyte_cached", "megabyte_uncached", "byte_transformer_cached"} <= kinds
    assert ("megabyte_pytorch" in kinds) == result["megabyte_pytorch_installed"]
    floors = result["floors"]  # both models on one thread, then MEGABYTE on torch's default
    assert len(floors) == 2 + (torch.get_num_threads() != result["threads"])
    assert [f["model"] for f in floors[:2]] == ["megabyte", "byte_transformer"]
    assert [f["threads"] for f in floors[:2]] == [result["threads"]] * 2
    if torch.get_num_threads() != result["threads"]:
        assert floors[2]["model"] == "megabyte" and floors[2]["threads"] == torch.get_num_threads()
    for f in floors:
        assert positive(f["matvec_bytes_per_s"], f["weight_bytes_per_byte"], f["floor_s_per_byte"])
        assert positive(f["measured_s_per_byte"], f["linears_alone_s_per_step"])
        assert positive(f["batch_speedup"], f["linears_alone_batch_speedup"])
    assert len(result["short_comparisons"]) == (
        len(floors) - 1 if "megabyte_pytorch" in kinds else 0
    )
    lean = result["lean_step"]
    assert positive(
        lean["step_s_per_byte"], lean["forward_s_per_byte"], lean["ops_per_step"]["linear"]
    )
    assert lean["ops_per_step"]["cat"] == 0  # cached decoding writes its caches in place


@pytest.mark.slow  # compiles the decode step of two models: `pytest -m slow`
def test_decode_smoke(tmp_path):
    result = run("decode", tmp_path, "--no-lucidrains")
    b1, b8 = result["sizes"]["batches"]
    keys = {f"{kind}/{b}" for kind in ("eager", "compiled") for b in (b1, b8)}
    assert set(result["seconds"]) == keys and positive(*result["seconds"].values())
    assert set(result["compile_s"]) == {str(b1), str(b8)} or set(result["compile_s"]) == {b1, b8}
    assert positive(result["floor_s_per_byte"], *result["linears_alone_s_per_step"].values())
    assert len(result["profiles"]) == 2  # the profiled steps ran compiled, at both batches
    assert all("Torch-Compiled Region" in table for table in result["profiles"].values())
    for kinds in result["step_kinds_ms"].values():  # both step kinds were timed at each batch
        assert set(kinds) == {"patch_start", "within_patch", "sample"} and positive(*kinds.values())


def test_data_smoke(tmp_path):
    result = run("data", tmp_path)
    assert result["prepare"]["images"] == 200 and result["prepare"]["skipped"] == 0
    assert positive(result["prepare"]["job_images_per_s"], result["reader"]["bytes_per_s"])
    assert positive(result["consumption"]["bytes_per_s"], result["reader_vs_consumption"])


def test_scaling_smoke(tmp_path):
    result = run("scaling", tmp_path)
    for name in h.PAIR:
        assert result["longest"][name]["seq_len"] == 64
        (attempt,) = result["attempts"][name]
        assert attempt["ok"] and positive(attempt["seconds"], attempt["peak_bytes"])


def test_diagnostics_smoke(tmp_path):
    # In a child process: its allocator part changes glibc's thresholds for the whole process.
    doc = tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "benchmarks", "run", "diagnostics", "--smoke",
               "--out", str(tmp_path), "--doc", str(doc)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    assert "<!-- benchmark:diagnostics:begin -->" in doc.read_text()
    result = json.loads((tmp_path / "diagnostics.json").read_text())
    shares = result["step_profile_shares"]
    assert sum(shares.values()) == pytest.approx(1.0) and shares["matmul"] > 0
    assert positive(*result["matmul_shapes"]["shapes"].values(), result["matmul_shapes"]["square"])
    assert [len(result["relu"][k]) for k in ("in_place", "out_of_place")] == [2, 2]
    if platform.libc_ver()[0] == "glibc":  # mallopt exists: the A/B must have run
        assert set(result["allocator"]) == {"default", "raised_thresholds"}
    if hasattr(torch.ops.mkl, "_mkl_linear"):  # an MKL build of torch
        assert positive(result["packed_linear"]["speedup"])


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
    from multibyte.quickstart import PLANS

    result = run("compression", tmp_path)
    runs = result["runs"]
    assert [r["adapter"] for r in runs] == [plan.name for plan in PLANS]
    codecs = set()
    for r in runs:
        (row,) = r["files"]  # the miniature sample pack holds one file per modality
        assert row["file"].startswith("held-out") and row["not_exact"] is None
        assert r["chunk"] == min(modalities.get(**r["modality"]).seq_len or 1 << 30,
                                 r["max_seq_len"])  # fmt: skip
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
    result = run("compression", tmp_path, "--ckpt", str(ckpt), "--files", *files, "--batch", "2",
                 "--speed-bytes", "64")  # fmt: skip
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


def test_gpu_cases_run_on_cpu_at_smoke_sizes(tmp_path):
    result = run("train_step", tmp_path, "--gpu")
    check_train_rows(result["train"])
    assert result["sdpa_ops"] and result["device"] == "cpu (smoke)"
    result = run("generate", tmp_path, "--gpu")
    kinds = ("cached", "compiled")
    assert set(result["generate"]) == {
        f"{n}_{k}/{b}" for n in h.PAIR for k in kinds for b in (1, 8)
    }
    assert all(positive(g["bytes_per_s"]) for g in result["generate"].values())
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu.sh")]).returncode == 0


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
    timings = h.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                        repeats={"a": 3, "b": 1}, warmup=1, memory="cpu")  # fmt: skip
    assert calls == ["a", "a", "b", "b", "a", "a", "b", "a"]  # warm-up + memory, then spread
    assert [len(timings[k].seconds) for k in "ab"] == [3, 1]
    assert timings["a"].best <= timings["a"].median and positive(timings["b"].memory["peak_bytes"])


def test_integrate_interpolates_linearly_between_measured_positions():
    # measured over bytes t, t+1: the cost at their centre t + 0.5; constant beyond the ends
    result = h.integrate(
        lambda t: 1e-3 * (t + 0.5), first=10, count=100, points=5, span=2, check=20
    )
    expected = [1e-3 * min(max(t, 10.5), 108.5) for t in range(10, 110)]
    assert result["positions"] == [10, 34, 59, 84, 108]
    assert result["seconds"] == pytest.approx(sum(expected))
    assert result["check"]["integrated_seconds"] == pytest.approx(sum(expected[:20]))


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


def test_multimodal_reads_a_quickstart_report_and_marks_the_goal(tmp_path, capsys):
    rows = [
        {"modality": "image", "specialist_bpb": 6.5, "multimodal_bpb": 6.51, "gap_bpb": 0.01},
        {"modality": "text", "specialist_bpb": 3.2, "multimodal_bpb": 3.3, "gap_bpb": 0.1},
        {"modality": "audio", "specialist_bpb": 5.1, "multimodal_bpb": 5.0, "gap_bpb": -0.1},
    ]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"seconds": 60.0, "quick": False, "multimodal_rows": rows,
                                  "multimodal": {"steps": 1075}}))  # fmt: skip
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    result = h.run_case("multimodal", ["--report", str(report), "--out", str(tmp_path),
                                       "--doc", str(doc)])  # fmt: skip
    assert [r["within_goal"] for r in result["rows"]] == [True, False, True]
    section = doc.read_text().split("<!-- benchmark:multimodal:begin -->")[1]
    assert "| text | 3.200 | 3.300 | +0.100 |  | **no** |" in section

    (tmp_path / "empty.json").write_text(json.dumps({"seconds": 1.0, "quick": True}))
    with pytest.raises(SystemExit) as exit_:
        h.run_case("multimodal", ["--report", str(tmp_path / "empty.json"), "--no-doc"])
    assert exit_.value.code == 2 and "no multimodal rows" in capsys.readouterr().err


def test_fit_precision_smoke(tmp_path):
    result = run("fit_precision", tmp_path)
    (row,) = result["recipes"].values()
    assert row["resolved"] == ("bf16-mixed" if result["bf16_units"] else "32-true")
    assert positive(row["as written"]["step_s"], row["32-true"]["step_s"], row["max_steps"])
