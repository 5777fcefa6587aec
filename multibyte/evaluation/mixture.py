"""Evaluating a multimodal checkpoint: one report per modality, header bytes never counted.

``HeaderedModel`` puts a modality's header in front of every window it scores and returns the
hidden states of the data positions only, so the whole evaluation machinery (plans, strided and
sliding scoring, statistics, codecs) runs unchanged and header bytes cannot enter any bpb. The
header's own bits (the same for every sequence: it comes first) are reported apart, as
``header_bits_per_byte``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from multibyte.data.header import HeaderTable
from multibyte.evaluation.plans import EvaluationError
from multibyte.evaluation.scoring import model_device, window_bits


@dataclass(frozen=True)
class HeaderedConfig:
    """What scoring reads of a model's config: the data window and the patch size."""

    max_seq_len: int
    patch_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"max_seq_len": self.max_seq_len, "patch_size": self.patch_size}


class HeaderedModel(nn.Module):
    """``model`` seen through one modality's header: positions are data bytes only.

    The header fills whole patches, so data byte t sits at model position H + t with the same
    position inside its patch; ``max_seq_len`` is the data length the model was trained on.
    """

    def __init__(self, model: nn.Module, header: bytes, table: HeaderTable) -> None:
        super().__init__()
        self.model, self.head = model, model.head
        self.register_buffer("header", torch.tensor(list(header), dtype=torch.long), False)
        self.config = HeaderedConfig(table.data_len, table.patch_size)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        prefix = self.header.to(x.device).expand(x.shape[0], -1)
        return self.model.hidden(torch.cat([prefix, x], dim=1))[:, self.header.numel() :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))


def header_bits(model: nn.Module, header: bytes) -> np.ndarray:
    """Bits of each header byte under ``model`` (float64); the data that follows cannot change
    them, so one pass gives the header's bits for every sequence."""
    x = torch.tensor([list(header)], dtype=torch.long, device=model_device(model))
    return window_bits(model, x)[0].cpu().numpy()


def pick_modality(table: HeaderTable, options: dict[str, Any] | None, where: str) -> int:
    """The model's modality for data whose options are ``options``: the same tag, else the
    only modality of that name; EvaluationError otherwise."""
    if options is None:
        raise EvaluationError(f"cannot tell the modality of {where}; pass --modality")
    try:
        return table.index(options)
    except ValueError:
        pass
    same_name = table.find(options.get("name"))
    if len(same_name) == 1:
        return same_name[0]
    known = ", ".join(m["name"] for m in table.modalities)
    if not same_name:
        raise EvaluationError(
            f"{where} holds {options.get('name')}, which the model was not trained on ({known})"
        )
    raise EvaluationError(f"{where}: the model has several {options.get('name')} modalities")


__all__ = ["HeaderedConfig", "HeaderedModel", "header_bits", "pick_modality"]
