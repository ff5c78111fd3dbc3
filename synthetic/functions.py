"""The functions ("capabilities") of each level, drawn once per dataset (docs/task.md §2).

Every function is stored in one unified form so that applying any of them is the same array operation:
`f(x)_j = table[x[perm[j]]]`. A bijection has `perm` = identity; a position permutation has `table` = identity;
the identity function has both.
"""

from dataclasses import dataclass

import numpy as np

from synthetic.task import TaskSpec

IDENTITY, BIJECTION, PERMUTATION = "identity", "bijection", "permutation"


@dataclass(frozen=True)
class FunctionTables:
    kinds: tuple[tuple[str, ...], ...]  # [level][fn] in {identity, bijection, permutation}
    tables: np.ndarray  # (L, N+1, A) int64: token map of each function
    perms: np.ndarray  # (L, N+1, m) int64: position map of each function

    def apply(self, level: np.ndarray, fn: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Apply function (level[b], fn[b]) to row x[b] for every row; level, fn (n,), x (n, m) -> (n, m)."""
        moved = np.take_along_axis(x, self.perms[level, fn], axis=1)  # (n, m): positions permuted
        return self.tables[level[:, None], fn[:, None], moved]  # (n, m): tokens mapped

    def to_json(self) -> dict:
        levels = []
        for d, kinds in enumerate(self.kinds):
            entries = []
            for i, kind in enumerate(kinds):
                if kind == IDENTITY:
                    entries.append({"kind": IDENTITY})
                elif kind == BIJECTION:
                    entries.append({"kind": BIJECTION, "table": self.tables[d, i].tolist()})
                else:
                    entries.append({"kind": PERMUTATION, "table": self.perms[d, i].tolist()})
            levels.append(entries)
        return {"levels": levels}

    @classmethod
    def from_json(cls, obj: dict, spec: TaskSpec) -> "FunctionTables":
        L, N, A, m = spec.depth, spec.n_functions, spec.n_alphabets, spec.seq_len
        tables = np.tile(np.arange(A), (L, N + 1, 1))
        perms = np.tile(np.arange(m), (L, N + 1, 1))
        kinds = []
        for d, entries in enumerate(obj["levels"]):
            kinds.append(tuple(e["kind"] for e in entries))
            for i, e in enumerate(entries):
                if e["kind"] == BIJECTION:
                    tables[d, i] = e["table"]
                elif e["kind"] == PERMUTATION:
                    perms[d, i] = e["table"]
        return cls(kinds=tuple(kinds), tables=tables, perms=perms)


def _non_identity_permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) other than the identity (why: a drawn 'function' equal to
    the identity would silently make a composition shorter than its label says)."""
    while True:
        p = rng.permutation(n)
        if not np.array_equal(p, np.arange(n)):
            return p


def sample_functions(
    rng: np.random.Generator, spec: TaskSpec, permute_levels: frozenset[int], repeat: bool
) -> FunctionTables:
    """Draw the N non-identity functions of every level.

    Levels in `permute_levels` hold position permutations, the others token bijections. With `repeat`, one
    shared set of N bijections (and one of N permutations, if any level permutes) serves every level.
    """
    L, N, A, m = spec.depth, spec.n_functions, spec.n_alphabets, spec.seq_len
    tables = np.tile(np.arange(A), (L, N + 1, 1))
    perms = np.tile(np.arange(m), (L, N + 1, 1))
    shared: dict[str, list[np.ndarray]] = {}
    kinds = []
    for d in range(L):
        kind = PERMUTATION if d in permute_levels else BIJECTION
        size = m if kind == PERMUTATION else A
        if repeat:
            if kind not in shared:
                shared[kind] = [_non_identity_permutation(rng, size) for _ in range(N)]
            drawn = shared[kind]
        else:
            drawn = [_non_identity_permutation(rng, size) for _ in range(N)]
        target = perms if kind == PERMUTATION else tables
        for i, p in enumerate(drawn, start=1):
            target[d, i] = p
        kinds.append((IDENTITY,) + (kind,) * N)
    return FunctionTables(kinds=tuple(kinds), tables=tables, perms=perms)
