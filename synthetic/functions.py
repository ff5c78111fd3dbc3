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
        def entry(d: int, i: int, kind: str) -> dict:
            if kind == IDENTITY:
                return {"kind": kind}
            return {"kind": kind, "table": (self.tables if kind == BIJECTION else self.perms)[d, i].tolist()}

        return {"levels": [[entry(d, i, kind) for i, kind in enumerate(kinds)] for d, kinds in enumerate(self.kinds)]}

    @classmethod
    def from_json(cls, obj: dict, spec: TaskSpec) -> "FunctionTables":
        tables, perms = _identity_maps(spec)
        for d, entries in enumerate(obj["levels"]):
            for i, e in enumerate(entries):
                if e["kind"] in (BIJECTION, PERMUTATION):
                    (tables if e["kind"] == BIJECTION else perms)[d, i] = e["table"]
        return cls(kinds=tuple(tuple(e["kind"] for e in entries) for entries in obj["levels"]), tables=tables,
                   perms=perms)


def _identity_maps(spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Token maps (L, N+1, A) and position maps (L, N+1, m) of identities only, to fill in."""
    L, N = spec.depth, spec.n_functions
    return np.tile(np.arange(spec.n_alphabets), (L, N + 1, 1)), np.tile(np.arange(spec.seq_len), (L, N + 1, 1))


def _non_identity_permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) other than the identity (why: a drawn 'function' equal to
    the identity would silently make a composition shorter than its label says)."""
    while True:
        p = rng.permutation(n)
        if not np.array_equal(p, np.arange(n)):
            return p


def sample_functions(rng: np.random.Generator, spec: TaskSpec, permute_levels: frozenset[int],
                     repeat: bool) -> FunctionTables:
    """Draw the N non-identity functions of every level.

    Levels in `permute_levels` hold position permutations, the others token bijections. With `repeat`, one
    shared set of N bijections (and one of N permutations, if any level permutes) serves every level.
    """
    tables, perms = _identity_maps(spec)
    drawn: dict[str, list[np.ndarray]] = {}
    kinds = []
    for d in range(spec.depth):
        kind = PERMUTATION if d in permute_levels else BIJECTION
        if kind not in drawn or not repeat:
            size = spec.seq_len if kind == PERMUTATION else spec.n_alphabets
            drawn[kind] = [_non_identity_permutation(rng, size) for _ in range(spec.n_functions)]
        (perms if kind == PERMUTATION else tables)[d, 1:] = drawn[kind]
        kinds.append((IDENTITY,) + (kind,) * spec.n_functions)
    return FunctionTables(kinds=tuple(kinds), tables=tables, perms=perms)
