"""Finding 5 (docs/task.md §9, a secondary source): the order in which compositions of k functions are learned, judged
on what compounding of per-step errors does not explain.

Accuracy on y_L compounds the errors of the L steps, so whenever identity steps are learned before function steps,
compositions of fewer functions cross any accuracy level first. The independence model predicts y_L from the
teacher-forced per-step accuracies: if each step keeps a token right with probability q and otherwise writes a
uniformly random one, y_L's chance-corrected accuracy is the product of the steps' q (q = (acc - 1/A) / (1 - 1/A)).
The residual, observed minus predicted y_L q, is what compounding cannot explain; the verdict is decided on how it
changes with k during the learning phase.

A claim is decided per setting (report.findings.finding5): `gate` (every seed fitted its training compositions,
every seed has a learning window, at least min_seeds seeds), then `slope_check` on the seeds' residual slopes.

Input (`Evals`): one row per (seed, checkpoint step, in-order composition) of a setting's replicate runs, built
from each run's inorder.csv by `evals_from_tables`. Compositions are weighted equally (as in report.measures).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from report.estimates import Check, estimate
from report.measures import first_crossing
from report.runs import ReportError, Table
from report.stats import mean_ci

IDENTITY, FUNCTION = "identity", "function"
SUBSETS = ("all", "train", "unseen")
MIN_K = 1  # the claim is about compositions of >= 1 function; k = 0 is the single all-identity composition
FEWER_FIRST, MORE_FIRST = -1, 1  # the sign of the residual's slope against k that each claim predicts
CLAIMS = {"base + random": FEWER_FIRST, "random": MORE_FIRST}  # panel (training split) -> the claimed order


@dataclass(frozen=True)
class Evals:
    """Rows (seed, checkpoint step, composition) R of the in-order evaluation of one setting, L slots."""

    seed: np.ndarray  # (R,) int
    step: np.ndarray  # (R,) int: checkpoint step
    functions: np.ndarray  # (R, L) bool: slot k holds a non-identity function (else the identity)
    in_train: np.ndarray  # (R,) bool: a training composition
    token_acc: np.ndarray  # (R,) y_L token accuracy, generated autoregressively
    seq_acc: np.ndarray  # (R,) fraction of samples whose whole y_L is right, autoregressively
    tf_steps: np.ndarray  # (R, L) teacher-forced token accuracy of y_k (slot k) given the true y_1..y_{k-1}

    def __post_init__(self):
        rows = len(self.seed)
        shapes = [a.shape[:1] for a in (self.step, self.functions, self.in_train, self.token_acc, self.seq_acc)]
        if any(s != (rows,) for s in shapes) or self.tf_steps.shape != self.functions.shape:
            raise ValueError("Evals: every column needs one row per (seed, step, composition); tf_steps (R, L)")

    @property
    def n_functions(self) -> np.ndarray:
        return self.functions.sum(axis=1)  # (R,)


def slot_functions(compositions: Sequence[str]) -> np.ndarray:
    """Composition texts 'T0_1 T1_0 ...' (pipeline.results.composition_text) -> (C, L) bool: the slot's fn is not 0."""
    return np.array([[not token.endswith("_0") for token in text.split()] for text in compositions], dtype=bool)


def evals_from_tables(tables: Mapping[int, Table], names: Mapping[int, str] | None = None) -> Evals:
    """seed -> the columns of that run's inorder.csv as arrays: step, composition (str), in_train, token_acc,
    seq_acc and tf_y1_acc..tf_yL_acc. Other columns are ignored. `names`: seed -> the run's name in errors."""
    parts = []
    for seed, t in tables.items():
        name = (names or {}).get(seed, f"seed {seed}")
        missing = [n for n in ("composition", "step", "in_train", "token_acc", "seq_acc") if n not in t]
        functions = slot_functions(t["composition"].tolist()) if not missing else np.zeros((0, 0), dtype=bool)
        missing += [n for n in (f"tf_y{k + 1}_acc" for k in range(functions.shape[1])) if n not in t]
        if missing:
            raise ReportError(f"{name}: the in-order table lacks {', '.join(missing)}")
        parts.append(Evals(np.full(len(functions), seed), t["step"].astype(int), functions,
                           t["in_train"].astype(bool), t["token_acc"].astype(float), t["seq_acc"].astype(float),
                           np.stack([t[f"tf_y{k + 1}_acc"].astype(float) for k in range(functions.shape[1])], axis=1)))
    return Evals(*(np.concatenate([getattr(p, f) for p in parts]) for f in Evals.__dataclass_fields__))


def chance_corrected(acc: np.ndarray, n_alphabets: int) -> np.ndarray:
    """q = (acc - 1/A) / (1 - 1/A): 0 at chance, 1 when right."""
    return (acc - 1 / n_alphabets) / (1 - 1 / n_alphabets)


def _checkpoints(ev: Evals) -> dict[tuple[int, int], np.ndarray]:
    """(seed, step) -> the row indices of that checkpoint, in (seed, step) order."""
    order = np.lexsort((ev.step, ev.seed))  # stable: rows keep their order within a checkpoint
    seed, step = ev.seed[order], ev.step[order]
    starts = np.flatnonzero(np.r_[True, (seed[1:] != seed[:-1]) | (step[1:] != step[:-1])])
    return {(int(seed[i]), int(step[i])): idx for i, idx in zip(starts, np.split(order, starts[1:]), strict=True)}


def _subset(ev: Evals, idx: np.ndarray, subset: str) -> np.ndarray:
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r} is not one of {SUBSETS}")
    return idx if subset == "all" else idx[ev.in_train[idx] == (subset == "train")]


def _per_slot_kind(acc: np.ndarray, functions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of acc (C, L) per slot over the compositions whose slot is a function / the identity: (L,) each, nan
    where none; and the (2, L) counts [identity, function]."""
    w = functions.astype(float)  # (C, L)
    counts = np.stack([(1 - w).sum(axis=0), w.sum(axis=0)])  # (2, L)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (acc * (1 - w)).sum(axis=0) / counts[0], (acc * w).sum(axis=0) / counts[1], counts


def step_accuracy_rows(ev: Evals, subset: str = "all") -> list[dict]:
    """Teacher-forced accuracy of each step by slot (1..L: the slot writing y_k) and kind, at every checkpoint of
    every seed, over `subset`'s compositions: {seed, step, slot, kind, tf_acc, n_compositions}."""
    rows = []
    for (seed, step), idx in _checkpoints(ev).items():
        idx = _subset(ev, idx, subset)
        identity, function, counts = _per_slot_kind(ev.tf_steps[idx], ev.functions[idx])
        for slot in range(ev.functions.shape[1]):
            for kind, acc, n in ((IDENTITY, identity, counts[0]), (FUNCTION, function, counts[1])):
                if n[slot]:
                    rows.append({"seed": seed, "step": step, "slot": slot + 1, "kind": kind,
                                 "tf_acc": float(acc[slot]), "n_compositions": int(n[slot])})
    return rows


def predicted_q(ev: Evals, idx: np.ndarray, n_alphabets: int) -> np.ndarray:
    """Independence prediction of y_L's q for the compositions idx of one checkpoint: the product over slots of the
    step's q for that slot and kind, pooled over all of idx (not only compositions of the same k, which would
    absorb a k-dependent skill into the prediction). Over the full in-order pool this equals pooling per (slot,
    function): every function of a slot appears equally often with every pattern of the others; over the
    train/unseen subsets only nearly. Each step's q is clipped to [0, 1], a probability in the model
    (below-chance steps would otherwise flip the product's sign). Returns (len(idx),)."""
    functions = ev.functions[idx]  # (C, L)
    identity, function, _ = _per_slot_kind(ev.tf_steps[idx], functions)
    q = np.clip(chance_corrected(np.where(functions, function, identity), n_alphabets), 0, 1)  # (C, L)
    return q.prod(axis=1)


def residual_rows(ev: Evals, n_alphabets: int, subset: str = "all") -> list[dict]:
    """Observed and predicted y_L q per #functions k at every checkpoint of every seed, over `subset`'s
    compositions, the per-step q estimated from the same subset at the same checkpoint (so a skill gap between
    training and unseen compositions stays out of each subset's residual):
    {seed, step, k, observed, predicted, residual, n_compositions}."""
    rows, n_functions = [], ev.n_functions
    for (seed, step), idx in _checkpoints(ev).items():
        idx = _subset(ev, idx, subset)
        if not len(idx):
            continue
        observed, predicted = chance_corrected(ev.token_acc[idx], n_alphabets), predicted_q(ev, idx, n_alphabets)
        n_fn = n_functions[idx]
        for k in np.unique(n_fn).tolist():
            at = n_fn == k
            o, p = float(observed[at].mean()), float(predicted[at].mean())
            rows.append({"seed": seed, "step": step, "k": k, "observed": o, "predicted": p, "residual": o - p,
                         "n_compositions": int(at.sum())})
    return rows


def learning_windows(ev: Evals, n_alphabets: int, low: float, high: float) -> dict[int, list[int]]:
    """seed -> its checkpoints whose mean chance-corrected y_L token accuracy q over all in-order compositions lies
    in [low, high]: the learning phase, defined without reference to k (and to A: q is 0 at chance, 1 when right)."""
    windows: dict[int, list[int]] = {int(seed): [] for seed in np.unique(ev.seed)}
    for (seed, step), idx in _checkpoints(ev).items():
        if low <= chance_corrected(ev.token_acc[idx], n_alphabets).mean() <= high:
            windows[seed].append(step)
    return windows


def slope(ks: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against ks; nan with fewer than two distinct ks."""
    x, y = np.asarray(ks, dtype=float), np.asarray(values, dtype=float)
    if len(np.unique(x)) < 2:
        return math.nan
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


@dataclass(frozen=True)
class SeedStat:
    """One seed's summary over its learning window (k -> mean over the window's checkpoints)."""

    seed: int
    window: tuple[int, ...]  # checkpoint steps in the learning window
    accuracy_train: float  # the last checkpoint's mean y_L token accuracy on training compositions (nan: none)
    fitted: bool  # accuracy_train reached fit_level
    observed: dict[int, float]
    predicted: dict[int, float]
    residual: dict[int, float]
    slope: float  # of residual against k >= MIN_K, q per function; nan without a window or two k


def seed_statistics(ev: Evals, n_alphabets: int, *, low: float, high: float, fit_level: float,
                    subset: str = "all") -> list[SeedStat]:
    """Per seed: the residual per k averaged over the learning window [low, high] (see learning_windows), and its
    slope against k >= MIN_K (equal to the mean of the per-checkpoint slopes when every checkpoint has every k)."""
    rows = residual_rows(ev, n_alphabets, subset)
    checkpoints = _checkpoints(ev)
    out = []
    for seed, window in learning_windows(ev, n_alphabets, low, high).items():
        last = checkpoints[seed, max(t for s, t in checkpoints if s == seed)]
        train = ev.token_acc[last][ev.in_train[last]]
        accuracy = float(train.mean()) if len(train) else math.nan
        means = {}
        for name in ("observed", "predicted", "residual"):
            per_k: dict[int, list[float]] = {}
            for r in rows:
                if r["seed"] == seed and r["step"] in window:
                    per_k.setdefault(r["k"], []).append(r[name])
            means[name] = {k: float(np.mean(v)) for k, v in sorted(per_k.items())}
        fn_ks = [k for k in means["residual"] if k >= MIN_K]
        out.append(SeedStat(seed, tuple(window), accuracy, accuracy >= fit_level, **means,  # nan >= x is False
                            slope=slope(fn_ks, [means["residual"][k] for k in fn_ks])))
    return out


def residual_by_k(stats: Sequence[SeedStat], confidence: float) -> list[dict]:
    """The residual against k over the seeds with a learning window (fitted or not: `gate` decides whether they
    support a verdict): {k, observed, predicted, residual, low, high, n} (means over seeds and the residual's
    Student-t interval)."""
    windowed = [s for s in stats if s.window]
    rows = []
    for k in sorted({k for s in windowed for k in s.residual}):
        mean, low, high, n = mean_ci([s.residual.get(k, math.nan) for s in windowed], confidence)
        rows.append({"k": k, "observed": mean_ci([s.observed.get(k, math.nan) for s in windowed])[0],
                     "predicted": mean_ci([s.predicted.get(k, math.nan) for s in windowed])[0],
                     "residual": mean, "low": low, "high": high, "n": n})
    return rows


def slope_check(stats: Sequence[SeedStat], direction: int, min_effect: float, confidence: float,
                name: str) -> Check:
    """The claimed order `direction` as a criterion on the residual slopes of the seeds that have one (a learning
    window): slope >= +min_effect for MORE_FIRST (the residual rises with k), <= -min_effect for FEWER_FIRST, judged
    at the ends of its Student-t interval over those seeds (report.estimates.Check: holds at the conservative end;
    fails when even the favourable end is short of it, i.e. the interval excludes an effect that size; fragile in
    between; not measured without a seed)."""
    value = estimate([s.slope for s in stats if not math.isnan(s.slope)], confidence)
    return Check(name, value, ">=" if direction == MORE_FIRST else "<=", direction * min_effect)


def gate(stats: Sequence[SeedStat], names: Mapping[int, str], *, fit_min: float, low: float, high: float,
         min_seeds: int) -> str | None:
    """Why the seeds of one setting cannot decide a claim, or None: a seed that did not fit its training
    compositions at its last checkpoint (accuracy_train < fit_min), a seed without a learning window (no checkpoint
    with mean q in [low, high]), fewer than min_seeds seeds. `names`: seed -> the run's name in the reason."""
    problems = []
    unfit = [f"{names[s.seed]} ({s.accuracy_train:.3f})" for s in stats if not s.fitted]
    if unfit:
        problems.append(f"did not fit its training compositions at the last checkpoint (token accuracy below fit_min "
                        f"{fit_min:g}): {', '.join(unfit)}")
    blank = [names[s.seed] for s in stats if math.isnan(s.slope)]
    if blank:
        problems.append(f"no learning window (no checkpoint with mean chance-corrected y_L token accuracy in "
                        f"[{low:g}, {high:g}]): {', '.join(blank)}")
    if len(stats) < min_seeds:
        problems.append(f"fewer than min_seeds {min_seeds} replicates ({len(stats)})")
    return "; ".join(problems) or None


def window_step_accuracy(ev: Evals, stats: Sequence[SeedStat], subset: str = "all") -> dict[tuple[int, str], list]:
    """(slot 1..L, kind) -> per seed with a learning window, its teacher-forced step accuracy (step_accuracy_rows)
    averaged over the window's checkpoints (nan where the slot never holds that kind)."""
    windows = {s.seed: s.window for s in stats if s.window}
    per: dict[tuple[int, str], dict[int, list[float]]] = {}
    for r in step_accuracy_rows(ev, subset):
        if r["step"] in windows.get(r["seed"], ()):
            per.setdefault((r["slot"], r["kind"]), {}).setdefault(r["seed"], []).append(r["tf_acc"])
    slots = range(1, ev.functions.shape[1] + 1)
    return {(slot, kind): [float(np.mean(per.get((slot, kind), {}).get(seed, [math.nan]))) for seed in windows]
            for slot in slots for kind in (IDENTITY, FUNCTION)}


def crossing_rows(ev: Evals, levels: Sequence[float], metrics: Sequence[str] = ("token_acc", "seq_acc"),
                  subsets: Sequence[str] = ("train", "unseen")) -> list[dict]:
    """t_k per seed: the step at which the mean `metric` (raw, not chance-corrected) of the subset's k-function
    compositions first reaches each level (report.measures.first_crossing; inf: never). Only (subset, k) groups
    with compositions appear (base + random has no unseen 1-function composition):
    {seed, metric, subset, level, k, t}."""
    checkpoints, n_functions = _checkpoints(ev), ev.n_functions
    rows = []
    for seed in np.unique(ev.seed).tolist():
        steps = sorted(t for s, t in checkpoints if s == seed)
        for metric in metrics:
            acc = getattr(ev, metric)
            for subset in subsets:
                curves: dict[int, list[float | None]] = {}
                for i, step in enumerate(steps):
                    idx = _subset(ev, checkpoints[seed, step], subset)
                    n_fn = n_functions[idx]
                    for k in np.unique(n_fn[n_fn >= MIN_K]).tolist():
                        curves.setdefault(k, [None] * len(steps))[i] = float(acc[idx][n_fn == k].mean())
                rows += [{"seed": seed, "metric": metric, "subset": subset, "level": level, "k": k,
                          "t": first_crossing(steps, curve, level)}
                         for level in levels for k, curve in sorted(curves.items())]
    return rows


def crossing_summary(rows: list[dict], confidence: float) -> list[dict]:
    """crossing_rows over seeds: {metric, subset, level, k, mean, low, high, n, n_never}; the mean and interval
    are over the seeds that crossed (n of them); n_never counts the others."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["metric"], r["subset"], r["level"], r["k"]), []).append(r["t"])
    out = []
    for (metric, subset, level, k), ts in groups.items():
        mean, low, high, n = mean_ci([t for t in ts if t != math.inf], confidence)
        out.append({"metric": metric, "subset": subset, "level": level, "k": k, "mean": mean, "low": low,
                    "high": high, "n": n, "n_never": sum(t == math.inf for t in ts)})
    return out
