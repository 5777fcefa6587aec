"""Loading trained models from checkpoints without running code from the file.

A multibyte checkpoint (a Lightning `.ckpt`, or an exported file) holds, next to the weights,
a plain-data entry `checkpoint["multibyte"]`:

    {"format": 1,
     "model": {"class": "Megabyte" | "ByteTransformer", "config": {...plain fields...}},
     "modality": {"name": "image", "size": 64, "order": "raster", ...} | None}

It is read with `torch.load(weights_only=True)`, which unpickles tensors and plain containers
only; anything else is refused. `load` also takes a folder written by `multibyte export`
(model.safetensors + config.json, multibyte/model/pretrained.py), read with no pickle at all.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import torch
from torch import nn

from multibyte.model.config import MegabyteConfig
from multibyte.model.megabyte import Megabyte
from multibyte.model.pretrained import CheckpointError, initialisation_skipped, read_config
from multibyte.model.transformer import ByteTransformer, ByteTransformerConfig

MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "Megabyte": (Megabyte, MegabyteConfig),
    "ByteTransformer": (ByteTransformer, ByteTransformerConfig),
}
CHECKPOINT_FORMAT = 1


class DeviceError(CheckpointError):
    """A ``--device`` that torch does not know, or that this machine does not have (a
    CheckpointError: the checkpoint cannot be loaded there)."""


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device this machine has; DeviceError naming it otherwise (before a
    checkpoint is read, so the error is about the device, not the file)."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise DeviceError(
            f"--device {device}: unknown device (cpu, cuda, cuda:N, mps, ...)"
        ) from error
    backend = getattr(torch, resolved.type, None) if resolved.type != "cpu" else None
    if resolved.type == "mps":
        available, count = torch.backends.mps.is_available(), 1
    elif resolved.type == "cpu":
        available, count = True, 1
    elif backend is not None and hasattr(backend, "is_available"):
        available = bool(backend.is_available())
        count = int(backend.device_count()) if available and hasattr(backend, "device_count") else 1
    else:
        raise DeviceError(f"--device {device}: {resolved.type} is not usable by this torch")
    if not available:
        raise DeviceError(f"--device {device}: no {resolved.type} device is available here")
    if resolved.index is not None and resolved.index >= count:
        raise DeviceError(f"--device {device}: this machine has {count} {resolved.type} device(s)")
    return resolved


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The plain-data description that rebuilds `model`'s architecture."""
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"not a multibyte model: {name}")
    return {"class": name, "config": model.config.to_dict()}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The untrained model that `spec` ({"class": ..., "config": {...}}) describes; a spec that
    does not describe one (a missing or unknown field, a value the config refuses) is a
    CheckpointError saying why."""
    if not isinstance(spec, dict):
        raise CheckpointError(f"its model entry is {type(spec).__name__}, not a dict")
    name = spec.get("class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}")
    model_class, config_class = MODEL_CLASSES[name]
    fields = spec.get("config")
    if not isinstance(fields, dict):
        raise CheckpointError(f"its {name} config is {type(fields).__name__}, not a dict")
    try:
        config = config_class(**fields)
    except (TypeError, ValueError) as error:  # an unknown field, or a value the config refuses
        raise CheckpointError(f"its {name} config cannot be built: {error}") from error
    return model_class(config)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dictionary, loaded with weights_only=True (no code from the file runs)."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if isinstance(map_location, str):  # torch.load's error for a bad one blames the file
        check_device(map_location)
    try:  # is_zipfile says False for a file it cannot open: say why instead
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read: {error.strerror or error}"
        ) from error
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not one
        raise CheckpointError(
            f"{path} is not a multibyte checkpoint (not a readable checkpoint: no torch.save "
            "archive)"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message advises weights_only=False: never right for a file we refuse.
        raise CheckpointError(
            f"refusing to load {path}: it is not a multibyte checkpoint (it needs more than "
            "tensors and plain data to unpickle, so loading it could run code from the file)"
        ) from error
    except (RuntimeError, EOFError) as error:
        raise CheckpointError(
            f"{path} is not a multibyte checkpoint (not a readable checkpoint: "
            f"{str(error).splitlines()[0]})"
        ) from error
    if not isinstance(checkpoint, dict) or "multibyte" not in checkpoint:
        raise CheckpointError(f"{path} is not a multibyte checkpoint (no 'multibyte' entry)")
    return checkpoint


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Weights of the bare model: Lightning's "model." prefix and compile's "_orig_mod." removed."""
    state = checkpoint.get("state_dict") or checkpoint.get("model_state_dict") or {}
    cleaned = {}
    for key, value in state.items():
        if key.startswith("model."):
            key = key[len("model.") :]
        cleaned[key.replace("_orig_mod.", "")] = value
    return cleaned


def load(ckpt_path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """The trained model in eval mode; `.modality` holds the adapter options it was trained on.

    `ckpt_path` is a checkpoint file or a folder written by `multibyte export` (or
    `save_pretrained`): model.safetensors + config.json, read without unpickling anything."""
    path = ckpt_path
    if os.path.isdir(path):
        name = read_config(path)["model"].get("class")
        if name not in MODEL_CLASSES:
            raise CheckpointError(
                f"{path}: unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}"
            )
        return MODEL_CLASSES[name][0].from_pretrained(path, map_location)
    checkpoint = read_checkpoint(path, map_location)
    info = checkpoint["multibyte"]
    if not isinstance(info, dict) or "model" not in info:
        raise CheckpointError(f"{path}: its 'multibyte' entry has no model description")
    if not isinstance(info.get("modality"), (dict, type(None))):
        raise CheckpointError(f"{path}: its modality options are not a dict")
    try:
        with initialisation_skipped():  # every weight is loaded below (missing ones refused)
            model = build_model(info["model"])
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from error
    missing, unexpected = model.load_state_dict(model_state_dict(checkpoint), strict=False)
    # Tied heads appear under both names in some saves; anything else missing is an error.
    missing = [key for key in missing if key != "head.weight" or not model.config.tie_embeddings]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the model: missing {missing}, unexpected {unexpected}"
        )
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    model.modality = info.get("modality")
    return model


def export(
    model: nn.Module, path: str | os.PathLike, modality: dict[str, Any] | None = None
) -> None:
    """Save a bare model as a small multibyte checkpoint (weights and plain data only)."""
    payload = {
        "multibyte": {
            "format": CHECKPOINT_FORMAT,
            "model": model_spec(model),
            "modality": modality,
        },
        "state_dict": model.state_dict(),
    }
    torch.save(payload, path)
