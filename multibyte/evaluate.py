"""The older home of the evaluation API; everything now lives in ``multibyte.evaluation``."""

from __future__ import annotations

from multibyte.evaluation import (
    Evaluation,
    EvaluationError,
    ModeResult,
    Window,
    basic_plan,
    ci95,
    evaluate_model,
    run_plan,
    sliding_plan,
    strided_plan,
    window_bits,
)
from multibyte.evaluation.command import main

__all__ = [
    "Evaluation",
    "EvaluationError",
    "ModeResult",
    "Window",
    "basic_plan",
    "ci95",
    "evaluate_model",
    "main",
    "run_plan",
    "sliding_plan",
    "strided_plan",
    "window_bits",
]
