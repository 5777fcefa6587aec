"""`multibyte.compress(model, data)` and `multibyte.decompress(model, blob)`: bytes in, bytes out.

Any model with the multibyte call contract works: `model.config.max_seq_len`, and either
`model.decoder(buffer)` (prefill/advance, as Megabyte and ByteTransformer have) or a forward pass
`model(x) -> logits [B, T, 256]`. The data is cut into chunks of at most `max_seq_len` bytes that
are coded independently, `batch` of them at a time in lockstep (see `coder.run_lockstep`).

A file is exact only where the model's arithmetic is: `coding_environment` records what it
depends on, the thread count is pinned to the recorded one while coding, and decompression
refuses another model (by weights fingerprint) or another environment (torch version, device,
CPU capability or GPU model) before decoding, and checks the content's sha256 after.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import torch
from torch import nn

from multibyte.compression.coder import (
    batches,
    chunk_lengths,
    decode_batch,
    encode_batch,
    model_device,
)
from multibyte.compression.container import (
    DECODE_STEPS,
    MAX_BATCH,
    MAX_THREADS,
    CompressionError,
    Container,
    ContainerError,
    check_meta,
    pack,
    unpack,
)
from multibyte.model.generation import compiled_kernel_target

DEFAULT_BATCH = 32
"""Chunks coded together when the caller does not say (recorded in the file either way)."""
# Environment entries that must be equal for the model to give bit-identical logits.
MUST_MATCH = ("torch", "constriction", "device", "device_name")
# ...and for the compiled step on a CPU, the cache sizes its GEMM kernels are blocked for.
COMPILED_MUST_MATCH = ("compiled_for",)
STEPS = dict(zip((False, True), DECODE_STEPS))
"""`environment["decode_step"]`: which decode step made the logits (files without it: eager)."""


class ModelMismatchError(CompressionError):
    """The file was compressed with other weights than the model given to decompress it."""


class EnvironmentMismatchError(CompressionError):
    """The file was compressed where the model's arithmetic differs from here."""


# -- what a file depends on --------------------------------------------------------------------


def model_fingerprint(model: nn.Module) -> bytes:
    """sha256 over the model class, its config and every state-dict tensor (sorted by name).

    Of the loaded model, not of the file it came from: a `.ckpt` and its `multibyte export`
    folder give the same fingerprint (a tied head is in the state dict under both names either
    way), so files compressed with one decompress with the other."""
    digest = hashlib.sha256(b"multibyte-model-v1\0")
    config = getattr(model, "config", None)
    spec = {
        "class": type(model).__name__,
        "config": config.to_dict() if callable(getattr(config, "to_dict", None)) else None,
    }
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous().reshape(-1)
        header = [name, str(tensor.dtype), list(tensor.shape)]
        digest.update(json.dumps(header).encode() + b"\0")
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.digest()


def coding_environment(device: torch.device, threads: int, compile: bool = False) -> dict[str, Any]:
    """What the model's logits depend on besides the weights and the input shapes."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = torch.backends.cpu.get_cpu_capability()
    environment = {
        "torch": torch.__version__,
        "constriction": metadata.version("constriction"),
        "device": device.type,
        "device_name": name,
        "threads": threads,
        "decode_step": STEPS[compile],
    }
    target = compiled_kernel_target(device) if compile else None
    if target is not None:
        environment["compiled_for"] = target
    return environment


@contextmanager
def _coding(model: nn.Module, threads: int) -> Iterator[None]:
    """Eval mode, no autograd, the recorded thread count and full-precision float32 matmuls."""
    was_training, old_threads = model.training, torch.get_num_threads()
    old_precision = torch.get_float32_matmul_precision()
    old_cudnn_tf32 = torch.backends.cudnn.allow_tf32
    device_type = model_device(model).type
    model.eval()
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")  # no TF32 / bf16 passes in float32 matmuls
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode(), torch.autocast(device_type, enabled=False):
            yield
    finally:
        model.train(was_training)
        torch.set_num_threads(old_threads)
        torch.set_float32_matmul_precision(old_precision)
        torch.backends.cudnn.allow_tf32 = old_cudnn_tf32


# -- compress ----------------------------------------------------------------------------------


def compress(
    model: nn.Module,
    data: bytes,
    *,
    chunk: int | None = None,
    batch: int | None = None,
    threads: int | None = None,
    modality: dict[str, Any] | None = None,
    suffix: str | None = None,
    checkpoint: str | None = None,
    fingerprint: bytes | None = None,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> bytes:
    """Losslessly compress `data` with `model`; `decompress(model, blob)` gives it back.

    chunk: bytes per independently coded chunk (default and maximum: the model's max_seq_len).
    batch: chunks coded together in lockstep (default DEFAULT_BATCH).
    threads: torch CPU threads while coding (default: the current count); recorded, and
        decompression uses the same count whatever the caller's setting.
    modality: adapter options stored for the reader (default: the model's `.modality`).
    suffix, checkpoint: the original file suffix and the checkpoint's name, stored as given.
    fingerprint: `model_fingerprint(model)` if already computed (skips hashing the weights).
    progress: called with the number of bytes coded after every step.
    compile: run the model's compiled decode step (`model.decoder(buffer, compile=True)`),
        faster on long inputs after tens of seconds of compiling; its floats differ from the
        eager step's, so it is recorded and decompression runs the same step.
    """
    data = bytes(data)
    max_len = int(model.config.max_seq_len)
    chunk = max_len if chunk is None else int(chunk)
    if not 1 <= chunk <= max_len:
        raise CompressionError(f"chunk must be in 1..{max_len} (the model's max_seq_len)")
    batch = DEFAULT_BATCH if batch is None else int(batch)
    threads = torch.get_num_threads() if threads is None else int(threads)
    if not 1 <= batch <= MAX_BATCH:
        raise CompressionError(f"batch must be in 1..{MAX_BATCH}, got {batch}")
    if not 1 <= threads <= MAX_THREADS:
        raise CompressionError(f"threads must be in 1..{MAX_THREADS}, got {threads}")
    if modality is None:
        modality = getattr(model, "modality", None)
    lengths = chunk_lengths(len(data), chunk)
    streams: list[bytes] = []
    with _coding(model, threads):
        for group in batches(len(lengths), batch):
            chunks = [data[i * chunk : i * chunk + lengths[i]] for i in group]
            streams += encode_batch(model, chunks, progress, compile)
    meta = {
        "modality": modality,
        "suffix": suffix,
        "checkpoint": checkpoint,
        "environment": coding_environment(model_device(model), threads, compile),
    }
    return pack(
        Container(
            model=fingerprint or model_fingerprint(model),
            content=hashlib.sha256(data).digest(),
            length=len(data),
            chunk=chunk,
            batch=batch,
            meta=meta,
            streams=streams,
        )
    )


# -- decompress --------------------------------------------------------------------------------


def check_compatible(
    model: nn.Module,
    container: Container,
    allow_mismatch: bool = False,
    fingerprint: bytes | None = None,
    compile: bool | None = None,
) -> None:
    """Refuse, before any decoding, a file that this model here cannot decode exactly.

    compile: the decode step the caller asks for (None: the file's); another one than the
    file's is refused, as another environment is.
    """
    mine = fingerprint or model_fingerprint(model)
    if container.model != mine:
        name = container.meta.get("checkpoint")
        made = f" (checkpoint {name!r})" if name else ""
        raise ModelMismatchError(
            f"compressed with another model{made}, weights sha256 {container.model.hex()[:16]}; "
            f"this model's weights are {mine.hex()[:16]}"
        )
    check_meta(container.meta)  # a Container built in Python has not been through unpack
    env = container.meta["environment"]
    step = env.get("decode_step", STEPS[False])
    max_len = int(model.config.max_seq_len)
    if not 1 <= container.chunk <= max_len or not 1 <= container.batch <= MAX_BATCH:
        raise ContainerError(
            f"corrupted: chunk {container.chunk} and batch {container.batch} must be in "
            f"1..{max_len} (this model's max_seq_len) and 1..{MAX_BATCH}"
        )
    if allow_mismatch or container.length == 0:
        return
    if compile is not None and STEPS[compile] != step:
        raise EnvironmentMismatchError(
            f"made with the {step} decode step, but the {STEPS[compile]} one was asked for: "
            "their probabilities differ in the last bits, so decoding would not be exact. "
            f"Decompress it with compile={step == STEPS[True]}"
        )
    compiled = step == STEPS[True]
    here = coding_environment(model_device(model), env["threads"], compiled)
    if compiled and "compiled_for" in here and "compiled_for" not in env:
        raise EnvironmentMismatchError(
            "made by an earlier compiled decode step (before the C++ GEMM kernels), whose "
            "probabilities this version's does not reproduce: decompress it with the multibyte "
            "version that made it"
        )
    differ = [key for key in MUST_MATCH + COMPILED_MUST_MATCH if env.get(key) != here.get(key)]
    if differ:
        raise EnvironmentMismatchError(
            f"made with {_describe(env)}, but here is {_describe(here)}: the model's "
            "probabilities are only bit-exact on the same setup, so decoding would not be "
            "exact. Decompress it there (or allow the mismatch to try: the checksum still "
            "refuses wrong output)"
        )


def _describe(env: dict[str, Any]) -> str:
    compiled = f", compiled for {env['compiled_for']}" if env.get("compiled_for") else ""
    return (
        f"torch {env.get('torch')} on {env.get('device')} ({env.get('device_name')}{compiled}), "
        f"constriction {env.get('constriction')}"
    )


def decode_container(
    model: nn.Module,
    container: Container,
    *,
    allow_mismatch: bool = False,
    fingerprint: bytes | None = None,
    progress: Callable[[int], None] | None = None,
    compile: bool | None = None,
) -> bytes:
    """The original bytes of a parsed container, checked against its sha256.

    compile: the decode step to run; None (the default) runs the one the file records.
    """
    check_compatible(model, container, allow_mismatch, fingerprint, compile)
    env = container.meta["environment"]
    if compile is None:
        compile = env.get("decode_step", STEPS[False]) == STEPS[True]
    lengths = chunk_lengths(container.length, container.chunk)
    pieces: list[bytes] = []
    with _coding(model, env["threads"]):
        for group in batches(len(lengths), container.batch):
            streams = [container.streams[i] for i in group]
            pieces += decode_batch(model, streams, [lengths[i] for i in group], progress, compile)
    data = b"".join(pieces)
    if len(data) != container.length or hashlib.sha256(data).digest() != container.content:
        raise CompressionError(
            "the decoded bytes do not match the file's sha256: this model or setup does not "
            "reproduce the compressor's probabilities (nothing was written)"
        )
    return data


def decompress(
    model: nn.Module,
    blob: bytes,
    *,
    allow_mismatch: bool = False,
    progress: Callable[[int], None] | None = None,
    compile: bool | None = None,
) -> bytes:
    """The bytes `compress(model, data)` was given: exactly, or CompressionError.

    compile: None runs the decode step the file records (eager or compiled); True or False
    insists on one, and a file made with the other is refused.
    """
    return decode_container(
        model, unpack(blob), allow_mismatch=allow_mismatch, progress=progress, compile=compile
    )


__all__ = [
    "DEFAULT_BATCH",
    "CompressionError",
    "EnvironmentMismatchError",
    "ModelMismatchError",
    "check_compatible",
    "coding_environment",
    "compress",
    "decode_container",
    "decompress",
    "model_fingerprint",
]
