"""The statistics of the report: a number over replicate runs (seeds) with its 95% interval (Estimate; METHODS names
each kind of interval), a criterion judged at both ends of that interval (Check), replicate runs read at a common step
(Group, Point), the difference of two settings (difference), and the two statistics of finding 5's context (the step
where a curve first crosses a level, a rank correlation).

A criterion `value >= threshold` (or <=) is evaluated three ways: at the mean, at the interval's end least
favourable to it (conservative) and at the end most favourable (optimistic). It

  holds    at the conservative end (so at the mean and the optimistic end too);
  fails    even at the optimistic end (the interval excludes it holding);
  fragile  otherwise: the interval straddles the threshold (the mean may pass or fail);
  missing  no run has the value (e.g. no unseen composition): nothing is decided.

An accuracy's interval stays inside [0, 1] (logit_ci); the difference of two settings gets an interval of the
difference itself, paired by seed where the replicates share their function tables and training compositions, Welch's
otherwise (difference), never interval arithmetic. One run has no interval: its ends are its value.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import rankdata
from scipy.stats import t as student_t

from report.runs import Numbers, Q, Quantity, Run, accuracy_train, inorder_numbers, outorder_numbers


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
    if n < 2:
        return (float(x[0]) if n else math.nan), None, None, n
    mean = float(x.mean())
    half = float(student_t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


T, LOGIT_T, PAIRED_T, WELCH_T = "t", "logit-t", "paired-t", "welch-t"
METHODS = {  # each interval's method (findings.json "method"), in words
    LOGIT_T: "an accuracy: Student-t on the logit scale, mapped back into [0, 1] (accuracies within 0.001 of 0 or 1 "
             "taken as 0.001 from it)",
    PAIRED_T: "a difference of two settings whose replicates share their function tables and training compositions "
              "seed by seed: Student-t on the per-seed differences",
    WELCH_T: "a difference of two settings whose replicates do not: Welch's t",
    T: "any other number (a slope, a logit gap): Student-t, mean ± t·s/√n",
}
EPS = 1e-3  # logit_ci's clipping: about what an accuracy resolves (printed to 0.001; hundreds of samples per group)


def _clean(values: Iterable[float | None]) -> np.ndarray:
    """The values as floats, None and NaN left out."""
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    return x[~np.isnan(x)]


def logit_ci(values: Iterable[float | None], confidence: float = 0.95) -> tuple[float, float | None, float | None, int]:
    """Mean and an interval inside [0, 1] for accuracies: mean_ci of the logits, mapped back (returns (mean, low, high,
    n) as mean_ci). A logit-t rather than a bootstrap percentile interval: with 3 to 5 seeds a bootstrap has 10 to 126
    distinct resamples and no allowance for an estimated spread (too narrow), while the logit keeps t's small-sample
    width and bends it towards the bounds. Values are clipped to [EPS, 1 - EPS] first (a logit of 0 or 1 is infinite),
    an end within EPS of 0 or 1 is that bound, identical replicates (all 1.0, all 0.0) give their value as both ends,
    and the interval holds the mean."""
    x = _clean(values)
    mean, low, high, n = mean_ci(x, confidence)
    if low is None or np.ptp(x) == 0:
        return mean, low, high, n
    _, z_low, z_high, _ = mean_ci(logit(np.clip(x, EPS, 1 - EPS)), confidence)

    def back(z: float) -> float:
        p = float(expit(z))
        return 0.0 if p <= EPS * (1 + 1e-9) else 1.0 if p >= 1 - EPS * (1 + 1e-9) else p

    return mean, min(back(z_low), mean), max(back(z_high), mean), n


def welch_ci(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float | None, float | None, int]:
    """mean(a) - mean(b) and Welch's t-interval: ± t_{(1+confidence)/2, ν} · se, se² = s_a²/n_a + s_b²/n_b, ν by
    Welch-Satterthwaite; no interval when a side has one value; n: the smaller side."""
    n = min(len(a), len(b))
    mean = float(a.mean() - b.mean()) if n else math.nan
    if n < 2:
        return mean, None, None, n
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return mean, mean, mean, n
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(student_t.ppf((1 + confidence) / 2, df) * math.sqrt(va + vb))
    return mean, mean - half, mean + half, n


HOLDS, FRAGILE, FAILS, MISSING = "holds", "fragile", "fails", "not measured"
@dataclass(frozen=True)
class Estimate:
    """Mean of one quantity over replicate runs, with its interval (None with fewer than two values) and the
    interval's method (METHODS)."""

    mean: float
    low: float | None
    high: float | None
    n: int  # runs that have the quantity (a difference: pairs, or the smaller setting's runs)
    method: str = T

    @property
    def ends(self) -> tuple[float, float]:
        """(low, high), the mean itself when there is no interval."""
        return (self.mean if self.low is None else self.low), (self.mean if self.high is None else self.high)

    def text(self) -> str:
        """'0.952 [0.931, 0.973]', '0.952 (1 run)' or '–' (no run has it)."""
        if self.n == 0:
            return "–"
        if self.low is None:
            return f"{self.mean:.3f} (1 run)"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def estimate(values: Iterable[float | None], confidence: float, method: str = T) -> Estimate:
    """The mean and interval of the values that are not None: Student-t (T), or inside [0, 1] (LOGIT_T, accuracies)."""
    mean, low, high, n = (logit_ci if method == LOGIT_T else mean_ci)(_clean(values), confidence)
    return Estimate(mean, low, high, n, method)


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
        """'name 0.952 [0.931, 0.973] (logit-t) >= 0.9: holds'."""
        method = f" ({self.value.method})" if self.value.low is not None else ""
        return f"{self.name} {self.value.text()}{method} {self.op} {self.threshold:g}: {self.state}"

    def record(self) -> dict:
        """findings.json: the numbers behind the check."""
        v = self.value
        return {"name": self.name, "mean": None if v.n == 0 else v.mean, "ci_low": v.low, "ci_high": v.high,
                "n_runs": v.n, "method": None if v.low is None else v.method, "op": self.op,
                "threshold": self.threshold, "state": self.state}


def all_of(states: Iterable[str]) -> str:
    """Every criterion must hold: one unmeasured criterion decides nothing, else one failure fails, else one
    fragile criterion makes the whole fragile."""
    states = list(states)
    return next((s for s in (MISSING, FAILS, FRAGILE) if s in states), HOLDS)


# ---- replicates read at a common step ----


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

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def tags(self) -> list[str]:
        return [r.tag for r in self.runs]

    @property
    def n_train(self) -> int:
        return self.runs[0].n_train  # the replicates share their dataset settings

    def values(self, key: Quantity) -> list[float | None]:
        """Each replicate's accuracy `key` (None where it has none)."""
        return [n.get(key) for n in self.numbers]

    def estimate(self, key: Quantity) -> Estimate:
        """The replicates' mean accuracy `key`, its interval inside [0, 1] (logit_ci)."""
        return estimate(self.values(key), self.confidence, LOGIT_T)

    def quantities(self, kind: type[Q]) -> list[Q]:
        """The groups of one kind (ByFunctions, ByDisplacement, Cell) in the first replicate's numbers, sorted."""
        return sorted(q for q in self.numbers[0] if isinstance(q, kind))

    def train_estimate(self) -> Estimate:
        return estimate(self.train, self.confidence, LOGIT_T)

    @property
    def train_min(self) -> float | None:
        """The lowest replicate's accuracy on its training compositions (None when one is unknown)."""
        return None if None in self.train or not self.train else min(self.train)

    def unfit(self, fit_min: float) -> list[str]:
        """'tag (0.612)' for each replicate below fit_min on its own training compositions ('tag (not evaluated)'
        when that accuracy is unknown)."""
        return [f"{r.tag} ({'not evaluated' if a is None else f'{a:.3f}'})" for r, a in zip(self.runs, self.train,
                strict=True) if a is None or a < fit_min]


DRAWN_BY = ("seed", "n_alphabets", "seq_len", "function")
"""The dataset settings (run.json "data") that draw its function tables and its training compositions
(synthetic/dataset.py generate_dataset: the functions from the seed and the task, the split from the seed and
`function.split`): two runs equal in all of them share both, whatever else differs (the format, the corpus sizes)."""


def seed_pairs(a: Sequence[Run], b: Sequence[Run]) -> list[tuple[int, int]] | None:
    """(i, j) for each replicate a[i] and the replicate b[j] that shares its function tables and training
    compositions (DRAWN_BY); None unless that pairs every replicate of each side with exactly one of the other."""
    ka, kb = ([json.dumps({k: r.data.get(k) for k in DRAWN_BY}, sort_keys=True) for r in rs] for rs in (a, b))
    if len(set(ka)) != len(ka) or sorted(ka) != sorted(kb):
        return None
    return [(i, kb.index(k)) for i, k in enumerate(ka)]


def difference(a: Point, b: Point, key: Quantity, key_b: Quantity | None = None) -> Estimate:
    """Accuracy `key` of a's replicates minus `key_b` (default `key`) of b's, with a 95% interval of the difference
    itself: paired by seed (PAIRED_T: Student-t on the per-seed differences, pairs lacking a value left out) where
    seed_pairs pairs the two settings' replicates (a point with itself pairs each run with itself), else Welch's
    (WELCH_T, each side's values). Clipped to [-1, 1], where a difference of accuracies lies."""
    xa, xb = a.values(key), b.values(key if key_b is None else key_b)
    pairs = [(i, i) for i in range(a.n)] if a.tags == b.tags else seed_pairs(a.runs, b.runs)
    if pairs is not None:
        diffs = [xa[i] - xb[j] for i, j in pairs if xa[i] is not None and xb[j] is not None]
        (mean, low, high, n), method = mean_ci(diffs, a.confidence), PAIRED_T
    else:
        (mean, low, high, n), method = welch_ci(_clean(xa), _clean(xb), a.confidence), WELCH_T
    if low is not None:
        low, high = max(low, -1.0), min(high, 1.0)
    return Estimate(mean, low, high, n, method)


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
    def n_train(self) -> int:
        return self.first.n_train

    def evaluated(self, table: str) -> list[Run]:
        return [r for r in self.runs if getattr(r, table) is not None]

    def _read(self, runs: list[Run], table: str, metric: str, confidence: float, step: int) -> Point:
        if table == "inorder":  # the in-order numbers hold the accuracy on the training compositions already
            numbers = tuple(inorder_numbers(r, metric, step) for r in runs)
            train = tuple(n["train"] for n in numbers)
        else:
            numbers = tuple(outorder_numbers(r, metric, step) for r in runs)
            train = tuple(accuracy_train(r, metric, step) for r in runs)
        return Point(self.label, step, tuple(runs), numbers, train, confidence)

    def point(self, table: str, metric: str, confidence: float, step: int | None = None) -> Point | None:
        """The numbers of `table` ("inorder", "outorder") at `step`, by default the replicates' common step: the
        step at which most of them were evaluated, the latest of those (the last step they all share when there is
        one); the replicates not evaluated there left out; None without results of that table."""
        evaluated = self.evaluated(table)
        if not evaluated:
            return None
        counts = Counter(s for r in evaluated for s in set(getattr(r, table)["step"].tolist()))
        step = max(counts, key=lambda s: (counts[s], s)) if step is None else step
        return self._read([r for r in evaluated if (getattr(r, table)["step"] == step).any()], table, metric,
                          confidence, step)

    def curve(self, metric: str, confidence: float) -> list[Point]:
        """The in-order point at every step of the densest checkpoint grid among the replicates, over the replicates
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


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (ties share their mean rank, inf ranks last); nan when either side has a single
    distinct value."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])
