"""Autoregressive evaluation (docs/task.md §8): per-composition accuracies on fresh inputs, their aggregates,
and which checkpoints to evaluate. The stages that write them (03_evaluate_i.py, 03_evaluate_o.py) are in
pipeline/evaluate.py.

Per composition, over `nsamples` fresh inputs, on the final output y_L (the last m tokens of a document):
  token_acc  generated token == true token, averaged over positions and samples (the paper's "accuracy")
  seq_acc    fraction of samples whose whole y_L is right
  tf_acc     token accuracy of the same positions predicted with the true document as context
  y{k}_acc   step-by-step only: token accuracy of the k-th output the model wrote (y_L's equals token_acc)
  tf_y{k}_acc  step-by-step only: token accuracy of the k-th output predicted with the true document as context
             (the true y_1..y_{k-1} before it; y_L's equals tf_acc)
Chance is 1/A per token. Inputs come from the seed alone (never from the stored eval corpora), so every
checkpoint of a run is scored on the same inputs and a rerun gives the same numbers. Aggregates weigh every
composition the same; compositions of small reported groups may get more samples (`min_group_samples`).
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import PipelineError
from net.decode import generate_and_teacher_force
from net.device import autocast_context
from synthetic.compositions import displacement_of, member_mask, n_functions_of
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec

INPUT_CHUNK = 1024  # compositions per input stream: inputs depend on the seed and the samples per composition only
INPUT_STREAM, COMPOSITION_STREAM = 0, 1  # independent random streams derived from the seed


class EvaluationError(PipelineError):
    """Checkpoints that are missing, or that disagree with the dataset they are evaluated on."""


def step_columns(spec: TaskSpec) -> list[str]:
    """Per-step accuracies reported for this format: y1_acc..yL_acc step-by-step, none for direct documents."""
    return [] if spec.direct else [f"y{k + 1}_acc" for k in range(spec.n_steps)]


def tf_step_columns(spec: TaskSpec) -> list[str]:
    """Per-step teacher-forced accuracies: tf_y1_acc..tf_yL_acc step-by-step, none for direct documents."""
    return [f"tf_{name}" for name in step_columns(spec)]


@dataclass(frozen=True)
class Failure:
    """One sample the model got wrong: the true document and the model's own."""

    composition: int  # row of the evaluated compositions
    expected: np.ndarray  # (doc_len,)
    generated: np.ndarray  # (doc_len,)


@dataclass(frozen=True)
class Scores:
    """Per-composition means over each composition's samples (fresh inputs)."""

    n_samples: np.ndarray  # (C,) samples of each composition
    token_acc: np.ndarray  # (C,)
    seq_acc: np.ndarray  # (C,)
    tf_acc: np.ndarray  # (C,)
    token_sq: np.ndarray  # (C,) mean of the squared per-sample token accuracy, for standard errors
    step_acc: np.ndarray  # (C, n_steps): each output written after the prompt (direct: y_L only)
    tf_step_acc: np.ndarray  # (C, n_steps): each output predicted with the true document as context
    failures: list[Failure]


def input_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def samples_per_composition(groups: np.ndarray, nsamples: int, min_group_samples: int) -> np.ndarray:
    """`nsamples` for every composition, raised in small groups (groups (C,): a group label per composition) so
    that each group holds at least `min_group_samples` samples in all: (C,) int64."""
    _, index, sizes = np.unique(groups, axis=0, return_inverse=True, return_counts=True)
    per_group = np.maximum(nsamples, -(-min_group_samples // sizes))  # ceil division
    return per_group[index.reshape(-1)].astype(np.int64)


def input_batches(spec: TaskSpec, n_samples: np.ndarray, seed: int, batch_size: int,
                  with_replacement: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(composition row (b,), input x (b, m)) batches: n_samples[c] fresh inputs for every composition c, in
    order. Each chunk of INPUT_CHUNK compositions has its own stream, so the batch size never changes the inputs."""
    for chunk, start in enumerate(range(0, len(n_samples), INPUT_CHUNK)):
        stop = min(start + INPUT_CHUNK, len(n_samples))
        rows = np.repeat(np.arange(start, stop), n_samples[start:stop])
        x = sample_inputs(input_rng(seed, INPUT_STREAM, chunk), len(rows), spec, with_replacement)
        for b in range(0, len(rows), batch_size):
            yield rows[b : b + batch_size], x[b : b + batch_size]


def per_sample_counts(spec: TaskSpec, docs: torch.Tensor, generated: torch.Tensor, tf: torch.Tensor) -> torch.Tensor:
    """docs, generated (B, T), tf (B, T-1) -> (4 + 2 n_steps, B) int64 counts: tokens of y_L right, whole y_L
    right (0/1), tokens right under teacher forcing, the first count squared, then tokens right in each output,
    then tokens right in each output under teacher forcing (tf column t predicts docs column t+1)."""
    m, out = spec.seq_len, spec.output_start
    right = generated[:, out:] == docs[:, out:]  # (B, m)
    token = right.sum(dim=1)
    tf_right = (tf[:, out - 1 :] == docs[:, out:]).sum(dim=1)
    steps = [(generated[:, s : s + m] == docs[:, s : s + m]).sum(dim=1) for s in spec.step_starts]
    tf_steps = [(tf[:, s - 1 : s - 1 + m] == docs[:, s : s + m]).sum(dim=1) for s in spec.step_starts]
    return torch.stack([token, right.all(dim=1).long(), tf_right, token * token, *steps, *tf_steps])


def spread(n: int, k: int) -> np.ndarray:
    """Up to k distinct indices of range(n), evenly spread, first and last included."""
    return np.unique(np.floor(np.linspace(0, n - 1, min(k, n)) + 0.5).astype(int)) if n and k else np.arange(0)


def evaluate_compositions(model: nn.Module, spec: TaskSpec, functions: FunctionTables, comps: np.ndarray, *,
                          nsamples: int | np.ndarray, seed: int, batch_size: int, device: torch.device,
                          bf16: bool = False, with_replacement: bool = True, n_failures: int = 0,
                          progress=None) -> Scores:
    """Score `model` on every composition of comps (C, L, 2) with `nsamples` fresh inputs each (an int, or one
    count per composition from samples_per_composition).

    Documents are built in spec's format; batches mix compositions. `progress` (a tqdm bar) advances by the
    number of sequences scored. Up to `n_failures` wrong samples are kept, spread over the compositions.
    """
    C, m = len(comps), spec.seq_len
    n_samples = np.broadcast_to(np.asarray(nsamples, dtype=np.int64), (C,))
    sums = np.zeros((4 + 2 * spec.n_steps, C))  # exact: sums of integer counts
    candidates: list[Failure] = []
    model.eval()
    for rows, x in input_batches(spec, n_samples, seed, batch_size, with_replacement):
        true_docs = make_documents(spec, functions, comps[rows], x)  # (b, T)
        docs = torch.from_numpy(true_docs).to(device)
        with autocast_context(device, bf16):
            generated, tf = generate_and_teacher_force(model, docs, spec.prompt_len)
        counts = per_sample_counts(spec, docs, generated, tf).cpu().numpy()  # (4 + 2 n_steps, b)
        for k, values in enumerate(counts):
            sums[k] += np.bincount(rows, weights=values, minlength=C)
        wrong = np.flatnonzero(counts[1] == 0)[spread(int((counts[1] == 0).sum()), n_failures)]
        candidates += [Failure(int(rows[i]), true_docs[i], generated[i].cpu().numpy()) for i in wrong]
        if progress is not None:
            progress.update(len(rows))
    sums /= n_samples
    return Scores(n_samples=n_samples.copy(), token_acc=sums[0] / m, seq_acc=sums[1], tf_acc=sums[2] / m,
                  token_sq=sums[3] / (m * m), step_acc=sums[4 : 4 + spec.n_steps].T / m,
                  tf_step_acc=sums[4 + spec.n_steps :].T / m,
                  failures=[candidates[i] for i in spread(len(candidates), n_failures)])


def aggregate(spec: TaskSpec, scores: Scores, mask: np.ndarray) -> dict:
    """Mean accuracies over the compositions in mask (C,), each composition weighing the same, and the standard
    error of token_acc from the sampled inputs: sqrt(sum_c var_c / n_c) / C over the compositions c in mask."""
    n = int(mask.sum())
    out: dict = {"n_compositions": n, "n_samples": int(scores.n_samples[mask].sum())}
    names = ["token_acc", "seq_acc", "tf_acc", *step_columns(spec), *tf_step_columns(spec)]
    if n == 0:
        return {**out, **dict.fromkeys(names), "token_acc_se": None}
    token = scores.token_acc[mask]
    variance = np.maximum(scores.token_sq[mask] - token * token, 0.0)  # per composition, over its samples
    se = math.sqrt(float((variance / scores.n_samples[mask]).sum())) / n
    out |= {"token_acc": float(token.mean()), "token_acc_se": se}
    out |= {"seq_acc": float(scores.seq_acc[mask].mean()), "tf_acc": float(scores.tf_acc[mask].mean())}
    out |= {name: float(scores.step_acc[mask, k].mean()) for k, name in enumerate(step_columns(spec))}
    out |= {name: float(scores.tf_step_acc[mask, k].mean()) for k, name in enumerate(tf_step_columns(spec))}
    return out


def in_train_mask(comps: np.ndarray, train_comps: np.ndarray) -> np.ndarray:
    """(C,) bool: which compositions the model was trained on."""
    return member_mask(comps, train_comps)


def inorder_summary(spec: TaskSpec, scores: Scores, comps: np.ndarray, in_train: np.ndarray) -> dict:
    """Overall, training vs unseen compositions, and by number of (non-identity) functions."""
    n_fn = n_functions_of(comps)
    return {"overall": aggregate(spec, scores, np.ones(len(comps), dtype=bool)),
            "train": aggregate(spec, scores, in_train), "unseen": aggregate(spec, scores, ~in_train),
            "by_n_functions": [{"n_functions": int(k), **aggregate(spec, scores, n_fn == k)} for k in np.unique(n_fn)]}


def outorder_summary(spec: TaskSpec, scores: Scores, comps: np.ndarray) -> dict:
    """Overall and per (#identities, displacement) group."""
    n_id, disp = spec.depth - n_functions_of(comps), displacement_of(comps)
    groups = sorted(set(zip(n_id.tolist(), disp.tolist(), strict=True)))
    return {"overall": aggregate(spec, scores, np.ones(len(comps), dtype=bool)),
            "groups": [{"n_identity": i, "displacement": d, **aggregate(spec, scores, (n_id == i) & (disp == d))}
                       for i, d in groups]}


def select_checkpoints(checkpoints: list[tuple[int, Path]], xlim: tuple[int | None, int | None],
                       nckpts: int) -> list[tuple[int, Path]]:
    """`nckpts` of the checkpoints (sorted by step) with steps inside xlim, spread evenly by rank; the first
    and the newest inside xlim are always among them (nckpts=1: the newest alone)."""
    lo, hi = xlim
    inside = [(s, p) for s, p in checkpoints if (lo is None or s >= lo) and (hi is None or s <= hi)]
    if not inside:
        steps = [s for s, _ in checkpoints]
        raise EvaluationError(f"xlim={[lo, hi]} holds none of the checkpoint steps ({steps[0]}..{steps[-1]})")
    if nckpts >= len(inside):
        return inside
    ranks = np.floor(np.linspace(len(inside) - 1, 0, nckpts) + 0.5).astype(int)  # distinct: spacing >= 1
    return [inside[r] for r in sorted(ranks)]
