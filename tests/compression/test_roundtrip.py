"""multibyte.compress / decompress give back exactly the bytes they were given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import multibyte
from multibyte.compression import unpack


@pytest.fixture(scope="module")
def model(helpers):
    return helpers.tiny_megabyte()  # P = 4, max_seq_len = 64


CASES = {
    "empty": b"",
    "one byte": b"\x9c",
    "zeros": bytes(150),
    "random": None,  # filled below: 203 random bytes, not a multiple of P or of the chunk
    "all byte values": bytes(range(256)),
}


@pytest.mark.parametrize("name", CASES)
def test_round_trip(model, helpers, name):
    data = CASES[name] if CASES[name] is not None else helpers.random_bytes(203)
    blob = multibyte.compress(model, data, batch=2)
    assert multibyte.decompress(model, blob) == data
    container = unpack(blob)
    assert container.length == len(data)
    assert len(container.streams) == -(-len(data) // 64)  # one stream per chunk of max_seq_len


@pytest.mark.parametrize("chunk, batch", [(7, 3), (13, 1), (64, 8), (1, 16)])
def test_chunking_and_batching(model, helpers, chunk, batch):
    """Chunks shorter than P, not dividing the data, batches that leave a short last group."""
    data = helpers.random_bytes(70, seed=chunk)
    blob = multibyte.compress(model, data, chunk=chunk, batch=batch)
    container = unpack(blob)
    assert (container.chunk, container.batch) == (chunk, batch)
    assert len(container.streams) == -(-70 // chunk)
    assert multibyte.decompress(model, blob) == data


def test_megabyte_options_and_byte_transformer(helpers):
    data = helpers.random_bytes(90, seed=3) + b"abab" * 10
    for model in (
        helpers.tiny_megabyte(cross_patch=2, conv_encoder=True),
        helpers.tiny_megabyte(patch_sizes=(8, 2), max_seq_len=64),
        helpers.tiny_transformer(),
    ):
        blob = multibyte.compress(model, data, chunk=48, batch=2)
        assert multibyte.decompress(model, blob) == data, type(model).__name__


class ForwardOnly(nn.Module):
    """The call contract without a decoder: compress falls back to a forward pass per byte."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_model_without_decoder(helpers):
    model = ForwardOnly(helpers.tiny_megabyte())
    data = helpers.random_bytes(40, seed=5)
    assert multibyte.decompress(model, multibyte.compress(model, data, chunk=24)) == data


def test_compression_actually_compresses(helpers):
    """A model that learned a pattern codes it in far fewer bits than 8 per byte."""
    model = helpers.tiny_megabyte(max_seq_len=32)
    pattern = torch.tensor([list(b"abcd" * 8)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(pattern)[0], pattern[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    data = b"abcd" * 64
    blob = multibyte.compress(model, data)
    assert sum(len(s) for s in unpack(blob).streams) < len(data) / 4
    assert multibyte.decompress(model, blob) == data
    assert model.training  # coding restores the caller's mode


def test_options_are_checked(model):
    with pytest.raises(ValueError, match="chunk must be in 1..64"):
        multibyte.compress(model, b"abc", chunk=65)
    with pytest.raises(ValueError, match="batch must be in 1..4096"):
        multibyte.compress(model, b"abc", batch=0)
    with pytest.raises(ValueError, match="threads must be in 1..256"):
        multibyte.compress(model, b"abc", threads=1_000_000)


def test_thread_setting_is_restored(model):
    before = torch.get_num_threads()
    blob = multibyte.compress(model, b"hello world", threads=1)
    assert torch.get_num_threads() == before
    assert unpack(blob).meta["environment"]["threads"] == 1
    assert multibyte.decompress(model, blob) == b"hello world"
    assert torch.get_num_threads() == before


def test_same_input_gives_the_same_file(model, helpers):
    """Nothing random in the coder: same model and input, the same file byte for byte."""
    data = helpers.random_bytes(100, seed=9)
    assert multibyte.compress(model, data) == multibyte.compress(model, data)
