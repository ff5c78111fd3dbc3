"""Stand-in "models" with known accuracies, for testing the evaluation through its real code.

Each is a deterministic causal rule: the token predicted after position t depends on idx[:, :t+1] only, so
its full forward pass, prefill/step decoding and teacher forcing all agree, as a real model's do. The rules run
on the CPU whatever device the evaluation puts the tokens on. The oracles' truth is the independent checker's
(tests/independent_checker.py), never synthetic.documents: a bug there cannot make an oracle agree with it.
"""

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthetic.compositions import composition_keys
from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec
from tests.independent_checker import after_prompt


class RuleModel(nn.Module):
    """forward -> one-hot logits of `next_tokens`; prefill/step keep the tokens so far as their state."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__()
        self.spec = spec

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> (B, T): column t is the prediction for position t+1."""
        raise NotImplementedError

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.next_tokens(idx.cpu()), self.spec.vocab_size).float().to(idx.device)

    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(idx)[:, -1], idx

    def step(self, tok: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.cat([state, tok[:, None]], dim=1)
        return self(idx)[:, -1], idx


class Oracle(RuleModel):
    """Predicts the true next token of the document its prompt determines: the prompt, then the outputs that the
    independent checker computes from the function tables as functions.json stores them."""

    def __init__(self, spec: TaskSpec, functions: FunctionTables) -> None:
        super().__init__(spec)
        self.functions = functions
        self.levels = functions.to_json()["levels"]

    def prompt_compositions(self, idx: torch.Tensor) -> np.ndarray:
        s = self.spec
        task = idx[:, 1 : 1 + s.depth].cpu().numpy() - s.n_alphabets  # (B, L)
        return np.stack([task // (s.n_functions + 1), task % (s.n_functions + 1)], axis=-1)  # (B, L, 2)

    def true_documents(self, idx: torch.Tensor) -> torch.Tensor:
        s = self.spec
        prompts = idx[:, : s.prompt_len].tolist()
        comps = self.prompt_compositions(idx).tolist()
        return torch.tensor([p + after_prompt(self.levels, comp, p[s.depth + 2 : s.depth + 2 + s.seq_len], s.direct,
                                              s.sep_id) for p, comp in zip(prompts, comps, strict=True)])

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        docs = self.true_documents(idx)  # (B, doc_len)
        nxt = torch.full_like(idx, self.spec.sep_id)
        T = min(idx.size(1), docs.size(1) - 1)
        nxt[:, :T] = docs[:, 1 : T + 1]
        return nxt


class TrainOnly(Oracle):
    """The oracle on the training compositions; elsewhere every data token it writes is wrong."""

    def __init__(self, spec: TaskSpec, functions: FunctionTables, train_comps: np.ndarray) -> None:
        super().__init__(spec, functions)
        self.train_keys = set(composition_keys(train_comps))

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        nxt = super().next_tokens(idx)
        unseen = torch.tensor([k not in self.train_keys for k in composition_keys(self.prompt_compositions(idx))])
        data = nxt < self.spec.n_alphabets
        wrong = (nxt + 1) % self.spec.n_alphabets
        return torch.where(unseen[:, None] & data, wrong, nxt)


def prefix_hash(idx: torch.Tensor) -> torch.Tensor:
    """A pseudo-random int64 per (row, t) that depends on idx[:, :t+1] only: (B, T) -> (B, T)."""
    h = torch.zeros(idx.size(0), dtype=torch.long)
    out = torch.empty_like(idx)
    for t in range(idx.size(1)):
        h = (h * 1_000_003 + idx[:, t] + 1) % 2_147_483_647
        out[:, t] = (h * 48_271) % 2_147_483_647
    return out


class RandomData(RuleModel):
    """Writes a pseudo-random data token, uniform over the A data tokens, at every position."""

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        return (prefix_hash(idx) >> 8) % self.spec.n_alphabets


class NoisyOracle(Oracle):
    """The oracle, except that about one in `one_in` of its data tokens is wrong (pseudo-randomly)."""

    def __init__(self, spec: TaskSpec, functions: FunctionTables, one_in: int) -> None:
        super().__init__(spec, functions)
        self.one_in = one_in

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        nxt = super().next_tokens(idx)
        flip = (prefix_hash(idx) % self.one_in == 0) & (nxt < self.spec.n_alphabets)
        return torch.where(flip, (nxt + 1) % self.spec.n_alphabets, nxt)


def output_positions(spec: TaskSpec, k: int) -> range:
    """Document columns of the (k+1)-th output written after the prompt (docs/task.md §4): y_{k+1} step by step,
    y_L when direct."""
    start = spec.prompt_len + k * (spec.seq_len + 1)
    return range(start, start + spec.seq_len)


class WrongAt(Oracle):
    """The oracle, except that the token it predicts for each document column in `positions` is wrong: the data
    token after the true one, or a data token where the truth is a separator."""

    def __init__(self, spec: TaskSpec, functions: FunctionTables, positions: Iterable[int]) -> None:
        super().__init__(spec, functions)
        self.positions = torch.tensor(sorted(set(positions)), dtype=torch.long)

    def next_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        nxt = super().next_tokens(idx)
        wrong = torch.isin(torch.arange(1, idx.size(1) + 1), self.positions)  # column t predicts position t+1
        return torch.where(wrong, (nxt + 1) % self.spec.n_alphabets, nxt)
