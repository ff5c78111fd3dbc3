"""analysis/tl_export.py: a trained nanoGPT exported to TransformerLens gives the same logits and activations.

The parity tests need the optional transformer_lens package: they skip without it, except under CI (CI=true),
where its absence fails them, so that CI really runs the export.
"""

import importlib
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analysis.tl_export import INSTALL_HINT, ExportError, load_hooked_transformer, to_hooked_transformer
from net.checkpoint import FORMAT_VERSION, save_checkpoint
from net.model import GPT, build_model
from synthetic.documents import sample_documents
from synthetic.functions import sample_functions
from synthetic.task import TaskSpec

SPEC = TaskSpec(n_alphabets=6, seq_len=3, depth=2, n_functions=2)  # documents of 16 tokens, vocabulary 15
FUNCTIONS = sample_functions(np.random.default_rng(0), SPEC, frozenset({1}), False)
COMPS = np.array([[[0, a], [1, b]] for a in range(3) for b in range(3)])  # (9, L, 2): every composition
CONFIGS = {
    "default_like": {"n_head": 1, "bias": False, "mlp": True},
    "multihead_bias": {"n_head": 4, "bias": True, "mlp": True},
    "attn_only": {"n_head": 2, "bias": False, "mlp": False},
}


def documents(n: int, seed: int) -> torch.Tensor:
    docs = sample_documents(np.random.default_rng(seed), SPEC, FUNCTIONS, COMPS, n, with_replacement=True)
    return torch.from_numpy(docs.astype(np.int64))  # (n, doc_len)


def trained_model(n_head: int, bias: bool, mlp: bool, steps: int = 40) -> GPT:
    """A tiny nanoGPT after `steps` AdamW steps, every parameter well away from its initial value."""
    torch.manual_seed(0)
    model = build_model({"kind": "nanogpt", "vocab_size": SPEC.vocab_size, "context_size": SPEC.doc_len,
                         "n_layer": 2, "n_head": n_head, "n_embd": 16, "bias": bias, "mlp": mlp})
    init = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    docs = documents(512, seed=1)
    losses = []
    for step in range(steps):
        batch = docs[step % 8 * 64 : (step % 8 + 1) * 64]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, SPEC.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses  # it learned something
    moved = {name: (p.detach() - init[name]).abs().max().item() for name, p in model.named_parameters()}
    assert min(moved.values()) > 0.05, moved  # no weight (bias, LayerNorm) is left at its init, so each is tested
    return model.eval()


@pytest.fixture(scope="module")
def transformer_lens():
    """The module; skip without it, except under CI, where a missing package must fail the test."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        return importlib.import_module("transformer_lens")
    return pytest.importorskip("transformer_lens")


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, transformer_lens, one_torch_thread):
    model = trained_model(**CONFIGS[request.param])
    return model, to_hooked_transformer(model)


def test_logits_match(exported):
    model, hooked = exported
    assert isinstance(hooked, importlib.import_module("transformer_lens").HookedTransformer)
    assert not hooked.training
    idx = documents(64, seed=2)  # held-out documents, the full context (every position embedding)
    with torch.no_grad():
        ours, theirs = model(idx), hooked(idx)
    assert theirs.shape == ours.shape == (64, SPEC.doc_len, SPEC.vocab_size)
    assert (theirs - ours).abs().max().item() <= 1e-4


def test_cached_activations_match_by_name(exported):
    model, hooked = exported
    idx = documents(16, seed=3)
    _, ours = model.run_with_cache(idx)
    _, theirs = hooked.run_with_cache(idx)
    n_layer = model.config.n_layer
    shared = sorted(set(ours) & set(theirs.keys()) - {"ln_final.hook_normalized"})  # after / before w, b
    per_layer = ["hook_resid_pre", "hook_attn_out", "hook_resid_post", "attn.hook_pattern"]
    per_layer += ["hook_resid_mid", "hook_mlp_out"] if model.config.mlp else []
    required = {"hook_embed", "hook_pos_embed"} | {f"blocks.{l}.{name}" for l in range(n_layer) for name in per_layer}
    assert required <= set(shared)
    for name in shared:
        mine = ours[name].expand_as(theirs[name])  # hook_pos_embed: (T, C) here, (B, T, C) there
        torch.testing.assert_close(theirs[name], mine, rtol=0, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
    ln = hooked.ln_final
    torch.testing.assert_close(theirs["ln_final.hook_normalized"] * ln.w + ln.b, ours["ln_final.hook_normalized"],
                               rtol=0, atol=1e-4)


def test_load_hooked_transformer_from_checkpoint(tmp_path, transformer_lens, one_torch_thread):
    model = trained_model(**CONFIGS["multihead_bias"], steps=20)
    path = tmp_path / "ckpt_20.pt"
    save_checkpoint({"format_version": FORMAT_VERSION, "step": 20, "model_args": model.model_args,
                     "model": model.state_dict(), "optimizer": {}, "data": {}, "train_config": {}, "rng": {}}, path)
    hooked = load_hooked_transformer(path)
    assert not hooked.training and hooked.cfg.attn_only is False and hooked.cfg.n_heads == 4
    idx = documents(8, seed=4)
    with torch.no_grad():
        assert (hooked(idx) - model(idx)).abs().max().item() <= 1e-4


def test_lstm_is_refused_in_one_line(tmp_path):
    lstm = build_model({"kind": "lstm", "vocab_size": SPEC.vocab_size, "n_embd": 8})
    with pytest.raises(ExportError, match="^only a nanogpt model exports to TransformerLens; this one is "
                                          "net.kind=lstm$"):
        to_hooked_transformer(lstm)
    path = tmp_path / "ckpt_0.pt"
    save_checkpoint({"format_version": FORMAT_VERSION, "step": 0, "model_args": lstm.model_args,
                     "model": lstm.state_dict(), "optimizer": {}, "data": {}, "train_config": {}, "rng": {}}, path)
    with pytest.raises(ExportError, match="net.kind=lstm"):
        load_hooked_transformer(path)


def test_missing_transformer_lens_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # makes `import transformer_lens` fail
    model = build_model({"kind": "nanogpt", "vocab_size": SPEC.vocab_size, "context_size": 8, "n_embd": 8})
    with pytest.raises(ExportError) as err:
        to_hooked_transformer(model)
    message = str(err.value)
    assert "\n" not in message and message.endswith(INSTALL_HINT)
    assert INSTALL_HINT == "pip install -r requirements-interp.txt"
