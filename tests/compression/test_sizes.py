"""Sizes match the model: the coded streams are the model's own bits, plus a few per chunk."""

from __future__ import annotations

import numpy as np
import torch

import multibyte
from multibyte.compression import unpack
from multibyte.compression.coder import chunk_lengths, code_lengths_bits, run_lockstep
from multibyte.evaluation import evaluate_model


def test_payload_within_one_percent_of_evaluate(helpers):
    """`multibyte evaluate`'s total bits on the same bytes, windows = the compressor's chunks."""
    model = helpers.tiny_megabyte(max_seq_len=512)
    data = helpers.random_bytes(1300, seed=4)  # chunks of 512, 512, 276
    container = unpack(multibyte.compress(model, data))
    payload_bits = 8 * container.payload_bytes()
    report = evaluate_model(model, [data], seq_len=container.chunk, stream=True, codecs=False)
    model_bits = report.summary["total_bits"]
    assert report.summary["bytes"] == len(data)
    assert abs(payload_bits - model_bits) <= 0.01 * model_bits, (payload_bits, model_bits)


def test_each_stream_is_its_ideal_length_within_a_word_or_two(helpers):
    """Per chunk: range coder output vs sum of -log2(frequency / 2^24) of the coded bytes."""
    model = helpers.tiny_megabyte()
    data = helpers.random_bytes(150, seed=6) + bytes(100)  # 4 chunks of 64 (the last 58)
    container = unpack(multibyte.compress(model, data, batch=4))
    lengths = chunk_lengths(len(data), 64)
    rows = np.zeros((4, 64), dtype=np.int32)
    for r, n in enumerate(lengths):
        rows[r, :n] = np.frombuffer(data[r * 64 : r * 64 + n], np.uint8)
    ideal = np.zeros(4)

    def choose(t, weights, active):
        ideal[active] += code_lengths_bits(weights[active], rows[active, t])
        return rows[:, t]

    with torch.inference_mode():
        run_lockstep(model, lengths, choose)
    for stream, bits in zip(container.streams, ideal):
        assert bits - 32 <= 8 * len(stream) <= bits + 64
