"""Export a trained nanoGPT (net/model.py) to a TransformerLens 4 `TransformerBridge` with the same logits.

TransformerLens is an optional extra (`pip install -r requirements-interp.txt`, 4.3.0); it is imported only when
an export runs. TransformerLens 4 removed `HookedTransformer`; a model trained from scratch enters it as a
TL-native model (`TransformerBridge.boot_native`), built from its config with no download and no hub access. Every
weight is then loaded explicitly under the bridge's own parameter names, as it is: no LayerNorm folding and no
centering, so the bridge computes the same logits, not logits up to a shift. Biases the project model lacks
(bias=False) become zeros, and so does the unembedding bias; the unembedding is a copy of the tied token embedding.

The bridge's hook names and the project's (net/model.py) mostly agree; README.md ("TransformerLens") lists where
they differ, and tests/test_tl_export.py checks every shared name. A bridge takes token ids; it has no tokenizer,
and nothing is prepended to the ids it is given.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.errors import PipelineError
from net.checkpoint import load_checkpoint, load_model
from net.model import GPT, LSTM

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge

INSTALL_HINT = "pip install -r requirements-interp.txt"


class ExportError(PipelineError):
    """A model or environment the TransformerLens export cannot handle; reported as one line."""


def bridge_state_dict(model: GPT | LSTM) -> dict[str, torch.Tensor]:
    """The project model's weights under the bridge's state_dict names (detached contiguous copies).

    The native model keeps nn.Linear layouts (out, in), as net/model.py does, so no weight is transposed: c_attn's
    rows [W_q; W_k; W_v] (3C, C) split into q, k and v, head h owning rows h*hs:(h+1)*hs of each, as in both models.
    """
    if not isinstance(model, GPT):
        raise ExportError(f"only a nanogpt model exports to TransformerLens; this one is net.kind={model.kind}")
    C = model.config.n_embd

    def bias(module: torch.nn.Module, size: int) -> torch.Tensor:
        return torch.zeros(size, device=module.weight.device) if module.bias is None else module.bias

    def linear(prefix: str, module: torch.nn.Module, size: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": module.weight, f"{prefix}.bias": bias(module, size)}

    wte = model.wte.weight  # (V, C), also the head's weight (tied)
    sd = {"embed.weight": wte, "pos_embed.weight": model.wpe.weight,  # (context_size, C)
          "unembed.weight": wte, "unembed.bias": torch.zeros(wte.size(0), device=wte.device)}
    sd |= linear("ln_final", model.ln_final, C)
    for layer, block in enumerate(model.blocks):
        p = f"blocks.{layer}"
        sd |= linear(f"{p}.ln1", block.ln_1, C)
        w_qkv, b_qkv = block.attn.c_attn.weight.split(C), bias(block.attn.c_attn, 3 * C).split(C)  # 3 x (C, C), (C,)
        for name, w, b in zip("qkv", w_qkv, b_qkv, strict=True):
            sd |= {f"{p}.attn.{name}.weight": w, f"{p}.attn.{name}.bias": b}
        sd |= linear(f"{p}.attn.o", block.attn.c_proj, C)
        if model.config.mlp:
            sd |= linear(f"{p}.ln2", block.ln_2, C)
            sd |= linear(f"{p}.mlp.in", block.mlp.c_fc, 4 * C)  # (4C, C)
            sd |= linear(f"{p}.mlp.out", block.mlp.c_proj, C)  # (C, 4C)
    return {name: t.detach().clone(memory_format=torch.contiguous_format) for name, t in sd.items()}


def to_bridge(model: GPT | LSTM, device: str | torch.device = "cpu") -> "TransformerBridge":
    """A TransformerBridge, in eval mode on `device`, that computes the same logits as `model`."""
    state = bridge_state_dict(model)
    try:
        import transformer_lens as tl  # on first use: it is heavy and optional
    except ImportError:
        raise ExportError(f"exporting to TransformerLens needs the transformer_lens package: {INSTALL_HINT}") from None
    c = model.config
    config = tl.TransformerBridgeConfig(
        model_name="compositional-nanogpt", d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        n_layers=c.n_layer, n_ctx=c.context_size, d_vocab=c.vocab_size, d_mlp=4 * c.n_embd,
        act_fn="gelu",  # the native model's "gelu" is F.gelu, the exact erf form, as in net/model.py
        attn_only=not c.mlp, normalization_type="LN", eps=1e-5, positional_embedding_type="standard",
        init_weights=False,  # every weight is loaded below
        dtype=torch.float32)
    bridge = tl.TransformerBridge.boot_native(config, device=device)
    differ = sorted(set(state) ^ set(bridge.state_dict()))
    if differ:  # a TransformerLens version with other parameters: refuse, never half-load
        raise ExportError(f"this TransformerLens and the export disagree on parameters {differ}; "
                          f"{INSTALL_HINT} pins the tested version")
    bridge.load_state_dict(state, strict=True)
    return bridge.eval()


def load_bridge(ckpt_path: str | Path, device: str | torch.device = "cpu") -> "TransformerBridge":
    """Open a project checkpoint (weights only, no pickle) and return it as a TransformerBridge in eval mode."""
    return to_bridge(load_model(load_checkpoint(ckpt_path)), device)
