"""Accuracies of one run at one step, replicate runs (same setting, other seeds) read at a common step with their
mean and interval, and the two statistics the dynamics finding needs (the step where a curve first crosses a level,
a rank correlation)."""

import math
from collections import Counter
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from report.estimates import Estimate, estimate
from report.runs import INORDER_STRATEGIES, Run, Table


@dataclass(frozen=True, order=True)
class ByFunctions:
    """In-order compositions of `n_functions` non-identity functions (`unseen`: only those not trained on)."""

    n_functions: int
    unseen: bool = False


@dataclass(frozen=True, order=True)
class ByDisplacement:
    """Out-of-order compositions of one displacement."""

    displacement: int


@dataclass(frozen=True, order=True)
class Cell:
    """Out-of-order compositions of one (#identities, displacement) group."""

    n_identity: int
    displacement: int


# a quantity: a subset named by a word ("all", "train", "unseen", "multi", "displaced") or a structured group
Quantity = str | ByFunctions | ByDisplacement | Cell
Numbers = dict[Quantity, float | None]  # quantity -> value
Q = TypeVar("Q", ByFunctions, ByDisplacement, Cell)


def last_step(table: Table) -> int:
    return int(table["step"].max())


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def inorder_numbers(run: Run, metric: str, step: int) -> Numbers:
    """In-order accuracy at `step`: over all compositions ("all"), the training ones ("train"), the unseen ones
    ("unseen"), those of >= 2 functions ("multi"), and per #functions k over all of them (ByFunctions(k)) and over
    the unseen ones (ByFunctions(k, unseen=True))."""
    t = run.inorder
    at, unseen = t["step"] == step, ~t["in_train"]
    acc, n_fn = t[metric], t["n_functions"]
    ks = np.unique(n_fn).tolist()
    return {"all": _mean(acc, at), "train": _mean(acc, at & t["in_train"]), "unseen": _mean(acc, at & unseen),
            "multi": _mean(acc, at & (n_fn >= 2)), **{ByFunctions(k): _mean(acc, at & (n_fn == k)) for k in ks},
            **{ByFunctions(k, unseen=True): _mean(acc, at & unseen & (n_fn == k)) for k in ks}}


def outorder_numbers(run: Run, metric: str, step: int) -> Numbers:
    """Out-of-order accuracy at `step`: over displacement >= 1 ("displaced"), per displacement d (ByDisplacement(d))
    and per (#identities i, displacement d) group (Cell(i, d))."""
    t = run.outorder
    at = t["step"] == step
    acc, n_id, disp = t[metric], t["n_identity"], t["displacement"]
    cells = sorted(set(zip(n_id[at].tolist(), disp[at].tolist(), strict=True)))
    return {"displaced": _mean(acc, at & (disp >= 1)),
            **{ByDisplacement(d): _mean(acc, at & (disp == d)) for d in np.unique(disp[at]).tolist()},
            **{Cell(i, d): _mean(acc, at & (n_id == i) & (disp == d)) for i, d in cells}}


def accuracy_train(run: Run, metric: str, step: int) -> float | None:
    """Accuracy on the run's own (in-order) training compositions at `step`; None when its in-order evaluation
    has no such checkpoint or no training composition."""
    if run.inorder is None or not (run.inorder["step"] == step).any():
        return None
    return inorder_numbers(run, metric, step)["train"]


def common_step(runs: list[Run], table: str) -> int:
    """The step at which most of the runs' `table` ("inorder" or "outorder") was evaluated, the latest of those:
    the last step they all share when there is one."""
    counts = Counter(s for r in runs for s in set(getattr(r, table)["step"].tolist()))
    return max(counts, key=lambda s: (counts[s], s))


@dataclass(frozen=True)
class Point:
    """A setting's replicate runs read at one common training step: each run's numbers, its accuracy on its own
    training compositions, and their means with intervals."""

    label: str
    step: int
    runs: tuple[Run, ...]  # the replicates evaluated at `step`
    numbers: tuple[Numbers, ...]  # per run
    train: tuple[float | None, ...]  # per run: accuracy on its own training compositions at `step`
    confidence: float
    dropped: tuple[str, ...] = ()  # replicates not evaluated at `step`

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def tags(self) -> list[str]:
        return [r.tag for r in self.runs]

    def estimate(self, key: Quantity) -> Estimate:
        return estimate([n.get(key) for n in self.numbers], self.confidence)

    def quantities(self, kind: type[Q]) -> list[Q]:
        """The groups of one kind (ByFunctions, ByDisplacement, Cell) in the first replicate's numbers, sorted."""
        return sorted(q for q in self.numbers[0] if isinstance(q, kind))

    def train_estimate(self) -> Estimate:
        return estimate(self.train, self.confidence)

    @property
    def train_min(self) -> float | None:
        """The lowest replicate's accuracy on its training compositions (None when one is unknown)."""
        return None if None in self.train or not self.train else min(self.train)

    def unfit(self, fit_min: float) -> list[str]:
        """'tag (0.612)' for each replicate below fit_min on its own training compositions ('tag (not evaluated)'
        when that accuracy is unknown)."""
        return [f"{r.tag} ({'not evaluated' if a is None else f'{a:.3f}'})" for r, a in zip(self.runs, self.train,
                strict=True) if a is None or a < fit_min]


@dataclass(frozen=True)
class Group:
    """Replicate runs of one setting (every config key equal but the seeds, report.runs.SEED_KEYS)."""

    runs: tuple[Run, ...]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def label(self) -> str:
        return f"{self.first.format} {self.first.split_label}, {self.first.arch}"

    @property
    def inorder_training(self) -> bool:
        return self.first.strategy in INORDER_STRATEGIES

    @property
    def n_train(self) -> int:
        return self.first.n_train

    def evaluated(self, table: str) -> list[Run]:
        return [r for r in self.runs if getattr(r, table) is not None]

    def _point(self, table: str, metric: str, confidence: float, step: int | None = None) -> Point | None:
        evaluated = self.evaluated(table)
        if not evaluated:
            return None
        step = common_step(evaluated, table) if step is None else step
        runs = [r for r in evaluated if (getattr(r, table)["step"] == step).any()]
        read = inorder_numbers if table == "inorder" else outorder_numbers
        return Point(self.label, step, tuple(runs), tuple(read(r, metric, step) for r in runs),
                     tuple(accuracy_train(r, metric, step) for r in runs), confidence,
                     tuple(r.tag for r in self.runs if r not in runs))

    def inorder_point(self, metric: str, confidence: float, step: int | None = None) -> Point | None:
        """The in-order numbers at the replicates' common step (or `step`); None without in-order results."""
        return self._point("inorder", metric, confidence, step)

    def outorder_point(self, metric: str, confidence: float) -> Point | None:
        """The out-of-order numbers at the replicates' common step; None without out-of-order results."""
        return self._point("outorder", metric, confidence)

    def curve(self, metric: str, confidence: float) -> list[Point]:
        """inorder_point at every step of the densest checkpoint grid among the replicates, over the replicates
        evaluated on exactly that grid (averaging replicates evaluated at other steps would give a jagged mean)."""
        evaluated = self.evaluated("inorder")
        if not evaluated:
            return []
        grids = [tuple(sorted(set(r.inorder["step"].tolist()))) for r in evaluated]
        densest = max(grids, key=len)
        runs = [r for r, grid in zip(evaluated, grids, strict=True) if grid == densest]
        return [Point(self.label, s, tuple(runs), tuple(inorder_numbers(r, metric, s) for r in runs),
                      tuple(accuracy_train(r, metric, s) for r in runs), confidence,
                      tuple(r.tag for r in self.runs if r not in runs)) for s in densest]

    def n_steps(self) -> int:
        """Checkpoints of the densest in-order evaluation among the replicates."""
        return max((len(set(r.inorder["step"].tolist())) for r in self.evaluated("inorder")), default=0)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by setting, in the order their first run appears."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.setting, []).append(run)
    return [Group(tuple(g)) for g in groups.values()]


def first_crossing(steps: list[int], accs: list[float | None], level: float) -> float:
    """The training step at which the curve first reaches `level`, linearly interpolated between checkpoints
    (fewer ties than the raw checkpoint step); inf when it never does."""
    prev = None
    for step, acc in zip(steps, accs, strict=True):
        if acc is None:
            continue
        if acc >= level:
            if prev is None or prev[1] == acc:
                return float(step)
            s0, a0 = prev
            return s0 + (level - a0) / (acc - a0) * (step - s0)
        prev = (step, acc)
    return math.inf


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their mean rank (inf ranks last)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    for value in np.unique(values):
        tie = values == value
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (ties averaged); nan when either side has a single distinct value."""
    rx, ry = _ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float))
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])
