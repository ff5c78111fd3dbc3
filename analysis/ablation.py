"""Ablations: replace one layer's attention output (`blocks.{l}.hook_attn_out`) or MLP output
(`blocks.{l}.hook_mlp_out`) and measure what the model can still write, autoregressively, over every in-order
composition (the evaluation's own `evaluate_compositions`, decoding with the hooks active).

  zero  the sublayer adds nothing to the residual stream
  mean  it adds its mean output at that position over clean documents (removes what depends on the document,
        keeps the average; less off-distribution than zero)

Hooks see (B, T, C) tensors without their positions: a full forward or a prefill starts at position 0, a
one-token step continues where the previous call ended. `PositionTracker` recovers the positions from that
(on `hook_embed`, which every call passes first), so mean ablation also works with the KV-cached decoding.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from net.evaluate import aggregate, evaluate_compositions, step_columns
from net.model import HookFn
from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec

MODES = ("zero", "mean")


def ablation_sites(model: nn.Module) -> list[tuple[int, str]]:
    """(layer, component) pairs: every layer's attention and, unless the model has no MLPs, its MLP."""
    components = ("attn", "mlp") if model.config.mlp else ("attn",)
    return [(layer, c) for layer in range(model.config.n_layer) for c in components]


def hook_name(layer: int, component: str) -> str:
    return f"blocks.{layer}.hook_{component}_out"


class PositionTracker:
    """Hook for `hook_embed`: records which positions the current call covers (`start`, `start + T`)."""

    start = end = 0

    def __call__(self, embed: torch.Tensor) -> None:
        T = embed.size(1)
        self.start = 0 if T > 1 else self.end  # prompts and full passes have > 1 token; steps have exactly 1
        self.end = self.start + T


@torch.no_grad()
def mean_activations(model: nn.Module, docs: torch.Tensor, names: list[str],
                     batch_size: int) -> dict[str, torch.Tensor]:
    """Per-position mean of each named activation over documents docs (n, doc_len): name -> (doc_len - 1, C)."""
    sums: dict[str, torch.Tensor] = dict.fromkeys(names, 0)
    for chunk in docs.split(batch_size):
        _, cache = model.run_with_cache(chunk[:, :-1], names=names)
        for name in names:
            sums[name] += cache[name].float().sum(dim=0)
    return {name: total / len(docs) for name, total in sums.items()}


def replacement_hook(mode: str, tracker: PositionTracker, mean: torch.Tensor | None) -> HookFn:
    """A hook that returns zeros, or the clean mean at the positions the tracker reports."""
    if mode == "zero":
        return torch.zeros_like
    if mode != "mean" or mean is None:
        raise ValueError(f"ablation mode {mode!r} needs one of {MODES} (and means for 'mean')")

    def to_mean(x: torch.Tensor) -> torch.Tensor:
        if tracker.end > len(mean):
            raise ValueError(f"position {tracker.end - 1} has no clean mean (means cover {len(mean)} positions)")
        return mean[tracker.start : tracker.end].to(x.dtype).expand_as(x)

    return to_mean


@contextmanager
def ablated(model: nn.Module, names: list[str], mode: str,
            means: dict[str, torch.Tensor] | None = None) -> Iterator[nn.Module]:
    """Within the block, every named sublayer output of `model` is zero- or mean-ablated."""
    tracker = PositionTracker()
    fns = {name: replacement_hook(mode, tracker, None if means is None else means.get(name)) for name in names}
    with model.hooks({"hook_embed": tracker, **fns}):
        yield model


@dataclass(frozen=True)
class AblationSetup:
    """What every ablated evaluation shares."""

    spec: TaskSpec
    functions: FunctionTables
    comps: np.ndarray  # (C, L, 2) evaluated compositions
    nsamples: int  # fresh inputs per composition
    seed: int
    batch_size: int
    device: torch.device
    with_replacement: bool

    def score(self, model: nn.Module) -> dict:
        scores = evaluate_compositions(model, self.spec, self.functions, self.comps, nsamples=self.nsamples,
                                       seed=self.seed, batch_size=self.batch_size, device=self.device,
                                       with_replacement=self.with_replacement)
        return aggregate(self.spec, scores, np.ones(len(self.comps), dtype=bool))


def ablation_header(spec: TaskSpec) -> list[str]:
    return ["layer", "component", "mode", "token_acc", "token_acc_se", "seq_acc", "tf_acc", *step_columns(spec),
            "chance"]


def ablation_rows(model: nn.Module, setup: AblationSetup, means: dict[str, torch.Tensor], digits: int = 6,
                  log=print) -> list[list]:
    """The clean baseline (layer '', component 'none'), then every (layer, component, mode) ablation."""
    header = ablation_header(setup.spec)
    metrics = header[3:-1]
    chance = round(1 / setup.spec.n_alphabets, digits)

    def row(layer, component: str, mode: str, agg: dict) -> list:
        log(f"  ablation {component:>4} {mode:>4} layer {layer!s:>2}: token_acc {agg['token_acc']:.3f}")
        return [layer, component, mode, *[round(agg[k], digits) for k in metrics], chance]

    rows = [row("", "none", "none", setup.score(model))]
    for layer, component in ablation_sites(model):
        for mode in MODES:
            with ablated(model, [hook_name(layer, component)], mode, means):
                rows.append(row(layer, component, mode, setup.score(model)))
    return rows
