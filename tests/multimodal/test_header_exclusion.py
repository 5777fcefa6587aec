"""Header bytes never count in a modality's bpb: a stand-in model that is uniform on data bytes
gives exactly 8.000 for every modality, whatever it does on header bytes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from multibyte.data.header import HeaderTable
from multibyte.evaluation.evaluation import evaluate_model
from multibyte.evaluation.mixture import HeaderedModel, header_bits
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.train.module import ByteLM

MODALITIES = [{"name": "image", "size": 16}, {"name": "audio", "seq_len": 96}, {"name": "text"}]


class UniformOnData(nn.Module):
    """Uniform logits on data bytes; on header bytes a confident guess of ``guess``."""

    def __init__(self, header_len: int, guess: int, patch: int) -> None:
        super().__init__()
        self.header_len = header_len
        self.config = SimpleNamespace(max_seq_len=4096, patch_size=patch)
        self.head = nn.Linear(2, 256, bias=False)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[guess, 1] = 40.0  # header positions: nearly all mass on `guess`

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        in_header = (torch.arange(x.shape[1], device=x.device) < self.header_len).float()
        features = torch.stack([1.0 - in_header, in_header], dim=-1)
        return features.expand(x.shape[0], -1, -1) * 1.0


@pytest.mark.parametrize("guess", [0, 200])  # right on the pad bytes, or wrong everywhere
def test_evaluation_gives_8_bits_per_data_byte_for_every_modality(guess):
    table = HeaderTable.build(MODALITIES, patch_size=4, data_len=96)
    model = UniformOnData(table.length, guess, table.patch_size)
    rng = np.random.default_rng(0)
    for header in table.headers:
        sequences = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (96, 96, 40)]
        summary = evaluate_model(
            HeaderedModel(model, header, table), sequences, codecs=False, seq_len=96
        ).summary
        assert summary["bytes"] == 232  # data bytes only
        assert f"{summary['bits_per_byte']:.3f}" == "8.000"
        assert summary["bits_per_byte"] == pytest.approx(8.0, abs=1e-9)
    header = header_bits(model, table.headers[0])
    assert len(header) == table.length and abs(header.mean() - 8.0) > 1.0  # it is not uniform


@pytest.mark.parametrize("guess", [0, 200])
def test_training_bpb_per_modality_counts_data_bytes_only(guess):
    table = HeaderTable.build(MODALITIES, patch_size=4, data_len=96)
    config = MegabyteConfig(
        patch_size=4,
        max_seq_len=table.seq_len,
        global_dim=16,
        global_layers=1,
        global_heads=2,
        local_dim=16,
        local_layers=1,
        local_heads=2,
    )
    module = ByteLM(Megabyte(config))
    module.model = UniformOnData(table.length, guess, 4)
    module.modality = table.entry()
    rng = np.random.default_rng(1)
    rows = [list(table.headers[m]) + rng.integers(0, 256, 96).tolist() for m in (0, 2, 2, 1)]
    nats, counts = module._mixture_nats(torch.tensor(rows), module.header_table)
    bpb = (nats / counts / np.log(2)).tolist()
    assert counts.tolist() == [96, 96, 192, 4 * table.length]
    for value in bpb[:-1]:
        assert f"{value:.3f}" == "8.000"
    assert abs(bpb[-1] - 8.0) > 1.0  # the header's own bits are reported apart, not uniform
