"""A trained model as a folder: ``model.safetensors`` + ``config.json``, loaded without Lightning.

    model = Megabyte.from_pretrained("exports/image")      # or ByteTransformer.from_pretrained
    model.save_pretrained("exports/copy", modality=model.modality)

``config.json`` (docs/export.md) holds, as plain JSON:

    {"format": "multibyte", "format_version": 1, "multibyte_version": "0.1.0",
     "model": {"class": "Megabyte", "config": {...every resolved field...}},
     "modality": {...adapter options...} | {"name": "mixture", ...header table...} | null,
     "weights": {"file": "model.safetensors", "bytes": N, "sha256": "...", "parameters": N,
                 "dtypes": ["float32"]},
     ...whatever the caller adds (`multibyte export`: "byte_layout", "training")}

``model.safetensors`` holds the state dict, each tensor stored once: a tied head is saved under
its first name only and tied again when the model is built. Loading reads JSON and safetensors
only (no pickle, so no code from the folder runs), and refuses with one CheckpointError line a
folder from another format version, a weights file whose size or sha256 differs from the one
``config.json`` records (damaged or truncated), and a config that does not fit the weights.

Why not ``huggingface_hub``'s ``PyTorchModelHubMixin`` (checked with huggingface_hub 2.5.0): its
``from_pretrained`` takes a path that is not a folder (a typo) for a Hub repository id and goes
to the network; in a folder without ``model.safetensors`` it falls back to ``pytorch_model.bin``
through ``torch.load`` (a pickle); it loads with ``strict=False``, so weights the config does not
name are silently left at their random init; it passes ``config`` to ``__init__`` as a plain dict
when the annotation is a string (``from __future__ import annotations``, as here); its
``config.json`` is the constructor's arguments only (no model class, modality, or format
version to refuse another version by), and ``save_pretrained`` writes a generic README.md of its
own. The code below is the small part of it we need, with those checks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from multibyte.outputs import replacing

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_NAME = "multibyte"
PRETRAINED_FORMAT = 1
RESERVED = ("format", "format_version", "multibyte_version", "model", "modality", "weights")

T = TypeVar("T", bound="PretrainedMixin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely or is not a multibyte checkpoint."""


def package_version() -> str:
    try:
        return metadata.version("multibyte")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unique_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor once, under its first name (a tied head shares the byte embedding)."""
    seen: set[tuple] = set()
    out = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def _aliases(model: nn.Module) -> dict[str, set[str]]:
    """For every state-dict name of ``model``, the other names of the same tensor."""
    groups: dict[tuple, set[str]] = {}
    state = model.state_dict(keep_vars=True)
    for name, tensor in state.items():
        groups.setdefault((tensor.data_ptr(), tuple(tensor.shape)), set()).add(name)
    return {name: groups[(t.data_ptr(), tuple(t.shape))] - {name} for name, t in state.items()}


def weights_entry(data: bytes, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "file": WEIGHTS_NAME,
        "bytes": len(data),
        "sha256": _sha256(data),
        "parameters": int(sum(t.numel() for t in tensors.values())),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()}),
    }


def save_folder(
    model: nn.Module,
    folder: str | os.PathLike,
    modality: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` for ``model`` into ``folder`` (created if
    needed); each file appears complete or not at all. Other files in the folder are left."""
    clash = sorted(set(extra or {}) & set(RESERVED))
    if clash:
        raise ValueError(f"extra config.json fields may not replace {clash}")
    folder = Path(folder)
    tensors = unique_tensors(model.state_dict())
    data = save_safetensors(tensors, metadata={"format": "pt"})
    info = {
        "format": FORMAT_NAME,
        "format_version": PRETRAINED_FORMAT,
        "multibyte_version": package_version(),
        "model": {"class": type(model).__name__, "config": model.config.to_dict()},
        "modality": dict(modality) if modality is not None else None,
        "weights": weights_entry(data, tensors),
        **dict(extra or {}),
    }
    text = json.dumps(info, indent=2, sort_keys=False) + "\n"
    with replacing(folder / WEIGHTS_NAME) as temporary:
        temporary.write_bytes(data)
    with replacing(folder / CONFIG_NAME) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder``'s config.json, checked to be this format's version; CheckpointError if not."""
    folder = Path(folder)
    if not folder.is_dir():
        if folder.exists():
            raise CheckpointError(f"{folder} is a file, not an exported model folder")
        raise FileNotFoundError(f"exported model not found: {folder}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not an exported model: it has no {CONFIG_NAME} (`multibyte export` "
            "writes model.safetensors, config.json and README.md)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error.strerror or error}") from error
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise CheckpointError(f'{path} is not a multibyte model config (no format "multibyte")')
    version = info.get("format_version")
    if version != PRETRAINED_FORMAT:
        made = info.get("multibyte_version", "an unknown version")
        raise CheckpointError(
            f"{path}: export format version {version!r} (written by multibyte {made}); this "
            f"multibyte {package_version()} reads version {PRETRAINED_FORMAT}"
        )
    for key, kind in (("model", dict), ("weights", dict)):
        if not isinstance(info.get(key), kind):
            raise CheckpointError(f"{path}: its {key!r} entry is missing or not an object")
    if not isinstance(info.get("modality"), (dict, type(None))):
        raise CheckpointError(f"{path}: its modality options are not an object")
    return info


def read_weights(folder: str | os.PathLike, info: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``folder``'s weights file, after checking its size and sha256 against
    ``info["weights"]``; a damaged, truncated or unreadable file is a CheckpointError."""
    weights = info["weights"]
    path = Path(folder) / WEIGHTS_NAME
    if weights.get("file", WEIGHTS_NAME) != WEIGHTS_NAME:
        raise CheckpointError(f"{path.parent / CONFIG_NAME}: names weights {weights['file']!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise CheckpointError(f"{path} is missing") from error
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error.strerror or error}") from error
    expected = weights.get("bytes")
    if expected != len(data):
        how = "truncated" if isinstance(expected, int) and len(data) < expected else "damaged"
        raise CheckpointError(
            f"{path} is {how}: {len(data)} bytes, {CONFIG_NAME} records {expected}"
        )
    if weights.get("sha256") != _sha256(data):
        raise CheckpointError(f"{path} is damaged: its sha256 differs from {CONFIG_NAME}'s")
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def load_weights(model: nn.Module, tensors: Mapping[str, torch.Tensor], folder: Path) -> None:
    """Copy ``tensors`` into ``model``; names or shapes that do not match are a CheckpointError
    saying that config.json does not describe these weights."""
    expected = model.state_dict()
    aliases = _aliases(model)
    where = f"{folder / CONFIG_NAME} does not match {folder / WEIGHTS_NAME}"
    unexpected = sorted(set(tensors) - set(expected))
    missing = sorted(
        name for name in set(expected) - set(tensors) if not aliases[name] & set(tensors)
    )
    shapes = [
        f"{name} is {_shape(tensors[name].shape)} in the weights, {_shape(value.shape)} for the "
        "config"
        for name, value in expected.items()
        if name in tensors and tuple(tensors[name].shape) != tuple(value.shape)
    ]
    if shapes:
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        raise CheckpointError(f"{where}: {shapes[0]}{more}")
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights missing for the config {missing[:3]}"
            f"{'...' if len(missing) > 3 else ''}, weights the config has no place for "
            f"{unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    with torch.no_grad():
        model.load_state_dict(dict(tensors), strict=False)


# torch.nn.init's in-place initialisers, which model constructors call.
INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


@contextmanager
def initialisation_skipped() -> Iterator[None]:
    """Build a model without drawing its random init (trunc_normal_ costs seconds per million
    parameters on a CPU): every weight is then overwritten by the saved one, and `load_weights`
    refuses a file that does not cover them all."""
    saved = {name: getattr(nn.init, name) for name in INITIALISERS}

    def keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    try:
        for name in saved:
            setattr(nn.init, name, keep)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def build_config(config_class: type, fields: Any, where: Path) -> Any:
    if not isinstance(fields, dict):
        raise CheckpointError(f"{where}: its model config is not an object")
    try:
        return config_class(**fields)
    except (TypeError, ValueError) as error:  # an unknown field, or a value the config refuses
        raise CheckpointError(
            f"{where}: its {config_class.__name__} cannot be built: {error}"
        ) from error


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for a model class with ``config_class``."""

    config_class: ClassVar[type]

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        modality: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``save_directory``.

        modality: the adapter options (or a mixture's header table) to record; default the
        model's ``.modality`` (set by ``multibyte.load`` and ``from_pretrained``).
        extra: more top-level config.json fields (``multibyte export`` adds "byte_layout" and
        "training").
        """
        if modality is None:
            modality = getattr(self, "modality", None)
        return save_folder(self, save_directory, modality, extra)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls: type[T], pretrained_path: str | os.PathLike, map_location: Any = "cpu"
    ) -> T:
        """The model saved in the folder ``pretrained_path``, in eval mode on ``map_location``,
        with ``.modality`` from its config.json (reads JSON and safetensors only)."""
        folder = Path(pretrained_path)
        info = read_config(folder)
        name = info["model"].get("class")
        if name != cls.__name__:
            raise CheckpointError(
                f"{folder / CONFIG_NAME} holds a {name}, not a {cls.__name__} (load it with "
                f"{name}.from_pretrained, or multibyte.load for either)"
            )
        config = build_config(cls.config_class, info["model"].get("config"), folder / CONFIG_NAME)
        tensors = read_weights(folder, info)
        with initialisation_skipped():
            model = cls(config)  # type: ignore[call-arg]
        load_weights(model, tensors, folder)  # type: ignore[arg-type]
        model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
        model.eval()
        model.modality = info.get("modality")
        return model


__all__ = [
    "CONFIG_NAME",
    "CheckpointError",
    "PRETRAINED_FORMAT",
    "PretrainedMixin",
    "WEIGHTS_NAME",
    "package_version",
    "read_config",
    "read_weights",
    "save_folder",
]
