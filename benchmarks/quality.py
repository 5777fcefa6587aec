"""quality: held-out bits per byte of our tiny recipes, megabyte-pytorch and the codecs.

On the sample pack, split and prepared by the demo's plans (`multibyte.plans`), per modality for
its recipe's max_steps S: ours (`multibyte fit`, then `multibyte evaluate` with the codecs on the
same bytes); megabyte-pytorch (`benchmarks/peer.py`; image and text) through the same trainer,
data, optimizer, schedule and seed for S steps, and for as many steps as fit in our training
time, scored by the same evaluation. Warmup: the recipe's, scaled by steps ÷ max_steps.
`--ablate MODALITY`: the ablation table, the baseline recipe and each entry of ABLATIONS, one
change at a time (a refused override fails its row only). Runs are cached by their spec.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import yaml

from benchmarks import harness as h
from multibyte.plans import PLANS, RECIPES, SAMPLES, prepare_flags, split_inputs

FOLDER = h.REPO / "runs" / "benchmarks" / "quality"
PEER_MODALITIES = ("image", "text")  # audio: ours only, against the codecs
PEER_HEADS = 4  # of 64 dimensions, as our models' heads (megabyte-pytorch ships with 8)
LABELS = {"ours": "multibyte", "peer_steps": "megabyte-pytorch, equal steps"}
LABELS["peer_wall"] = "megabyte-pytorch, equal wall time"
BASELINE, TUNED = "baseline", {"architecture": "tuned", "global_byte_dim": 96}
ABLATIONS: dict[str, dict] = {  # name -> overrides of the baseline recipe
    BASELINE: {},
    "token_shift": {"token_shift": True},
    "rmsnorm": {"norm": "rmsnorm"},
    "positions_none": {"positions": ["none"]},
    "positions_rotary": {"positions": ["rotary"]},
    "norm_proj_embedder": {"patch_embedder": "norm_proj", "global_byte_dim": 96},
    "dense_context": {"context_proj": "dense"},
    "first_byte_previous_patch": {"first_byte": "previous_patch"},
    "untied_head": {"tie_embeddings": False, "head_bias": True},
    "head_dim_64": {"head_dim": 64},
    "local_dim_128": {"local_dim": 128},
    "init_std_0.05": {"init_std": 0.05},
    "embed_init_std_1": {"embed_init_std": 1.0},
    "lr_1e-3": {"lr": 1e-3},
    "lr_4e-3": {"lr": 4e-3},
    "batch_8": {"batch_size": 8},
    "dropout_0.1": {"dropout": 0.1},
    "peer_architecture": {"architecture": "peer", "global_byte_dim": 96},
    "tuned_architecture": TUNED,
    "cross_patch_4": {"cross_patch": 4},
    "tuned_cross_patch_4": TUNED | {"first_byte": "context", "cross_patch": 4},
}
# Overrides that are not model config fields, and their `multibyte fit` flags.
MODEL_FLAGS = ("lr", "betas", "weight_decay", "warmup_steps", "schedule", "min_lr_ratio")
TRAINING_FLAGS = {k: f"--model.{k}" for k in MODEL_FLAGS} | {"batch_size": "--data.batch_size"}
CONFIG_FLAG = "--model.model.init_args.config.{}"
SMOKE = {"steps": 2, "ablate_steps": 2, "limit": 2}
fail = partial(h.fail, "quality")


class RunFailed(RuntimeError):
    """A training or evaluation that did not finish; the message says which and why."""


@dataclass
class Run:
    """One training (and evaluation); its spec is the key of its cached result."""

    name: str  # its folder under <run folder>/runs, and its cache file
    model: str  # "ours" or "peer"
    recipe: str
    steps: int
    warmup_steps: int
    shards: str
    folder: str
    overrides: dict = field(default_factory=dict)
    codecs: bool = False  # also the codec baselines (ours' evaluation)
    limit: int | None = None  # evaluate at most N sequences (--smoke)
    recipe_sha: str = ""  # the recipe's content: a cached result of an edited recipe is stale

    @property
    def root(self) -> Path:
        return Path(self.folder) / "runs" / self.name


def override_flags(overrides: dict) -> list[str]:
    """`multibyte fit` flags of ablation overrides: config fields, or TRAINING_FLAGS keys."""
    flags = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value)  # a string: as typed
        flags += [TRAINING_FLAGS.get(key, CONFIG_FLAG.format(key)), text]
    return flags


def fit_argv(run: Run, recipe: str) -> list[str]:
    """`multibyte fit` flags of `run`: its steps and warmup, no validation inside the fit (the
    held-out evaluation comes after), the training clock, then the overrides."""
    root = str(run.root)
    argv = ["--config", recipe, "--data.path", run.shards, "--trainer.max_steps", str(run.steps)]
    argv += ["--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]
    argv += ["--trainer.default_root_dir", root, "--trainer.enable_progress_bar", "false"]
    argv += ["--model.warmup_steps", str(run.warmup_steps)]
    argv += ["--trainer.callbacks+=benchmarks.peer.TrainClock"]
    return argv + ["--trainer.callbacks.path", f"{root}/clock.json", *override_flags(run.overrides)]


def train_and_evaluate(run: Run) -> dict:
    """The fit and evaluate commands of `run` (the peer: trained and scored in memory)."""
    from benchmarks import peer  # Lightning and webdataset: imported when this case runs
    from multibyte.evaluation.command import main as evaluate_main
    from multibyte.train.cli import main as fit_main
    from multibyte.train.data import ConfigError

    if run.model == "peer":
        recipe = run.root / "peer.yaml"
        swapped = peer.recipe(yaml.safe_load(Path(run.recipe).read_text()), PEER_HEADS)
        recipe.write_text(yaml.safe_dump(swapped, sort_keys=False))
        try:
            module = peer.fit_in_process(fit_argv(run, str(recipe)))
        except ConfigError as error:
            raise RunFailed(f"{run.name}: configuration error: {error}") from error
        return peer.evaluate_in_memory(module.model, run.shards, module.modality, run.limit)
    if status := fit_main(["fit", *fit_argv(run, run.recipe)]):
        raise RunFailed(f"{run.name}: multibyte fit exited with status {status}")
    report = run.root / "evaluation.json"
    argv = ["--ckpt", str(run.root / "checkpoints" / "last.ckpt"), "--data", run.shards]
    argv += ["--json", str(report), "--quiet", "--overwrite", *["--no-codecs"] * (not run.codecs)]
    if status := evaluate_main(argv + (["--limit", str(run.limit)] if run.limit else [])):
        raise RunFailed(f"{run.name}: multibyte evaluate exited with status {status}")
    return json.loads(report.read_text())


def run_here(run: Run) -> dict:
    """Train and evaluate `run` in this process (stdout goes to stderr: it carries the section)."""
    shutil.rmtree(run.root, ignore_errors=True)
    run.root.mkdir(parents=True)
    h.log(f"{run.name}: {run.model}, {run.steps} steps")
    errors = io.StringIO()  # what the commands print to stderr, shown after they finish
    try:
        with contextlib.redirect_stdout(sys.stderr), contextlib.redirect_stderr(errors):
            summary = train_and_evaluate(run)
    except SystemExit as error:  # LightningCLI's parser refused an option
        why = " ".join(errors.getvalue().strip().split("error: ")[-1].split())
        raise RunFailed(f"{run.name}: multibyte fit refused its options: {why}") from error
    finally:
        sys.stderr.write(errors.getvalue())
    clock = json.loads((run.root / "clock.json").read_text())
    result = {"steps": clock["steps"], "parameters": clock["parameters"]}
    result["step_s"] = clock["seconds"] / max(clock["steps"], 1)
    kept = ("bits_per_byte", "value_in_unit", "unit", "ci95", "bytes", "codecs")
    return result | {key: summary.get(key) for key in kept}


def execute(runs: list[Run], fresh: bool, required: bool = True) -> dict[str, dict]:
    """Results by run name: a cached one where its spec is unchanged (unless `fresh`), else
    trained here; only finished runs are cached. A failed run stops the case when `required`,
    else its result is {"error": why}."""
    results = {}
    for run in runs:
        cache = Path(run.folder) / "runs" / f"{run.name}.json"
        saved = json.loads(cache.read_text()) if cache.is_file() and not fresh else {}
        if saved.get("run") == asdict(run):
            h.log(f"{run.name}: cached ({cache})")
            results[run.name] = saved["result"] | {"cached": True}
            continue
        try:
            results[run.name] = run_here(run)
        except RunFailed as error:
            if required:
                fail(str(error))
            h.log(f"failed: {error}")
            results[run.name] = {"error": str(error)}
            continue
        # cached as soon as it finishes: a long benchmark that stops keeps what it did
        cache.write_text(json.dumps({"run": asdict(run), "result": results[run.name]}, indent=1))
    return results


@dataclass
class Setting:
    """One modality's recipe, steps and shards, and how its runs are made."""

    modality: str
    recipe_path: Path
    recipe: dict
    steps: int
    shards: str
    args: argparse.Namespace

    def run(self, name: str, model: str, steps: int | None = None, **options) -> Run:
        from benchmarks import peer  # Lightning: imported when this case runs

        steps, args = steps or self.steps, self.args
        if model == "peer":  # the peer recipe: our sizes, data and optimizer, not our flags
            content = yaml.safe_dump(peer.recipe(self.recipe, PEER_HEADS))
        else:  # the parsed recipe: a comment does not make a cached run stale
            content = json.dumps(self.recipe, sort_keys=True)
        options |= {"shards": self.shards, "folder": str(args.folder), "limit": args.limit}
        options["recipe_sha"] = hashlib.sha256(content.encode()).hexdigest()[:16]
        warmup = warmup_for(self.recipe, steps)
        return Run(name, model, str(self.recipe_path), steps, warmup, **options)


def warmup_for(recipe: dict, steps: int) -> int:
    """The recipe's warmup, scaled to `steps` as a fraction of the recipe's max_steps."""
    warmup = recipe.get("model", {}).get("warmup_steps", 500)  # ByteLM's default
    planned = (recipe.get("trainer") or {}).get("max_steps") or -1
    return max(1, round(warmup * steps / planned)) if planned > 0 else warmup


def prepare(plan, recipe: dict, folder: Path) -> str:
    """Shards of the sample pack by the plans' split, in `folder`/shards/MODALITY."""
    from multibyte.prepare import main as prepare_main

    shards = folder / "shards" / plan.name
    train, val = split_inputs(plan, SAMPLES / plan.source)
    h.log(f"prepare {plan.name}: {len(train)} training and {len(val)} held-out inputs")
    argv = [plan.name, "--src", *map(str, train), "--val-src", *map(str, val), "--out", str(shards)]
    argv += ["--val-fraction", "0", "--overwrite", "--workers", "1", "--quiet"]
    with contextlib.redirect_stdout(sys.stderr):
        if status := prepare_main(argv + prepare_flags(plan, recipe)):
            fail(f"multibyte prepare {plan.name} exited with status {status}")
    return str(shards)


def settings(names: list[str], args: argparse.Namespace, ablate: str = "") -> dict[str, Setting]:
    """Each modality's recipe (--ablate-recipe for the ablation) and steps, all checked before
    any shards are prepared."""
    found = []
    for plan in [p for p in PLANS if p.name in names]:
        path = Path(ablate or RECIPES / plan.recipe)
        if not path.is_file():
            fail(f"{path}: recipe not found")
        recipe = yaml.safe_load(path.read_text())
        steps = SMOKE["steps"] if args.smoke else (recipe.get("trainer") or {}).get("max_steps")
        if not steps or "model" not in recipe:
            fail(f"{path}: not a training recipe (a model and trainer.max_steps)")
        found.append((plan, path, recipe, steps))
    return {
        plan.name: Setting(plan.name, path, recipe, steps, prepare(plan, recipe, args.folder), args)
        for plan, path, recipe, steps in found
    }


def model_row(result: dict) -> dict:
    keys = ("parameters", "steps", "step_s", "ci95", "bytes", "unit")
    row = {k: result[k] for k in keys} | {"wall_s": result["step_s"] * result["steps"]}
    return row | {"bpb": result["bits_per_byte"], "in_unit": result["value_in_unit"]}


def compare(sets: dict[str, Setting], args: argparse.Namespace, peer_installed: bool) -> list:
    """Per modality: ours, the peer at equal steps and at equal training time, the codecs."""
    with_peer = [m for m in sets if m in PEER_MODALITIES and peer_installed]
    first = [s.run(f"{m}-ours", "ours", codecs=True) for m, s in sets.items()]
    first += [sets[m].run(f"{m}-peer", "peer") for m in with_peer]
    results = execute(first, args.fresh)
    second = []
    for m in with_peer:  # the peer's steps in our training time
        ratio = results[f"{m}-ours"]["step_s"] / results[f"{m}-peer"]["step_s"]
        if (steps := max(1, math.floor(sets[m].steps * ratio))) != sets[m].steps:
            second.append(sets[m].run(f"{m}-peer-wall", "peer", steps))
    results |= execute(second, args.fresh)
    rows = []
    for m, setting in sets.items():
        ours = results[f"{m}-ours"]
        row = {"modality": m, "recipe": h.shown(setting.recipe_path), "codecs": ours["codecs"]}
        row["models"] = {"ours": model_row(ours)}
        if m in with_peer:
            wall = f"{m}-peer-wall" if f"{m}-peer-wall" in results else f"{m}-peer"
            row["models"]["peer_steps"] = model_row(results[f"{m}-peer"])
            row["models"]["peer_wall"] = model_row(results[wall])
        rows.append(row)
    return rows


def ablate(setting: Setting, args: argparse.Namespace) -> dict:
    names = [BASELINE, *[n for n in args.rows if n != BASELINE]]
    m, steps = setting.modality, args.ablate_steps
    runs = [setting.run(f"ablate-{m}-{n}", "ours", steps, overrides=ABLATIONS[n]) for n in names]
    results = execute(runs, args.fresh, required=False)
    base = results[runs[0].name].get("bits_per_byte")
    rows = []
    for name, run in zip(names, runs):
        result = results[run.name]
        bpb = result.get("bits_per_byte")
        change = ", ".join(f"{k}={json.dumps(v)}" for k, v in ABLATIONS[name].items())
        row = {"name": name, "change": change or "(the recipe)", "bpb": bpb}
        row["delta"] = None if bpb is None or base is None else bpb - base
        error = result.get("error", "").removeprefix(f"{run.name}: ") or None
        rows.append(row | {"step_s": result.get("step_s"), "error": error})
    return {"modality": m, "recipe": h.shown(setting.recipe_path), "steps": steps, "rows": rows}


def render_comparison(s: dict, rows: list[dict]) -> list[str]:
    peer = f"{s['peer']} ({PEER_HEADS} heads of 64, its own architecture; no byte ignored), sized"
    peer += " by our recipe, trained by the same trainer, data, optimizer, schedule and seed"
    if not s["peer_installed"]:
        peer = "**megabyte-pytorch was not installed (`pip install -e '.[bench]'`): ours only**"
    table = []
    for row in rows:
        for key, m in row["models"].items():
            label = LABELS[key] + (f" (`{row['recipe']}`)" if key == "ours" else "")
            table.append(
                [row["modality"], label, f"{m['parameters'] / 1e6:.2f}M", m["steps"]]
                + [f"{m['step_s']:.3f}", f"{m['wall_s']:.0f}", f"{m['bpb']:.3f}"]
                + [f"{m['in_unit']:.3f} {m['unit']}"]
            )
    headers = ["modality", "model", "params", "steps", "s/step", "wall s", "held-out bpb"]
    names = list(dict.fromkeys(c for row in rows for c in row["codecs"]))  # as evaluate lists
    codecs = [
        [row["modality"], h.number(row["models"]["ours"]["bpb"])]
        + [h.number(row["codecs"].get(name)) for name in names]
        for row in rows
    ]
    return [
        "Held-out bits per byte on the sample pack's held-out data (the demo's split; lower is "
        f"better). {peer}; wall time = each run's own training time (validation excluded).",
        h.markdown_table([*headers, "in the unit"], table),
        "Codecs on the same held-out bytes (bits per byte, each sequence compressed on its own, "
        "as `multibyte evaluate` reports them):",
        h.markdown_table(["modality", "ours", *names], codecs),
    ]


def render_ablation(a: dict) -> str:
    rows = [
        [f"`{row['name']}`", row["change"]]
        + [f"failed: {row['error']}" if row["error"] else h.number(row["bpb"])]
        + ["" if row["name"] == BASELINE else h.number(row["delta"], sign=True)]
        + [h.number(row["step_s"])]
        for row in a["rows"]
    ]
    base = h.number(a["rows"][0]["bpb"])
    return (
        f"Ablation on {a['modality']}: `{a['recipe']}` (baseline held-out bpb {base}), one change "
        f"at a time, {a['steps']} steps each; s/step from each run's own time. The table of "
        "changes is `ABLATIONS` in benchmarks/quality.py.\n\n"
        + h.markdown_table(["name", "change", "held-out bpb", "vs baseline", "s/step"], rows)
    )


def render(r: dict) -> str:
    parts = render_comparison(r["settings"], r["comparison"]) if r["comparison"] else []
    if r.get("ablation"):
        parts.append(render_ablation(r["ablation"]))
    return "\n\n".join(parts) + "\n"


def options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--folder", help=f"shards, runs and their cache (default {FOLDER}; --smoke: temp)")
    add("--modalities", nargs="+", help="modalities to compare (default: every plan's)")
    add("--no-compare", action="store_true", help="no comparison: only --ablate")
    add("--ablate", metavar="MODALITY", help="the ablation table on MODALITY")
    add("--ablate-steps", type=int, help="steps of every ablation run (300; --smoke 2)")
    add("--ablate-recipe", metavar="PATH", help="the ablation's baseline (default: as compared)")
    add("--only", metavar="NAME,...", help="ablation rows to run (the baseline always runs)")
    add("--fresh", action="store_true", help="redo cached runs (comparison and ablation)")


def check(args: argparse.Namespace, known: list[str]) -> None:
    """Every refusal before any work: one line, exit status 2. Fills in the defaults."""
    if args.ablate_steps is None:
        args.ablate_steps = SMOKE["ablate_steps"] if args.smoke else 300
    if args.ablate_steps < 1:
        fail(f"--ablate-steps {args.ablate_steps}: must be at least 1")
    args.limit = SMOKE["limit"] if args.smoke else None
    args.compared = [] if args.no_compare else (args.modalities or known)
    for name in [*args.compared, *[args.ablate] * bool(args.ablate)]:
        if name not in known:
            fail(f"{name}: not a modality of the demo's plans ({', '.join(known)})")
    for option in ("ablate_recipe", "only"):
        if getattr(args, option) and not args.ablate:
            fail(f"--{option.replace('_', '-')} is for the ablation: give --ablate MODALITY")
    args.rows = [n.strip() for n in (args.only or ",".join(ABLATIONS)).split(",") if n.strip()]
    if unknown := [n for n in args.rows if n not in ABLATIONS]:
        fail(f"--only {','.join(unknown)}: not in the ablation table ({', '.join(ABLATIONS)})")
    if not args.compared and not args.ablate:
        fail("nothing to run: --no-compare without --ablate")


# The documented run (docs/benchmarks.md): the text ablation against the recipe with the paper's
# architecture.
DOCUMENTED = ("--ablate", "text", "--ablate-recipe", "benchmarks/ablation/pg19-tiny-paper.yaml")


@h.case("quality", render, options, documented=DOCUMENTED)
def run(args: argparse.Namespace) -> dict:
    from benchmarks import peer  # Lightning and webdataset: imported when this case runs

    check(args, [p.name for p in PLANS])
    installed = peer.installed()
    if not installed and set(args.compared) & set(PEER_MODALITIES):
        h.log("megabyte-pytorch is not installed (pip install -e '.[bench]'): ours only")
    with contextlib.ExitStack() as stack:
        if args.folder is None and args.smoke:
            args.folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-quality-"))
        args.folder = Path(args.folder or FOLDER)
        ablated = None
        if args.ablate:  # checked before any training
            ablated = settings([args.ablate], args, args.ablate_recipe or "")[args.ablate]
        rows = compare(settings(args.compared, args), args, installed)
        ablation = ablate(ablated, args) if ablated else None
    setup = {"folder": str(args.folder), "peer": f"megabyte-pytorch {peer.VERSION}"}
    setup |= {"peer_installed": installed, "smoke": args.smoke}
    return {"settings": setup, "comparison": rows, "ablation": ablation}
