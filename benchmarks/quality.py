"""quality: held-out bits per byte of our tiny recipes, megabyte-pytorch and the codecs.

Data: the sample pack through the quickstart's plans (its split: held-out chelsea_* images,
speakers s13-s16, persuasion; its prepare flags, with the recipe's modality options winning),
prepared into the run folder (default runs/benchmarks/quality). Per modality, with the recipe
of the quickstart's plan (`--recipe MODALITY=PATH`) and its max_steps S (`--steps MODALITY=N`):
1. ours: `multibyte fit --config RECIPE` for S steps (wall time W, training alone), then
   `multibyte evaluate` on the val split: held-out bpb and the codecs on the same bytes;
2. megabyte-pytorch (`benchmarks/peer.py`, image and text) through the same trainer, data,
   batch, optimizer, LR schedule, clipping and seed, S steps (wall time W_p), scored by the same
   evaluation in memory (our checkpoints cannot hold it);
3. megabyte-pytorch at equal wall time: floor(W / (W_p / S)) steps on its own schedule.
Every run's warmup is the recipe's, scaled by steps / the recipe's max_steps.

`--jobs 2` trains two at a time with one torch thread each; the wall times then come from a
timing run of each model at torch's default threads (`--timing-steps` steps after one warm-up
step). `--ablate MODALITY` adds the ablation table: the baseline recipe, then each entry of
ABLATIONS (overrides of config fields, `lr`, `batch_size`, ...) as `--ablate-steps` runs, cached
per run name in the run folder (`--fresh` redoes them). The overrides go to `multibyte fit` as
flags, so a field the model does not have yet fails that row only.

`python -m benchmarks.quality SPEC.json RESULT.json` is one run in a child process (`--jobs 2`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from benchmarks import harness as h

FOLDER = h.REPO / "runs" / "benchmarks" / "quality"
PEER_MODALITIES = ("image", "text")  # audio: ours only, against the codecs
WALL_MARGIN = 0.3  # bpb: how much lower ours must be at equal wall time
SMOKE = {"steps": 2, "timing_steps": 2, "ablate_steps": 2, "limit": 2}
LABELS = {"ours": "multibyte", "peer_steps": "megabyte-pytorch, equal steps",
          "peer_wall": "megabyte-pytorch, equal wall time"}  # fmt: skip

# The ablation table: name -> overrides of the baseline recipe, one change at a time.
BASELINE = "baseline"
ABLATIONS: dict[str, dict] = {
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
    "tuned_architecture": {"architecture": "tuned", "global_byte_dim": 96},
    "cross_patch_4": {"cross_patch": 4},
    "tuned_cross_patch_4": {
        "architecture": "tuned",
        "global_byte_dim": 96,
        "first_byte": "context",
        "cross_patch": 4,
    },
}
# Overrides that are not model config fields, and their `multibyte fit` flags.
TRAINING_FLAGS = {
    "lr": "--model.lr", "betas": "--model.betas", "weight_decay": "--model.weight_decay",
    "warmup_steps": "--model.warmup_steps", "schedule": "--model.schedule",
    "min_lr_ratio": "--model.min_lr_ratio", "batch_size": "--data.batch_size",
}  # fmt: skip
CONFIG_FLAG = "--model.model.init_args.config.{}"


def _png_webp_half(codecs: dict) -> float | None:
    png, webp = codecs.get("png"), codecs.get("webp")
    return None if png is None or webp is None else (png + webp) / 2


# The goals against the codecs on the same held-out bytes: (goal, threshold, strict).
CODEC_GOALS = {
    "image": [("beats PNG", lambda c: c.get("png"), True),
              ("closes half the PNG-WebP gap", _png_webp_half, False)],
    "text": [("beats every codec", lambda c: min(c.values(), default=None), True)],
    "audio": [("beats FLAC", lambda c: c.get("flac"), True)],
}  # fmt: skip


class RunFailed(RuntimeError):
    """A training or evaluation that did not finish; the message says which and why."""


def fail(message: str) -> None:
    """A user error: one line, exit status 2."""
    print(f"python -m benchmarks run quality: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


# -- one run: a training and its held-out evaluation --------------------------------------------


@dataclass
class Run:
    """One training (and evaluation) as plain data, so a child process can run it from JSON."""

    name: str  # its folder under <run folder>/runs, and its cache file
    model: str  # "ours" or "peer"
    modality: str
    recipe: str
    steps: int
    warmup_steps: int
    shards: str
    folder: str
    overrides: dict = field(default_factory=dict)
    threads: int | None = None  # torch threads; None: torch's default
    evaluate: bool = True  # False: a timing run
    codecs: bool = False  # also the codec baselines (ours' evaluation)
    limit: int | None = None  # evaluate at most N sequences (--smoke)
    peer_heads: int = 8  # megabyte-pytorch's heads (peer runs)
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
    held-out evaluation comes after), the clock, then the overrides."""
    root = run.root
    return [
        "--config", recipe, "--data.path", run.shards, "--trainer.max_steps", str(run.steps),
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--model.warmup_steps", str(run.warmup_steps),
        "--trainer.callbacks+=benchmarks.peer.TrainClock",
        "--trainer.callbacks.path", str(root / "clock.json"), *override_flags(run.overrides),
    ]  # fmt: skip


def run_here(run: Run) -> dict:
    """Train and evaluate `run` in this process (stdout goes to stderr: it carries the section)."""
    from benchmarks import peer  # Lightning: not for `python -m benchmarks list`

    root = run.root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    h.log(f"{run.name}: {run.model}, {run.steps} steps" + (" (timing)" * (not run.evaluate)))
    errors = io.StringIO()  # what the commands print to stderr, shown after they finish
    try:
        with h.threads(run.threads), contextlib.redirect_stdout(sys.stderr):
            with contextlib.redirect_stderr(errors):
                summary = train_and_evaluate(run)
    except SystemExit as error:  # LightningCLI's parser refused an option
        why = errors.getvalue().strip().split("error: ")[-1]
        message = f"{run.name}: multibyte fit refused its options: {' '.join(why.split())}"
        raise RunFailed(message) from error
    finally:
        sys.stderr.write(errors.getvalue())
    clock = json.loads((root / "clock.json").read_text())
    result = {
        "name": run.name, "model": run.model, "modality": run.modality, "steps": clock["steps"],
        "threads": run.threads or torch.get_num_threads(), "parameters": clock["parameters"],
        "train_s": clock["seconds"], "step_s": clock["seconds"] / max(clock["steps"], 1),
        "steady_step_s": peer.steady_step_seconds(clock),
    }  # fmt: skip
    kept = ("bits_per_byte", "value_in_unit", "unit", "ci95", "bytes", "codecs")
    return result | {key: summary.get(key) for key in kept if summary}


def train_and_evaluate(run: Run) -> dict:
    """The fit (and evaluate) commands of `run`; the evaluation report ({} for timing runs)."""
    # Imported here: Lightning and webdataset, which `python -m benchmarks list` and the GPU
    # machines' cases do not need.
    from benchmarks import peer
    from multibyte.evaluation.command import main as evaluate_main
    from multibyte.train.cli import main as fit_main
    from multibyte.train.data import ConfigError

    root = run.root
    if run.model == "ours":
        if status := fit_main(["fit", *fit_argv(run, run.recipe)]):
            raise RunFailed(f"{run.name}: multibyte fit exited with status {status}")
        if not run.evaluate:
            return {}
        report = root / "evaluation.json"
        status = evaluate_main([
            "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--data", run.shards,
            "--json", str(report), "--quiet", "--overwrite", *["--no-codecs"] * (not run.codecs),
            *(["--limit", str(run.limit)] if run.limit else []),
        ])  # fmt: skip
        if status:
            raise RunFailed(f"{run.name}: multibyte evaluate exited with status {status}")
        return json.loads(report.read_text())
    recipe = root / "peer.yaml"
    swapped = peer.recipe(yaml.safe_load(Path(run.recipe).read_text()), run.peer_heads)
    recipe.write_text(yaml.safe_dump(swapped, sort_keys=False))
    try:
        module = peer.fit_in_process(fit_argv(run, str(recipe)))
    except ConfigError as error:
        raise RunFailed(f"{run.name}: configuration error: {error}") from error
    if not run.evaluate:
        return {}
    return peer.evaluate_in_memory(module.model, run.shards, module.modality, run.limit)


def run_child(run: Run) -> dict:
    """`run` in a child process (`python -m benchmarks.quality SPEC RESULT`), output in a log."""
    spec, result, log = (run.root.parent / f"{run.name}.{kind}" for kind in
                         ("spec.json", "result.json", "log"))  # fmt: skip
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(asdict(run), indent=1))
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    if run.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(run.threads)
    h.log(f"{run.name}: {run.model}, {run.steps} steps, in a child process (log {log})")
    with open(log, "w") as out:
        status = subprocess.run([sys.executable, "-m", "benchmarks.quality", str(spec),
                                 str(result)], cwd=h.REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=env).returncode  # fmt: skip
    if not result.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RunFailed(f"{run.name}: exit status {status} ({tail[0]}; log {log})")
    done = json.loads(result.read_text())
    if "error" in done:
        raise RunFailed(done["error"])
    return done


def cache_file(run: Run) -> Path:
    return Path(run.folder) / "runs" / f"{run.name}.json"


def execute(runs: list[Run], jobs: int, fresh: bool = False) -> dict:
    """Results by run name: cached ones reused (unless `fresh`), the rest trained here
    one at a time (jobs 1) or `jobs` at a time in child processes. A failed run's result is
    {"error": why}; cached results are only those of finished runs with the same spec."""
    results, todo = {}, []
    for run in runs:
        stored = cache_file(run)
        if not fresh and stored.is_file():
            saved = json.loads(stored.read_text())
            if saved["run"] == asdict(run):
                h.log(f"{run.name}: cached ({stored})")
                results[run.name] = saved["result"] | {"cached": True}
                continue
        todo.append(run)

    def attempt(run: Run) -> dict:
        try:
            result = run_here(run) if jobs == 1 else run_child(run)
        except RunFailed as error:
            h.log(f"failed: {error}")
            return {"name": run.name, "error": str(error)}
        # cached as soon as it finishes: a long benchmark that stops keeps what it did
        cache_file(run).write_text(json.dumps({"run": asdict(run), "result": result}, indent=1))
        return result

    if jobs == 1:
        done = [attempt(run) for run in todo]
    else:
        with ThreadPoolExecutor(jobs) as pool:
            done = list(pool.map(attempt, todo))
    results |= {run.name: result for run, result in zip(todo, done)}
    return results


def required(results: dict) -> dict:
    """The results, or the one-line error of the first failed run."""
    for result in results.values():
        if "error" in result:
            fail(result["error"])
    return results


# -- settings per modality -----------------------------------------------------------------------


def parse_pairs(pairs: list[str], option: str, known: list[str], kind: type) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            fail(f"{option} {pair}: expected MODALITY=VALUE with MODALITY one of {known}")
        try:
            out[name] = kind(value)
        except ValueError:
            fail(f"{option} {pair}: {value!r} is not a valid {kind.__name__}")
    return out


def recipe_of(plan, args: argparse.Namespace) -> tuple[Path, dict]:
    from multibyte.quickstart import RECIPES

    path = Path(args.recipe_paths.get(plan.name) or RECIPES / plan.recipe)
    if not path.is_file():
        fail(f"{path}: recipe not found")
    try:
        recipe = yaml.safe_load(path.read_text())
        recipe["model"]["model"]["init_args"]["config"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        fail(f"{path}: not a model recipe ({type(error).__name__}: {error})")
    return path, recipe


def warmup_for(recipe: dict, steps: int) -> int:
    """The recipe's warmup, scaled to `steps` as a fraction of the recipe's max_steps."""
    warmup = recipe.get("model", {}).get("warmup_steps", 500)  # ByteLM's default
    planned = (recipe.get("trainer") or {}).get("max_steps") or -1
    return max(1, round(warmup * steps / planned)) if planned > 0 else warmup


def prepare(plan, recipe: dict, folder: Path) -> str:
    """Shards of the sample pack by the quickstart's split, in `folder`/shards/MODALITY."""
    from multibyte.prepare import main as prepare_main
    from multibyte.quickstart import SAMPLES, prepare_flags, split_inputs

    shards = folder / "shards" / plan.name
    train, val = split_inputs(plan, SAMPLES / plan.source)
    h.log(f"prepare {plan.name}: {len(train)} training and {len(val)} held-out inputs")
    with contextlib.redirect_stdout(sys.stderr):
        status = prepare_main([
            plan.name, "--src", *map(str, train), "--val-src", *map(str, val),
            "--out", str(shards), "--val-fraction", "0", "--overwrite", "--workers", "1",
            "--quiet", *prepare_flags(plan, recipe),
        ])  # fmt: skip
    if status:
        fail(f"multibyte prepare {plan.name} exited with status {status}")
    return str(shards)


@dataclass
class Setting:
    """One modality's recipe, steps and shards, and how its runs are made."""

    plan: object
    recipe_path: Path
    recipe: dict
    steps: int
    shards: str
    args: argparse.Namespace

    def run(self, name: str, model: str, steps: int | None = None, **options) -> Run:
        steps = steps or self.steps
        a = self.args
        return Run(
            name=name, model=model, modality=self.plan.name, recipe=str(self.recipe_path),
            steps=steps, warmup_steps=warmup_for(self.recipe, steps), shards=self.shards,
            folder=str(a.folder), threads=1 if a.jobs > 1 else None, limit=a.limit,
            recipe_sha=self.recipe_sha(model),
            **({"peer_heads": a.peer_heads} if model == "peer" else {}), **options,
        )  # fmt: skip

    def recipe_sha(self, model: str) -> str:
        """What a cached run depends on: our recipe, or the peer recipe made from it (its sizes,
        data and optimizer; our architecture flags do not change the peer)."""
        from benchmarks import peer

        if model == "peer":
            content = yaml.safe_dump(peer.recipe(self.recipe, self.args.peer_heads)).encode()
        else:  # the parsed recipe: a comment does not make a cached run stale
            content = json.dumps(self.recipe, sort_keys=True).encode()
        return hashlib.sha256(content).hexdigest()[:16]

    def timing(self, name: str, model: str, **options) -> Run:
        """A short run at torch's default threads for the seconds per step (--jobs > 1)."""
        run = self.run(f"{name}-timing", model, self.args.timing_steps + 1, **options)
        run.threads, run.evaluate = None, False
        return run


def settings(names: list[str], args: argparse.Namespace) -> dict[str, Setting]:
    """Each modality's recipe and steps (all checked first), then its shards."""
    from multibyte.quickstart import PLANS

    found = []
    for plan in [p for p in PLANS if p.name in names]:
        path, recipe = recipe_of(plan, args)
        steps = args.step_counts.get(plan.name) or (SMOKE["steps"] if args.smoke else None)
        steps = steps or (recipe.get("trainer") or {}).get("max_steps") or 0
        if steps < 1:
            fail(f"{path}: no trainer.max_steps; pass --steps {plan.name}=N")
        found.append((plan, path, recipe, steps))
    return {plan.name: Setting(plan, path, recipe, steps, prepare(plan, recipe, Path(args.folder)),
                               args) for plan, path, recipe, steps in found}  # fmt: skip


# -- the comparison ------------------------------------------------------------------------------


def goals(modality: str, bpb: float, codecs: dict) -> list[dict]:
    rates = {k: v for k, v in codecs.items() if v is not None}
    out = []
    for goal, threshold_of, strict in CODEC_GOALS.get(modality, []):
        threshold = threshold_of(rates)
        met = None if threshold is None else (bpb < threshold if strict else bpb <= threshold)
        out.append({"goal": goal, "threshold": threshold, "met": met})
    return out


def compare(sets: dict[str, Setting], args: argparse.Namespace, peer_installed: bool) -> list:
    """Per modality: ours, the peer at equal steps and at equal wall time, codecs and goals."""
    with_peer = [m for m in sets if m in PEER_MODALITIES and peer_installed]
    first = [s.run(f"{m}-ours", "ours", codecs=True) for m, s in sets.items()]
    first += [sets[m].run(f"{m}-peer", "peer") for m in with_peer]
    results = required(execute(first, args.jobs, fresh=args.fresh))
    steady = {name: r["step_s"] for name, r in results.items()}  # s/step: each run's own clock
    if args.jobs > 1:  # after the trainings, so each timing run has the machine to itself
        timings = [s.timing(f"{m}-ours", "ours") for m, s in sets.items()]
        timings += [sets[m].timing(f"{m}-peer", "peer") for m in with_peer]
        for name, result in required(execute(timings, 1, fresh=args.fresh)).items():
            steady[name.removesuffix("-timing")] = result["steady_step_s"]
    wall_steps = {m: max(1, math.floor(sets[m].steps * steady[f"{m}-ours"] / steady[f"{m}-peer"]))
                  for m in with_peer}  # fmt: skip
    second = [sets[m].run(f"{m}-peer-wall", "peer", wall_steps[m]) for m in with_peer
              if wall_steps[m] != sets[m].steps and not args.no_wall]  # fmt: skip
    results |= required(execute(second, args.jobs, fresh=args.fresh))
    method = "timing run" if args.jobs > 1 else "measured"

    def model(name: str, timed_as: str) -> dict:  # s/step: the run's own, or its timing run's
        result = results[name]
        step_s = steady[timed_as] if args.jobs > 1 else result["step_s"]
        return {"parameters": result["parameters"], "steps": result["steps"], "step_s": step_s,
                "wall_s": step_s * result["steps"], "wall_method": method,
                "bpb": result["bits_per_byte"], "in_unit": result["value_in_unit"],
                "unit": result["unit"], "ci95": result["ci95"], "threads": result["threads"],
                "bytes": result["bytes"]}  # fmt: skip

    rows = []
    for m, setting in sets.items():
        ours = model(f"{m}-ours", f"{m}-ours")
        codecs = results[f"{m}-ours"]["codecs"] or {}
        row = {"modality": m, "recipe": shown(setting.recipe_path), "steps": setting.steps,
               "codecs": codecs, "models": {"ours": ours},
               "goals": goals(m, ours["bpb"], codecs)}  # fmt: skip
        if m in with_peer:
            row["models"]["peer_steps"] = model(f"{m}-peer", f"{m}-peer")
            row["peer_wall_steps"] = wall_steps[m]  # the peer's steps in our wall time
            wall = f"{m}-peer-wall" if wall_steps[m] != setting.steps else f"{m}-peer"
            at_steps = ours["bpb"] - row["models"]["peer_steps"]["bpb"]
            at_wall = None  # --no-wall: the peer's equal-wall-time run was not made
            if wall in results:
                row["models"]["peer_wall"] = model(wall, f"{m}-peer")
                at_wall = ours["bpb"] - row["models"]["peer_wall"]["bpb"]
            row["differences"] = {"equal_steps": at_steps, "equal_wall": at_wall}
            row["goals"] = [
                {"goal": "lower than megabyte-pytorch at equal steps",
                 "threshold": ours["bpb"] - at_steps, "met": at_steps < 0},
                {"goal": f"lower by >= {WALL_MARGIN} at equal wall time",
                 "threshold": None if at_wall is None else ours["bpb"] - at_wall - WALL_MARGIN,
                 "met": None if at_wall is None else at_wall <= -WALL_MARGIN},
                *row["goals"],
            ]  # fmt: skip
        elif m in PEER_MODALITIES:
            row["peer_missing"] = True
        rows.append(row)
    return rows


def shown(path: Path) -> str:
    """A path as the doc shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(h.REPO)) if path.is_relative_to(h.REPO) else str(path)


# -- the ablation --------------------------------------------------------------------------------


def describe(overrides: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items()) or "(the recipe)"


def ablate(setting: Setting, args: argparse.Namespace) -> dict:
    names = [BASELINE, *[n for n in args.rows if n != BASELINE]]
    steps = args.ablate_steps
    m = setting.plan.name

    def run(name: str) -> Run:
        return setting.run(f"ablate-{m}-{name}", "ours", steps, overrides=ABLATIONS[name])

    runs = [run(name) for name in names]
    results = execute(runs, args.jobs, fresh=args.fresh)
    timings = {}
    if args.jobs > 1:  # after the trainings, so each timing run has the machine to itself
        timed = [setting.timing(r.name, "ours", overrides=r.overrides) for r in runs
                 if "error" not in results[r.name]]  # fmt: skip
        timed_results = execute(timed, 1, fresh=args.fresh)
        timings = {name.removesuffix("-timing"): r for name, r in timed_results.items()}
    base = results[runs[0].name].get("bits_per_byte")
    rows = []
    for name, r in zip(names, runs):
        result = results[r.name]
        timing = timings.get(r.name, result)
        error = (result.get("error") or timing.get("error") or "").removeprefix(f"{r.name}: ")
        bpb = result.get("bits_per_byte")
        rows.append({
            "name": name, "overrides": ABLATIONS[name], "change": describe(ABLATIONS[name]),
            "bpb": bpb, "delta": None if bpb is None or base is None else bpb - base,
            "step_s": timing.get("steady_step_s" if args.jobs > 1 else "step_s"),
            "parameters": result.get("parameters"), "cached": bool(result.get("cached")),
            "error": error or None,
        })  # fmt: skip
    return {"modality": m, "recipe": shown(setting.recipe_path), "steps": steps, "rows": rows}


# -- the doc section -----------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _met(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**not met**")


def render_comparison(s: dict, rows: list[dict]) -> list[str]:
    if s["jobs"] > 1:
        timing = (
            f"wall time = steps x s/step of a timing run of each model at torch's default "
            f"threads ({s['timing_steps']} steps after a warm-up step), since the trainings ran "
            f"{s['jobs']} at a time on one thread each"
        )
    else:
        timing = "wall time = each run's own training time (one run at a time, validation excluded)"
    peer = (
        f"{s['peer']} ({s['peer_heads']} heads of 64, no positions, token shift, RMSNorm, "
        "LayerNorm+Linear patch embedder, untied head with a bias; no byte ignored) is sized by "
        "our recipe and trained by the same trainer, data, batch, optimizer, LR schedule, "
        "clipping and seed"
    )
    if not s["peer_installed"]:
        peer = "**megabyte-pytorch was not installed (`pip install -e '.[bench]'`): ours only**"
    table = []
    for row in rows:
        for key, m in row["models"].items():
            label = LABELS[key] + (f" (`{row['recipe']}`)" if key == "ours" else "")
            table.append([
                row["modality"], label, f"{m['parameters'] / 1e6:.2f}M", m["steps"],
                f"{m['step_s']:.3f}", f"{m['wall_s']:.0f}", f"{m['bpb']:.3f}",
                f"{m['in_unit']:.3f} {m['unit']}",
            ])  # fmt: skip
    headers = ["modality", "model", "params", "steps", "s/step", "wall s", "held-out bpb",
               "in the unit"]  # fmt: skip
    parts = [
        "Held-out bits per byte on the sample pack's held-out data (the quickstart's split; "
        f"lower is better). {peer}; {timing}.",
        h.markdown_table(headers, table),
    ]
    diffs = [[row["modality"], _f(row["differences"]["equal_steps"], sign=True),
              _f(row["differences"]["equal_wall"], sign=True), row.get("peer_wall_steps", "")]
             for row in rows if "differences" in row]  # fmt: skip
    if diffs:
        headers = ["modality", "at equal steps", "at equal wall time",
                   "the peer's steps in our wall time"]  # fmt: skip
        parts.append(
            "Ours minus megabyte-pytorch (bpb; negative: ours lower; n/a: the equal-wall-time "
            "run was skipped, `--no-wall`):\n\n" + h.markdown_table(headers, diffs)
        )
    names = list(dict.fromkeys(c for row in rows for c in row["codecs"]))  # as evaluate lists
    codecs = [
        [row["modality"], _f(row["models"]["ours"]["bpb"]), *map(_f, map(row["codecs"].get, names))]
        for row in rows
    ]
    parts.append(
        "Codecs on the same held-out bytes (bits per byte, each sequence compressed on its own, "
        "as `multibyte evaluate` reports them):\n\n"
        + h.markdown_table(["modality", "ours", *names], codecs)
    )
    goals = [[row["modality"], g["goal"], _f(g["threshold"]), _f(row["models"]["ours"]["bpb"]),
              _met(g["met"])] for row in rows for g in row["goals"]]  # fmt: skip
    headers = ["modality", "goal", "threshold bpb", "ours bpb", "status"]
    parts.append("Goals:\n\n" + h.markdown_table(headers, goals))
    return parts


def render_ablation(s: dict, a: dict) -> str:
    base = next((row["bpb"] for row in a["rows"] if row["name"] == BASELINE), None)
    rows = [[f"`{row['name']}`", row["change"],
             f"failed: {row['error']}" if row["error"] else _f(row["bpb"]),
             "" if row["name"] == BASELINE else _f(row["delta"], sign=True), _f(row["step_s"])]
            for row in a["rows"]]  # fmt: skip
    speed = "timing runs at torch's default threads" if s["jobs"] > 1 else "each run's own time"
    return (
        f"Ablation on {a['modality']}: `{a['recipe']}` (baseline held-out bpb {_f(base)}), one "
        f"change at a time, {a['steps']} steps each; s/step from {speed}. The table of changes "
        "is `ABLATIONS` in benchmarks/quality.py.\n\n"
        + h.markdown_table(["name", "change", "held-out bpb", "vs baseline", "s/step"], rows)
    )


def render(r: dict) -> str:
    s = r["settings"]
    parts = render_comparison(s, r["comparison"]) if r["comparison"] else []
    if r.get("ablation"):
        parts.append(render_ablation(s, r["ablation"]))
    return "\n\n".join(parts) + "\n"


# -- the case ------------------------------------------------------------------------------------


def options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--folder", help=f"shards, runs and their cache (default {FOLDER}; --smoke: temp)")
    add("--modalities", nargs="+", help="modalities to compare (default: every plan's)")
    add("--no-compare", action="store_true", help="no comparison: only --ablate")
    add("--recipe", action="append", default=[], metavar="MODALITY=PATH",
        help="a modality's recipe (default: its quickstart plan's)")  # fmt: skip
    add("--steps", action="append", default=[], metavar="MODALITY=N",
        help="a modality's steps S (default: its recipe's max_steps; --smoke 2)")  # fmt: skip
    add("--jobs", type=int, default=1,
        help="trainings at a time; above 1, one torch thread each and timing runs")  # fmt: skip
    add(
        "--timing-steps",
        type=int,
        help="steps of a timing run after a warm-up step (20; --smoke 2)",
    )
    add("--peer-heads", type=int, default=8, help="megabyte-pytorch's heads of 64 (its 8)")
    add("--no-wall", action="store_true", help="skip the peer's equal-wall-time run (n/a)")
    add("--ablate", metavar="MODALITY", help="the ablation table on MODALITY")
    add("--ablate-steps", type=int, help="steps of every ablation run (300; --smoke 2)")
    add("--ablate-recipe", metavar="PATH",
        help="the ablation's baseline recipe (default: the modality's, as compared)")  # fmt: skip
    add("--only", metavar="NAME,...", help="ablation rows to run (the baseline always runs)")
    add("--fresh", action="store_true", help="redo cached runs (comparison and ablation)")


def check(args: argparse.Namespace, known: list[str]) -> None:
    """Every refusal before any work: one line, exit status 2. Fills in the defaults."""
    for name, full in (("timing_steps", 20), ("ablate_steps", 300)):
        if getattr(args, name) is None:
            setattr(args, name, SMOKE[name] if args.smoke else full)
    for name in ("jobs", "timing_steps", "ablate_steps", "peer_heads"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    args.limit = SMOKE["limit"] if args.smoke else None
    args.recipe_paths = parse_pairs(args.recipe, "--recipe", known, str)
    args.step_counts = parse_pairs(args.steps, "--steps", known, int)
    args.compared = [] if args.no_compare else (args.modalities or known)
    for name in [*args.compared, *[args.ablate] * bool(args.ablate)]:
        if name not in known:
            fail(f"{name}: not a modality of the quickstart's plans ({', '.join(known)})")
    if args.ablate_recipe and not args.ablate:
        fail("--ablate-recipe is the ablation's baseline: give --ablate MODALITY")
    if args.only and not args.ablate:
        fail("--only picks ablation rows: give --ablate MODALITY")
    args.rows = [n.strip() for n in (args.only or ",".join(ABLATIONS)).split(",") if n.strip()]
    unknown = [n for n in args.rows if n not in ABLATIONS]
    if unknown:
        fail(f"--only {','.join(unknown)}: not in the ablation table ({', '.join(ABLATIONS)})")
    if not args.compared and not args.ablate:
        fail("nothing to run: --no-compare without --ablate")


# The documented run (docs/benchmarks.md): two trainings at a time, the peer with 4 heads of 64
# (closest to our 64-wide heads), and the text ablation against the pre-issue-15 recipe.
DOCUMENTED = ("--jobs", "2", "--peer-heads", "4", "--ablate", "text", "--ablate-steps", "300",
              "--ablate-recipe", "benchmarks/ablation/pg19-tiny-paper.yaml")  # fmt: skip


@h.case("quality", render, options, documented=DOCUMENTED)
def run(args: argparse.Namespace) -> dict:
    from benchmarks import peer  # Lightning and webdataset: imported when this case runs
    from multibyte.quickstart import PLANS

    known = [p.name for p in PLANS]
    check(args, known)
    installed = peer.installed()
    if not installed and set(args.compared) & set(PEER_MODALITIES):
        h.log("megabyte-pytorch is not installed (pip install -e '.[bench]'): ours only")
    with contextlib.ExitStack() as stack:
        if args.folder is None and args.smoke:
            args.folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-quality-"))
        args.folder = str(args.folder or FOLDER)
        ablated = None
        if args.ablate:  # its own baseline recipe (--ablate-recipe), else the comparison's
            paths = dict(args.recipe_paths)
            if args.ablate_recipe:
                paths[args.ablate] = args.ablate_recipe
            own = argparse.Namespace(**{**vars(args), "recipe_paths": paths})
            ablated = settings([args.ablate], own)[args.ablate]  # checked before any training
        rows = compare(settings(args.compared, args), args, installed)
        ablation = ablate(ablated, args) if ablated else None
    setup = {"jobs": args.jobs, "timing_steps": args.timing_steps, "folder": args.folder,
                 "peer": f"megabyte-pytorch {peer.VERSION}", "peer_installed": installed,
                 "peer_heads": args.peer_heads, "smoke": args.smoke}  # fmt: skip
    return {"settings": setup, "comparison": rows, "ablation": ablation}


if __name__ == "__main__":  # one run in a child process: SPEC.json RESULT.json
    child = Run(**json.loads(Path(sys.argv[1]).read_text()))
    if child.threads:
        torch.set_num_threads(child.threads)
    try:
        outcome = run_here(child)
    except RunFailed as error:
        outcome = {"name": child.name, "error": str(error)}
    Path(sys.argv[2]).write_text(json.dumps(outcome))
    raise SystemExit(1 if "error" in outcome else 0)
