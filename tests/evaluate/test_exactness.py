"""Exact bits per byte: known models give known numbers, and every byte is scored once."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import modalities
from multibyte.cli import main as cli
from multibyte.evaluation import (
    EvaluationError,
    basic_plan,
    ci95,
    evaluate_model,
    sliding_plan,
    strided_plan,
)
from multibyte.evaluation.report import text_report

LENGTHS = [1, 2, 3, 5, 31, 33, 64, 101]  # around P=4 and L=32, few of them multiples


def random_sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]


def test_uniform_model_is_exactly_8_bits_and_the_report_says_so(stand_ins):
    evaluation = evaluate_model(
        stand_ins.Uniform(), random_sequences(LENGTHS), strided=True, sliding=True, context=8
    )
    summary = evaluation.summary
    for mode in ("basic", "strided", "sliding"):
        assert summary[mode]["bits_per_byte"] == 8.0
        assert summary[mode]["bytes"] == sum(LENGTHS)
    assert summary["bits_per_byte"] == 8.0 and summary["total_bits"] == 8.0 * sum(LENGTHS)
    assert summary["ci95"] == [8.0, 8.0]
    assert "bits per byte: 8.000" in text_report(summary)


def test_uniform_checkpoint_through_the_cli(uniform_text_ckpt, text_file, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = cli(
        [
            "evaluate",
            "--ckpt",
            str(uniform_text_ckpt),
            "--data",
            str(text_file),
            "--json",
            str(out),
            "--quiet",
            "--words",
        ]
    )
    assert code == 0
    assert "bits per byte: 8.000" in capsys.readouterr().out
    report = json.loads(out.read_text())
    data = text_file.read_bytes() + b"\x1e\n"  # the text stream: document + separator
    assert report["bytes"] == len(data) and report["bits_per_byte"] == 8.0
    assert report["modality"] == "text" and report["unit"] == "bits/byte"
    assert report["value_in_unit"] == 8.0
    words = len(text_file.read_bytes().split())
    assert report["words"] == words
    assert report["word_perplexity"] == pytest.approx(2 ** (8 * len(data) / words), rel=1e-12)


@pytest.mark.parametrize(
    ("options", "unit", "in_unit"),
    [
        ({"name": "text"}, "bits/byte", 8.0),
        ({"name": "image", "size": 4}, "bits/dim", 8.0),
        ({"name": "audio", "sample_rate": 8000, "seq_len": 32}, "bits/sample", 16.0),
        ({"name": "audio", "encoding": "mulaw8", "seq_len": 32}, "bits/sample", 8.0),
    ],
)
def test_the_unit_and_its_conversion_come_from_the_adapter(options, unit, in_unit, stand_ins):
    adapter = modalities.get(**options)
    sequences = random_sequences([48, 48])
    summary = evaluate_model(stand_ins.Uniform(), sequences, adapter=adapter, codecs=False).summary
    assert summary["bits_per_byte"] == 8.0 and summary["unit"] == unit
    assert summary["value_in_unit"] == in_unit and summary["ci95_in_unit"] == [in_unit] * 2
    assert summary["stream"] is adapter.stream


def test_fixed_q_on_data_drawn_from_p_gives_the_analytic_cross_entropy(stand_ins):
    rng = np.random.default_rng(1)
    q = rng.dirichlet(np.ones(256))
    # Data "drawn from p" with exact counts: p_b = count_b / N, so the empirical cross-entropy
    # equals the analytic H(p, q) = -sum p_b log2 q_b with no sampling error.
    counts = rng.integers(0, 20, 256)
    data = rng.permutation(np.repeat(np.arange(256, dtype=np.uint8), counts))
    p = counts / counts.sum()
    analytic = -float(np.sum(p * np.log2(q)))
    cuts = np.cumsum([0, 7, 45, 101, 3])  # pieces of lengths not divisible by P or L
    sequences = [data[a:b] for a, b in zip(cuts, cuts[1:])] + [data[cuts[-1] :]]
    summary = evaluate_model(stand_ins.FixedQ(q), sequences, strided=True, sliding=True).summary
    assert summary["bytes"] == len(data)
    for mode in ("basic", "strided", "sliding"):
        assert abs(summary[mode]["bits_per_byte"] - analytic) < 1e-6


@pytest.mark.parametrize("stream", [False, True])
def test_total_bytes_equal_the_data_bytes(stream, stand_ins):
    sequences = random_sequences(LENGTHS if not stream else [1001])
    evaluation = evaluate_model(
        stand_ins.PreviousByte(), sequences, stream=stream, strided=True, sliding=True, seq_len=28
    )
    total = sum(len(s) for s in sequences)
    for mode in ("basic", "strided", "sliding"):
        assert evaluation.summary[mode]["bytes"] == total
        assert sum(len(b) for b in evaluation.modes[mode].bits) == total
    # A stream is one sequence whose CI groups are its windows of L = 28 bytes.
    assert evaluation.summary["basic"]["ci_groups"] == (
        math.ceil(1001 / 28) if stream else len(LENGTHS)
    )


@pytest.mark.parametrize("patch", [2, 3, 4, 8])
@pytest.mark.parametrize("window", [12, 24, 48])
def test_every_plan_scores_each_byte_exactly_once(patch, window):
    if window % patch or window < 2 * patch:
        window *= patch  # strided needs L a multiple of P, and at least 2P
    lengths = [1, patch - 1 or 1, patch, patch + 1, window - 1, window, window + 1, 3 * window + 5]
    for plan in (
        basic_plan(lengths, window),
        strided_plan(lengths, window, patch),
        sliding_plan(lengths, window, window // 2, patch),
        sliding_plan(lengths, window, 0, patch),
    ):
        counts = [np.zeros(n, int) for n in lengths]
        for w in plan:
            assert 0 <= w.start < w.stop <= lengths[w.sequence] and w.stop - w.start <= window
            counts[w.sequence][np.arange(w.start, w.stop)[w.keep]] += 1
        assert all((c == 1).all() for c in counts)


def test_strided_plan_keeps_first_half_positions_and_gives_context():
    patch, window, n = 4, 16, 50
    plan = strided_plan([n], window, patch)
    for w in plan:
        local = np.arange(w.stop - w.start)
        t = local + w.start
        kept = local[w.keep]
        first_patch = t[w.keep] < patch  # the start of the sequence: scored by the basic pass
        assert (kept[~first_patch] % patch < patch - patch // 2).all()
        if w.start % patch == patch // 2 and w.start > patch:  # offset windows k >= 1
            assert kept.min() >= patch  # the first patch is context only


def test_sliding_context_is_at_least_the_requested_context():
    for w in sliding_plan([200], 32, 10, 4):
        if w.start > 0:
            assert np.flatnonzero(w.keep).min() >= 10


def test_bad_plan_arguments(stand_ins):
    with pytest.raises(EvaluationError):
        strided_plan([10], 30, 4)  # L not a multiple of P
    with pytest.raises(EvaluationError):
        sliding_plan([10], 32, 32, 4)
    with pytest.raises(EvaluationError):
        evaluate_model(stand_ins.Uniform(), [b""])
    with pytest.raises(EvaluationError):
        evaluate_model(stand_ins.Uniform(), [b"abc"], seq_len=33)


def test_strided_agrees_with_basic_when_patch_position_does_not_matter(stand_ins):
    sequences = random_sequences([37, 64, 200])
    summary = evaluate_model(
        stand_ins.PreviousByte(), sequences, strided=True, sliding=True
    ).summary
    basic = summary["basic"]["bits_per_byte"]
    assert abs(summary["strided"]["bits_per_byte"] - basic) < 1e-9
    # Sliding gives the bytes at basic window starts their previous byte: it may differ.
    # Strided costs about two passes, each reported separately.
    assert summary["strided"]["cost"]["relative_bytes_processed"] > 1.9


def test_strided_and_basic_differ_on_a_trained_megabyte(trained_text_ckpt, stand_ins):
    import multibyte

    model = multibyte.load(trained_text_ckpt)
    data = (stand_ins.TEXT * 4).encode()
    summary = evaluate_model(model, [data], stream=True, strided=True).summary
    basic, strided = summary["basic"], summary["strided"]
    assert basic["bytes"] == strided["bytes"] == len(data)
    assert basic["bits_per_byte"] < 7.0  # it did learn something in 40 steps
    assert abs(basic["bits_per_byte"] - strided["bits_per_byte"]) > 1e-4
    assert len(basic["by_patch_position"]) == 4  # mean bits at each position in the patch


def test_ci95_matches_the_ratio_estimator():
    bits = np.array([10.0, 20.0, 30.0])
    sizes = np.array([5.0, 5.0, 10.0])
    lo, hi = ci95(bits, sizes)
    rate = 60 / 20
    resid = bits - rate * sizes
    se = math.sqrt(3 / 2 * (resid**2).sum()) / 20
    assert (lo + hi) / 2 == pytest.approx(rate)
    assert hi - lo == pytest.approx(2 * 1.959963984540054 * se)
    assert ci95(bits[:1], sizes[:1]) is None


def test_long_windows_use_the_chunked_head(monkeypatch, stand_ins):
    import multibyte.evaluation.scoring as ev
    from multibyte.model import Megabyte

    torch.manual_seed(0)
    model = Megabyte(stand_ins.tiny_config()).eval()
    x = torch.randint(0, 256, (2, 64))
    full = ev.window_bits(model, x)
    monkeypatch.setattr(ev, "HEAD_CHUNK", 5)
    torch.testing.assert_close(ev.window_bits(model, x), full)
