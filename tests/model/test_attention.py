"""The attention pieces on their own: rotary positions, the KV cache, the cross-patch mask."""

import pytest
import torch
import torch.nn.functional as F

from multibyte.model.attention import (
    WRITTEN_OUT_MAX_KEYS,
    CausalSelfAttention,
    KVCache,
    Rotary,
    _causal_mask,
    attend,
)

HEADS, HEAD_DIM = 2, 8


def vectors(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(3, HEADS, length, HEAD_DIM, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("offset", "delta"), [(0, 3), (5, -5), (7, -2), (2, 9)])
def test_rotary_shift_moves_rotated_vectors_to_other_positions(offset, delta):
    rotary = Rotary(HEAD_DIM, max_len=32)
    x = vectors(4)
    shifted = rotary.shift(rotary(x, offset), delta)
    torch.testing.assert_close(shifted, rotary(x, offset + delta), rtol=0, atol=1e-5)
    torch.testing.assert_close(rotary.shift(shifted, -delta), rotary(x, offset), rtol=0, atol=1e-5)


def test_rotary_scores_depend_only_on_the_distance_between_positions():
    rotary = Rotary(HEAD_DIM, max_len=64)
    q, k = vectors(1, seed=1), vectors(1, seed=2)
    scores = [(rotary(q, i + 3) * rotary(k, i)).sum(-1) for i in (0, 10, 40)]
    for other in scores[1:]:
        torch.testing.assert_close(other, scores[0], rtol=0, atol=1e-4)
    assert not torch.allclose((rotary(q, 5) * rotary(k, 0)).sum(-1), scores[0], atol=1e-3)


def filled_cache(length: int, rotary: Rotary | None) -> tuple[KVCache, torch.Tensor, torch.Tensor]:
    cache = KVCache(3, HEADS, 8, HEAD_DIM, "cpu", torch.float32)
    keys, values = vectors(length, seed=3), vectors(length, seed=4)
    for t in range(length):  # one position at a time, as decoding appends them
        key = keys[:, :, t : t + 1]
        cache.append(rotary(key, t) if rotary is not None else key, values[:, :, t : t + 1])
    return cache, keys, values


def test_keep_last_moves_the_newest_positions_to_the_front():
    cache, keys, values = filled_cache(6, rotary=None)
    cache.keep_last(2)
    assert cache.length == 2
    assert torch.equal(cache.keys[:, :, :2], keys[:, :, 4:6])
    assert torch.equal(cache.values[:, :, :2], values[:, :, 4:6])
    k, v = cache.append(keys[:, :, :1], values[:, :, :1])  # and appending continues after them
    assert k.shape[2] == 3 and torch.equal(v[:, :, 2], values[:, :, 0])


def test_keep_last_re_rotates_keys_to_the_positions_they_now_hold():
    rotary = Rotary(HEAD_DIM, max_len=16)
    cache, keys, values = filled_cache(7, rotary)
    cache.keep_last(3, rotary)
    assert cache.length == 3
    # keys 4, 5, 6 now sit at positions 0, 1, 2, as training's cross-patch keys do
    torch.testing.assert_close(cache.keys[:, :, :3], rotary(keys[:, :, 4:7], 0), rtol=0, atol=1e-5)
    assert torch.equal(cache.values[:, :, :3], values[:, :, 4:7])


def test_keep_last_nothing_empties_the_cache_and_overflow_is_an_error():
    cache, _, _ = filled_cache(5, rotary=None)
    cache.keep_last(0)
    assert cache.length == 0
    cache, _, _ = filled_cache(8, rotary=None)
    with pytest.raises(RuntimeError, match="overflow"):
        cache.append(vectors(1), vectors(1))


def test_causal_mask_after_cached_positions():
    mask = _causal_mask(3, 2, "cpu")  # three queries at positions 2, 3, 4 over keys 0..4
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def cross_patch_attention(carried: int, length: int = 4) -> CausalSelfAttention:
    torch.manual_seed(0)
    return CausalSelfAttention(16, HEADS, rotary_max_len=length + carried, cross_patch=carried)


def test_cross_patch_mask_sees_the_previous_patch_of_the_same_row_only():
    rows, patches, length, carried = 2, 3, 4, 2
    attention = cross_patch_attention(carried, length)
    k, v = vectors(length, seed=5).repeat(2, 1, 1, 1), vectors(length, seed=6).repeat(2, 1, 1, 1)
    keys, values, mask = attention._with_previous_patch(k, v, rows)
    assert mask.shape == (rows * patches, 1, length, carried + length)
    causal = _causal_mask(length, carried, "cpu")[:, carried:]
    for row in range(rows):
        for patch in range(patches):
            b = row * patches + patch
            # the first patch of a row has no previous patch (the last patch of the row before
            # is another sequence); every other patch sees all r carried keys
            assert bool(mask[b, 0, :, :carried].all()) == (patch > 0)
            assert not mask[b, 0, :, :carried].any() or patch > 0
            assert torch.equal(mask[b, 0, :, carried:], causal)
            if patch:  # carried keys: the previous patch's last r, moved back to 0..r-1
                moved = attention.rotary.shift(k[b - 1, :, length - carried :], -length)
                torch.testing.assert_close(keys[b, :, :carried], moved, rtol=0, atol=1e-6)
                assert torch.equal(values[b, :, :carried], v[b - 1, :, length - carried :])


@pytest.mark.parametrize("carried", [1, 2, 4])
def test_cross_patch_training_equals_decoding_patch_by_patch_with_a_cache(carried):
    # Training sees all patches in one batched call; decoding runs a patch at a time and keeps
    # the last r keys in the cache (`keep_last`). Both must attend to the same keys.
    rows, patches, length = 2, 3, 4
    attention = cross_patch_attention(carried, length).eval()
    x = torch.randn(rows * patches, length, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        batched = attention(x, rows=rows)
        for row in range(rows):
            cache = KVCache(1, HEADS, length + carried, HEAD_DIM, "cpu", torch.float32)
            for patch in range(patches):
                if patch:
                    cache.keep_last(carried, attention.rotary)
                b = row * patches + patch
                step = attention(x[b : b + 1], cache)
                torch.testing.assert_close(step[0], batched[b], rtol=0, atol=1e-5)


def _qkv(length: int, keys: int | None = None, dtype=torch.float32):
    torch.manual_seed(0)
    shape = (3, 2, length, 16)
    q = torch.randn(shape)
    k, v = (
        torch.randn(shape[:2] + (keys or length, 16)),
        torch.randn(shape[:2] + (keys or length, 16)),
    )
    return [t.to(dtype).requires_grad_() for t in (q, k, v)]


@pytest.mark.parametrize("masked", [False, True])
def test_bf16_attention_on_a_cpu_computes_what_sdpa_computes(masked):
    """The written-out bf16 path: the same outputs and gradients as float32 SDPA, to bf16's
    precision, for causal self-attention and for an explicit mask over extra keys."""
    length, keys = 12, 16 if masked else 12
    mask = _causal_mask(length, keys - length, "cpu") if masked else None
    q, k, v = _qkv(length, keys, torch.bfloat16)
    y = attend(q, k, v, attn_mask=mask, is_causal=not masked)
    y.float().square().sum().backward()
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    y32 = F.scaled_dot_product_attention(q32, k32, v32, attn_mask=mask, is_causal=not masked)
    y32.square().sum().backward()
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), y32, atol=3e-2, rtol=3e-2)
    for half, full in ((q, q32), (k, k32), (v, v32)):
        torch.testing.assert_close(half.grad.float(), full.grad, atol=6e-2, rtol=6e-2)


def test_bf16_attention_is_causal_and_drops_weights_only_when_asked():
    q, k, v = _qkv(8, dtype=torch.bfloat16)
    y = attend(q, k, v, is_causal=True)
    v_later = v.detach().clone()
    v_later[:, :, 5:] += 1.0  # later values must not reach earlier queries
    y_later = attend(q, k, v_later, is_causal=True)
    assert torch.equal(y[:, :, :5], y_later[:, :, :5]) and not torch.equal(y, y_later)
    torch.manual_seed(1)
    dropped = attend(q, k, v, is_causal=True, dropout_p=0.5)
    assert not torch.equal(dropped, y)
    assert torch.equal(attend(q, k, v, is_causal=True, dropout_p=0.0), y)


def test_layer_under_cpu_autocast_matches_float32(monkeypatch):
    """A layer under bf16 autocast on a CPU (Lightning's bf16-mixed) takes the written-out path
    and stays close to the float32 layer."""
    torch.manual_seed(0)
    layer = CausalSelfAttention(32, heads=4, rotary_max_len=64).eval()
    x = torch.randn(2, 24, 32)
    sdpa = F.scaled_dot_product_attention

    def fused_kernel(*args, **kwargs):
        raise AssertionError("bf16 on a CPU must not reach the fused SDPA kernels")

    monkeypatch.setattr(F, "scaled_dot_product_attention", fused_kernel)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    monkeypatch.setattr(F, "scaled_dot_product_attention", sdpa)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), layer(x), atol=3e-2, rtol=3e-2)


def test_long_bf16_rows_keep_the_fused_kernel(monkeypatch):
    """From WRITTEN_OUT_MAX_KEYS keys on, the fused kernel wins, so it stays."""
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(
        F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    for length in (WRITTEN_OUT_MAX_KEYS, WRITTEN_OUT_MAX_KEYS + 1):
        q, k, v = _qkv(length, dtype=torch.bfloat16)
        attend(q, k, v, is_causal=True)
    assert len(calls) == 1
