"""What MEGABYTE looked like before it had named global and local models, for the checkpoints
and seeds that code left behind: its parameter names and the order it created them in.

Then the stages were a list (`stages.0` the global model, the last one the local model), the
global positions and convolutions were top-level modules (`global_position`, `conv`) registered
after the local model, and byte embeddings and token projections sat on the stage itself.
"""

from __future__ import annotations

from torch import nn

_MOVED = (
    ("global_position.", "global_model.embed.position."),
    ("conv.", "global_model.embed.conv."),
)


def upgrade_key(key: str, stages: int) -> str:
    """Today's name of a parameter that a model of `stages` stages saved as `key`: old names are
    mapped, today's pass through unchanged."""
    for old, new in _MOVED:
        if key.startswith(old):
            return new + key[len(old) :]
    if not key.startswith("stages."):
        return key
    _, index, rest = key.split(".", 2)
    index = int(index)
    if index == 0:
        stage = "global_model"
    elif index == stages - 1:
        stage = "local_model"
    else:
        stage = f"middle_models.{index - 1}"
    if rest.startswith(("byte_embed.", "token_proj.")):  # now in the stage's PatchEmbedder
        rest = "embed." + rest
    return f"{stage}.{rest}"


def pre_split_order(model: nn.Module) -> list[nn.Module]:
    """Every module of a `Megabyte` in the order the old code registered them: stage by stage,
    then the global positions and convolutions, then the head. Weights are initialised in this
    order (so a seed gives the weights it always gave), and optimizer state saved by that code
    lists parameters in it."""
    embed = model.global_model.embed
    late = [embed.position, *(embed.conv.modules() if embed.conv is not None else ())]
    late = [module for module in late if module is not None]  # no table without learned positions
    stages = [module for stage in model.stages for module in stage.modules()]
    return [m for m in stages if not any(m is x for x in late)] + late + [model.head]


def pre_split_parameters(model: nn.Module) -> list[nn.Parameter]:
    """`model.parameters()` in the order the old code listed them (a tied head once)."""
    modules = pre_split_order(model)
    return list({id(p): p for m in modules for p in m.parameters(recurse=False)}.values())
