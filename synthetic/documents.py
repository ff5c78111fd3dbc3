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


def compose_steps(functions: FunctionTables, comps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply each row's composition slot by slot: comps (n, L, 2), x (n, m) -> y_1..y_L as (n, L, m)."""
    n, L, _ = comps.shape
    steps = np.empty((n, L, x.shape[1]), dtype=np.int64)
    y = x
    for k in range(L):  # a loop over slots, not documents
        y = functions.apply(comps[:, k, 0], comps[:, k, 1], y)
        steps[:, k] = y
    return steps


def make_prompts(spec: TaskSpec, comps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`S, task tokens, ' ', x, ' '`: comps (n, L, 2), x (n, m) -> (n, P) int64."""
    n, L = len(x), spec.depth
    prompts = np.empty((n, spec.prompt_len), dtype=np.int64)
    prompts[:, 0] = spec.start_id
    prompts[:, 1 : 1 + L] = spec.task_token(comps[:, :, 0], comps[:, :, 1])
    prompts[:, 1 + L] = spec.sep_id
    prompts[:, 2 + L : 2 + L + spec.seq_len] = x
    prompts[:, -1] = spec.sep_id
    return prompts


def make_documents(spec: TaskSpec, functions: FunctionTables, comps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One document per row: comps (n, L, 2), x (n, m) -> (n, doc_len) int64."""
    m = spec.seq_len
    steps = compose_steps(functions, comps, x)
    outputs = steps[:, -1:] if spec.direct else steps  # (n, n_steps, m)
    docs = np.full((len(x), spec.doc_len), spec.sep_id, dtype=np.int64)  # separators stay where not overwritten
    docs[:, : spec.prompt_len] = make_prompts(spec, comps, x)
    for k, start in enumerate(spec.step_starts):
        docs[:, start : start + m] = outputs[:, k]
    return docs


def smallest_uint_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def sample_documents(
    rng: np.random.Generator,
    spec: TaskSpec,
    functions: FunctionTables,
    comps: np.ndarray,
    n: int,
    with_replacement: bool,
) -> np.ndarray:
    """`n` documents, each from a composition chosen uniformly among `comps` with a fresh input."""
    chosen = comps[rng.integers(0, len(comps), size=n)]
    x = sample_inputs(rng, n, spec, with_replacement)
    return make_documents(spec, functions, chosen, x).astype(smallest_uint_dtype(spec.vocab_size))
