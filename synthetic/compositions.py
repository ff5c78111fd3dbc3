"""Compositions, their pools and the training splits (docs/task.md §3 and §5).

A composition is an int array (L, 2): slot k holds [level, fn]; fn 0 is the identity, always written (k, 0).
Batches of compositions are (C, L, 2). Every pool is a product of per-slot choices, enumerated in a fixed
(lexicographic) order, so sampling is "pick indices from a sorted pool" with the dataset's own generator.
"""

from itertools import combinations
from math import prod

import numpy as np

from core.errors import TaskError

STRATEGIES = ("random", "base", "random_biased", "random_combo", "base_combo", "randombase_combo")


class ProductPool:
    """All compositions whose slot k holds one of `choices[k]` (each an (n_k, 2) array of [level, fn])."""

    def __init__(self, choices: list[np.ndarray]):
        self.choices = choices
        self.radices = [len(c) for c in choices]
        self.size = prod(self.radices)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """Pool indices (n,) -> compositions (n, L, 2); slot 0 is the most significant digit."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), len(self.choices), 2), dtype=np.int64)
        rest = indices.copy()
        for k in reversed(range(len(self.choices))):
            out[:, k] = self.choices[k][rest % self.radices[k]]
            rest //= self.radices[k]
        return out

    def all(self) -> np.ndarray:
        return self.decode(np.arange(self.size))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` distinct compositions, uniform without replacement, in pool order."""
        return self.decode(np.sort(rng.choice(self.size, size=n, replace=False)))


def identity_choice(k: int) -> np.ndarray:
    return np.array([[k, 0]])


def inorder_choice(k: int, n_functions: int, with_identity: bool) -> np.ndarray:
    first = 0 if with_identity else 1
    return np.array([[k, i] for i in range(first, n_functions + 1)])


def displaced_choice(k: int, depth: int, n_functions: int) -> np.ndarray:
    """A non-identity function of any level but k."""
    pairs = [[d, i] for d in range(depth) if d != k for i in range(1, n_functions + 1)]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)  # (0, 2) when depth is 1


def inorder_pool(depth: int, n_functions: int) -> ProductPool:
    return ProductPool([inorder_choice(k, n_functions, with_identity=True) for k in range(depth)])


def inorder_compositions(depth: int, n_functions: int) -> np.ndarray:
    """All (N+1)^L in-order compositions, (C, L, 2), lexicographic in the functions."""
    return inorder_pool(depth, n_functions).all()


def fully_displaced_pool(depth: int, n_functions: int) -> ProductPool:
    """Every slot k holds (d, i) with d != k and i >= 1: ((L-1)·N)^L compositions."""
    return ProductPool([displaced_choice(k, depth, n_functions) for k in range(depth)])


def base_set(depth: int, n_functions: int) -> np.ndarray:
    """The all-identity composition, then every single-function composition: (1 + L·N, L, 2)."""
    identity = np.stack([np.arange(depth), np.zeros(depth, dtype=np.int64)], axis=1)
    out = [identity]
    for k in range(depth):
        for i in range(1, n_functions + 1):
            comp = identity.copy()
            comp[k, 1] = i
            out.append(comp)
    return np.stack(out)


def n_functions_of(comps: np.ndarray) -> np.ndarray:
    """Number of non-identity slots of each composition: (C, L, 2) -> (C,)."""
    return (comps[..., 1] > 0).sum(axis=-1)


def displacement_of(comps: np.ndarray) -> np.ndarray:
    """Number of slots holding a function of another level: (C, L, 2) -> (C,)."""
    return (comps[..., 0] != np.arange(comps.shape[-2])).sum(axis=-1)


def composition_keys(comps: np.ndarray) -> list[tuple[int, ...]]:
    """Hashable keys, for set membership."""
    return [tuple(c.reshape(-1).tolist()) for c in comps]


def _take(rng: np.random.Generator, pool: np.ndarray, n: int, key: str, what: str) -> np.ndarray:
    """`n` distinct rows of a sorted pool array, or a TaskError that names both numbers."""
    if n > len(pool):
        raise TaskError(f"{key}={n} exceeds the {len(pool)} {what} available")
    return pool[np.sort(rng.choice(len(pool), size=n, replace=False))]


def _fully_displaced(rng: np.random.Generator, depth: int, n_functions: int, n: int) -> np.ndarray:
    pool = fully_displaced_pool(depth, n_functions)
    if n > pool.size:
        raise TaskError(
            f"function.split.n_compositions={n} exceeds the {pool.size} fully displaced compositions available"
        )
    return pool.sample(rng, n)


def _outside(pool: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    drop = set(composition_keys(excluded))
    keep = [k not in drop for k in composition_keys(pool)]
    return pool[np.array(keep, dtype=bool)]


def training_compositions(
    rng: np.random.Generator,
    depth: int,
    n_functions: int,
    strategy: str,
    n_compositions: int,
    n_identity: int = 0,
    n_compositions_inorder: int = 0,
) -> np.ndarray:
    """The training compositions of one split strategy (docs/task.md §5), (C, L, 2)."""
    key = "function.split.n_compositions"
    inorder = inorder_compositions(depth, n_functions)
    base = base_set(depth, n_functions)
    identity = base[:1]
    if strategy == "random":
        return _take(rng, inorder, n_compositions, key, "in-order compositions")
    if strategy == "base":
        others = _take(rng, _outside(inorder, base), n_compositions, key, "in-order compositions outside the base set")
        return np.concatenate([base, others])
    if strategy == "random_biased":
        pool = inorder[n_functions_of(inorder) == depth - n_identity]
        what = f"in-order compositions with exactly {n_identity} identities"
        return _take(rng, pool, n_compositions, key, what)
    if strategy == "random_combo":
        return np.concatenate([identity, _fully_displaced(rng, depth, n_functions, n_compositions)])
    if strategy == "base_combo":
        return np.concatenate([base, _fully_displaced(rng, depth, n_functions, n_compositions)])
    if strategy == "randombase_combo":
        others = _take(
            rng,
            _outside(inorder, base),
            n_compositions_inorder,
            "function.split.n_compositions_inorder",
            "in-order compositions outside the base set",
        )
        return np.concatenate([base, others, _fully_displaced(rng, depth, n_functions, n_compositions)])
    raise TaskError(f"function.split.strategy={strategy!r} is unknown; allowed: {', '.join(STRATEGIES)}")


def outorder_patterns(depth: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every (identity slots, displaced slots) pattern; displaced slots are chosen among the non-identity
    slots (docs/task.md §8 fix), so the labels (#identities, displacement) are exact."""
    patterns = []
    for n_id in range(depth + 1):
        for ids in combinations(range(depth), n_id):
            active = [k for k in range(depth) if k not in ids]
            for n_disp in range(len(active) + 1):
                for displaced in combinations(active, n_disp):
                    patterns.append((ids, displaced))
    return patterns


def pattern_pool(depth: int, n_functions: int, ids: tuple[int, ...], displaced: tuple[int, ...]) -> ProductPool:
    choices = []
    for k in range(depth):
        if k in ids:
            choices.append(identity_choice(k))
        elif k in displaced:
            choices.append(displaced_choice(k, depth, n_functions))
        else:
            choices.append(inorder_choice(k, n_functions, with_identity=False))
    return ProductPool(choices)


def outorder_compositions(
    rng: np.random.Generator, depth: int, n_functions: int, max_per_pattern: int
) -> np.ndarray:
    """Compositions for the out-of-order evaluation, (C, L, 2): per pattern, all of them when the pattern
    holds at most `max_per_pattern`, else that many sampled without replacement. Includes displacement 0
    (in-order) patterns as the reference row of each #identities."""
    parts = []
    for ids, displaced in outorder_patterns(depth):
        pool = pattern_pool(depth, n_functions, ids, displaced)
        parts.append(pool.all() if pool.size <= max_per_pattern else pool.sample(rng, max_per_pattern))
    return np.concatenate(parts)
