"""Generation shared by both models: the sampling loop, and next-byte sampling (greedy,
temperature, top-k, nucleus)."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

import torch
import torch._dynamo
import torch._inductor.config
from torch import nn

# Graphs one compiled step function may hold: (model, step kind, batch, threads) each get their
# own; dynamo's default of 8 would silently fall back to eager in a long session.
RECOMPILE_LIMIT = 256
# On a CPU the weights are frozen into the graph (constants, prepacked) so inductor's C++ GEMM
# template can replace the extern MKL calls: at batch 1 that takes the step to the memory floor
# (docs/benchmarks.md "decode"). "CPP" alone: one candidate per product, so no timing run ever
# picks a kernel, and a shape always gets the same arithmetic (compression needs that). The
# blocking keeps each product's whole K in one block: 9% faster at batch 8, the same at batch 1,
# and the order of a sum no longer follows the L1 size.
FROZEN_CPU = {
    "freezing": True,
    "max_autotune": True,
    "max_autotune_gemm_backends": "CPP",
    "cpp.gemm_cache_blocking": "1,1,65536",  # (M, N, K) register blocks per cache block
}
_COMPILED: dict[tuple[Callable, bool], Callable] = {}
# The weights each model's frozen graphs were built from (a copy, compared on every new decoder).
_FROZEN: weakref.WeakKeyDictionary[nn.Module, list[torch.Tensor]] = weakref.WeakKeyDictionary()


def compiled_step(step: Callable, model: nn.Module) -> Callable:
    """`step` as one compiled graph (inductor) for `model`, compiled on first use.

    Static shapes only (`dynamic=False`): a new batch size or step kind compiles a graph of its
    own instead of turning an existing one dynamic, so the arithmetic of a given shape never
    depends on what ran before (compression needs that). `fullgraph=True`: a graph break is an
    error, not a silent partial eager fallback. Callers pass positions as tensors and every
    Python-level choice (step kind, thread count) as plain arguments, which dynamo specializes.

    On a CPU the graph holds `model`'s weights as constants (`FROZEN_CPU`); dynamo then keeps one
    graph per model object, and a model whose weights changed since (training, a loaded state
    dict) has every compiled graph dropped and rebuilt, never run with the old weights.
    """
    frozen = next(model.parameters()).device.type == "cpu"
    if frozen:
        _check_frozen_weights(model)
    key = (step, frozen)
    if key not in _COMPILED:
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
        config.accumulated_recompile_limit = max(
            config.accumulated_recompile_limit, RECOMPILE_LIMIT
        )
        compiled = torch.compile(step, dynamic=False, fullgraph=True)
        _COMPILED[key] = _with_inductor_config(compiled, FROZEN_CPU) if frozen else compiled
    return _COMPILED[key]


class StepGraphs:
    """A decoder's compiled steps as CUDA graphs: each step kind is captured on its first use
    and replayed after, so a step costs one launch instead of one per kernel. A no-op on a CPU.

    A capture records the addresses of the tensors the step reads and writes (the buffer, the
    caches, the position), so the graphs belong to one decoder, whose tensors stay in place.
    Before its capture a step runs once (compiling it, off the capture stream), and `state`,
    every tensor a step writes, is put back afterwards: a step is not idempotent (token shift
    reads the state it then overwrites), and its replay must see what the warm-up saw.
    """

    def __init__(self, device: torch.device, state: list[torch.Tensor]) -> None:
        self.enabled = device.type == "cuda"
        self.state = state
        self.graphs: dict[object, tuple[Callable[[], object], torch.Tensor]] = {}

    def __call__(self, kind: object, step: Callable[[], torch.Tensor]) -> torch.Tensor:
        if not self.enabled:
            return step()
        if kind not in self.graphs:
            kept = [tensor.clone() for tensor in self.state]
            self._warm_up(step)
            for tensor, before in zip(self.state, kept):
                tensor.copy_(before)
            self.graphs[kind] = self._capture(step)
        replay, logits = self.graphs[kind]
        replay()
        return logits.clone()  # the graph's output is overwritten by its next replay

    def _warm_up(self, step: Callable[[], torch.Tensor]) -> None:
        side = torch.cuda.Stream()  # lazy initialisation must not happen inside a capture
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step()
        torch.cuda.current_stream().wait_stream(side)

    def _capture(
        self, step: Callable[[], torch.Tensor]
    ) -> tuple[Callable[[], object], torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = step()
        return graph.replay, logits


def compiled_kernel_target(device: torch.device) -> str | None:
    """What a compiled step's arithmetic may depend on beyond torch and the CPU capability:
    inductor generates its C++ GEMM code for this CPU, and by default blocks its loops (so
    orders its sums) by the L1d and L2 sizes. `FROZEN_CPU` fixes the blocking, but the record
    stays, as the claim we test. None where nothing beyond those applies (a GPU)."""
    if device.type != "cpu":
        return None
    caps = torch.cpu.get_capabilities()
    return f"cpp gemm, L1d {caps.get('l1d_cache_size')} B, L2 {caps.get('l2_cache_size')} B"


def _with_inductor_config(compiled: Callable, patch: dict) -> Callable:
    # Set around every call, not as `torch.compile(options=...)`: dynamo reads `freezing` itself
    # while tracing (to treat parameters as constants), outside the options' scope.
    def step(*args: object) -> object:
        with torch._inductor.config.patch(patch):
            return compiled(*args)

    return step


def _check_frozen_weights(model: nn.Module) -> None:
    tensors = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
    kept = _FROZEN.get(model)
    if kept is not None and not (
        len(kept) == len(tensors) and all(map(torch.equal, kept, tensors))
    ):
        torch._dynamo.reset()  # the only way to drop graphs that hold the old weights
        _COMPILED.clear()
        _FROZEN.clear()
        kept = None
    if kept is None:
        _FROZEN[model] = [t.clone() for t in tensors]


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= 256:
        raise ValueError(f"top_k must be in 1..256, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample_next_byte(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits: [B, 256] -> LongTensor [B].

    Sampling inverts the CDF at one uniform draw per row, so a run consumes the generator the
    same way whatever produced the logits (cached or not), and equal logits give equal bytes.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the top byte)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device)
    cdf = probs.double().cumsum(dim=-1)
    cdf = cdf / cdf[:, -1:]
    # right=True never selects a zero-probability byte: its CDF step has zero width
    index = torch.searchsorted(cdf, uniform.double(), right=True).clamp_(max=probs.shape[-1] - 1)
    return index.squeeze(-1)


def generate_bytes(
    model: torch.nn.Module,
    prompt: torch.Tensor,
    max_new_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Shared sampling loop of both models: `model.decoder(buffer)` gives prefill/advance.

    `progress(n)` is called after every generated byte with the count so far (for a bar).
    `compile=True` runs each cached step as one compiled graph (`model.decoder(buffer,
    compile=True)`); compiling takes tens of seconds on a CPU, so it pays on long generations.
    """
    check_sampling_args(temperature, top_k, top_p)
    if compile and not use_cache:
        raise ValueError("compile=True compiles the cached decode step; it needs use_cache=True")
    if prompt.dim() != 2:
        raise ValueError(f"prompt must be [B, T0], got shape {tuple(prompt.shape)}")
    if max_new_bytes < 0:
        raise ValueError(f"max_new_bytes must be >= 0, got {max_new_bytes}")
    batch, start = prompt.shape
    total = start + max_new_bytes
    if total > model.config.max_seq_len:
        raise ValueError(
            f"prompt + max_new_bytes = {total} exceeds max_seq_len={model.config.max_seq_len}"
        )
    was_training = model.training
    model.eval()
    buffer = prompt.new_zeros(batch, total, dtype=torch.long, device=model.head.weight.device)
    buffer[:, :start] = prompt
    with torch.inference_mode():  # lighter than no_grad; `buffer` itself stays a normal tensor
        decoder = model.decoder(buffer, compile=compile) if use_cache else None
        for t in range(start, total):
            if decoder is None:  # recompute from scratch; buffer[:, t] is a placeholder
                logits = model(buffer[:, : t + 1])[:, t]
            else:
                logits = decoder.prefill(t) if t == start else decoder.advance(t)
            buffer[:, t] = sample_next_byte(logits, temperature, top_k, top_p, generator)
            if progress is not None:
                progress(t - start + 1)
    model.train(was_training)
    return buffer


class GenerationMixin:
    """`generate` for a byte model that has `decoder(buffer, compile)` (its KV-cached steps)."""

    def generate(
        self,
        prompt: torch.Tensor,
        max_new_bytes: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        compile: bool = False,
    ) -> torch.Tensor:
        """Sample `max_new_bytes` after `prompt` [B, T0] (T0 may be 0) -> [B, T0 + max_new_bytes].

        Cached decoding runs the model's cached steps (MEGABYTE: one global step per patch and
        one local step per byte); without the cache every byte recomputes a full forward pass.
        Both give the same bytes. `compile`: each cached step runs as one compiled graph.
        """
        return generate_bytes(
            self,  # type: ignore[arg-type]
            prompt,
            max_new_bytes,
            temperature,
            top_k,
            top_p,
            use_cache,
            generator,
            progress,
            compile,
        )
