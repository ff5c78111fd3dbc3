"""Reading the answer out of the residual stream, site by site: the logit lens and a linear probe.

Sites, in order: the embedding (`blocks.0.hook_resid_pre`: token + position), then for every layer l
`blocks.{l}.hook_resid_mid` (after its attention) and `blocks.{l}.hook_resid_post` (after its MLP). At every
output-predicting position (the next token is an output token) both read out the next token:
  logit lens    argmax of the model's own final LayerNorm + unembedding (`model.unembed`), over the vocabulary
  linear probe  multinomial logistic regression over the A data tokens, on standardized features, fitted by
                L-BFGS on one set of documents and scored on another
Chance is 1/A for both (the lens can do worse: it may name a non-data token). Step-by-step documents also get both
accuracies split by what the step's slot holds (read from the document's task token): the identity (the step copies
y_k) or a function; the probe is the same one, only its scoring is split.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from analysis.layout import step_query_positions, task_position
from synthetic.task import TaskSpec


def residual_sites(n_layer: int) -> list[str]:
    """Hook names of the residual stream, from the embedding to the last block's output."""
    return ["blocks.0.hook_resid_pre", *(f"blocks.{layer}.hook_resid_{after}" for layer in range(n_layer)
                                         for after in ("mid", "post"))]


def site_label(site: str) -> str:
    """'embed', 'L0 attn' (after layer 0's attention), 'L0 mlp' (after layer 0's MLP), ..."""
    if site == "blocks.0.hook_resid_pre":
        return "embed"
    layer = site.split(".")[1]
    return f"L{layer} attn" if site.endswith("resid_mid") else f"L{layer} mlp"


@dataclass(frozen=True)
class Residuals:
    features: dict[str, torch.Tensor]  # site -> (n * Q, C) residual stream at the output-predicting positions
    targets: torch.Tensor  # (n * Q,) the next token (a data token)
    steps: torch.Tensor  # (n * Q,) the 0-based output step each position belongs to
    identity: torch.Tensor | None  # (n * Q,) bool: the step's slot holds the identity (None for direct documents)


@torch.no_grad()
def collect_residuals(model: nn.Module, docs: torch.Tensor, spec: TaskSpec, batch_size: int) -> Residuals:
    """Residual stream at every site for documents docs (n, doc_len), at output-predicting positions only."""
    sites = residual_sites(model.config.n_layer)
    queries = torch.from_numpy(step_query_positions(spec).reshape(-1)).to(docs.device)  # (Q,) = (n_steps * m,)
    steps = torch.arange(spec.n_steps, device=docs.device).repeat_interleave(spec.seq_len)  # (Q,) 0-based step
    parts: dict[str, list[torch.Tensor]] = {site: [] for site in sites}
    for chunk in docs.split(batch_size):
        _, cache = model.run_with_cache(chunk[:, :-1], names=sites)
        for site in sites:
            parts[site].append(cache[site][:, queries].float().reshape(-1, cache[site].size(-1)))
    slot_fn = (docs[:, task_position(0) : task_position(spec.depth)] - spec.n_alphabets) % (spec.n_functions + 1)
    return Residuals(features={site: torch.cat(p) for site, p in parts.items()},
                     targets=docs[:, queries + 1].reshape(-1), steps=steps.repeat(len(docs)),
                     identity=None if spec.direct else (slot_fn[:, steps] == 0).reshape(-1))  # step k applies slot k


@torch.no_grad()
def logit_lens_predictions(model: nn.Module, features: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """argmax of the unembedded residual stream: (n, C) -> (n,) token ids over the whole vocabulary."""
    return torch.cat([model.unembed(f).argmax(dim=-1) for f in features.split(batch_size)])


@dataclass(frozen=True)
class LinearProbe:
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    weight: torch.Tensor  # (C, n_classes)
    bias: torch.Tensor  # (n_classes,)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return (((features - self.mean) / self.std) @ self.weight + self.bias).argmax(dim=-1)


def fit_probe(features: torch.Tensor, targets: torch.Tensor, n_classes: int, l2: float, max_iter: int) -> LinearProbe:
    """Multinomial logistic regression, mean cross-entropy + l2 * |W|^2, by full-batch L-BFGS from zero
    (deterministic). features (n, C) float, targets (n,) in [0, n_classes)."""
    features = features.detach().clone()  # a plain tensor, usable by autograd
    mean, std = features.mean(dim=0), features.std(dim=0).clamp_min(1e-6)
    x = (features - mean) / std
    weight = torch.zeros(x.size(1), n_classes, device=x.device, requires_grad=True)
    bias = torch.zeros(n_classes, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, targets) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(mean, std, weight.detach(), bias.detach())


def accuracy_by_step(predictions: torch.Tensor, targets: torch.Tensor, steps: torch.Tensor,
                     n_steps: int, keep: torch.Tensor | None = None) -> list[float]:
    """[overall, step 1, ..., step n_steps] accuracies, over the positions `keep` (bool) if given; nan if none."""
    right = (predictions == targets).double()
    if keep is not None:
        right, steps = right[keep], steps[keep]
    return [right.mean().item(), *[right[steps == k].mean().item() for k in range(n_steps)]]


PROBE_HEADER = ["site", "label", "index", "step", "logit_lens_acc", "probe_acc", "probe_train_acc", "chance",
                "logit_lens_acc_identity", "probe_acc_identity", "logit_lens_acc_function", "probe_acc_function",
                "n_identity", "n_function"]


def probe_rows(model: nn.Module, train: Residuals, test: Residuals, spec: TaskSpec, l2: float, max_iter: int,
               digits: int = 6) -> list[list]:
    """Logit-lens (on `test`) and probe (fitted on `train`, scored on `test`) accuracy at every site:
    per site a row for step "all", then one per output step. The last six columns split the two test accuracies
    by the step's slot (identity / function) and count the test positions of each; blank for direct documents."""
    A, n_steps = spec.n_alphabets, spec.n_steps
    rows = []
    for index, site in enumerate(train.features):
        lens_pred = logit_lens_predictions(model, test.features[site])
        probe = fit_probe(train.features[site], train.targets, A, l2, max_iter)
        probe_pred = probe.predict(test.features[site])
        lens = accuracy_by_step(lens_pred, test.targets, test.steps, n_steps)
        probe_test = accuracy_by_step(probe_pred, test.targets, test.steps, n_steps)
        probe_train = accuracy_by_step(probe.predict(train.features[site]), train.targets, train.steps, n_steps)
        split = [[""] * (n_steps + 1)] * 6  # columns of the split, each [all steps, step 1, ...]
        if test.identity is not None:
            kinds = (test.identity, ~test.identity)
            split = [[round(a, digits) for a in accuracy_by_step(pred, test.targets, test.steps, n_steps, keep)]
                     for keep in kinds for pred in (lens_pred, probe_pred)]
            split += [[int(keep.sum()), *[int((keep & (test.steps == k)).sum()) for k in range(n_steps)]]
                      for keep in kinds]
        for k in range(n_steps + 1):
            rows.append([site, site_label(site), index, "all" if k == 0 else k, round(lens[k], digits),
                         round(probe_test[k], digits), round(probe_train[k], digits), round(1 / A, digits),
                         *[col[k] for col in split]])
    return rows
