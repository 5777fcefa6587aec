"""KV-cached generation equals recomputation, for both models and every MEGABYTE option."""

import pytest
import torch


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize(("batch", "prompt_len"), [(1, 0), (3, 5), (2, 12)])
def test_cached_and_uncached_generation_are_identical(
    variant, make_megabyte, temperature, batch, prompt_len
):
    _, options = variant
    model = make_megabyte(**options)
    prompt = torch.randint(0, 256, (batch, prompt_len), generator=torch.Generator().manual_seed(7))
    new = 48 - prompt_len
    outputs = [
        model.generate(
            prompt,
            new,
            temperature=temperature,
            use_cache=use_cache,
            generator=torch.Generator().manual_seed(11),
        )
        for use_cache in (True, False)
    ]
    assert outputs[0].shape == (batch, 48)
    assert torch.equal(outputs[0][:, :prompt_len], prompt)
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("prompt_len", [0, 1, 4, 9])
def test_cached_logits_match_a_full_forward_pass(variant, make_megabyte, prompt_len):
    _, options = variant
    model = make_megabyte(**options)
    x = torch.randint(0, 256, (2, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(x)
        decoder = model.decoder(x.clone())
        for t in range(prompt_len, 48):
            logits = decoder.prefill(t) if t == prompt_len else decoder.advance(t)
            assert torch.allclose(logits, full[:, t], atol=1e-5, rtol=0), f"step {t}"


def test_megabyte_decoder_runs_one_global_step_per_patch(make_megabyte):
    model = make_megabyte(patch_size=4)
    calls = {"global": 0, "local": 0}

    def count(name, stack):
        # a prefill runs the stack's forward, a cached step its `step`: count both
        stack.register_forward_hook(lambda *a: calls.__setitem__(name, calls[name] + 1))
        step = stack.step

        def counted_step(*args):
            calls[name] += 1
            return step(*args)

        stack.step = counted_step

    count("global", model.global_model.transformer)
    count("local", model.local_model.transformer)
    model.generate(torch.zeros(1, 0, dtype=torch.long), 48, temperature=0)
    assert calls == {"global": 12, "local": 48}


def test_transformer_cached_and_uncached_generation_are_identical(make_transformer):
    for options in ({}, {"rotary": True, "qk_norm": True}):
        model = make_transformer(**options)
        x = torch.randint(0, 256, (2, 48))
        for temperature in (0.0, 0.8):
            a, b = (
                model.generate(
                    x[:, :3],
                    45,
                    temperature=temperature,
                    top_k=50,
                    use_cache=c,
                    generator=torch.Generator().manual_seed(5),
                )
                for c in (True, False)
            )
            assert torch.equal(a, b)
        with torch.no_grad():
            full = model(x)
            decoder = model.decoder(x.clone())
            for t in range(2, 48):
                logits = decoder.prefill(t) if t == 2 else decoder.advance(t)
                assert torch.allclose(logits, full[:, t], atol=1e-5, rtol=0)


def test_generation_is_reproducible_and_respects_the_generator(make_megabyte):
    model = make_megabyte()
    prompt = torch.randint(0, 256, (2, 4))
    a = model.generate(prompt, 20, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 20, generator=torch.Generator().manual_seed(1))
    c = model.generate(prompt, 20, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_greedy_generation_follows_the_argmax(make_megabyte):
    model = make_megabyte()
    out = model.generate(torch.randint(0, 256, (2, 3)), 10, temperature=0)
    with torch.no_grad():
        assert torch.equal(model(out)[:, 3:13].argmax(-1), out[:, 3:13])


def test_generation_argument_checks(make_megabyte):
    model = make_megabyte()
    prompt = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="max_seq_len"):
        model.generate(prompt, 45)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 4, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(prompt, 4, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(prompt, 4, top_p=0.0)


def test_generate_keeps_the_training_mode(make_megabyte):
    model = make_megabyte().train()
    model.generate(torch.zeros(1, 2, dtype=torch.long), 3)
    assert model.training


def test_generated_bytes_are_ordinary_tensors_and_progress_is_reported(make_megabyte):
    model = make_megabyte()
    seen = []
    out = model.generate(torch.zeros(1, 2, dtype=torch.long), 5, progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]
    assert not out.is_inference()
    model.train()
    model(out).sum().backward()  # usable for training afterwards
