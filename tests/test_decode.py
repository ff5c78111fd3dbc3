"""Greedy decoding: the cached decoder writes exactly the tokens of naive full recompute."""

import numpy as np
import pytest
import torch
from torch import nn

from net.decode import generate_and_teacher_force, greedy_decode, naive_greedy_decode, teacher_forced_argmax
from net.model import build_model
from synthetic.compositions import inorder_compositions
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec
from tests.task_models import NoisyOracle, Oracle

V = 33


pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = {
    "nanogpt": {"kind": "nanogpt", "vocab_size": V + 3, "context_size": 48, "n_layer": 2, "n_head": 2, "n_embd": 32},
    "nanogpt-attn-only": {"kind": "nanogpt", "vocab_size": V, "context_size": 48, "n_layer": 1, "n_head": 4,
                          "n_embd": 32, "mlp": False},
    "lstm": {"kind": "lstm", "vocab_size": V, "context_size": 48, "n_layer": 2, "n_embd": 32},
}


def random_model(args: dict, seed: int = 0) -> nn.Module:
    """Random weights large enough that no two logits nearly tie (so argmax is not decided by rounding)."""
    torch.manual_seed(seed)
    model = build_model(args).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("prompt_len", "total_len"), [(1, 2), (5, 17), (14, 48), (20, 48)])
def test_cached_decoding_equals_naive(name, prompt_len, total_len):
    model = random_model(MODELS[name], seed=prompt_len)
    prompts = torch.randint(0, V, (16, prompt_len), generator=torch.Generator().manual_seed(total_len))
    cached = greedy_decode(model, prompts, total_len)
    naive = naive_greedy_decode(model, prompts, total_len)
    assert cached.shape == naive.shape == (16, total_len)
    assert torch.equal(cached[:, :prompt_len], prompts)
    assert torch.equal(cached, naive)
    if total_len - prompt_len > 10:
        assert len(torch.unique(cached[:, prompt_len:])) > 2  # the weights really steer the output


@pytest.fixture(scope="module")
def task():
    spec = TaskSpec(n_alphabets=10, seq_len=6, depth=5, n_functions=3)
    functions = sample_functions(np.random.default_rng(0), spec, frozenset(), repeat=False)
    comps = inorder_compositions(spec.depth, spec.n_functions)[::8]  # (128, L, 2)
    x = sample_inputs(np.random.default_rng(1), len(comps), spec)
    return spec, functions, torch.from_numpy(make_documents(spec, functions, comps, x))


def test_teacher_forced_argmax_predicts_the_next_column(task):
    spec, functions, docs = task
    tf = teacher_forced_argmax(Oracle(spec, functions), docs)
    assert tf.shape == (len(docs), spec.doc_len - 1)
    assert torch.equal(tf[:, spec.prompt_len - 1 :], docs[:, spec.prompt_len :])


def prefix_argmax(model: nn.Module, docs: torch.Tensor) -> torch.Tensor:
    """The teacher-forced argmax the slow way: column t from the model run on docs[:, :t+1] alone."""
    with torch.no_grad():
        return torch.stack([model(docs[:, : t + 1])[:, -1].argmax(-1) for t in range(docs.size(1) - 1)], dim=1)


@pytest.mark.parametrize("one_in", [1_000_000, 40, 3])
def test_generation_after_teacher_forcing_equals_decoding_every_row(task, one_in):
    """Rows right under teacher forcing are not decoded; the result must not change (mixes of both kinds)."""
    spec, functions, docs = task
    model = NoisyOracle(spec, functions, one_in)
    generated, tf = generate_and_teacher_force(model, docs, spec.prompt_len)
    assert torch.equal(generated, greedy_decode(model, docs[:, : spec.prompt_len], spec.doc_len))
    assert torch.equal(tf, model.next_tokens(docs[:, :-1]))  # the stand-in's own rule, column t -> token t+1
    exact = (generated == docs).all(dim=1).float().mean().item()
    assert (exact == 1.0) if one_in == 1_000_000 else (exact < 1.0)


def test_generation_after_teacher_forcing_with_a_real_model(task):
    spec, _, docs = task
    model = random_model(MODELS["nanogpt"])
    generated, tf = generate_and_teacher_force(model, docs, spec.prompt_len)
    assert torch.equal(generated, naive_greedy_decode(model, docs[:, : spec.prompt_len], spec.doc_len))
    assert torch.equal(tf, prefix_argmax(model, docs))
