"""KV-cached decoding of MEGABYTE: one global step per patch, one local step per byte.

`MegabyteDecoder` runs each step eagerly through the stacks' lean `step` functions;
`CompiledMegabyteDecoder` runs every step after the prefill as one compiled graph over static
caches (`megabyte_static_step`). `Megabyte.decoder(buffer, compile=...)` picks one; both give the
logits a full forward pass gives, and generation and compression use them alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from multibyte.model.attention import KVCache
from multibyte.model.generation import StepGraphs, compiled_step


class MegabyteDecoder:
    """KV-cached incremental decoding over a byte buffer [B, total] that the caller fills in.

    `prefill(t)` and then `advance(t + 1)`, `advance(t + 2)`, ... each return the logits [B, 256]
    of byte t given buffer[:, :t]. Stage caches: the global one grows by one patch every P bytes,
    a child stage's cache is reset at each new parent token (keeping the last r keys and values
    of the previous patch with cross-patch attention). With a leading pad in the last stage
    (first_byte="previous_patch") the first byte of a patch comes from one more step of the
    patch before's sequence, and the new sequence's pad is stepped for its keys and values.
    """

    zeroed_caches = False

    def __init__(self, model: nn.Module, buffer: torch.Tensor) -> None:
        self.model, self.x = model, buffer
        self.specs = model.config.stages
        batch, like = buffer.shape[0], model.head.weight
        # The global stage holds the patches this buffer reaches, not max_seq_len's: a static
        # step reads its whole cache, and a short buffer should not pay for a long model.
        patches = min(
            -(-max(buffer.shape[1], 1) // self.specs[0].token_bytes), self.specs[0].length
        )
        capacities = [spec.sequence + spec.cross_patch for spec in self.specs]
        capacities[0] -= self.specs[0].length - patches
        self.caches = [
            stage.transformer.new_caches(batch, capacity, like, self.zeroed_caches)
            for stage, capacity in zip(model.stages, capacities)
        ]
        self.global_out = like.new_zeros(batch, patches, self.specs[0].dim)
        self.context: list[torch.Tensor | None] = [None] * len(self.specs)
        self.outputs: list[torch.Tensor | None] = [None] * len(self.specs)

    def prefill(self, t: int) -> torch.Tensor:
        global_model, patch = self.model.global_model, self.specs[0].token_bytes
        patches = t // patch  # complete patches before t; global tokens 0..patches are needed
        inputs = global_model.pad.expand(self.x.shape[0], 1, -1)
        if patches:
            inputs = torch.cat([inputs, global_model.embed(self.x, 0, patches * patch)], dim=1)
        self.global_out[:, : patches + 1] = global_model.transformer(inputs, self.caches[0])
        # Child stages replay byte by byte from the current patch (from the one before where a
        # leading pad predicts byte t from there); cross-patch attention chains each patch to
        # the one before, so then they replay from the start.
        start = patches * patch
        if self.model.config.cross_patch:
            start = 0
        elif self.specs[-1].leading_pad and t > 0:
            start = (t - 1) // patch * patch
        for position in range(start, t + 1):
            self._child_step(position, finish=position > start)
        return self._logits()

    def advance(self, t: int) -> torch.Tensor:
        global_model, patch = self.model.global_model, self.specs[0].token_bytes
        if t % patch == 0:  # one global step per patch: the embedding of the patch just finished
            h = global_model.embed(self.x, t - patch, t)[:, 0]
            self.global_out[:, t // patch] = global_model.transformer.step(h, self.caches[0])
        self._child_step(t)
        return self._logits()

    def _child_step(self, t: int, finish: bool = True) -> None:
        """Every child stage's step at byte t. `finish`: a leading pad's stage also ends the
        sequence before (False where a replay starts, as nothing came before it)."""
        stages, specs = self.model.stages, self.specs
        for s in range(1, len(stages)):
            stage, size = stages[s], specs[s].token_bytes
            if t % size:
                continue
            j = (t % specs[s - 1].token_bytes) // size
            ends = stage.leading_pad and t > 0  # the sequence before predicts this byte
            if j == 0 and ends and finish:
                token = stage.embed(self.x, t - size, t)[:, 0] + self.context[s][:, -1]
                self.outputs[s] = stage.transformer.step(token, self.caches[s])
            if j == 0:  # a new parent token: fresh context (with positions added) and cache
                parent = (
                    self.global_out[:, t // specs[0].token_bytes] if s == 1 else self.outputs[s - 1]
                )
                self.context[s] = stage.positioned_context(parent)
                carry = specs[s].cross_patch if t > 0 else 0
                for cache, block in zip(self.caches[s], stage.transformer.blocks):
                    cache.keep_last(carry, block.attn.rotary) if carry else cache.reset()
                token = stage.pad.expand(self.x.shape[0], -1)
            else:
                token = stage.embed(self.x, t - size, t)[:, 0]
            out = stage.transformer.step(token + self.context[s][:, j], self.caches[s])
            if j or not ends:  # (a later pad's output predicts nothing)
                self.outputs[s] = out

    def _logits(self) -> torch.Tensor:
        return F.linear(self.outputs[-1], self.model.head.weight, self.model.head.bias)


class CompiledMegabyteDecoder(MegabyteDecoder):
    """`MegabyteDecoder` whose `advance` is one compiled graph with static caches.

    The prefill stays eager (one batched forward pass); every later step calls
    `megabyte_static_step`, compiled once per step kind (which stages run at byte t, a Python
    tuple) and batch size, with byte t as a tensor: caches are written at tensor positions and
    read in full under a mask, so no shape changes between steps. The global model's patch
    embedding (its causal convolutions read a prefix of varying length) is computed eagerly
    once per patch and handed to the graph. Cached logits equal eager ones to float rounding.
    """

    zeroed_caches = True

    def __init__(self, model: nn.Module, buffer: torch.Tensor) -> None:
        super().__init__(model, buffer)
        batch, like = buffer.shape[0], model.head.weight
        self.sizes = tuple(spec.token_bytes for spec in self.specs)
        self.contexts = [like.new_zeros(batch, spec.sequence, spec.dim) for spec in self.specs]
        self.states = [like.new_zeros(batch, spec.dim) for spec in self.specs]
        # The step's inputs live in tensors of their own, updated in place (CUDA graphs read
        # fixed addresses; and `torch.tensor([t])` on a GPU would wait for the device).
        self.position = like.new_zeros(1, dtype=torch.long)
        self.embedded = like.new_zeros(batch, self.specs[0].dim)
        self.step = compiled_step(megabyte_static_step, model)
        written = [self.global_out, *self.contexts, *self.states]
        written += [
            tensor for stage in self.caches for cache in stage for tensor in cache.tensors()
        ]
        self.graphs = StepGraphs(like.device, written)

    def prefill(self, t: int) -> torch.Tensor:
        logits = super().prefill(t)
        for s in range(1, len(self.specs)):  # hand the eager state to the graph's tensors
            # In the sequence's first patch, cross-patch keys get their (masked) slots in front,
            # as static steps lay out every patch.
            carried = self.specs[s].cross_patch
            if carried and t < self.sizes[s - 1]:
                rotaries = (block.attn.rotary for block in self.model.stages[s].transformer.blocks)
                for cache, rotary in zip(self.caches[s], rotaries):
                    cache.make_room(carried, rotary)
            if self.context[s] is not None:
                self.contexts[s].copy_(self.context[s])
            if self.outputs[s] is not None:
                self.states[s].copy_(self.outputs[s])
        return logits

    def advance(self, t: int) -> torch.Tensor:
        patch = self.sizes[0]
        embedded = None
        if t % patch == 0:
            embedded = self.embedded
            embedded.copy_(self.model.global_model.embed(self.x, t - patch, t)[:, 0])
        kind = step_kind(self.sizes, t)
        self.position.fill_(t)
        return self.graphs(
            kind,
            lambda: self.step(
                self.model,
                kind,
                self.sizes,
                torch.get_num_threads(),
                self.x,
                self.position,
                embedded,
                self.caches,
                self.global_out,
                self.contexts,
                self.states,
            ),
        )


def step_kind(sizes: tuple[int, ...], t: int) -> tuple[int, ...]:
    """What each stage does at byte t: 0 nothing, 1 a step within its parent's token, 2 a step
    that starts a new parent token (a fresh context; the global stage: 2 at every patch)."""
    kind = [2 if t % sizes[0] == 0 else 0]
    for s in range(1, len(sizes)):
        if t % sizes[s]:
            kind.append(0)
        else:
            kind.append(2 if t % sizes[s - 1] == 0 else 1)
    return tuple(kind)


def megabyte_static_step(
    model: nn.Module,
    kind: tuple[int, ...],
    sizes: tuple[int, ...],
    threads: int,  # noqa: ARG001 (a compiled graph's kernels are built for one thread count)
    x: torch.Tensor,
    position: torch.Tensor,
    embedded: torch.Tensor | None,
    caches: list[list[KVCache]],
    global_out: torch.Tensor,
    contexts: list[torch.Tensor],
    states: list[torch.Tensor],
) -> torch.Tensor:
    """`MegabyteDecoder.advance(t)` with fixed shapes, t = `position` [1] (see the class above).

    Writes the stage caches, `global_out`, the child contexts and the stage outputs (`states`)
    in place, and returns the logits [B, 256] of byte t.
    """
    stages, batch = model.stages, x.shape[0]
    if kind[0]:
        patch_index = position // sizes[0]
        out = stages[0].transformer.static_step(embedded, caches[0], patch_index)
        global_out.index_copy_(1, patch_index, out[:, None])
    for s in range(1, len(stages)):
        if not kind[s]:
            continue
        stage, size = stages[s], sizes[s]
        j = (position % sizes[s - 1]) // size  # this token's index within its parent token
        if kind[s] == 2 and stage.leading_pad:  # the sequence before predicts byte t (t > 0)
            h = _previous_token(stage, x, position, size) + contexts[s][:, -1]
            states[s].copy_(stage.transformer.static_step(h, caches[s], j + stage.length))
        carried = stage.transformer.config.cross_patch
        if kind[s] == 2:
            if s == 1:
                parent = global_out.index_select(1, position // sizes[0])[:, 0]
            else:
                parent = states[s - 1]
            contexts[s].copy_(stage.positioned_context(parent))
            token = stage.pad.expand(batch, -1)
            if carried:  # t > 0 here: every new patch has one before it
                for cache, block in zip(caches[s], stage.transformer.blocks):
                    cache.keep_last(carried, block.attn.rotary, end=stage.length + carried)
        else:
            token = _previous_token(stage, x, position, size)
        h = token + contexts[s].index_select(1, j)[:, 0]
        not_first = position >= sizes[s - 1]  # the sequence's first patch carries no keys
        out = stage.transformer.static_step(h, caches[s], j, carried, not_first)
        if kind[s] == 1 or not stage.leading_pad:  # (a later pad's output predicts nothing)
            states[s].copy_(out)
    return F.linear(states[-1], model.head.weight, model.head.bias)


def _previous_token(
    stage: nn.Module, x: torch.Tensor, position: torch.Tensor, size: int
) -> torch.Tensor:
    """The stage's embedding of the token of `size` bytes that ends before byte `position`."""
    byte_positions = position - size + torch.arange(size, device=x.device)
    vectors = stage.embed.byte_embed(x.index_select(1, byte_positions))
    return stage.embed.join(vectors.reshape(x.shape[0], -1))
