"""Export a trained nanoGPT (net/model.py) to a TransformerLens `HookedTransformer` with the same logits.

TransformerLens is an optional extra (`pip install -r requirements-interp.txt`); it is imported only when an
export runs. Every weight is mapped explicitly and loaded as it is: no LayerNorm folding and no centering, so
the exported model computes the same logits, not logits up to a shift. Biases the project model lacks
(bias=False) become zeros, and so does the unembedding bias; the unembedding is the tied token embedding,
transposed (a copy: TransformerLens keeps W_U as its own parameter).

Hook names shared with the project's GPT carry the same activations (hook_embed, blocks.{l}.hook_resid_pre,
hook_attn_out, hook_resid_post, blocks.{l}.attn.hook_pattern and, with an MLP, hook_resid_mid and hook_mlp_out),
with two exceptions: TransformerLens's `hook_pos_embed` is broadcast over the batch (B, T, C) where the project's
is (T, C), and its `*.hook_normalized` is taken before the LayerNorm's weight and bias, the project's after.
The project's `ln_1` / `ln_2` are TransformerLens's `ln1` / `ln2`. A TransformerLens model takes token ids;
it has no tokenizer, and nothing is prepended to the ids it is given.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from net.checkpoint import load_checkpoint, load_model
from net.model import GPT, LSTM, GPTConfig
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

INSTALL_HINT = "pip install -r requirements-interp.txt"


class ExportError(PipelineError):
    """A model or environment the TransformerLens export cannot handle; reported as one line."""


def _transformer_lens():
    """The transformer_lens module, imported on first use (it is heavy and optional)."""
    try:
        import transformer_lens
    except ImportError:
        raise ExportError(f"exporting to TransformerLens needs the transformer_lens package: {INSTALL_HINT}") from None
    return transformer_lens


def _gpt_config(model_args: dict) -> GPTConfig:
    args = dict(model_args)
    kind = args.pop("kind", None)
    if kind != GPT.kind:
        raise ExportError(f"only a nanogpt model exports to TransformerLens; this one is net.kind={kind}")
    return GPTConfig(**args)


def hooked_transformer_config(model_args: dict, device: str | torch.device = "cpu") -> "HookedTransformerConfig":
    """The HookedTransformerConfig of the nanoGPT described by `model_args` (a checkpoint's plain dict)."""
    config = _gpt_config(model_args)
    tl = _transformer_lens()
    return tl.HookedTransformerConfig(
        model_name="compositional-nanogpt",
        d_model=config.n_embd,
        d_head=config.n_embd // config.n_head,
        n_heads=config.n_head,
        n_layers=config.n_layer,
        n_ctx=config.context_size,
        d_vocab=config.vocab_size,
        d_mlp=4 * config.n_embd if config.mlp else None,
        act_fn="gelu" if config.mlp else None,  # TransformerLens's "gelu" is F.gelu, the exact erf form
        attn_only=not config.mlp,
        normalization_type="LN",
        eps=1e-5,
        positional_embedding_type="standard",
        default_prepend_bos=False,  # documents begin with the task's own start token, not a BOS
        init_weights=False,  # to_hooked_transformer overwrites every parameter
        dtype=torch.float32,
        device=str(device),
    )


def tl_state_dict(model: GPT | LSTM) -> dict[str, torch.Tensor]:
    """The project model's weights under TransformerLens's names and layouts (detached contiguous copies)."""
    if not isinstance(model, GPT):
        _gpt_config(model.model_args)  # raises the one-line refusal
    C, nh = model.config.n_embd, model.config.n_head
    hs = C // nh

    def copy(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone(memory_format=torch.contiguous_format)

    def bias(linear: torch.nn.Module, size: int) -> torch.Tensor:
        return torch.zeros(size, device=linear.weight.device) if linear.bias is None else linear.bias.detach()

    def layer_norm(prefix: str, ln: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {f"{prefix}.w": ln.weight, f"{prefix}.b": bias(ln, C)}

    wte = model.wte.weight  # (V, C), also the head's weight (tied)
    sd = {"embed.W_E": wte, "pos_embed.W_pos": model.wpe.weight, "unembed.W_U": wte.T,
          "unembed.b_U": torch.zeros(wte.size(0), device=wte.device)}
    sd |= layer_norm("ln_final", model.ln_final)
    for layer, block in enumerate(model.blocks):
        p = f"blocks.{layer}"
        sd |= layer_norm(f"{p}.ln1", block.ln_1)
        # c_attn computes x @ W.T, W (3C, C) = [W_q; W_k; W_v]; head h owns output rows h*hs:(h+1)*hs of each.
        w_qkv, b_qkv = block.attn.c_attn.weight.split(C), bias(block.attn.c_attn, 3 * C).split(C)
        for name, w, b in zip("QKV", w_qkv, b_qkv, strict=True):
            sd[f"{p}.attn.W_{name}"] = w.view(nh, hs, C).transpose(1, 2)  # (nh, C, hs)
            sd[f"{p}.attn.b_{name}"] = b.view(nh, hs)
        sd[f"{p}.attn.W_O"] = block.attn.c_proj.weight.T.reshape(nh, hs, C)  # rows of W.T are head-major
        sd[f"{p}.attn.b_O"] = bias(block.attn.c_proj, C)
        if model.config.mlp:
            sd |= layer_norm(f"{p}.ln2", block.ln_2)
            sd[f"{p}.mlp.W_in"] = block.mlp.c_fc.weight.T  # (C, 4C)
            sd[f"{p}.mlp.b_in"] = bias(block.mlp.c_fc, 4 * C)
            sd[f"{p}.mlp.W_out"] = block.mlp.c_proj.weight.T  # (4C, C)
            sd[f"{p}.mlp.b_out"] = bias(block.mlp.c_proj, C)
    return {name: copy(t) for name, t in sd.items()}


def to_hooked_transformer(model: GPT | LSTM, device: str | torch.device = "cpu") -> "HookedTransformer":
    """A HookedTransformer, in eval mode on `device`, that computes the same logits as `model`."""
    state = tl_state_dict(model)
    tl = _transformer_lens()
    hooked = tl.HookedTransformer(hooked_transformer_config(model.model_args, device))
    differ = sorted(set(state) ^ {name for name, _ in hooked.named_parameters()})
    if differ:  # a TransformerLens version with other parameters: refuse, never half-load
        raise ExportError(f"this TransformerLens and the export disagree on parameters {differ}; "
                          f"{INSTALL_HINT} pins the tested version")
    hooked.load_state_dict(state, strict=False)  # strict=False: the masks are buffers, not in `state`
    return hooked.eval()


def load_hooked_transformer(ckpt_path: str | Path, device: str | torch.device = "cpu") -> "HookedTransformer":
    """Open a project checkpoint (weights only, no pickle) and return it as a HookedTransformer in eval mode."""
    return to_hooked_transformer(load_model(load_checkpoint(ckpt_path)), device)
