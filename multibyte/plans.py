"""The demo's plans: how each bundled dataset of the sample pack is prepared, trained and sampled.

Plain data and two helpers, below the commands so that both `multibyte quickstart` and the
benchmarks read the same plans and the same held-out split. Nothing here branches on a
modality's name: each plan only carries the flags its modality takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import modalities

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
SAMPLES = ROOT / "data" / "samples"
MULTIMODAL_RECIPE = "multimodal-tiny.yaml"


@dataclass
class Plan:
    """How one bundled dataset runs in the demo (data only: the commands never branch on it)."""

    name: str  # the modality, as `multibyte prepare` takes it
    recipe: str
    source: str  # folder under the sample pack
    prepare: list[str]
    steps: int
    quick_steps: int = 3
    sample: list[str] = field(default_factory=list)
    quick_sample: list[str] = field(default_factory=list)  # --quick: a few bytes only
    prompt: bool = False  # continue the first held-out input
    sample_file: str = ""
    held_out: tuple[str, ...] = ()
    """Glob patterns of the inputs kept for validation (whole photos, voices, works)."""
    shared_steps: int | None = None
    """Its weight in the demo's one model for every modality (`data.mix_by: batch`, so its
    expected updates there; default `steps`). That model trains as many steps as the
    specialists together, however they are shared out."""
    model: dict[str, Any] = field(default_factory=dict)
    """MEGABYTE config fields set over the recipe's for the demo's short run (and its baseline's
    FLOPs): what is best at a few hundred steps where that differs from the recipe's steps."""


PLANS = [
    Plan(
        "image",
        "imagenet64-tiny.yaml",
        "images",
        ["--size", "64"],
        steps=175,
        # the shared model's updates (725, as the specialists'): audio, which gains most from
        # the multimodal recipe's ordinal byte embeddings, gives 100 of its 200 to images and
        # text (docs/benchmarks.md, "multimodal")
        shared_steps=225,
        sample=["--n", "4", "--prompt-fraction", "0.5"],
        quick_sample=["--n", "1", "--prompt-fraction", "0.98"],
        prompt=True,
        sample_file="samples.png",
        held_out=("chelsea_*",),
    ),
    Plan(
        "audio",
        "audio-tiny.yaml",
        "speech",
        ["--sample-rate", "16000", "--encoding", "pcm16", "--seq-len", "4096"],
        steps=200,
        shared_steps=100,
        sample=["--n", "2", "--max-new-bytes", "8192", "--prompt-fraction", "0.03"],
        quick_sample=["--n", "2", "--max-new-bytes", "64", "--prompt-fraction", "0.001"],
        prompt=True,
        sample_file="samples.wav",
        held_out=("s13.*", "s14.*", "s15.*", "s16.*"),
    ),
    Plan(
        "text",
        "pg19-tiny.yaml",
        "text",
        [],
        steps=350,
        shared_steps=400,
        sample=["--n", "1", "--max-new-bytes", "600", "--top-k", "20"],
        quick_sample=["--n", "1", "--max-new-bytes", "64", "--top-k", "20"],
        sample_file="sample.txt",
        held_out=("persuasion*",),
        # cross-patch attention pays only after ~700 steps: 2.979 against 2.866 bpb at 350
        model={"first_byte": "previous_patch", "cross_patch": 0},
    ),
]


def split_inputs(plan: Plan, folder: Path) -> tuple[list[Path], list[Path]]:
    """(train, val) files: val holds whole sources, so no crop or voice leaks into training."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix not in (".tsv", ".md"))
    val = [p for p in files if any(p.match(pattern) for pattern in plan.held_out)]
    val = val or files[-1:]  # another pack: hold out its last file
    return [p for p in files if p not in val], val


def replaced(flags: list[str], overrides: list[str]) -> list[str]:
    """`--flag value` pairs of `flags`, each flag given in `overrides` taking its value there."""
    pairs = dict(zip(flags[::2], flags[1::2]))
    pairs.update(zip(overrides[::2], overrides[1::2]))
    return [word for pair in pairs.items() for word in pair]


def prepare_flags(plan: Plan, recipe: dict[str, Any]) -> list[str]:
    """The plan's prepare flags, the recipe's modality options (as `multibyte prepare` spells
    them) taking precedence: shards fix the byte layout (their manifest's options are what
    training uses), so they must hold what the recipe trains on, e.g. its image order."""
    declared = {f.keyword: f for f in getattr(modalities.factory(plan.name), "flags", ())}
    options = (recipe.get("data") or {}).get("modality") or {}
    flags = []
    for key, value in options.items():
        flag = declared.get(key)
        if flag is not None and not flag.reading and flag.kind is not bool:
            flags += [flag.flag, str(value)]
    return replaced(plan.prepare, flags)
