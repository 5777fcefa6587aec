"""``multibyte export``: a trained model as a folder others can load without this package's trainer.

    multibyte export --ckpt CKPT --out DIR [--eval E.json] [--overwrite]

DIR gets ``model.safetensors`` (the weights only, in the dtype they were trained in),
``config.json`` (the model class and config, the modality options or the mixture's header
table, the byte layout, what is known of the training run, the package and format versions)
and ``README.md``, a model card. docs/export.md describes every field.

- ``--ckpt`` is a Lightning ``.ckpt`` (or an earlier export, to write a new card).
- ``--eval`` is a report written by ``multibyte evaluate --json`` for this model: its held-out
  bits per byte and values in each modality's unit go into the card and config.json.
- DIR must be new, empty, or (with ``--overwrite``) an earlier export: a folder holding other
  files is refused, so nothing of the user's is deleted. The files are written into a hidden
  sibling folder, loaded back and compared, then renamed to DIR in one step: DIR never holds a
  half-written export.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import modalities
from multibyte.checkpoint import CheckpointError, load, read_checkpoint
from multibyte.data.header import HeaderTable, is_mixture
from multibyte.model.pretrained import CONFIG_NAME, WEIGHTS_NAME, read_config
from multibyte.outputs import PARTIAL, OutputError, check_folder, same_file

CARD_NAME = "README.md"
EXPORT_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
RUN_CONFIG = "config.yaml"  # the resolved run config `multibyte fit` saves beside checkpoints


class ExportError(ValueError):
    """A bad argument or input to ``multibyte export``; the message names it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte export",
        description="Write a checkpoint as model.safetensors + config.json + a README.md model "
        "card, loadable with multibyte.Megabyte.from_pretrained(DIR) and by every --ckpt.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint (.ckpt, or an earlier export)")
    parser.add_argument("--out", required=True, help="folder to write (new or empty)")
    parser.add_argument("--eval", help="evaluation JSON of this model (multibyte evaluate --json)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier export in --out"
    )
    return parser


# -- the output folder -------------------------------------------------------------------------


def check_out(out: Path, overwrite: bool) -> bool:
    """Refuse an --out that is a file or holds other files; True when it holds an earlier export
    that --overwrite replaces."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a folder name")
    check_folder(out.parent if str(out.parent) else Path("."))  # the staging folder goes there
    if not out.is_dir():
        return False
    entries = sorted(entry.name for entry in out.iterdir())
    if not entries:
        return False
    others = [name for name in entries if name not in EXPORT_FILES]
    if others or CONFIG_NAME not in entries:
        shown = ", ".join((others or entries)[:3]) + (", ..." if len(others or entries) > 3 else "")
        raise ExportError(
            f"--out {out} holds files that are not an export ({shown}); give a new or empty folder"
        )
    if not overwrite:
        raise ExportError(f"--out {out} already holds an export; pass --overwrite to replace it")
    return True


def _place(stage: Path, out: Path, replace: bool) -> None:
    """Rename the finished ``stage`` to ``out`` (an earlier export there is replaced whole)."""
    if not replace:
        if out.is_dir():
            out.rmdir()  # empty (checked); rename does not replace a folder everywhere
        os.rename(stage, out)
        return
    old = out.with_name(f".{out.name}{PARTIAL}old-{os.getpid()}")
    os.rename(out, old)
    try:
        os.rename(stage, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- what goes into config.json and the card ---------------------------------------------------


def _modality_layout(options: Mapping[str, Any]) -> dict[str, Any]:
    """How one modality's bytes are laid out, from its adapter (docs/modalities.md)."""
    entry: dict[str, Any] = {"modality": options.get("name"), "options": dict(options)}
    try:
        adapter = modalities.get(**options)
    except (ValueError, LookupError) as error:  # an adapter that is not installed here
        entry["note"] = f"adapter not available where this was exported: {error}"
        return entry
    entry.update(
        layout=adapter.layout if hasattr(adapter, "layout") else dict(options),
        sample_bytes=adapter.seq_len,
        stream=bool(adapter.stream),
        unit=adapter.unit,
        bytes_per_unit=adapter.bytes_per_unit,
        frame_bytes=getattr(adapter, "frame_bytes", 1),
    )
    return entry


def byte_layout(modality: Mapping[str, Any] | None, max_seq_len: int) -> dict[str, Any]:
    """What the model's input bytes are: one modality's layout, or a mixture's header table
    (every sequence is a header naming its modality, then that modality's bytes)."""
    if modality is None:
        return {"kind": "bytes", "max_seq_len": max_seq_len}
    if is_mixture(modality):
        table = HeaderTable.from_entry(modality)
        return {
            "kind": "mixture",
            "max_seq_len": max_seq_len,
            "header_length": table.length,
            "sequence_bytes": table.seq_len,
            "data_bytes": table.data_len,
            "header_padding": "0x00",
            "modalities": [
                {
                    **_modality_layout(options),
                    "header": header.rstrip(b"\0").decode("ascii"),
                    "window": window,  # its data bytes per sequence in training
                }
                for options, header, window in zip(table.modalities, table.headers, table.windows)
            ],
        }
    return {"kind": "modality", "max_seq_len": max_seq_len, **_modality_layout(modality)}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def training_info(ckpt: Path, model: nn.Module) -> dict[str, Any]:
    """What the checkpoint tells of its training: the steps, and with the run config `fit`
    saves beside it, the recipe's settings and the bytes trained on (None where unknown)."""
    if ckpt.is_dir():  # an earlier export carries what was known then
        return dict(read_config(ckpt).get("training") or {})
    checkpoint = read_checkpoint(ckpt)
    steps = _int(checkpoint.get("global_step"))
    info: dict[str, Any] = {"checkpoint": ckpt.name, "steps": steps, "bytes": None}
    run = _run_config(ckpt.parent / RUN_CONFIG)
    if run is None:
        return info
    trainer, data = run.get("trainer") or {}, run.get("data") or {}
    model_args = (run.get("model") or {}) if isinstance(run.get("model"), dict) else {}
    config = (((model_args.get("model") or {}).get("init_args") or {}).get("config")) or {}
    seq_len = _int(data.get("seq_len")) or _sequence_bytes(getattr(model, "modality", None))
    factors = [
        steps,
        _int(data.get("batch_size")),
        _int(trainer.get("accumulate_grad_batches", 1)),
        _int(trainer.get("devices", 1)),
        _int(trainer.get("num_nodes", 1)),
        seq_len,
    ]
    # batches of one source each, in its own shape (mix_by batch): no single product
    if all(f is not None for f in factors) and data.get("mix_by", "sequence") == "sequence":
        total = 1
        for factor in factors:
            total *= factor
        info["bytes"] = total
    info["run"] = {
        key: value
        for key, value in {
            "preset_name": config.get("preset_name") if isinstance(config, dict) else None,
            "architecture": config.get("architecture") if isinstance(config, dict) else None,
            "max_steps": trainer.get("max_steps"),
            "precision": trainer.get("precision"),
            "devices": trainer.get("devices"),
            "accumulate_grad_batches": trainer.get("accumulate_grad_batches"),
            "batch_size": data.get("batch_size"),
            "seq_len": seq_len,
            "lr": model_args.get("lr"),
            "schedule": model_args.get("schedule"),
            "warmup_steps": model_args.get("warmup_steps"),
            "seed": run.get("seed_everything"),
        }.items()
        if value is not None
    }
    return info


def _run_config(path: Path) -> dict[str, Any] | None:
    try:
        run = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None  # the card then says the recipe is not known
    return run if isinstance(run, dict) else None


def _sequence_bytes(modality: Any) -> int | None:
    if is_mixture(modality):
        return _int(modality.get("seq_len"))
    if isinstance(modality, Mapping):
        try:
            return modalities.get(**modality).seq_len
        except (ValueError, LookupError):
            return None
    return None


REPORT_KEYS = ("modality", "bytes", "bits_per_byte", "unit", "value_in_unit")


def read_evaluation(path: Path) -> list[dict[str, Any]]:
    """The reports of an evaluation JSON (one, or one per modality); ExportError if it is not
    one written by ``multibyte evaluate --json``."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ExportError(f"--eval {path}: file not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ExportError(f"--eval {path} cannot be read: {error}") from error
    except json.JSONDecodeError as error:
        raise ExportError(f"--eval {path} is not valid JSON: {error}") from error
    reports = payload if isinstance(payload, list) else [payload]
    if not reports:
        raise ExportError(f"--eval {path} holds no report")
    for index, report in enumerate(reports):
        where = f"--eval {path}" + (f" (report {index + 1})" if len(reports) > 1 else "")
        if not isinstance(report, dict):
            raise ExportError(f"{where} is not an evaluation report (multibyte evaluate --json)")
        missing = [key for key in REPORT_KEYS if key not in report]
        if missing:
            raise ExportError(
                f"{where} lacks {', '.join(missing)}: not a report of multibyte evaluate --json"
            )
    return reports


def check_evaluation(reports: Sequence[Mapping[str, Any]], model: nn.Module, path: Path) -> None:
    """Refuse reports of another model (config) or of modalities the model was not trained on."""
    mine = json.dumps(model.config.to_dict(), sort_keys=True, default=list)
    trained = getattr(model, "modality", None)
    names = (
        {m.get("name") for m in trained["modalities"]}
        if is_mixture(trained)
        else ({trained.get("name")} if isinstance(trained, Mapping) else None)
    )
    for report in reports:
        spec = report.get("model")
        config = spec.get("config") if isinstance(spec, Mapping) else None
        if isinstance(config, Mapping) and json.dumps(config, sort_keys=True) != mine:
            differ = sorted(k for k in config if config.get(k) != _jsonable(model.config, k))
            raise ExportError(
                f"--eval {path} evaluates another model (its config differs in "
                f"{', '.join(differ[:4]) or 'its fields'}); evaluate this checkpoint"
            )
        if names is not None and report["modality"] not in names:
            raise ExportError(
                f"--eval {path} reports {report['modality']}, but the model was trained on "
                f"{', '.join(sorted(map(str, names)))}"
            )


def _jsonable(config: Any, key: str) -> Any:
    return json.loads(json.dumps(config.to_dict().get(key), default=list))


def evaluation_entry(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The held-out numbers kept in config.json, one entry per modality."""
    keep = (*REPORT_KEYS, "ci95_in_unit", "split", "data", "window", "header_bits_per_byte")
    return [{key: report[key] for key in keep if key in report} for report in reports]


# -- the model card ----------------------------------------------------------------------------


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def model_card(name: str, info: Mapping[str, Any], reports: Sequence[Mapping[str, Any]]) -> str:
    """README.md: what the model is, how it was trained, how well it does, how to load it."""
    spec, layout, training = info["model"], info["byte_layout"], info.get("training") or {}
    config, weights = spec["config"], info["weights"]
    kinds = (
        [m["modality"] for m in layout["modalities"]]
        if layout["kind"] == "mixture"
        else [layout.get("modality") or "bytes"]
    )
    tags = ["multibyte", "megabyte" if spec["class"] == "Megabyte" else "byte-transformer"]
    lines = [
        "---",
        "library_name: multibyte",
        "tags:",
        *[f"- {tag}" for tag in [*tags, "byte-level", *map(str, kinds)]],
        "---",
        "",
        f"# {name}",
        "",
        f"A {spec['class']} byte model ({', '.join(map(str, kinds))}), exported by multibyte "
        f"{info['multibyte_version']} (export format {info['format_version']}). It reads raw "
        "bytes: no tokenizer.",
        "",
        "## Files",
        "",
        f"- `{WEIGHTS_NAME}`: the weights only ({_n(weights['parameters'])} parameters, "
        f"{', '.join(weights['dtypes'])}, {_n(weights['bytes'])} bytes).",
        f"- `{CONFIG_NAME}`: the model class and config, the modality, the byte layout, the "
        "training run as far as known, the versions.",
        f"- `{CARD_NAME}`: this card.",
        "",
        "## Model",
        "",
        "| field | value |",
        "|---|---|",
        f"| class | {spec['class']} |",
        *[
            f"| {key} | {config[key]} |"
            for key in (
                "preset_name",
                "architecture",
                "patch_size",
                "patch_sizes",
                "max_seq_len",
                "global_dim",
                "global_layers",
                "global_heads",
                "local_dim",
                "local_layers",
                "local_heads",
                "dim",
                "layers",
                "heads",
                "cross_patch",
            )
            if config.get(key) not in (None, (), [])
        ],
        "",
        "## Input bytes",
        "",
        *_layout_lines(layout),
        "",
        "## Training",
        "",
        *_training_lines(training),
        "",
        "## Evaluation",
        "",
        *_evaluation_lines(reports),
        "",
        "## Use",
        "",
        "```python",
        "import torch",
        f"from multibyte import {spec['class']}",
        "",
        f'model = {spec["class"]}.from_pretrained("{name}")  # no Lightning, no pickle',
        "x = torch.randint(0, 256, (1, 64))  # bytes",
        "logits = model(x)  # [1, 64, 256]: logits[:, t] predicts x[:, t] from x[:, :t]",
        "```",
        "",
        "Every command takes the folder as `--ckpt`:",
        "",
        "```",
        *_command_lines(name, kinds),
        "```",
        "",
    ]
    return "\n".join(lines)


def _layout_lines(layout: Mapping[str, Any]) -> list[str]:
    if layout["kind"] == "bytes":
        return [f"Raw bytes, up to {_n(layout['max_seq_len'])} per sequence (no modality stored)."]
    if layout["kind"] == "modality":
        return [f"- {_modality_line(layout)}", f"- up to {_n(layout['max_seq_len'])} bytes a pass"]
    return [
        f"One model for {len(layout['modalities'])} modalities. Every sequence starts with a "
        f"{layout['header_length']}-byte header: the modality's tag in ASCII, padded with 0x00 "
        f'(docs/modalities.md, "Headers"); then {_n(layout["data_bytes"])} data bytes.',
        "",
        "| header | bytes |",
        "|---|---|",
        *[f"| `{m['header']}` | {_modality_line(m)} |" for m in layout["modalities"]],
    ]


def _modality_line(entry: Mapping[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(entry["options"].items()) if k != "name")
    size = entry.get("sample_bytes")
    what = "a byte stream" if entry.get("stream") else f"{_n(size)} bytes a sample"
    unit = f"; metric {entry['unit']}" if entry.get("unit") else ""
    return f"{entry['modality']} ({options or 'defaults'}): {what}{unit}"


def _training_lines(training: Mapping[str, Any]) -> list[str]:
    run = training.get("run") or {}
    recipe = ", ".join(f"{k} {v}" for k, v in run.items())
    steps, total = training.get("steps"), training.get("bytes")
    return [
        f"- Checkpoint: `{training.get('checkpoint', 'unknown')}`",
        f"- Recipe: {recipe}"
        if recipe
        else "- Recipe: not known (no run config.yaml beside the checkpoint)",
        f"- Steps: {_n(steps) if steps is not None else 'not known'}",
        f"- Training bytes: {_n(total)} (steps x batch x devices x accumulation x sequence bytes)"
        if total is not None
        else "- Training bytes: not known from the checkpoint",
    ]


def _evaluation_lines(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    if not reports:
        return [
            "No evaluation was given. `multibyte evaluate --ckpt DIR --data HELD_OUT --json "
            "E.json`, then `multibyte export ... --eval E.json`, puts it here."
        ]
    lines = [
        "Held-out data, scored by `multibyte evaluate` (header bytes excluded):",
        "",
        "| modality | value | unit | bits/byte | 95% CI (unit) | bytes | best codec |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        ci = r.get("ci95_in_unit")
        ci_text = f"{ci[0]:.4f} to {ci[1]:.4f}" if isinstance(ci, list) and len(ci) == 2 else "-"
        codecs = r.get("codecs_in_unit") or {}
        best = min(codecs.items(), key=lambda kv: kv[1]) if codecs else None
        codec = f"{best[0]} {best[1]:.4f}" if best else "-"
        lines.append(
            f"| {r['modality']} | {r['value_in_unit']:.4f} | {r['unit']} | "
            f"{r['bits_per_byte']:.4f} | {ci_text} | {_n(r['bytes'])} | {codec} |"
        )
    return lines


def _command_lines(name: str, kinds: Sequence[str]) -> list[str]:
    modality = kinds[0] if kinds and kinds[0] != "bytes" else None
    pick = f" --modality {modality}" if modality and len(kinds) > 1 else ""
    return [
        f"multibyte evaluate --ckpt {name} --data HELD_OUT",
        f"multibyte sample --ckpt {name}{pick} --out SAMPLE_FILE",
        f"multibyte compress --ckpt {name} FILE --out FILE.mbz",
    ]


# -- export ------------------------------------------------------------------------------------


def export_model(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    evaluation: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``ckpt``'s model to the folder ``out`` (see the module docstring); returns its
    absolute path."""
    ckpt, out = Path(ckpt), Path(out)
    if not ckpt.exists():
        raise ExportError(f"--ckpt {ckpt}: checkpoint not found")
    if same_file(ckpt, out):
        raise ExportError(f"--out {out} is the checkpoint itself; give another folder")
    replace = check_out(out, overwrite)
    reports = read_evaluation(Path(evaluation)) if evaluation is not None else []
    model = load(ckpt, map_location="cpu")
    check_evaluation(reports, model, Path(evaluation or ""))
    modality = getattr(model, "modality", None)
    extra = {
        "byte_layout": byte_layout(modality, model.config.max_seq_len),
        "training": training_info(ckpt, model),
        "evaluation": evaluation_entry(reports),
    }
    target = Path(os.path.abspath(out))  # "." and "DIR/" have a name to stage beside
    stage = target.with_name(f".{target.name}{PARTIAL}{os.getpid()}")
    created = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        stage.mkdir()
        model.save_pretrained(stage, modality=modality, extra=extra)
        info = read_config(stage)
        (stage / CARD_NAME).write_text(model_card(target.name, info, reports), encoding="utf-8")
        _check_copy(model, stage)
        _place(stage, target, replace)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # deepest first; one something else filled stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return target


def _check_copy(model: nn.Module, folder: Path) -> None:
    """The written folder loads back to the same weights and modality (before it is placed)."""
    copy = load(folder, map_location="cpu")
    mine, theirs = model.state_dict(), copy.state_dict()
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    if not same or copy.modality != getattr(model, "modality", None):
        raise ExportError(f"the export written to {folder} does not load back to the same model")


def main(argv: list[str] | None = None) -> int:
    """``multibyte export``; exit 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        out = export_model(args.ckpt, args.out, args.eval, args.overwrite)
    except (ExportError, OutputError, CheckpointError, FileNotFoundError) as error:
        print(f"multibyte export: error: {error}", file=sys.stderr)
        return 2
    weights = read_config(out)["weights"]
    print(
        f"exported {args.ckpt} to {out}: {WEIGHTS_NAME} ({_n(weights['parameters'])} parameters, "
        f"{_n(weights['bytes'])} bytes), {CONFIG_NAME}, {CARD_NAME}",
        file=sys.stderr,
    )
    return 0


__all__ = [
    "ExportError",
    "build_parser",
    "byte_layout",
    "export_model",
    "main",
    "model_card",
    "read_evaluation",
    "training_info",
]
