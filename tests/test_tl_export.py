"""analysis/tl_export.py: a nanoGPT trained by the real trainer, exported to a TransformerLens 4 TransformerBridge,
gives the same logits, the same activations by hook name, and the same results of the same edit at a hook.

The parity tests need the optional transformer_lens package: they skip without it, except under CI (CI=true),
where its absence fails them, so that CI really runs the export.
"""

import importlib
import os
import socket
import sys
from contextlib import contextmanager

import pytest
import torch

from analysis.tl_export import INSTALL_HINT, ExportError, load_bridge, to_bridge
from net.checkpoint import FORMAT_VERSION, list_checkpoints, load_checkpoint, load_model, save_checkpoint
from net.model import build_model
from pipeline import generate, train
from synthetic.dataset import load_dataset
from tests.conftest import TINY_DATA, stage_config

TASK = ["n_alphabets=6", "seq_len=3", "function.depth=2", "function.n_functions=2", "function.split.n_compositions=6"]
DOC_LEN = 15  # tokens per document of TASK (checked in `dataset`)
CONFIGS = {
    "default_like": ["net.n_head=1", "net.bias=false", "net.mlp=true"],
    "multihead_bias": ["net.n_head=4", "net.bias=true", "net.mlp=true"],
    "attn_only": ["net.n_head=2", "net.bias=false", "net.mlp=false"],
}
# 40 AdamW steps at a high constant rate, so that every weight (biases and LayerNorms too) leaves its init
TRAIN = ["device=cpu", "net.n_layer=2", "net.n_embd=16", f"net.context_size={DOC_LEN - 1}", "data.batch_size=50",
         "epochs=5", "optimizer.learning_rate=1e-2", "optimizer.decay_lr=false", "log.eval_interval=1000",
         "log.eval_documents=50"]


@contextmanager
def no_network():
    """Any attempt to open a connection (a download, a hub query) raises instead."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        yield


@pytest.fixture(scope="module")
def transformer_lens():
    """The module; skip without it, except under CI, where a missing package must fail the test."""
    with no_network():
        if os.environ.get("CI", "").lower() in ("true", "1"):
            return importlib.import_module("transformer_lens")
        return pytest.importorskip("transformer_lens")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("tl") / "data"
    generate.run(stage_config("gen", [*TINY_DATA, *TASK, f"out_dir={out}"]))
    assert load_dataset(out).spec.doc_len == DOC_LEN
    return out


def held_out(dataset, n: int) -> torch.Tensor:
    """(n, DOC_LEN - 1) token ids of the evaluation corpus: the full context, every position embedding."""
    return torch.from_numpy(load_dataset(dataset).eval_all[:n, :-1].astype("int64"))


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, transformer_lens, dataset, one_torch_thread):
    """(project model, its bridge) of a run of the real trainer, both read from its last checkpoint."""
    out = dataset.parent / request.param
    train.run(stage_config("train", [f"data.path={dataset}", f"out_dir={out}", *TRAIN, *CONFIGS[request.param]]))
    (_, first), (step, last) = list_checkpoints(out)[0], list_checkpoints(out)[-1]
    assert step == 40
    model = load_model(load_checkpoint(last))
    init = load_checkpoint(first)["model"]
    moved = {name: (p.detach() - init[name]).abs().max().item() for name, p in model.named_parameters()}
    assert min(moved.values()) > 0.05, moved  # no weight is left at its init, so each is tested
    with no_network():
        bridge = load_bridge(last)
    return model, bridge


def test_logits_match(exported, dataset, transformer_lens):
    model, bridge = exported
    assert isinstance(bridge, transformer_lens.TransformerBridge)
    assert not bridge.training and not bridge.original_model.training
    assert bridge.cfg.n_heads == model.config.n_head and bridge.cfg.attn_only is not model.config.mlp
    idx = held_out(dataset, 64)
    with torch.no_grad():
        ours, theirs = model(idx), bridge(idx)
    assert theirs.shape == ours.shape == (64, DOC_LEN - 1, model.config.vocab_size)  # nothing prepended
    assert (theirs - ours).abs().max().item() <= 1e-4


def renamed(name: str) -> str:
    """The project's LayerNorm output hooks under the bridge's name (net/model.py's ln_1 is the bridge's ln1)."""
    return name.replace("ln_1.", "ln1.").replace("ln_2.", "ln2.").replace("hook_normalized", "hook_out")


def assert_close(theirs: torch.Tensor, ours: torch.Tensor, name: str) -> None:
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4, msg=lambda message: f"{name}: {message}")


def test_cached_activations_match_by_name(exported, dataset):
    model, bridge = exported
    idx = held_out(dataset, 16)
    _, ours = model.run_with_cache(idx)
    _, theirs = bridge.run_with_cache(idx)
    theirs = dict(theirs.items())
    # names the bridge lacks (README.md): ln_1 and ln_2 (its ln1, ln2), and hook_resid_mid without an MLP
    block_ln = {name for name in ours if ".ln_" in name}
    missing = {f"blocks.{l}.hook_resid_mid" for l in range(model.config.n_layer)} if not model.config.mlp else set()
    assert set(ours) - set(theirs) == block_ln | missing
    for name in sorted(set(ours) - missing):  # LayerNorm outputs: after the weight and bias here, the bridge's hook_out
        mine = ours[name].expand_as(theirs[renamed(name)])  # hook_pos_embed: (T, C) here, (B, T, C) there
        assert_close(theirs[renamed(name)], mine, name)
    ln = bridge.ln_final  # the bridge's hook_normalized: before the weight and bias
    assert_close(theirs["ln_final.hook_normalized"] * ln.weight + ln.bias, ours["ln_final.hook_normalized"], "ln_final")


def edited_logits(model, bridge, name: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both models' logits with the same edit at hook `name`: the last axis reversed (not a rescaling, which a
    LayerNorm downstream would undo)."""
    with torch.no_grad(), model.hooks({name: lambda t: t.flip(-1)}):
        ours = model(idx)
    with torch.no_grad():
        theirs = bridge.run_with_hooks(idx, fwd_hooks=[(renamed(name), lambda t, hook: t.flip(-1))])
    return ours, theirs


def test_the_same_edit_at_a_hook_has_the_same_effect(exported, dataset):
    model, bridge = exported
    idx = held_out(dataset, 8)
    with torch.no_grad():
        plain = model(idx)
    for name in sorted(name for name in model.hook_points if "hook_resid_mid" not in name):
        ours, theirs = edited_logits(model, bridge, name, idx)
        assert (ours - plain).abs().max().item() > 0.01, name  # the edit matters
        assert (theirs - ours).abs().max().item() <= 1e-4, name
    if model.config.mlp:  # the bridge's hook_resid_mid is the MLP's input only (README.md): an edit there does not
        ours, theirs = edited_logits(model, bridge, "blocks.0.hook_resid_mid", idx)  # reach the residual stream
        assert (theirs - ours).abs().max().item() > 0.01


def test_lstm_is_refused_in_one_line(tmp_path):
    # a hand-built checkpoint is enough: the refusal reads model_args["kind"] before any weight
    lstm = build_model({"kind": "lstm", "vocab_size": 15, "n_embd": 8})
    with pytest.raises(ExportError, match="^only a nanogpt model exports to TransformerLens; this one is "
                                          "net.kind=lstm$"):
        to_bridge(lstm)
    path = tmp_path / "ckpt_0.pt"
    save_checkpoint({"format_version": FORMAT_VERSION, "step": 0, "model_args": lstm.model_args,
                     "model": lstm.state_dict(), "optimizer": {}, "data": {}, "train_config": {}, "rng": {}}, path)
    with pytest.raises(ExportError, match="net.kind=lstm"):
        load_bridge(path)


def test_missing_transformer_lens_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # makes `import transformer_lens` fail
    model = build_model({"kind": "nanogpt", "vocab_size": 15, "context_size": 8, "n_embd": 8})
    with pytest.raises(ExportError) as err:
        to_bridge(model)
    message = str(err.value)
    assert "\n" not in message and message.endswith(INSTALL_HINT)
    assert INSTALL_HINT == "pip install -r requirements-interp.txt"
