"""The compiled decode step (static caches, one graph per step kind) equals eager decoding."""

import pytest
import torch
from torch._dynamo.utils import counters

from multibyte.model import Megabyte, MegabyteConfig, decoding, transformer
from multibyte.model.decoding import step_kind
from multibyte.model.generation import StepGraphs

# Compiling takes seconds per graph here, so each model is built (and compiled) once.
TINY = dict(
    max_seq_len=48,
    global_dim=32,
    global_layers=2,
    global_heads=4,
    local_dim=16,
    local_layers=2,
    local_heads=2,
)
COMBINED = dict(patch_sizes=(8, 2), conv_encoder=True, qk_norm=True, rotary=True)
CROSS = dict(
    patch_sizes=(8, 4), cross_patch=3, architecture="tuned", first_byte="context", head_dim=8
)


@pytest.fixture(scope="module")
def megabytes():
    torch.manual_seed(0)
    plain = Megabyte(MegabyteConfig(patch_size=4, **TINY)).eval()
    combined = Megabyte(MegabyteConfig(**TINY, **COMBINED)).eval()
    # cross-patch keys, token shift (reset at each patch) and three stages
    cross = Megabyte(MegabyteConfig(**TINY, **CROSS)).eval()
    return {"plain": plain, "combined": combined, "cross": cross}


def generate(model, prompt, new, **options):
    return model.generate(prompt, new, generator=torch.Generator().manual_seed(11), **options)


# Each model and batch size compiles its own graphs (a minute or two on a 2-core CPU): the
# default run keeps the plain model's generation and the cross-patch model's logits at every
# step (what generation samples from); `pytest -m slow` adds the rest, and test_architecture.py
# compiles every option at once.
SLOW = pytest.mark.slow
GENERATIONS = [
    ("plain", 2, 5),
    pytest.param("combined", 1, 0, marks=SLOW),
    pytest.param("cross", 2, 2, marks=SLOW),
    pytest.param("cross", 1, 13, marks=SLOW),
]


@pytest.mark.parametrize(("name", "batch", "prompt_len"), GENERATIONS)
def test_compiled_generation_equals_uncached(megabytes, name, batch, prompt_len):
    model = megabytes[name]
    prompt = torch.randint(0, 256, (batch, prompt_len), generator=torch.Generator().manual_seed(7))
    compiled = generate(model, prompt, 48 - prompt_len, compile=True)
    assert torch.equal(compiled, generate(model, prompt, 48 - prompt_len, use_cache=False))
    assert torch.equal(compiled, generate(model, prompt, 48 - prompt_len))  # eager cached


PREFILLS = [
    pytest.param("combined", 0, marks=SLOW),
    pytest.param("combined", 9, marks=SLOW),
    ("cross", 0),
    ("cross", 3),
    ("cross", 9),
]


@pytest.mark.parametrize(("name", "prompt_len"), PREFILLS)
def test_compiled_logits_match_a_full_forward_pass(megabytes, name, prompt_len):
    model = megabytes[name]
    x = torch.randint(0, 256, (1, 48), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        full = model(x)
        decoder = model.decoder(x.clone(), compile=True)
        for t in range(prompt_len, 48):
            logits = decoder.prefill(t) if t == prompt_len else decoder.advance(t)
            assert torch.allclose(logits, full[:, t], atol=1e-5, rtol=0), f"step {t}"


def test_positions_are_tensors_so_steps_do_not_recompile(megabytes):
    model = megabytes["plain"]  # P = 4: two step kinds (a new patch, a byte within one)
    x = torch.randint(0, 256, (2, 48))
    with torch.inference_mode():
        decoder = model.decoder(x, compile=True)
        decoder.prefill(0)
        for t in range(1, 9):  # both kinds compiled (or found) here
            decoder.advance(t)
        graphs = counters["stats"]["unique_graphs"]
        for t in range(9, 48):
            decoder.advance(t)
    assert counters["stats"]["unique_graphs"] == graphs


def test_step_kinds():
    assert step_kind((4, 1), 0) == (2, 2) and step_kind((4, 1), 5) == (0, 1)
    assert [step_kind((8, 2, 1), t) for t in (8, 10, 11)] == [(2, 2, 2), (0, 1, 2), (0, 0, 1)]


def test_compiled_byte_transformer_equals_uncached(make_transformer):
    model = make_transformer(rotary=True, qk_norm=True)
    prompt = torch.randint(0, 256, (2, 3), generator=torch.Generator().manual_seed(5))
    compiled = generate(model, prompt, 45, compile=True)
    assert torch.equal(compiled, generate(model, prompt, 45, use_cache=False))


def test_unsupported_compiled_decoding_is_refused(make_megabyte):
    with pytest.raises(ValueError, match="use_cache"):
        make_megabyte().generate(
            torch.zeros(1, 0, dtype=torch.long), 4, use_cache=False, compile=True
        )


@pytest.mark.slow  # two more models compiled
def test_compiled_decoding_runs_the_weights_the_model_has_now():
    # On a CPU the graph holds the weights as constants: another model of the same shapes, and
    # the same model after its weights change, must each decode with their own weights.
    torch.manual_seed(1)
    first, second = (Megabyte(MegabyteConfig(patch_size=4, **TINY)).eval() for _ in range(2))
    prompt = torch.randint(0, 256, (1, 4), generator=torch.Generator().manual_seed(2))
    for model in (first, second):
        assert torch.equal(generate(model, prompt, 20, compile=True), generate(model, prompt, 20))
    first.load_state_dict(second.state_dict())  # in place, as a checkpoint load or training does
    assert torch.equal(generate(first, prompt, 20, compile=True), generate(second, prompt, 20))
    with torch.no_grad():
        first.head.weight.data.mul_(2.0)  # `.data` bypasses the version counter: still seen
    assert torch.equal(generate(first, prompt, 20, compile=True), generate(first, prompt, 20))
    assert not torch.equal(generate(first, prompt, 20), generate(second, prompt, 20))


@pytest.mark.parametrize("total", [1, 13, pytest.param(16, marks=SLOW)])
def test_a_short_buffer_gets_caches_of_its_own_length(megabytes, total):
    model = megabytes["plain"]  # P = 4, max_seq_len = 48: 12 patches
    with torch.inference_mode():
        decoder = model.decoder(torch.zeros(2, total, dtype=torch.long), compile=True)
    assert decoder.caches[0][0].keys.shape[2] == -(-total // 4)  # not 12
    assert decoder.global_out.shape[1] == -(-total // 4)
    prompt = torch.randint(0, 256, (2, 1), generator=torch.Generator().manual_seed(4))
    compiled = generate(model, prompt, total - 1, compile=True)
    assert torch.equal(compiled, generate(model, prompt, total - 1, use_cache=False))
    assert torch.equal(compiled, generate(model, prompt, total - 1))


class ReplayedGraphs(StepGraphs):
    """`StepGraphs` on a CPU: its warm-up, put-back and replay in the same order, with a
    "graph" that re-runs its step into the captured output."""

    def __init__(self, device, state, put_back=True):
        super().__init__(device, state if put_back else [])
        self.enabled = True

    def _warm_up(self, step):
        self.shape_of = step()

    def _capture(self, step):
        logits = torch.empty_like(self.shape_of)
        return (lambda: logits.copy_(step())), logits


@pytest.mark.parametrize("put_back", [True, False])
def test_graphed_steps_replay_what_eager_decoding_computes(make_megabyte, monkeypatch, put_back):
    # Token shift reads the state a step then overwrites: a step run twice at one position
    # goes wrong unless the graphs put the warm-up's writes back, which the failing case shows.
    model = make_megabyte(patch_sizes=(8, 2), token_shift=True, first_byte="previous_patch")
    monkeypatch.setattr(decoding, "compiled_step", lambda step, model: step)  # no compiling
    monkeypatch.setattr(
        decoding, "StepGraphs", lambda device, state: ReplayedGraphs(device, state, put_back)
    )
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(4))
    graphed = generate(model, prompt, 43, compile=True)
    assert torch.equal(graphed, generate(model, prompt, 43)) == put_back


def test_graphed_byte_transformer_steps_replay_eager_decoding(make_transformer, monkeypatch):
    model = make_transformer(rotary=True)
    monkeypatch.setattr(transformer, "compiled_step", lambda step, model: step)
    monkeypatch.setattr(transformer, "StepGraphs", ReplayedGraphs)
    prompt = torch.randint(0, 256, (2, 3), generator=torch.Generator().manual_seed(5))
    assert torch.equal(generate(model, prompt, 45, compile=True), generate(model, prompt, 45))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (gpu.sh)")
def test_cuda_graph_decoding_equals_eager_decoding(make_megabyte):
    model = make_megabyte(patch_sizes=(8, 2), token_shift=True, first_byte="previous_patch")
    model = model.cuda()
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(4)).cuda()
    with torch.inference_mode():
        decoder = model.decoder(torch.zeros(2, 48, dtype=torch.long, device="cuda"), True)
    assert decoder.graphs.enabled
    eager = model.generate(prompt, 43, temperature=0)
    graphed = model.generate(prompt, 43, temperature=0, compile=True)
    assert torch.equal(graphed, eager)
