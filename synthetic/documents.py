"""Documents (docs/task.md §4), built for many compositions at once with array operations (no per-document loop)."""

import numpy as np

from synthetic.functions import FunctionTables
from synthetic.task import TaskSpec


def sample_inputs(rng: np.random.Generator, n: int, spec: TaskSpec, with_replacement: bool = True) -> np.ndarray:
    """`n` inputs x of `m` data tokens, uniform; without replacement each row holds distinct tokens. -> (n, m)"""
    if with_replacement:
        return rng.integers(0, spec.n_alphabets, size=(n, spec.seq_len), dtype=np.int64)
    # The first m columns of a random argsort are m distinct tokens, uniform over ordered subsets.
    return np.argsort(rng.random((n, spec.n_alphabets)), axis=1)[:, : spec.seq_len].astype(np.int64)


def make_documents(spec: TaskSpec, functions: FunctionTables, comps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One document per row, `S, task tokens, ' ', x, ' '` then the outputs: comps (n, L, 2), x (n, m) ->
    (n, doc_len) int64."""
    L, m = spec.depth, spec.seq_len
    docs = np.full((len(x), spec.doc_len), spec.sep_id, dtype=np.int64)  # separators stay where not overwritten
    docs[:, 0] = spec.start_id
    docs[:, 1 : 1 + L] = spec.task_token(comps[:, :, 0], comps[:, :, 1])
    docs[:, 2 + L : 2 + L + m] = x
    y, outputs = x, []
    for k in range(L):  # a loop over slots, not documents
        y = functions.apply(comps[:, k, 0], comps[:, k, 1], y)
        outputs.append(y)
    for start, y in zip(spec.step_starts, outputs[-1:] if spec.direct else outputs, strict=True):  # direct: y_L alone
        docs[:, start : start + m] = y
    return docs


def smallest_uint_dtype(vocab_size: int) -> np.dtype:
    return np.min_scalar_type(vocab_size - 1)  # token ids are never negative: uint8, uint16, ...


def sample_documents(rng: np.random.Generator, spec: TaskSpec, functions: FunctionTables, comps: np.ndarray, n: int,
                     with_replacement: bool) -> np.ndarray:
    """`n` documents, each from a composition chosen uniformly among `comps` with a fresh input."""
    chosen = comps[rng.integers(0, len(comps), size=n)]
    x = sample_inputs(rng, n, spec, with_replacement)
    return make_documents(spec, functions, chosen, x).astype(smallest_uint_dtype(spec.vocab_size))
