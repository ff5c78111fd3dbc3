"""The statistics of the report: a number over replicate runs (seeds) with its Student-t interval (mean_ci,
Estimate), a criterion judged at both ends of that interval (Check), replicate runs read at a common step (Group,
Point), and the two statistics of finding 5's context (the step where a curve first crosses a level, a rank
correlation).

A criterion `value >= threshold` (or <=) is evaluated three ways: at the mean, at the interval's end least
favourable to it (conservative) and at the end most favourable (optimistic). It

  holds    at the conservative end (so at the mean and the optimistic end too);
  fails    even at the optimistic end (the interval excludes it holding);
  fragile  otherwise: the interval straddles the threshold (the mean may pass or fail);
  missing  no run has the value (e.g. no unseen composition): nothing is decided.

A difference of two estimates takes interval arithmetic (low = a.low - b.high, high = a.high - b.low): it assumes
no pairing between the two settings' seeds, so it is conservative. One run has no interval: its ends are its value.
"""

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from report.runs import (
    INORDER_STRATEGIES,
    Numbers,
    Q,
    Quantity,
    Run,
    accuracy_train,
    inorder_numbers,
    outorder_numbers,
)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float | None, float | None, int]:
    """Mean and two-sided Student-t interval, mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n) with s the sample
    standard deviation (ddof=1); returns (mean, low, high, n).

    NaN values are left out and not counted in n (a seed without the quantity); infinities raise ValueError (a
    "never" has no mean: decide before averaging). n = 1 gives (value, None, None, 1): one seed has no interval;
    n = 0 gives (nan, None, None, 0)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1)")
    x = np.asarray(list(values), dtype=float)
    if np.isinf(x).any():
        raise ValueError("mean_ci of infinite values")
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, None, None, 0
    mean = float(x.mean())
    if n == 1:
        return mean, None, None, 1
    half = float(student_t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


HOLDS, FRAGILE, FAILS, MISSING = "holds", "fragile", "fails", "not measured"
INTERVAL_METHODS = {  # what each interval bounds -> its method: findings.md, report.md and REPRODUCTION.md name these
    "accuracy over seeds": "Student-t over the replicates, mean ± t·s/√n (mean_ci)",
    "difference of two settings": "interval arithmetic, low = a.low − b.high, no pairing of seeds (Estimate.__sub__)"}


@dataclass(frozen=True)
class Estimate:
    """Mean of one quantity over replicate runs, with its interval (None with fewer than two values)."""

    mean: float
    low: float | None
    high: float | None
    n: int  # runs that have the quantity

    @property
    def ends(self) -> tuple[float, float]:
        """(low, high), the mean itself when there is no interval."""
        return (self.mean if self.low is None else self.low), (self.mean if self.high is None else self.high)

    def __sub__(self, other: "Estimate") -> "Estimate":
        (a_low, a_high), (b_low, b_high) = self.ends, other.ends
        both = self.low is not None and other.low is not None
        return Estimate(self.mean - other.mean, a_low - b_high if both else None, a_high - b_low if both else None,
                        min(self.n, other.n))

    def text(self) -> str:
        """'0.952 [0.931, 0.973]', '0.952 (1 run)' or '–' (no run has it)."""
        if self.n == 0:
            return "–"
        if self.low is None:
            return f"{self.mean:.3f} (1 run)"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def estimate(values: Iterable[float | None], confidence: float) -> Estimate:
    """The mean and interval of the values that are not None."""
    mean, low, high, n = mean_ci([math.nan if v is None else v for v in values], confidence)
    return Estimate(mean, low, high, n)


@dataclass(frozen=True)
class Check:
    """One criterion: `value` compared with `threshold` by `op` ('>=' or '<=')."""

    name: str  # what is compared, e.g. "unseen accuracy, random 50"
    value: Estimate
    op: str
    threshold: float

    @property
    def state(self) -> str:
        low, high = self.value.ends
        conservative, optimistic = (low, high) if self.op == ">=" else (-high, -low)
        threshold = self.threshold if self.op == ">=" else -self.threshold
        if self.value.n == 0:
            return MISSING
        if optimistic < threshold:
            return FAILS
        return HOLDS if conservative >= threshold else FRAGILE

    def text(self) -> str:
        return f"{self.name} {self.value.text()} {self.op} {self.threshold:g}: {self.state}"

    def record(self) -> dict:
        """findings.json: the numbers behind the check."""
        v = self.value
        return {"name": self.name, "mean": None if v.n == 0 else v.mean, "ci_low": v.low, "ci_high": v.high,
                "n_runs": v.n, "op": self.op, "threshold": self.threshold, "state": self.state}


def all_of(states: Iterable[str]) -> str:
    """Every criterion must hold: one unmeasured criterion decides nothing, else one failure fails, else one
    fragile criterion makes the whole fragile."""
    states = list(states)
    return next((s for s in (MISSING, FAILS, FRAGILE) if s in states), HOLDS)


# ---- replicates read at a common step ----


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

    def _read(self, runs: list[Run], table: str, metric: str, confidence: float, step: int) -> Point:
        """`runs`, replicates evaluated at `step`, read there; the others are dropped."""
        read = inorder_numbers if table == "inorder" else outorder_numbers
        return Point(self.label, step, tuple(runs), tuple(read(r, metric, step) for r in runs),
                     tuple(accuracy_train(r, metric, step) for r in runs), confidence,
                     tuple(r.tag for r in self.runs if r not in runs))

    def _point(self, table: str, metric: str, confidence: float, step: int | None = None) -> Point | None:
        evaluated = self.evaluated(table)
        if not evaluated:
            return None
        step = common_step(evaluated, table) if step is None else step
        return self._read([r for r in evaluated if (getattr(r, table)["step"] == step).any()], table, metric,
                          confidence, step)

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
        return [self._read(runs, "inorder", metric, confidence, s) for s in densest]

    def n_steps(self) -> int:
        """Checkpoints of the densest in-order evaluation among the replicates."""
        return max((len(set(r.inorder["step"].tolist())) for r in self.evaluated("inorder")), default=0)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by setting, in the order their first run appears."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.setting, []).append(run)
    return [Group(tuple(g)) for g in groups.values()]


# ---- finding 5's context: where a curve first crosses a level, a rank correlation ----


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
