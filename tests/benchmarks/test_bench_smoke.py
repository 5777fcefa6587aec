"""The issue-6 benchmarks run in smoke mode (tiny sizes, seconds), so they never rot."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` lives at the repo root and is not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import data, generate, scaling, train_step  # noqa: E402
from multibyte.flops import non_embedding_parameters  # noqa: E402
from multibyte.model import MegabyteConfig  # noqa: E402


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _run(module, tmp_path, *extra):
    doc = tmp_path / "benchmarks.md"
    module.main(["--smoke", "--out", str(tmp_path), "--doc", str(doc), *extra])
    text = doc.read_text()
    assert f"<!-- benchmark:{module.NAME}:begin -->" in text and "Machine:" in text
    return json.loads((tmp_path / f"{module.NAME}.json").read_text())


def test_train_step_smoke(tmp_path):
    result = _run(train_step, tmp_path)
    ceiling = result["ceiling"]
    assert _positive(ceiling["matmul_fp32_flops_per_s"])
    assert _positive(ceiling["matvec_fp32_read_bytes_per_s"])
    for per_len in result["train"].values():
        for entry in per_len.values():
            assert _positive(entry["bytes_per_s"]) and _positive(entry["model_flops_per_s"])
            assert _positive(entry["memory"]["peak_rss_bytes"])
    assert result["baseline_not_timed"]  # the longest smoke T is beyond the baseline's limit


def test_train_step_full_sizes_are_equal_parameter():
    models = train_step.build(train_step.FULL, 1024)
    counts = {n: non_embedding_parameters(m.config) for n, m in models.items()}
    assert counts["megabyte"] == counts["byte_transformer"]
    assert train_step.FULL.seq_lens == (1024, 8192, 65536)


def test_generate_smoke(tmp_path):
    result = _run(generate, tmp_path)
    for entry in result["generate"].values():
        assert _positive(entry["bytes_per_s"])
    keys = {key.split("/")[0] for key in result["generate"]}
    assert {"megabyte_cached", "megabyte_uncached", "byte_transformer_cached"} <= keys
    if result["megabyte_pytorch_installed"]:
        assert "megabyte_pytorch" in keys and _positive(result["short_comparison"]["ratio"])
    assert result["megabyte_decode_ops_per_step"]["aten::cat"] == 0  # lean cached decoding
    lean = result["megabyte_step_against_forward"]
    assert _positive(lean["step_s_per_byte"]) and _positive(lean["forward_s_per_byte"])
    for floor in result["memory_floor_batch1"].values():
        assert _positive(floor["ratio"]) and _positive(floor["weight_bytes_per_byte"])
        assert _positive(floor["ratio_to_linears_alone"])
        assert _positive(floor["linears_alone_batch_ceiling"])
    default = result["megabyte_default_threads"]  # None when the default is the 1 thread used
    assert (default is None) == (torch.get_num_threads() == result["threads"])
    if default is not None:
        assert _positive(default["ratio"]) and _positive(default["batch_speedup"])
        assert default["threads"] == torch.get_num_threads()


def test_weight_bytes_per_byte_counts_the_global_model_once_per_patch():
    config = MegabyteConfig(
        patch_size=4,
        max_seq_len=16,
        global_dim=32,
        global_layers=1,
        global_heads=2,
        local_dim=16,
        local_layers=1,
        local_heads=2,
    )
    from multibyte.model import Megabyte

    model = Megabyte(config)
    schedule = generate.decode_schedule(model)
    assert len(schedule) == 4  # one patch of P bytes
    global_layers = set(generate._linears(model.stages[0].transformer))
    assert [len(global_layers & set(step)) for step in schedule] == [4, 0, 0, 0]
    # per byte: global stack 12·32² once per 4 bytes, w_GL (8 -> 16) once per patch,
    # local stack 12·16² and the 16 x 256 head every byte; 4 bytes per fp32 weight
    weights = 12 * 32 * 32 / 4 + 8 * 16 / 4 + 12 * 16 * 16 + 16 * 256
    assert generate.weight_bytes_per_byte(model) == 4 * weights


def test_data_smoke(tmp_path):
    result = _run(data, tmp_path)
    assert result["prepare"]["images"] == 200 and result["prepare"]["skipped"] == 0
    assert _positive(result["prepare"]["job_images_per_s"])
    assert _positive(result["reader"]["bytes_per_s"])
    assert _positive(result["consumption"]["bytes_per_s"])


def test_scaling_smoke(tmp_path):
    result = _run(scaling, tmp_path)
    for name in ("megabyte", "byte_transformer"):
        assert result["longest"][name]["seq_len"] == 64
        assert result["attempts"][name][0]["ok"]


def test_gpu_python_parts_run_on_cpu(tmp_path):
    result = train_step.main(["--gpu", "--smoke", "--out", str(tmp_path)])
    assert _positive(result["train"]["megabyte"]["mfu"]) and result["sdpa_ops"]
    result = generate.main(["--gpu", "--smoke", "--out", str(tmp_path)])
    assert all(_positive(e["bytes_per_s"]) for e in result["generate"].values())


def test_gpu_script_parses():
    script = ROOT / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


@pytest.mark.parametrize("m", [1_000_000, 14_155_776])
def test_closest_transformer(m):
    shape = train_step.closest_transformer(m)
    assert abs(shape["layers"] * 12 * shape["dim"] ** 2 - m) / m < 0.1


def test_diagnostics_smoke(tmp_path):
    # In a child process: its allocator part changes glibc's thresholds for the whole process.
    doc = tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "benchmarks.diagnostics", "--smoke", "--out", str(tmp_path)]
    subprocess.run([*command, "--doc", str(doc)], cwd=ROOT, check=True, capture_output=True)
    assert "<!-- benchmark:diagnostics:begin -->" in doc.read_text()
    result = json.loads((tmp_path / "diagnostics.json").read_text())
    shares = result["step_profile_shares"]
    assert sum(shares.values()) == pytest.approx(1.0) and shares["matmul"] > 0
    assert all(_positive(rate) for rate in result["matmul_shapes"]["shapes"].values())
    assert {len(result["relu"]["in_place"]), len(result["relu"]["out_of_place"])} == {2}
    if platform.libc_ver()[0] == "glibc":  # mallopt exists: the A/B must have run
        assert set(result["allocator"]) == {"default", "raised_thresholds"}
    else:
        assert result["allocator"] is None
    if hasattr(torch.ops.mkl, "_mkl_linear"):  # an MKL build of torch
        assert _positive(result["packed_linear"]["speedup"])
    else:
        assert result["packed_linear"] is None
