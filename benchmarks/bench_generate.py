"""Documents/s of the vectorized generator against a straightforward per-document loop (the reference's way)."""

import argparse
import time

import numpy as np

from synthetic.compositions import training_compositions
from synthetic.documents import sample_documents
from synthetic.functions import FunctionTables, sample_functions
from synthetic.task import TaskSpec


def naive_documents(rng: np.random.Generator, spec: TaskSpec, functions: FunctionTables, comps: np.ndarray,
                    n: int) -> list[list[int]]:
    """One Python loop iteration per document, as the reference pipeline built them."""
    docs = []
    for _ in range(n):
        comp = comps[rng.integers(len(comps))]
        x = [int(t) for t in rng.integers(0, spec.n_alphabets, spec.seq_len)]
        doc = [spec.start_id] + [spec.task_token(int(d), int(i)) for d, i in comp] + [spec.sep_id] + x + [spec.sep_id]
        y = x
        for k, (d, i) in enumerate(comp):
            y = [int(functions.tables[d, i][y[j]]) for j in functions.perms[d, i]]
            if not spec.direct:
                doc += y + ([spec.sep_id] if k < spec.depth - 1 else [])
        if spec.direct:
            doc += y
        docs.append(doc)
    return docs


def best_of(fn, repeats: int, clock=time.perf_counter) -> float:
    """Fastest of `repeats` calls of fn, in seconds of `clock` (wall time by default)."""

    def once() -> float:
        start = clock()
        fn()
        return clock() - start

    return min(once() for _ in range(repeats))


def run(args: argparse.Namespace) -> None:
    spec = TaskSpec(n_alphabets=10, seq_len=6, depth=5, n_functions=3)
    rng = np.random.default_rng(0)
    functions = sample_functions(rng, spec, frozenset(), repeat=False)
    comps = training_compositions(rng, spec.depth, spec.n_functions, "random", 50)
    n_fast, n_naive = args.documents, max(args.documents // 20, 1000)
    fast = best_of(lambda: sample_documents(rng, spec, functions, comps, n_fast, True), args.repeats)
    naive = best_of(lambda: naive_documents(rng, spec, functions, comps, n_naive), args.repeats)
    fast_rate, naive_rate = n_fast / fast, n_naive / naive
    print(f"generate  default task (A=10, m=6, L=5, N=3, step-by-step), best of {args.repeats}")
    print(f"  project (vectorized) : {fast_rate:>12,.0f} documents/s  ({n_fast:,} docs in {fast:.3f} s)")
    print(f"  reference (per-doc)  : {naive_rate:>12,.0f} documents/s  ({n_naive:,} docs in {naive:.3f} s)")
    print(f"  ratio                : {fast_rate / naive_rate:>12.1f}x")
    print(f"  default 120k docs    : {120_000 / fast_rate:.3f} s (project) vs {120_000 / naive_rate:.1f} s (reference)")
