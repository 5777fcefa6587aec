"""Exact bits per byte of a model on data, in each modality's unit, with codec baselines.

One concern per module:

- ``plans``: which forward passes (windows) score which bytes: basic, strided, sliding (pure);
- ``scoring``: a model and a plan in, per-byte bits out (float64, each byte scored once);
- ``statistics``: totals, the 95% interval and per-mode summaries;
- ``evaluation``: ``evaluate_model``, the library entry point that ties them together;
- ``report``: the printed report, the Markdown table and the plots;
- ``command``: ``multibyte evaluate``.

``docs/evaluation.md`` defines every reported number.
"""

from __future__ import annotations

from multibyte.evaluation.evaluation import Evaluation, evaluate_model
from multibyte.evaluation.plans import (
    EvaluationError,
    Window,
    basic_plan,
    sliding_plan,
    strided_plan,
)
from multibyte.evaluation.scoring import ModeResult, run_plan, window_bits
from multibyte.evaluation.statistics import ci95

__all__ = [
    "Evaluation",
    "EvaluationError",
    "ModeResult",
    "Window",
    "basic_plan",
    "ci95",
    "evaluate_model",
    "run_plan",
    "sliding_plan",
    "strided_plan",
    "window_bits",
]
