"""Where each output step attends (step-by-step documents): shares of attention, per layer and head, on

  current_task  the task token of the slot being computed (slot k's token while writing y_{k+1})
  other_tasks   the other L-1 task tokens
  prev_step     the m tokens the step is computed from (x for y_1, else y_k)
  prev_same     of those, the one at the same position j (the source token of a token-wise bijection)
  rest          everything else (S, separators, the step's own tokens written so far)

averaged over documents and over the m positions of each step, next to the share a uniform causal attention
would give. Patterns come from `blocks.{l}.attn.hook_pattern`.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from analysis.layout import previous_step_start, step_query_positions, task_position
from synthetic.task import TaskSpec

ROLES = ("current_task", "other_tasks", "prev_step", "prev_same", "rest")


def role_weights(spec: TaskSpec, n_pos: int) -> np.ndarray:
    """(n_steps, m, n_roles, n_pos) 0/1 key masks for each output query; `rest` is 1 minus the first three."""
    n_steps, m = spec.n_steps, spec.seq_len
    weights = np.zeros((n_steps, m, len(ROLES), n_pos), dtype=np.float32)
    for k in range(n_steps):
        prev = previous_step_start(spec, k)
        weights[k, :, 1, [task_position(s) for s in range(spec.depth) if s != k]] = 1
        weights[k, :, 0, task_position(k)] = 1
        weights[k, :, 2, prev : prev + m] = 1
        weights[k, np.arange(m), 3, prev + np.arange(m)] = 1
    weights[:, :, 4] = 1 - weights[:, :, 0] - weights[:, :, 1] - weights[:, :, 2]
    return weights


def role_shares(pattern: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """Summed (over the batch and each step's m queries) attention shares per role:
    pattern (B, H, T, T) -> (H, n_steps, n_roles)."""
    T = pattern.size(-1)
    queries = torch.from_numpy(step_query_positions(spec)).to(pattern.device)  # (n_steps, m)
    weights = torch.from_numpy(role_weights(spec, T)).to(pattern.device, pattern.dtype)
    at_queries = pattern[:, :, queries]  # (B, H, n_steps, m, T)
    return torch.einsum("bhkjt,kjrt->hkr", at_queries, weights)


def uniform_shares(spec: TaskSpec, n_pos: int) -> np.ndarray:
    """(n_steps, n_roles) shares of a causal attention spread evenly over every visible key, averaged over each
    step's queries."""
    causal = torch.tril(torch.ones(n_pos, n_pos))
    uniform = (causal / causal.sum(dim=-1, keepdim=True))[None, None]  # (1, 1, n_pos, n_pos)
    return (role_shares(uniform, spec)[0] / spec.seq_len).numpy()


@dataclass(frozen=True)
class AttentionStats:
    shares: np.ndarray  # (n_layer, H, n_steps, n_roles) mean shares
    uniform: np.ndarray  # (n_steps, n_roles) shares of a uniform causal attention
    mean_pattern: np.ndarray  # (n_layer, H, T, T) attention averaged over documents
    n_documents: int


@torch.no_grad()
def attention_stats(model: nn.Module, docs: torch.Tensor, spec: TaskSpec, batch_size: int) -> AttentionStats:
    """Run documents docs (n, doc_len) through the model (input doc[:, :-1]) and average its attention."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.config.n_layer)]
    share_sums, pattern_sums = 0, 0
    for chunk in docs.split(batch_size):
        _, cache = model.run_with_cache(chunk[:, :-1], names=names)
        share_sums += torch.stack([role_shares(cache[name].float(), spec) for name in names])  # (n_layer, H, steps, R)
        pattern_sums += torch.stack([cache[name].float().sum(dim=0) for name in names])  # (n_layer, H, T, T)
    n = len(docs)
    return AttentionStats(shares=(share_sums / (n * spec.seq_len)).cpu().numpy(),
                          uniform=uniform_shares(spec, docs.size(1) - 1),
                          mean_pattern=(pattern_sums / n).cpu().numpy(), n_documents=n)


ATTENTION_HEADER = ["layer", "head", "step", *[f"share_{r}" for r in ROLES], "uniform_current_task",
                    "uniform_prev_step"]


def attention_rows(stats: AttentionStats, digits: int = 6) -> list[list]:
    """One row per (layer, head, output step 1..L), then per (layer, head) the mean over steps as step "all"."""
    n_layer, H, n_steps, _ = stats.shares.shape
    cur, prev = ROLES.index("current_task"), ROLES.index("prev_step")
    rows = []
    for layer in range(n_layer):
        for head in range(H):
            for k in [*range(n_steps), None]:
                shares = stats.shares[layer, head].mean(0) if k is None else stats.shares[layer, head, k]
                uniform = stats.uniform.mean(0) if k is None else stats.uniform[k]
                rows.append([layer, head, "all" if k is None else k + 1,
                             *np.round(shares.astype(np.float64), digits).tolist(), round(float(uniform[cur]), digits),
                             round(float(uniform[prev]), digits)])
    return rows
