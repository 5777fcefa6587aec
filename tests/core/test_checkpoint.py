"""multibyte.checkpoint: export and load, refusals, and checkpoints written by earlier code."""

from pathlib import Path

import pytest
import torch

import multibyte
from multibyte.checkpoint import read_checkpoint
from multibyte.model import Megabyte, MegabyteConfig

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
OLD_CHECKPOINTS = ["two_stage", "three_stage", "two_stage_lightning"]


@pytest.fixture(scope="module")
def expected():
    return torch.load(FIXTURES / "expected.pt", weights_only=True)


@pytest.mark.parametrize("name", OLD_CHECKPOINTS)
def test_checkpoints_written_before_the_global_local_split_load_with_the_same_logits(
    name, expected
):
    model = multibyte.load(FIXTURES / f"{name}.ckpt")
    with torch.no_grad():
        logits = model(expected["inputs"])
    torch.testing.assert_close(logits, expected[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["two_stage", "three_stage"])
def test_the_same_seed_gives_the_same_weights_as_before(name, expected):
    spec = read_checkpoint(FIXTURES / f"{name}.ckpt")["multibyte"]["model"]
    config = MegabyteConfig(**spec["config"])
    torch.manual_seed(expected["seed"])
    fresh = Megabyte(config)
    saved = multibyte.load(FIXTURES / f"{name}.ckpt")  # old names, mapped on load
    fresh_state, saved_state = fresh.state_dict(), saved.state_dict()
    assert list(fresh_state) == list(saved_state)
    for key, value in fresh_state.items():
        assert torch.equal(value, saved_state[key]), key
