"""The attention pieces on their own: rotary positions, the KV cache, the cross-patch mask."""

import pytest
import torch

from multibyte.model.attention import CausalSelfAttention, KVCache, Rotary, _causal_mask

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
