"""The mixture follows its weights, is tempered by alpha and is a pure function of the step."""

from __future__ import annotations

import numpy as np
import pytest

from multibyte.data.mixing import MixtureBatchSampler, mixture_probabilities


def test_each_modality_share_is_within_3_points_of_its_weight_over_2000_sequences():
    weights = [0.5, 0.3, 0.2]
    sampler = MixtureBatchSampler(mixture_probabilities([1, 1, 1], weights), batch_size=8, seed=3)
    drawn = [source for b in range(250) for source, _, _ in sampler.batch(b)]
    assert len(drawn) == 2000
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.abs(shares - weights).max() < 0.03, shares


def test_alpha_tempers_the_weights_by_source_size():
    assert mixture_probabilities([100, 300], [1, 1], alpha=0.0) == pytest.approx([0.5, 0.5])
    assert mixture_probabilities([100, 300], [1, 1], alpha=1.0) == pytest.approx([0.25, 0.75])
    half = mixture_probabilities([100, 400], [1, 1], alpha=0.5)
    assert half == pytest.approx([1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="not all zero"):
        mixture_probabilities([100, 400], [0, 0])


def test_batch_b_is_a_pure_function_of_seed_step_and_rank():
    p = mixture_probabilities([1, 1], [1, 1])
    a = MixtureBatchSampler(p, 4, seed=1, rank=0)
    resumed = MixtureBatchSampler(p, 4, seed=1, rank=0, start_batch=7)
    first = [batch for _, batch in zip(range(10), iter(a))]
    assert next(iter(resumed)) == first[7]
    assert [number for _, number, _ in first[7]] == [7] * 4
    other_rank = MixtureBatchSampler(p, 16, seed=1, rank=1)
    assert other_rank.sources(0) != MixtureBatchSampler(p, 16, seed=1, rank=0).sources(0)
    with pytest.raises(ValueError):
        MixtureBatchSampler(p, 0)
