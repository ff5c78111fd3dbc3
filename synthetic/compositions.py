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
    """All compositions whose slot k holds one of `choices[k]` (each an (n_k, 2) array of [level, fn]), indexed like
    the (size, L, 2) array they form, without building it."""

    def __init__(self, choices: list[np.ndarray]):
        self.choices = choices
        self.size = prod(len(c) for c in choices)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        """Pool indices (n,) -> compositions (n, L, 2); slot 0 is the most significant digit."""
        rest = np.array(indices, dtype=np.int64)
        out = np.empty((len(rest), len(self.choices), 2), dtype=np.int64)
        for k in reversed(range(len(self.choices))):
            out[:, k] = self.choices[k][rest % len(self.choices[k])]
            rest //= len(self.choices[k])
        return out

    def all(self) -> np.ndarray:
        return self[np.arange(self.size)]


def inorder_choice(k: int, n_functions: int, with_identity: bool) -> np.ndarray:
    return np.array([[k, i] for i in range(0 if with_identity else 1, n_functions + 1)])


def displaced_choice(k: int, depth: int, n_functions: int) -> np.ndarray:
    """A non-identity function of any level but k."""
    pairs = [[d, i] for d in range(depth) if d != k for i in range(1, n_functions + 1)]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)  # (0, 2) when depth is 1


def inorder_compositions(depth: int, n_functions: int) -> np.ndarray:
    """All (N+1)^L in-order compositions, (C, L, 2), lexicographic in the functions."""
    return ProductPool([inorder_choice(k, n_functions, with_identity=True) for k in range(depth)]).all()


def fully_displaced_pool(depth: int, n_functions: int) -> ProductPool:
    """Every slot k holds (d, i) with d != k and i >= 1: ((L-1)·N)^L compositions."""
    return ProductPool([displaced_choice(k, depth, n_functions) for k in range(depth)])


def base_set(depth: int, n_functions: int) -> np.ndarray:
    """The all-identity composition, then every single-function composition: (1 + L·N, L, 2)."""
    identity = np.stack([np.arange(depth), np.zeros(depth, dtype=np.int64)], axis=1)
    out = np.repeat(identity[None], 1 + depth * n_functions, axis=0)
    for k in range(depth):
        out[1 + k * n_functions : 1 + (k + 1) * n_functions, k, 1] = np.arange(1, n_functions + 1)
    return out


def n_functions_of(comps: np.ndarray) -> np.ndarray:
    """Number of non-identity slots of each composition: (C, L, 2) -> (C,)."""
    return (comps[..., 1] > 0).sum(axis=-1)


def displacement_of(comps: np.ndarray) -> np.ndarray:
    """Number of slots holding a function of another level: (C, L, 2) -> (C,)."""
    return (comps[..., 0] != np.arange(comps.shape[-2])).sum(axis=-1)


def composition_keys(comps: np.ndarray) -> list[tuple[int, ...]]:
    """Hashable keys, for set membership."""
    return [tuple(c.reshape(-1).tolist()) for c in comps]


def member_mask(comps: np.ndarray, among: np.ndarray) -> np.ndarray:
    """(C,) bool: which of comps (C, L, 2) are among the compositions `among`."""
    keys = set(composition_keys(among))
    return np.array([key in keys for key in composition_keys(comps)], dtype=bool)


def _sample(rng: np.random.Generator, pool: np.ndarray | ProductPool, n: int) -> np.ndarray:
    """`n` distinct compositions of a pool, uniform without replacement, in pool order."""
    return pool[np.sort(rng.choice(len(pool), size=n, replace=False))]


def _take(rng: np.random.Generator, pool: np.ndarray | ProductPool, n: int, key: str, what: str) -> np.ndarray:
    """`_sample`, or a TaskError that names both numbers when the pool holds fewer than `n`."""
    if n > len(pool):
        raise TaskError(f"{key}={n} exceeds the {len(pool)} {what} available")
    return _sample(rng, pool, n)


def training_compositions(rng: np.random.Generator, depth: int, n_functions: int, strategy: str,
                          n_compositions: int, n_identity: int = 0, n_compositions_inorder: int = 0) -> np.ndarray:
    """The training compositions of one split strategy (docs/task.md §5), (C, L, 2)."""
    if strategy not in STRATEGIES:
        raise TaskError(f"function.split.strategy={strategy!r} is unknown; allowed: {', '.join(STRATEGIES)}")
    key = "function.split.n_compositions"
    inorder, base = inorder_compositions(depth, n_functions), base_set(depth, n_functions)
    outside = "in-order compositions outside the base set"
    if strategy == "random":
        return _take(rng, inorder, n_compositions, key, "in-order compositions")
    if strategy == "random_biased":
        pool = inorder[n_functions_of(inorder) == depth - n_identity]
        return _take(rng, pool, n_compositions, key, f"in-order compositions with exactly {n_identity} identities")
    if strategy == "base":
        return np.concatenate([base, _take(rng, inorder[~member_mask(inorder, base)], n_compositions, key, outside)])
    head = [base[:1]] if strategy == "random_combo" else [base]  # the identity alone, or the whole base set
    if strategy == "randombase_combo":
        head.append(_take(rng, inorder[~member_mask(inorder, base)], n_compositions_inorder,
                          "function.split.n_compositions_inorder", outside))
    displaced = _take(rng, fully_displaced_pool(depth, n_functions), n_compositions, key,
                      "fully displaced compositions")
    return np.concatenate([*head, displaced])


def outorder_patterns(depth: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every (identity slots, displaced slots) pattern; displaced slots are chosen among the non-identity
    slots (docs/task.md §8 fix), so the labels (#identities, displacement) are exact."""
    patterns = []
    for n_id in range(depth + 1):
        for ids in combinations(range(depth), n_id):
            active = [k for k in range(depth) if k not in ids]
            for n_disp in range(len(active) + 1):
                patterns += [(ids, displaced) for displaced in combinations(active, n_disp)]
    return patterns


def pattern_pool(depth: int, n_functions: int, ids: tuple[int, ...], displaced: tuple[int, ...]) -> ProductPool:
    """The identity at the slots `ids`, a function of another level at `displaced`, an in-order function elsewhere."""
    return ProductPool([np.array([[k, 0]]) if k in ids else displaced_choice(k, depth, n_functions) if k in displaced
                        else inorder_choice(k, n_functions, with_identity=False) for k in range(depth)])


def outorder_compositions(rng: np.random.Generator, depth: int, n_functions: int, max_per_pattern: int) -> np.ndarray:
    """Compositions for the out-of-order evaluation, (C, L, 2): per pattern, all of them when the pattern
    holds at most `max_per_pattern`, else that many sampled without replacement. Includes displacement 0
    (in-order) patterns as the reference row of each #identities."""
    parts = []
    for ids, displaced in outorder_patterns(depth):
        pool = pattern_pool(depth, n_functions, ids, displaced)
        parts.append(pool.all() if pool.size <= max_per_pattern else _sample(rng, pool, max_per_pattern))
    return np.concatenate(parts)
