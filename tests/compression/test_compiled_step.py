"""Compression through the compiled decode step: exact round trips, the step recorded in the
file, a request for the other step refused, and a file made in one process (1 thread) decoded
in another (2 threads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import multibyte
from multibyte.compression import EnvironmentMismatchError, unpack
from multibyte.compression.container import pack


@pytest.fixture(scope="module")
def model(helpers):
    return helpers.tiny_megabyte()  # P = 4, max_seq_len = 64


def test_compiled_round_trip_records_its_step(model, helpers):
    # 5 chunks of 48 (the last 11) in groups of 3 and 2: two batch shapes, a short last chunk.
    data = helpers.random_bytes(203, seed=4)
    blob = multibyte.compress(model, data, chunk=48, batch=3, compile=True)
    assert unpack(blob).meta["environment"]["decode_step"] == "compiled"
    assert multibyte.decompress(model, blob) == data  # the file's step by default
    assert multibyte.decompress(model, blob, compile=True) == data
    with pytest.raises(EnvironmentMismatchError, match="compiled decode step"):
        multibyte.decompress(model, blob, compile=False)


def test_a_compiled_file_names_the_caches_its_kernels_were_built_for(model, helpers):
    data = helpers.random_bytes(60, seed=6)
    container = unpack(multibyte.compress(model, data, chunk=48, compile=True))
    assert "L1d" in container.meta["environment"]["compiled_for"]
    container.meta["environment"]["compiled_for"] = "cpp gemm, L1d 1 B, L2 2 B"
    with pytest.raises(EnvironmentMismatchError, match="compiled for cpp gemm, L1d 1 B"):
        multibyte.decompress(model, pack(container))
    assert multibyte.decompress(model, pack(container), allow_mismatch=True) == data
    del container.meta["environment"]["compiled_for"]  # as files of the earlier compiled step
    with pytest.raises(EnvironmentMismatchError, match="earlier compiled decode step"):
        multibyte.decompress(model, pack(container))


def test_an_eager_file_refuses_the_compiled_step(model, helpers):
    blob = multibyte.compress(model, helpers.random_bytes(30, seed=5))
    assert unpack(blob).meta["environment"]["decode_step"] == "eager"
    with pytest.raises(EnvironmentMismatchError, match="eager decode step"):
        multibyte.decompress(model, blob, compile=True)


@pytest.mark.slow  # compiles another model; tests/model checks its compiled logits every step
def test_cross_patch_attention_round_trips_through_the_compiled_step(helpers):
    model = helpers.tiny_megabyte(cross_patch=2)  # carried keys: re-rotated at each patch
    data = helpers.random_bytes(70, seed=8)
    blob = multibyte.compress(model, data, chunk=48, batch=2, compile=True)
    assert multibyte.decompress(model, blob) == data


SCRIPT = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[1]))
import multibyte
mode, ckpt, source, target = sys.argv[2:]
model = multibyte.load(ckpt)
data = Path(source).read_bytes()
out = (multibyte.compress(model, data, batch=8, compile=True) if mode == "compress"
       else multibyte.decompress(model, data))
Path(target).write_bytes(out)
"""


@pytest.mark.slow  # compiles in two processes; test_portability checks the eager step there
def test_compiled_file_decodes_in_another_process_with_other_threads(tmp_path, ckpts, helpers):
    script, data = tmp_path / "side.py", helpers.random_bytes(507, seed=9)
    script.write_text(SCRIPT)
    (tmp_path / "data.bin").write_bytes(data)
    for threads, mode, source, target in [
        (1, "compress", "data.bin", "data.mbz"),
        (2, "decompress", "data.mbz", "back.bin"),
    ]:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        args = [
            sys.executable,
            str(script),
            str(threads),
            mode,
            str(ckpts.text),
            str(tmp_path / source),
            str(tmp_path / target),
        ]
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    assert unpack((tmp_path / "data.mbz").read_bytes()).meta["environment"]["decode_step"] == (
        "compiled"
    )
    assert (tmp_path / "back.bin").read_bytes() == data
