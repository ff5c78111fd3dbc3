"""net/model.py: shapes, causality, sizes, tied weights, the mlp switch, incremental decoding and hook points."""

import re

import pytest
import torch

from core.errors import ConfigError
from net.model import GPT, LSTM, build_model

V, CTX, C = 13, 16, 16
GPT_ARGS = {"kind": "nanogpt", "vocab_size": V, "context_size": CTX, "n_layer": 2, "n_head": 2, "n_embd": C}
LSTM_ARGS = {"kind": "lstm", "vocab_size": V, "context_size": CTX, "n_layer": 2, "n_embd": C}


def make(args: dict, **overrides) -> GPT | LSTM:
    torch.manual_seed(0)
    return build_model({**args, **overrides}).eval()


def tokens(batch: int = 3, length: int = 11, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


# Every field of each model's config, as model_args must list it (the defaults filled in).
FULL_ARGS = {
    "nanogpt": {**GPT_ARGS, "dropout": 0.0, "bias": False, "mlp": True},
    "lstm": {**LSTM_ARGS, "dropout": 0.0},
}


@pytest.mark.parametrize("args", [{**GPT_ARGS, "n_head": 4, "bias": True}, LSTM_ARGS], ids=["nanogpt", "lstm"])
def test_shapes_dtype_and_model_args(args):
    model = make(args)
    logits = model(tokens())
    assert logits.shape == (3, 11, V) and logits.dtype == torch.float32
    assert model.model_args == {**FULL_ARGS[args["kind"]], **args}  # every field, the given values kept
    # the dict alone rebuilds the same model: the weights load strictly and give the same logits
    rebuilt = build_model(model.model_args).eval()
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(tokens()), logits, rtol=0, atol=0)


@pytest.mark.parametrize("args", [GPT_ARGS, LSTM_ARGS], ids=["nanogpt", "lstm"])
def test_causal(args):
    model = make(args)
    idx = tokens(length=CTX)
    base = model(idx)
    for t in (0, 5, CTX - 1):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        out = model(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=0)
        assert not torch.allclose(out[:, t], base[:, t])


def test_parameter_counts():
    gpt = make(GPT_ARGS)
    per_block = 12 * C * C + 2 * C  # qkv 3C², proj C², MLP 8C², two LayerNorm weights (no bias)
    assert gpt.num_params() == V * C + CTX * C + 2 * per_block + C  # token + position embeddings, final LN
    biased = make(GPT_ARGS, bias=True)
    assert biased.num_params() == gpt.num_params() + 2 * (3 * C + C + 4 * C + C + 2 * C) + C
    lstm = make(LSTM_ARGS)
    assert lstm.num_params() == V * C + 2 * (2 * 4 * C * C + 2 * 4 * C) + C * V + V
    default = build_model({"kind": "nanogpt", "vocab_size": 33})
    assert default.num_params() == 33 * 120 + 50 * 120 + 2 * (12 * 120 * 120 + 2 * 120) + 120  # 356,160


def test_tied_weights_survive_training_and_reload():
    model = make(GPT_ARGS).train()
    assert model.lm_head.weight is model.wte.weight
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(tokens()).logsumexp(-1).mean().backward()
    opt.step()
    rebuilt = build_model(model.model_args)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.lm_head.weight is rebuilt.wte.weight
    assert torch.equal(rebuilt.wte.weight, model.wte.weight)


def test_init_scales():
    torch.manual_seed(0)
    model = build_model({"kind": "nanogpt", "vocab_size": 33})  # 2 layers: c_proj std 0.02 / sqrt(4) = 0.01
    assert abs(model.blocks[0].attn.c_attn.weight.std().item() - 0.02) < 2e-3
    assert abs(model.blocks[0].mlp.c_proj.weight.std().item() - 0.01) < 1e-3
    lstm = make(LSTM_ARGS)
    for layer in range(LSTM_ARGS["n_layer"]):
        w = getattr(lstm.lstm, f"weight_hh_l{layer}").detach()
        for gate in range(4):  # each recurrent gate matrix is orthogonal
            block = w[gate * C : (gate + 1) * C]
            torch.testing.assert_close(block @ block.T, torch.eye(C), atol=1e-5, rtol=0)
        # gates stacked (input, forget, cell, output): the forget gate's bias is 1 (remember by default), the
        # rest 0; PyTorch adds bias_ih and bias_hh, so their sum is what the gate sees
        bias = (getattr(lstm.lstm, f"bias_ih_l{layer}") + getattr(lstm.lstm, f"bias_hh_l{layer}")).detach()
        expected = torch.cat([torch.zeros(C), torch.ones(C), torch.zeros(2 * C)])
        torch.testing.assert_close(bias, expected, rtol=0, atol=0)


def test_mlp_switch():
    full, attn_only = make(GPT_ARGS), make(GPT_ARGS, mlp=False)
    assert attn_only.num_params() == full.num_params() - 2 * (8 * C * C + C)
    assert not any("mlp" in name or "ln_2" in name for name, _ in attn_only.named_parameters())
    assert "blocks.0.hook_mlp_out" in full.hook_points and "blocks.0.hook_mlp_out" not in attn_only.hook_points
    assert attn_only(tokens()).shape == (3, 11, V)


def check_incremental(model, idx: torch.Tensor, prompt_len: int) -> None:
    full = model(idx)
    logits, state = model.prefill(idx[:, :prompt_len])
    torch.testing.assert_close(logits, full[:, prompt_len - 1], rtol=1e-5, atol=1e-5)
    for t in range(prompt_len, idx.size(1)):
        logits, state = model.step(idx[:, t], state)
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args", [GPT_ARGS, LSTM_ARGS, {**GPT_ARGS, "mlp": False}], ids=["nanogpt", "lstm", "attn"])
def test_prefill_then_step_equals_full_forward(args):
    model = make(args)
    with torch.no_grad():
        check_incremental(model, tokens(length=CTX), prompt_len=5)
        check_incremental(model, tokens(length=CTX), prompt_len=1)


def test_prefill_and_step_honor_hooks():
    model = make(GPT_ARGS)
    idx = tokens(length=9)
    patterns = []
    with torch.no_grad(), model.hooks({"blocks.1.attn.hook_pattern": patterns.append}):
        check_incremental(model, idx, prompt_len=4)  # the manual-attention path decodes identically too
    shapes = [(3, 2, 9, 9), (3, 2, 4, 4)] + [(3, 2, 1, t) for t in range(5, 10)]  # forward, prefill, 5 steps
    assert [tuple(p.shape) for p in patterns] == shapes
    zero = {"blocks.0.hook_attn_out": torch.zeros_like}
    with torch.no_grad():
        plain, _ = model.prefill(idx)
        with model.hooks(zero):
            patched, _ = model.prefill(idx)
    assert not torch.allclose(plain, patched)


def test_step_beyond_context_is_refused():
    model = make(GPT_ARGS)
    _, state = model.prefill(tokens(length=CTX))
    with pytest.raises(ValueError, match="exceed net.context_size=16"):
        model.step(tokens(length=1)[:, 0], state)


def test_run_with_cache_and_patching():
    model = make(GPT_ARGS)
    idx = tokens()
    with torch.no_grad():
        plain = model(idx)
        logits, cache = model.run_with_cache(idx)
    torch.testing.assert_close(logits, plain, rtol=1e-5, atol=1e-6)  # manual attention == SDPA path
    expected = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"} | {
        f"blocks.{l}.{name}" for l in range(2) for name in
        ("hook_resid_pre", "ln_1.hook_normalized", "attn.hook_pattern", "attn.hook_z", "hook_attn_out",
         "hook_resid_mid", "ln_2.hook_normalized", "hook_mlp_out", "hook_resid_post")
    }
    assert set(cache) == expected
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 2, 11, 11)
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"].sum(-1), torch.ones(3, 2, 11))
    assert cache["blocks.0.hook_resid_post"].shape == (3, 11, C)
    torch.testing.assert_close(model.unembed(cache["blocks.1.hook_resid_post"]), plain, rtol=1e-5, atol=1e-6)
    _, some = model.run_with_cache(idx, names=["blocks.0.hook_resid_post"])
    assert list(some) == ["blocks.0.hook_resid_post"]

    def uniform(pattern):  # patch: attend uniformly over the allowed positions
        return torch.tril(torch.ones_like(pattern)) / torch.arange(1, pattern.size(-1) + 1).view(-1, 1)

    with torch.no_grad(), model.hooks({"blocks.0.attn.hook_pattern": uniform}):
        patched = model(idx)
    assert not torch.allclose(patched, plain)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), plain, rtol=0, atol=0)  # hooks are gone after the block
    assert all(not hp.fns for hp in model.hook_points.values())
    with pytest.raises(KeyError, match="unknown hook point"), model.hooks({"blocks.9.hook_resid_post": print}):
        pass


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kind": "transformer", "vocab_size": 5}, "net.kind=transformer is not one of nanogpt, lstm"),
        ({**GPT_ARGS, "n_head": 3}, "net.n_head=3 must divide net.n_embd=16"),
        ({**LSTM_ARGS, "n_head": 1}, "net keys ['n_head'] are not options of net.kind=lstm"),
        ({**GPT_ARGS, "n_layer": 0}, "net.n_layer=0 must be a positive integer"),
        ({**GPT_ARGS, "dropout": 1.5}, "net.dropout=1.5 must be in [0, 1)"),
    ],
)
def test_bad_model_args(args, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_model(args)
