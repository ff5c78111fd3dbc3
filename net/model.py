"""The two models of the study (docs/task.md §7): a nanoGPT Transformer with TransformerLens-style hook points,
and an LSTM.

Both take token ids (B, T) and return float32 logits (B, T, vocab_size), and both decode incrementally with
`prefill` then `step`, which give the same logits as a full forward pass. `build_model(model_args)` rebuilds
either one from the plain dict stored in checkpoints.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError

HookFn = Callable[[torch.Tensor], torch.Tensor | None]
LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layer, B, C)


class HookPoint(nn.Module):
    """Identity that hands its input to the registered hook functions; a function may return a replacement."""

    def __init__(self) -> None:
        super().__init__()
        self.fns: list[HookFn] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fn in self.fns:
            out = fn(x)
            x = x if out is None else out
        return x


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias, and a hook on its output (`ln_final.hook_normalized`)."""

    def __init__(self, n_embd: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_normalized(F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5))


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context_size: int = 50
    n_layer: int = 2
    n_head: int = 1
    n_embd: int = 120
    dropout: float = 0.0
    bias: bool = False
    mlp: bool = True


class KVCache:
    """Keys and values of every layer, preallocated to the context size: (B, nh, context_size, hs) per layer."""

    def __init__(self, config: GPTConfig, batch_size: int) -> None:
        self.config = config
        self.batch_size = batch_size
        self.pos = 0  # number of positions already written
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, nh, T, hs) at the current position; return all keys and values so far."""
        if layer == len(self.k):  # allocate lazily, in the dtype the model computes in (bf16 under autocast)
            shape = (self.batch_size, k.size(1), self.config.context_size, k.size(3))
            self.k.append(torch.zeros(shape, dtype=k.dtype, device=k.device))
            self.v.append(torch.zeros(shape, dtype=v.dtype, device=v.device))
        end = self.pos + k.size(2)
        self.k[layer][:, :, self.pos : end] = k
        self.v[layer][:, :, self.pos : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.hook_pattern = HookPoint()  # (B, nh, T, Tk) attention probabilities
        self.hook_z = HookPoint()  # (B, T, nh, hs) each head's output, before c_proj mixes the heads
        causal = torch.tril(torch.ones(config.context_size, config.context_size, dtype=torch.bool))
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        # q, k, v: (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, Tk, hs), Tk = cache.pos + T
        Tk = k.size(2)
        mask = self.causal[Tk - T : Tk, :Tk]  # (T, Tk): query i sits at position Tk-T+i
        # Manual attention when someone reads or edits the pattern, and under CPU bf16 autocast, where
        # scaled_dot_product_attention's backward is several times slower; SDPA everywhere else.
        if self.hook_pattern.fns or (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            att = self.attn_dropout(self.hook_pattern(att))
            y = att @ v  # (B, nh, T, hs)
        else:
            dropout_p = self.dropout if self.training else 0.0
            if Tk == T:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = self.hook_z(y.transpose(1, 2))  # (B, T, nh, hs)
        return self.resid_dropout(self.c_proj(y.reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm block: attention then (unless mlp=False) the MLP, each on the residual stream."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias)
        self.attn = CausalSelfAttention(config)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()
        if config.mlp:
            self.ln_2 = LayerNorm(config.n_embd, config.bias)
            self.mlp = MLP(config)
            self.hook_mlp_out = HookPoint()

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln_1(x), cache, layer)))
        if hasattr(self, "mlp"):
            x = x + self.hook_mlp_out(self.mlp(self.ln_2(x)))
        return self.hook_resid_post(x)


class GPT(nn.Module):
    kind = "nanogpt"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.context_size, config.n_embd)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_final = LayerNorm(config.n_embd, config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # residual output projections, scaled by depth (GPT-2)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self.hook_points = {name: m for name, m in self.named_modules() if isinstance(m, HookPoint)}

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def model_args(self) -> dict:
        """{"kind": ..., **config fields}: what build_model rebuilds the model from."""
        return {"kind": self.kind, **asdict(self.config)}

    def num_params(self) -> int:
        """Number of distinct parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _run(self, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """idx (B, T), continuing `cache` when given -> residual stream after the last block (B, T, C)."""
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.context_size:
            raise ValueError(f"{start + T} positions exceed net.context_size={self.config.context_size}")
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.drop(self.hook_embed(self.wte(idx)) + self.hook_pos_embed(self.wpe(pos)))  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.pos += T
        return x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) int64 -> logits (B, T, vocab_size) float32."""
        return self.unembed(self._run(idx, None))

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm and tied head: residual stream (..., C) -> float32 logits (..., vocab_size)."""
        return self.lm_head(self.ln_final(resid)).float()

    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """Run a prompt (B, T0) into a fresh KV cache; return the last position's logits (B, V) and the cache."""
        cache = KVCache(self.config, idx.size(0))
        return self.unembed(self._run(idx, cache)[:, -1:])[:, -1], cache

    def step(self, tok: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        """Feed one token per row (B,); return its logits (B, V) and the (updated in place) cache."""
        return self.unembed(self._run(tok[:, None], state)[:, -1:])[:, -1], state

    @contextmanager
    def hooks(self, fns: dict[str, HookFn]) -> Iterator["GPT"]:
        """Attach hook functions by name for the duration of the block (forward, prefill and step honor them)."""
        unknown = sorted(set(fns) - set(self.hook_points))
        if unknown:
            raise KeyError(f"unknown hook point(s) {unknown}; this model has {sorted(self.hook_points)}")
        for name, fn in fns.items():
            self.hook_points[name].fns.append(fn)
        try:
            yield self
        finally:
            for name, fn in fns.items():
                self.hook_points[name].fns.remove(fn)

    def run_with_cache(self, idx: torch.Tensor,
                       names: list[str] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward pass that also returns the (detached) activations at the named hook points (default: all)."""
        cache: dict[str, torch.Tensor] = {}
        names = self.hook_points if names is None else names
        with self.hooks({name: lambda t, name=name: cache.__setitem__(name, t.detach()) for name in names}):
            logits = self(idx)
        return logits, cache


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int
    context_size: int = 50
    n_layer: int = 2
    n_embd: int = 120
    dropout: float = 0.0


class LSTM(nn.Module):
    """Token embedding -> n_layer LSTM layers of width n_embd -> linear head."""

    kind = "lstm"

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(config.n_embd, config.n_embd, num_layers=config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        H = config.n_embd
        for name, p in self.lstm.named_parameters():  # gates stacked as (i, f, g, o), each (H, ·)
            for gate in range(4):
                chunk = p.data[gate * H : (gate + 1) * H]
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(chunk)
                elif name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(chunk)
                elif name.startswith("bias_ih"):  # forget gate bias 1: remember by default
                    chunk.fill_(1.0 if gate == 1 else 0.0)
                else:
                    chunk.zero_()

    model_args, num_params = GPT.model_args, GPT.num_params  # the same for both models

    def _run(self, idx: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        x = self.drop(self.wte(idx))  # (B, T, C)
        out, state = self.lstm(x, state)  # (B, T, C)
        return self.lm_head(self.drop(out)).float(), state

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) int64 -> logits (B, T, vocab_size) float32."""
        return self._run(idx, None)[0]

    def prefill(self, idx: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Run idx (B, T) from `state` (None: a fresh one); return the last position's logits (B, V) and the state."""
        logits, state = self._run(idx, state)
        return logits[:, -1], state

    def step(self, tok: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        return self.prefill(tok[:, None], state)


MODELS = {"nanogpt": (GPT, GPTConfig), "lstm": (LSTM, LSTMConfig)}


def check_model_args(model_args: dict) -> None:
    """ConfigError unless model_args ({"kind": "nanogpt" | "lstm", **config fields}) build a model."""
    args = dict(model_args)
    kind = args.pop("kind", None)
    if kind not in MODELS:
        raise ConfigError(f"net.kind={kind} is not one of {', '.join(MODELS)}")
    known = {f.name for f in fields(MODELS[kind][1])}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(f"net keys {unknown} are not options of net.kind={kind} (allowed: {sorted(known)})")
    if "vocab_size" not in args:
        raise ConfigError(f"net.vocab_size is missing for net.kind={kind}")
    for key in ("vocab_size", "context_size", "n_layer", "n_embd", "n_head"):
        if key in args and (isinstance(args[key], bool) or not isinstance(args[key], int) or args[key] < 1):
            raise ConfigError(f"net.{key}={args[key]} must be a positive integer")
    dropout = args.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"net.dropout={dropout} must be in [0, 1)")
    for key in ("bias", "mlp"):
        if key in args and not isinstance(args[key], bool):
            raise ConfigError(f"net.{key}={args[key]!r} must be true or false")
    if kind == "nanogpt" and args.get("n_embd", 120) % args.get("n_head", 1):
        raise ConfigError(f"net.n_head={args['n_head']} must divide net.n_embd={args.get('n_embd', 120)}")


def approx_parameters(model_args: dict) -> int:
    """Parameters of the model model_args describe, without building it (for memory checks)."""
    d, layers, vocab = model_args.get("n_embd", 120), model_args.get("n_layer", 2), model_args["vocab_size"]
    per_layer = 8 * d * d if model_args["kind"] == "lstm" else 12 * d * d
    return layers * per_layer + (vocab + model_args.get("context_size", 50)) * d


def build_model(model_args: dict) -> GPT | LSTM:
    """Build a model from a plain dict {"kind": "nanogpt" | "lstm", **config fields}; ConfigError when invalid."""
    check_model_args(model_args)
    args = dict(model_args)
    model_cls, config_cls = MODELS[args.pop("kind")]
    return model_cls(config_cls(**args))
