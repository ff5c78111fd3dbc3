"""Finding 5 (docs/task.md §9, a secondary source): the order in which compositions of k functions are learned,
judged twice, side by side: the literal order (t_k against k) and what compounding of per-step errors does not
explain; figure 4 and its CSVs.

Accuracy on y_L compounds the errors of the L steps, so whenever identity steps are learned before function steps,
compositions of fewer functions cross any accuracy level first. The independence model predicts each composition's
y_L from the teacher-forced accuracies of its own steps: if each step keeps a token right with probability q and
otherwise writes a uniformly random one, y_L's chance-corrected accuracy is the product of the steps' q
(q = (acc - 1/A) / (1 - 1/A)); per k the prediction is the mean of those products over the compositions (a mean of
products, not a product of means pooled over compositions, which misfits wherever compositions differ). The
residual, observed minus predicted y_L q, is what compounding cannot explain; that verdict is decided on how it
changes with k during the learning phase, and only where the model fits the unseen compositions after training.

A claim is decided per setting (finding5): `gate` (every seed fitted its training compositions, every seed has the
quantity judged, at least min_seeds seeds), then `order_check` on the seeds' Spearman(k, t_k) (the literal order)
and `slope_check` on their residual slopes (beyond compounding; `fit_check` validates the null model).

Input (`Evals`): one row per (seed, checkpoint step, in-order composition) of a setting's replicate runs, built
from each run's inorder.csv by `evals_from_tables`. Compositions are weighted equally (as in report.runs).

Panels: "base + random" (step-by-step `base` with extra compositions) and "random" (step-by-step `random`), each the
judged Transformer's setting with the most evaluated checkpoints (>= MIN_CHECKPOINTS), then the most replicates.
Controls: step-by-step `random` settings of another function.repeat (Study.controls) and `random_biased` ones of the
judged Transformer with as many checkpoints: decomposed and shown, never judged. The decomposition is of token
accuracy whatever the report's metric (the independence model is one of tokens; chance 1/A).
"""

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from report.figure_rows import CONTROL_KEYS, MIN_CHECKPOINTS, FigureTable, Study, accuracy_row, ks_of, stepbystep
from report.runs import ByFunctions, ReportError, Run, Table
from report.stats import FAILS, LOGIT_T, Check, Estimate, Group, all_of, estimate, first_crossing, mean_ci, spearman
from report.verdicts import COUNT, F5, INCONCLUSIVE, NOT_RUN, WORD, Context, Finding, fmt, md_table, signed

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


def train_accuracy(ev: Evals) -> dict[tuple[int, int], float]:
    """(seed, step) -> the mean y_L token accuracy on the training compositions at that checkpoint (nan: none)."""
    return {key: float(ev.token_acc[idx][ev.in_train[idx]].mean()) if ev.in_train[idx].any() else math.nan
            for key, idx in _checkpoints(ev).items()}


def _subset(ev: Evals, idx: np.ndarray, subset: str) -> np.ndarray:
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
    """Independence prediction of y_L's q for each composition idx: the product of its own steps' q (teacher-forced,
    so a step's accuracy at this composition, whatever the others'), each clipped to [0, 1], a probability in the
    model (below-chance steps would otherwise flip the product's sign). Returns (len(idx),)."""
    return np.clip(chance_corrected(ev.tf_steps[idx], n_alphabets), 0, 1).prod(axis=1)


def pooled_q(ev: Evals, idx: np.ndarray, n_alphabets: int) -> np.ndarray:
    """The former prediction, kept for comparison (fig4_decomposition.csv's predicted_pooled): each step's q pooled
    per slot and kind (identity/function) over all of idx, then multiplied: a product of means, biased wherever the
    compositions' step accuracies differ. Returns (len(idx),)."""
    functions = ev.functions[idx]  # (C, L)
    identity, function, _ = _per_slot_kind(ev.tf_steps[idx], functions)
    return np.clip(chance_corrected(np.where(functions, function, identity), n_alphabets), 0, 1).prod(axis=1)


def residual_rows(ev: Evals, n_alphabets: int, subset: str = "all") -> list[dict]:
    """Observed and predicted y_L q per #functions k at every checkpoint of every seed, over `subset`'s
    compositions (means over them): {seed, step, k, observed, predicted, residual, predicted_pooled,
    n_compositions}."""
    rows, n_functions = [], ev.n_functions
    for (seed, step), idx in _checkpoints(ev).items():
        idx = _subset(ev, idx, subset)
        if not len(idx):
            continue
        observed, predicted = chance_corrected(ev.token_acc[idx], n_alphabets), predicted_q(ev, idx, n_alphabets)
        pooled, n_fn = pooled_q(ev, idx, n_alphabets), n_functions[idx]
        for k in np.unique(n_fn).tolist():
            at = n_fn == k
            o, p = float(observed[at].mean()), float(predicted[at].mean())
            rows.append({"seed": seed, "step": step, "k": k, "observed": o, "predicted": p, "residual": o - p,
                         "predicted_pooled": float(pooled[at].mean()), "n_compositions": int(at.sum())})
    return rows


def after_training(ev: Evals, n_alphabets: int, subset: str) -> list[dict]:
    """residual_rows at each seed's last checkpoint: where the null model is validated."""
    last = dict(_checkpoints(ev).keys())  # seed -> its last step: the checkpoints come in (seed, step) order
    return [r for r in residual_rows(ev, n_alphabets, subset) if r["step"] == last[r["seed"]]]


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


QUANTITIES = ("observed", "predicted", "residual")


@dataclass(frozen=True)
class SeedStat:
    """One seed's summary over its learning window (k -> mean over the window's checkpoints), its order and fit."""

    seed: int
    window: tuple[int, ...]  # checkpoint steps in the learning window
    accuracy_train: float  # the last checkpoint's mean y_L token accuracy on training compositions (nan: none)
    fitted: bool  # accuracy_train reached fit_level
    observed: dict[int, float]
    predicted: dict[int, float]
    residual: dict[int, float]
    slope: float  # of residual against k >= MIN_K, q per function; nan without a window or two k
    order: float = math.nan  # Spearman(k, t_k), k >= MIN_K, all in-order compositions (nan: no two distinct t_k)
    misfit: float = math.nan  # largest |residual| over k on the unseen compositions at the last checkpoint


def by_k(rows: Sequence[dict]) -> dict[str, dict[int, float]]:
    """residual_rows of one seed -> {quantity: {k: its mean over the rows}} (QUANTITIES)."""
    per_k: dict[int, list[dict]] = {}
    for r in rows:
        per_k.setdefault(r["k"], []).append(r)
    return {name: {k: float(np.mean([r[name] for r in v])) for k, v in sorted(per_k.items())} for name in QUANTITIES}


def order_by_seed(ev: Evals, level: float) -> dict[int, float]:
    """seed -> Spearman(k, t_k) over k >= MIN_K, t_k the step at which the mean y_L token accuracy of all in-order
    k-function compositions first reaches `level` (crossing_rows; never: ranked last)."""
    t: dict[int, dict[int, float]] = {}
    for r in crossing_rows(ev, [level], ("token_acc",), ("all",)):
        t.setdefault(r["seed"], {})[r["k"]] = r["t"]
    return {seed: spearman(list(by), list(by.values())) if len(by) >= 2 else math.nan for seed, by in t.items()}


def seed_statistics(ev: Evals, n_alphabets: int, *, low: float, high: float, fit_level: float,
                    level: float) -> list[SeedStat]:
    """Per seed: the residual per k averaged over the learning window [low, high] (see learning_windows), and its
    slope against k >= MIN_K (equal to the mean of the per-checkpoint slopes when every checkpoint has every k);
    Spearman(k, t_k) at `level` (order_by_seed); the null model's misfit after training (after_training)."""
    rows, orders, fits = residual_rows(ev, n_alphabets), order_by_seed(ev, level), train_accuracy(ev)
    unseen, last_steps = after_training(ev, n_alphabets, "unseen"), dict(fits.keys())  # seed -> its last step
    out = []
    for seed, window in learning_windows(ev, n_alphabets, low, high).items():
        accuracy = fits[seed, last_steps[seed]]
        means = by_k([r for r in rows if r["seed"] == seed and r["step"] in window])
        misfit = [abs(r["residual"]) for r in unseen if r["seed"] == seed]
        fn_ks = [k for k in means["residual"] if k >= MIN_K]
        out.append(SeedStat(seed, tuple(window), accuracy, accuracy >= fit_level, **means,  # nan >= x is False
                            slope=slope(fn_ks, [means["residual"][k] for k in fn_ks]), order=orders.get(seed, math.nan),
                            misfit=max(misfit, default=math.nan)))
    return out


def over_seeds(seeds: Sequence[Mapping[str, Mapping[int, float]]], confidence: float) -> list[dict]:
    """Per k, over the seeds ({quantity: {k: value}}, by_k): {k, observed, predicted, residual, low, high, n}
    (means over seeds and the residual's Student-t interval)."""
    rows = []
    for k in sorted({k for s in seeds for k in s["residual"]}):
        mean, low, high, n = mean_ci([s["residual"].get(k, math.nan) for s in seeds], confidence)
        rows.append({"k": k, "observed": mean_ci([s["observed"].get(k, math.nan) for s in seeds])[0],
                     "predicted": mean_ci([s["predicted"].get(k, math.nan) for s in seeds])[0],
                     "residual": mean, "low": low, "high": high, "n": n})
    return rows


def residual_by_k(stats: Sequence[SeedStat], confidence: float) -> list[dict]:
    """The residual against k over the seeds with a learning window (fitted or not: `gate` decides whether they
    support a verdict): over_seeds of their window means."""
    return over_seeds([{name: getattr(s, name) for name in QUANTITIES} for s in stats if s.window], confidence)


def fit_by_k(ev: Evals, n_alphabets: int, subset: str, confidence: float) -> list[dict]:
    """The null model after training: over_seeds of each seed's residual per k at its last checkpoint."""
    rows = after_training(ev, n_alphabets, subset)
    return over_seeds([by_k([r for r in rows if r["seed"] == seed]) for seed in sorted({r["seed"] for r in rows})],
                      confidence)


def _claimed(values: Sequence[float], sign: int, threshold: float, confidence: float, name: str,
             bound: float = math.inf) -> Check:
    """values >= +threshold (sign +1) or <= -threshold (sign -1), judged at the ends of their Student-t interval over
    the seeds that have one (report.stats.Check), clipped to [-bound, bound] (a correlation's: 1)."""
    e = estimate(values, confidence)  # nan (a seed without the value) left out
    if e.low is not None:
        e = replace(e, low=max(e.low, -bound), high=min(e.high, bound))
    return Check(name, e, ">=" if sign > 0 else "<=", sign * threshold)


def slope_check(stats: Sequence[SeedStat], direction: int, min_effect: float, confidence: float,
                name: str) -> Check:
    """The claimed order `direction` beyond compounding: the residual slope >= +min_effect for MORE_FIRST (the
    residual rises with k), <= -min_effect for FEWER_FIRST."""
    return _claimed([s.slope for s in stats], direction, min_effect, confidence, name)


def order_check(stats: Sequence[SeedStat], direction: int, min_order: float, confidence: float, name: str) -> Check:
    """The claimed order `direction` as stated: fewer functions first means t_k rises with k, Spearman(k, t_k) >=
    +min_order; more functions first, <= -min_order."""
    return _claimed([s.order for s in stats], -direction, min_order, confidence, name, bound=1.0)


def fit_check(stats: Sequence[SeedStat], max_misfit: float, confidence: float, name: str) -> Check:
    """The null model fits the unseen compositions after training: each seed's largest |residual| over k there
    <= max_misfit, at the interval's ends over the seeds that have unseen compositions."""
    return Check(name, estimate([s.misfit for s in stats], confidence), "<=", max_misfit)  # nan: no unseen ones


def gate(stats: Sequence[SeedStat], names: Mapping[int, str], quantity: str, blank: str, *, fit_min: float,
         min_seeds: int) -> str | None:
    """Why the seeds of one setting cannot decide a claim judged on SeedStat.`quantity`, or None: a seed that did
    not fit its training compositions at its last checkpoint (accuracy_train < fit_min), a seed without that
    quantity (nan; `blank` says why), fewer than min_seeds seeds. `names`: seed -> the run's name in the reason."""
    problems = []
    unfit = [f"{names[s.seed]} ({s.accuracy_train:.3f})" for s in stats if not s.fitted]
    if unfit:
        problems.append(f"did not fit its training compositions at the last checkpoint (token accuracy below fit_min "
                        f"{fit_min:g}): {', '.join(unfit)}")
    nan = [names[s.seed] for s in stats if math.isnan(getattr(s, quantity))]
    if nan:
        problems.append(f"{blank}: {', '.join(nan)}")
    if len(stats) < min_seeds:
        problems.append(f"fewer than min_seeds {min_seeds} replicates ({len(stats)})")
    return "; ".join(problems) or None


def window_step_accuracy(ev: Evals, stats: Sequence[SeedStat]) -> dict[tuple[int, str], list]:
    """(slot 1..L, kind) -> per seed with a learning window, its teacher-forced step accuracy (step_accuracy_rows,
    all in-order compositions) averaged over the window's checkpoints (nan where the slot never holds that kind)."""
    windows = {s.seed: s.window for s in stats if s.window}
    per: dict[tuple[int, str], dict[int, list[float]]] = {}
    for r in step_accuracy_rows(ev):
        if r["step"] in windows.get(r["seed"], ()):
            per.setdefault((r["slot"], r["kind"]), {}).setdefault(r["seed"], []).append(r["tf_acc"])
    slots = range(1, ev.functions.shape[1] + 1)
    return {(slot, kind): [float(np.mean(per.get((slot, kind), {}).get(seed, [math.nan]))) for seed in windows]
            for slot in slots for kind in (IDENTITY, FUNCTION)}


def crossing_rows(ev: Evals, levels: Sequence[float], metrics: Sequence[str] = ("token_acc", "seq_acc"),
                  subsets: Sequence[str] = ("train", "unseen")) -> list[dict]:
    """t_k per seed: the step at which the mean `metric` (raw, not chance-corrected) of the subset's k-function
    compositions first reaches each level (report.stats.first_crossing; inf: never). Only (subset, k) groups
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


# ---- figure 4: the panels (settings judged, controls), decomposed; the figure's rows and its two extra CSVs ----

FIG4_COLUMNS = ["panel", "split", "quantity", "n_functions", "step", "value", "ci_low", "ci_high", "n_runs",
                "accuracy_train", "accuracy_train_min", "chance", "observed", "predicted", "runs"]
# one run per row (n_runs 1, no interval: ci_low and ci_high empty; the seeds' intervals are fig4_dynamics.csv's);
# accuracy_train: that run's y_L token accuracy on its own training compositions at that checkpoint
PER_RUN = ["accuracy_train", "ci_low", "ci_high", "n_runs"]
DECOMPOSITION = ["panel", "judged", "run", "seed", "subset", "step", "k", "in_window", "observed", "predicted",
                 "residual", "n_compositions", *PER_RUN, "predicted_pooled"]
STEP_ACCURACY = ["panel", "judged", "run", "seed", "subset", "step", "slot", "kind", "in_window", "tf_acc",
                 "n_compositions", *PER_RUN]


@dataclass(frozen=True)
class Panel:
    """One setting's replicates, decomposed (Evals.seed i is runs[i], whatever its data.seed)."""

    name: str  # "base + random", "random", or a control's label
    group: Group
    runs: tuple[Run, ...]  # the replicates evaluated in order
    judged: bool
    evals: Evals | None  # None when a run's results lack the per-step columns
    stats: tuple[SeedStat, ...]
    missing: str = ""  # why evals is None

    @property
    def names(self) -> dict[int, str]:
        return {i: r.tag for i, r in enumerate(self.runs)}

    @property
    def n_alphabets(self) -> int:
        return self.group.first.data["n_alphabets"]

    def train_estimate(self, confidence: float) -> Estimate:
        """The replicates' token accuracy on their training compositions at their last checkpoints."""
        return estimate([s.accuracy_train for s in self.stats], confidence, LOGIT_T)  # nan (none) left out


def decompose(name: str, group: Group, judged: bool, f5: F5, fit_min: float) -> Panel:
    runs = tuple(group.evaluated("inorder"))
    try:
        ev = evals_from_tables(dict(enumerate(r.inorder for r in runs)), dict(enumerate(r.tag for r in runs)))
    except ReportError as err:
        return Panel(name, group, runs, judged, None, (), f"{err} (03_evaluate_i.py writes them: rerun it)")
    stats = seed_statistics(ev, group.first.data["n_alphabets"], low=f5.window_low, high=f5.window_high,
                            fit_level=fit_min, level=f5.order_level)
    return Panel(name, group, runs, judged, ev, tuple(stats))


def _dense(g: Group) -> bool:
    return stepbystep(g) and g.n_steps() >= MIN_CHECKPOINTS


def judged_panels(study: Study, f5: F5, fit_min: float) -> dict[str, Panel]:
    """Each claim's panel (CLAIMS) that has a setting, decomposed."""
    candidates = {"base + random": study.select(lambda g: _dense(g) and g.first.strategy == "base"
                                                and g.first.split["n_compositions"] > 0),
                  "random": study.select(lambda g: _dense(g) and g.first.strategy == "random")}
    return {name: decompose(name, max(groups, key=lambda g: (g.n_steps(), len(g.runs))), True, f5, fit_min)
            for name, groups in candidates.items() if groups}


def control_panels(study: Study, f5: F5, fit_min: float) -> list[Panel]:
    """The exposure controls, decomposed: `random` settings of another CONTROL_KEYS value, `random_biased` ones."""
    other = [g for g in study.controls if _dense(g) and g.first.strategy == "random" and g.first.kind == "nanogpt"
             and g.first.arch == study.transformer]
    biased = study.select(lambda g: _dense(g) and g.first.strategy == "random_biased")
    return [decompose(f"control: {g.first.split_label}, " + ", ".join(
        f"{k.removeprefix('data.')}={json.dumps(g.first.config.get(k))}" for k in CONTROL_KEYS), g, False, f5, fit_min)
        for g in other] + [decompose(f"control: {g.first.split_label}", g, False, f5, fit_min) for g in biased]


def dynamics_table(study: Study, f5: F5, fit_min: float) -> FigureTable:
    """Figure 4 (finding 5). Rows of quantity "accuracy": the report's metric on y_L per #functions over training
    (the replicates' mean curve); of quantity "residual": observed minus predicted chance-corrected y_L token accuracy
    per #functions k, each seed's mean over its learning window, averaged over the seeds with one (step empty;
    accuracy_train: the seeds' token accuracy on training compositions at their last checkpoint). Extra CSVs: the
    decomposition per (panel, run, subset, step, k) and the per-step accuracies per (panel, run, subset, step, slot,
    kind), controls included (judged 0). summary: {"panels": judged_panels, "controls": control_panels}."""
    panels, controls = judged_panels(study, f5, fit_min), control_panels(study, f5, fit_min)
    rows = []
    for name, p in panels.items():
        g = p.group
        for point in g.curve(study.metric, study.confidence):
            for k in ks_of(point):
                a = accuracy_row(point, ByFunctions(k))
                rows.append({"panel": name, "split": g.first.split_label, "quantity": "accuracy", "n_functions": k,
                             "value": a.pop("accuracy"), **a, "chance": g.first.chance(study.metric),
                             "observed": None, "predicted": None})
        train = p.train_estimate(study.confidence)
        for r in residual_by_k(p.stats, study.confidence):
            rows.append({"panel": name, "split": g.first.split_label, "quantity": "residual", "n_functions": r["k"],
                         "step": None, "value": r["residual"], "ci_low": r["low"], "ci_high": r["high"],
                         "n_runs": r["n"], "accuracy_train": train.mean if train.n else None,
                         "accuracy_train_min": min(s.accuracy_train for s in p.stats) if train.n else None,
                         "chance": 0.0, "observed": r["observed"], "predicted": r["predicted"],
                         "runs": " ".join(p.names[s.seed] for s in p.stats if s.window and r["k"] in s.residual)})
    every = [*panels.values(), *controls]
    return FigureTable("fig4_dynamics", FIG4_COLUMNS, rows, {"panels": panels, "controls": controls},
                       missing=f"no step-by-step `base` (+ extra) or `random` run evaluated at >= {MIN_CHECKPOINTS} "
                               "checkpoints",
                       extras={"fig4_decomposition": (DECOMPOSITION, labelled_rows(
                                   every, lambda p, subset: residual_rows(p.evals, p.n_alphabets, subset))),
                               "fig4_step_accuracy": (STEP_ACCURACY, labelled_rows(
                                   every, lambda p, subset: step_accuracy_rows(p.evals, subset)))})


def labelled_rows(panels: list[Panel], rows_of: Callable[[Panel, str], list[dict]]) -> list[dict]:
    """rows_of(panel, subset) (residual_rows, step_accuracy_rows; seed: the index of the run in p.runs) of every
    panel and subset, labelled by panel, run and data seed, with the run's token accuracy on its training
    compositions at that step (PER_RUN)."""
    out = []
    for p in (p for p in panels if p.evals is not None):
        fits = {key: None if math.isnan(a) else a for key, a in train_accuracy(p.evals).items()}
        windows = {s.seed: s.window for s in p.stats}
        out += [{**r, "panel": p.name, "judged": int(p.judged), "run": p.runs[r["seed"]].tag,
                 "seed": p.runs[r["seed"]].seed, "subset": subset, "in_window": int(r["step"] in windows[r["seed"]]),
                 "accuracy_train": fits[r["seed"], r["step"]], "ci_low": None, "ci_high": None, "n_runs": 1}
                for subset in SUBSETS for r in rows_of(p, subset)]
    return out


def crossing_cells(p: Panel, levels: list[float], confidence: float) -> tuple[list[int], list[list[str]]]:
    """t_k per (metric, subset, level) row and k column: the seeds' mean step [interval] among those that reached
    the level, and how many never did (crossing_summary)."""
    summary = crossing_summary(crossing_rows(p.evals, levels), confidence)
    ks = sorted({s["k"] for s in summary})
    cells: dict[tuple, dict[int, str]] = {}
    for s in summary:
        text = "never" if s["n"] == 0 else f"{s['mean']:.0f}" + (
            "" if s["low"] is None else f" [{s['low']:.0f}, {s['high']:.0f}]")
        text += f" ({s['n_never']} never)" if s["n"] and s["n_never"] else ""
        cells.setdefault((s["metric"], s["subset"], s["level"]), {})[s["k"]] = text
    return ks, [[metric, subset, f"{level:g}", *[row.get(k, "–") for k in ks]]
                for (metric, subset, level), row in sorted(cells.items())]


# ---- the verdict, and the tables findings.md shows ----


CLAIMED = {FEWER_FIRST: "fewer functions first", MORE_FIRST: "more functions first"}
SOURCE = "source: secondary (docs/task.md §9)"
Claims = dict[str, tuple]  # panel -> (criterion, why its seeds cannot decide it[, residual_claims': null model fit])


def order_claims(ctx: Context, panels: dict[str, Panel]) -> Claims:
    """(a) the literal order: Spearman(k, t_k) per seed (order_check), gated on fit, a defined order and min_seeds."""
    c, f = ctx.criteria, ctx.criteria.f5
    at = f"token accuracy {f.order_level:g}"
    return {name: (order_check(panels[name].stats, direction, f.min_order, ctx.study.confidence,
                               f"{name}: Spearman(k, t_k) at {at}"),
                   gate(panels[name].stats, panels[name].names, "order", f"no order of t_k (fewer than two k with "
                        f"distinct t_k at {at})", fit_min=c.fit_min, min_seeds=c.min_seeds))
            for name, direction in CLAIMS.items()}


def residual_claims(ctx: Context, panels: dict[str, Panel]) -> Claims:
    """(b) beyond compounding: the residual slope per seed (slope_check), gated like (a) on a learning window, and
    on the null model fitting the unseen compositions after training (fit_check not failing)."""
    c, f, confidence = ctx.criteria, ctx.criteria.f5, ctx.study.confidence
    claims = {}
    for name, direction in CLAIMS.items():
        p = panels[name]
        why = gate(p.stats, p.names, "slope", f"no learning window (no checkpoint with mean chance-corrected y_L token "
                   f"accuracy in [{f.window_low:g}, {f.window_high:g}])", fit_min=c.fit_min, min_seeds=c.min_seeds)
        fit = fit_check(p.stats, f.null_fit_max, confidence, f"{name}: null model misfit after training")
        misfit = f"the null model does not fit: {fit.text()}" if fit.state == FAILS else None
        claims[name] = (slope_check(p.stats, direction, f.min_effect, confidence,
                                    f"{name}: residual slope (q per function)"),
                        "; ".join(w for w in (why, misfit) if w) or None, fit)
    return claims


def decide_claims(claims: Claims) -> tuple[str, str]:
    """(verdict, reason): inconclusive when a claim's seeds cannot decide it, else every criterion must hold."""
    checks = [check for check, *_ in claims.values()]
    blocked = [f"{name}: {why}" for name, (_, why, *_) in claims.items() if why]
    if blocked:
        return INCONCLUSIVE, "; ".join(blocked) + "; measured: " + "; ".join(ch.text() for ch in checks)
    return WORD[all_of(ch.state for ch in checks)], "; ".join(ch.text() for ch in checks)


def claim_words(claims: Claims) -> list[str]:
    return [f"  - {name} ({CLAIMED[CLAIMS[name]]}): " + (f"inconclusive: {why}" if why else
            f"{WORD[check.state]}: {check.text()}") for name, (check, why, *_) in claims.items()]


def dynamics_details(ctx: Context, panels: dict[str, Panel], controls: list[Panel]) -> list[str]:
    """findings.md's tables for finding 5: residual against k, each seed's numbers, the null model after training,
    per-step accuracies over the window, t_k, and the controls (not judged)."""
    f, confidence = ctx.criteria.f5, ctx.study.confidence
    measured = {name: p for name, p in panels.items() if p.evals is not None}

    def table(extra: list[str], rows_of: Callable[[Panel], list[tuple[list, dict]]]) -> list[str]:
        """over_seeds rows per panel; `extra` columns after k, their cells first in each of rows_of's pairs."""
        return md_table(["panel", COUNT, "k", *extra, "observed q", "predicted q", "residual", "seeds"],
                        [[name, p.group.n_train, r["k"], *cells, fmt(r["observed"]), fmt(r["predicted"]),
                          Estimate(r["residual"], r["low"], r["high"], r["n"]).text(), r["n"]]
                         for name, p in measured.items() for cells, r in rows_of(p)])

    lines = ["**Residual against k** (chance-corrected y_L token accuracy q, observed minus predicted: each "
             "composition's product of its own steps' q, averaged per k; each seed's mean over its learning window, "
             "then the seeds' mean [interval]):", "",
             *table([], lambda p: [([], r) for r in residual_by_k(p.stats, confidence)]), ""]
    for name, p in measured.items():
        lines.append(f"- {name}, per seed: " + "; ".join(
            f"{p.names[s.seed]} slope {signed(s.slope)}, Spearman(k, t_k) {fmt(s.order)}, misfit after training "
            f"{fmt(s.misfit)}, window steps {', '.join(map(str, s.window)) or 'none'}, accuracy_train "
            f"{fmt(s.accuracy_train)}" for s in p.stats))
    lines += ["", "Settings: " + "; ".join(
        f"{name}: {p.group.n_train} {COUNT}, {len(p.runs)} seeds, accuracy_train at the last checkpoint "
        f"{p.train_estimate(confidence).text()}" for name, p in measured.items()) + "."]
    lines += ["", "**The null model after training** (each seed's last checkpoint; k = 0 and 1 included; the check "
              f"is on the unseen compositions, largest |residual| over k <= {f.null_fit_max:g}):", "",
              *table(["compositions"], lambda p: [([subset], r) for subset in ("train", "unseen")
                                                  for r in fit_by_k(p.evals, p.n_alphabets, subset, confidence)])]
    steps = {name: window_step_accuracy(p.evals, p.stats) for name, p in measured.items()}
    slots = sorted({slot for by in steps.values() for slot, _ in by})
    lines += ["", "**Per-step teacher-forced token accuracy** (step k's tokens given the true earlier steps), by slot "
              "and by what the slot holds, each seed's mean over its learning window, then the seeds' mean "
              "[logit-t interval]; all in-order compositions:", "",
              *md_table(["slot", *[f"{name}: {kind}" for name in steps for kind in (IDENTITY, FUNCTION)]],
                        [[slot, *[estimate(by.get((slot, kind), []), confidence, LOGIT_T).text()
                                  for by in steps.values() for kind in (IDENTITY, FUNCTION)]] for slot in slots])]
    for name, p in measured.items():
        ks, rows = crossing_cells(p, f.levels, confidence)
        lines += ["", f"**t_k, {name}** (training step at which k-function compositions first reach the level, "
                  "each seed's curve interpolated between checkpoints; the seeds' mean [interval] among those that "
                  f"reached it; verdict (a) ranks each seed's t_k on all in-order compositions at token accuracy "
                  f"{f.order_level:g}):", "",
                  *md_table(["metric", "compositions", "level", *[f"k={k}" for k in ks]], rows)]
    if controls:
        lines += ["", "**Exposure controls** (one seed each; shown, not judged):", ""]
        lines += [f"- {p.name} ({', '.join(r.tag for r in p.runs)}): " + (p.missing or "; ".join(
            f"residual slope {signed(s.slope)} q per function, window steps {', '.join(map(str, s.window)) or 'none'}, "
            f"accuracy_train {fmt(s.accuracy_train)}; residual by k " + ", ".join(
                f"{k}: {v:+.3f}" for k, v in s.residual.items()) for s in p.stats)) for p in controls]
    return lines


def finding5(ctx: Context) -> Finding:
    f = ctx.criteria.f5
    t = ctx.tables["fig4_dynamics"]
    panels, controls = t.summary.get("panels", {}), t.summary.get("controls", [])
    window = f"[{f.window_low:g}, {f.window_high:g}]"
    base = dict(number=5, title="Training dynamics: order in which compositions are learned", figure=t.name,
        source="secondary: an AI-written review of the paper's first arXiv version; no passage of the paper states "
               "it (docs/task.md §9)",
        claim="With base + random training, compositions of fewer functions are learned first; with random in-order "
              "training, compositions of more functions come first.",
        criterion=f"two verdicts side by side, both of the secondary claim. The verdict: beyond compounding. y_L "
                  f"accuracy compounds the errors of the steps, so fewer functions come first whenever identity "
                  f"steps are learned before function steps; the test is what compounding does not explain. At "
                  f"every checkpoint each composition's chance-corrected y_L token accuracy q is predicted as the "
                  f"product of its own steps' teacher-forced q (step k's tokens given the true earlier steps), the "
                  f"prediction per k = #functions the mean of those products; per seed the residual (observed minus "
                  f"predicted) is averaged per k over the learning window (checkpoints whose mean q over all "
                  f"in-order compositions is in {window}) and its least-squares slope against k >= 1 taken. base + "
                  f"random must have slope <= -{f.min_effect:g} (fewer first), random slope >= +{f.min_effect:g} "
                  f"(more first), each at its interval's conservative end over the seeds; every seed must fit its "
                  f"training compositions at its last checkpoint (token accuracy >= fit_min) and have a learning "
                  f"window, there must be >= min_seeds seeds, and the null model must not misfit the unseen "
                  f"compositions after training (each seed's largest |residual| over k at its last checkpoint <= "
                  f"{f.null_fit_max:g}, failing only when even its interval's favourable end is above). Beside it, "
                  f"the literal order: t_k, the step at which the mean y_L token accuracy of all in-order k-function "
                  f"compositions first reaches {f.order_level:g}; Spearman(k, t_k) over k >= 1 per seed must be >= "
                  f"+{f.min_order:g} for base + random (t_k rises with k) and <= -{f.min_order:g} for random, at its "
                  f"interval's conservative end, under the same fit and seed gates")
    absent = [name for name in CLAIMS if name not in panels]
    details = dynamics_details(ctx, panels, controls) if panels or controls else []
    if absent:
        return Finding(**base, verdict=NOT_RUN, details=details, reason=" and ".join(f"no `{name}`" for name in absent)
                       + f" step-by-step run evaluated at >= {MIN_CHECKPOINTS} checkpoints")
    runs = [r.tag for p in panels.values() for r in p.runs]
    missing = [p.missing for p in panels.values() if p.missing]
    if missing:
        return Finding(**base, verdict=INCONCLUSIVE, reason="; ".join(missing), details=details, runs=runs)
    order, residual = order_claims(ctx, panels), residual_claims(ctx, panels)
    (literal, literal_reason), (verdict, reason) = decide_claims(order), decide_claims(residual)
    fits = [fit.text() for _, _, fit in residual.values()]  # residual_claims' null model checks, one per panel
    summary = ["**In words.** Two verdicts side by side, both of a claim from a secondary source (an AI-written review "
               "of the paper's first version, docs/task.md §9).", "",
               f"- **(a) The literal order**: whether k-function compositions reach token accuracy {f.order_level:g} "
               f"in the claimed order of k (Spearman(k, t_k) at least {f.min_order:g} in the claimed direction). "
               f"Verdict: **{literal}** ({SOURCE}). Compounding alone can produce this order.", *claim_words(order),
               f"- **(b) Beyond compounding** (the finding's verdict): whether, during learning, the accuracy of "
               f"k-function compositions departs from what their own per-step accuracies predict under independent "
               f"errors, in the claimed direction, by at least {f.min_effect:g} q per function. Verdict: "
               f"**{verdict}** ({SOURCE}).", *claim_words(residual),
               "- **The null model's check** (unseen compositions after training): " + "; ".join(fits), ""]
    return Finding(**base, verdict=verdict, reason=f"{reason}; beside it, the literal order (t_k against k): "
                   f"{literal}: {literal_reason}", details=summary + details, runs=runs,
                   checks=[check.record() for check, *_ in residual.values()])
