"""Accuracies of one run, their averages over replicate runs (same setting, other seeds), and the two statistics
the dynamics finding needs (the step where a curve first crosses a level, a rank correlation)."""

import math
from dataclasses import dataclass

import numpy as np

from report.runs import INORDER_STRATEGIES, Run, Table


def last_step(table: Table) -> int:
    return int(table["step"].max())


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def inorder_at(run: Run, metric: str, step: int | None = None) -> dict:
    """In-order accuracy at `step` (default: the run's last): over all compositions ("all"), the training ones
    ("train"), the unseen ones ("unseen"), those of >= 2 functions ("multi"), and per #functions
    ("by_n_functions": {k: accuracy}); "n_train" counts the in-order training compositions."""
    t = run.inorder
    at = t["step"] == (last_step(t) if step is None else step)
    acc, n_fn = t[metric], t["n_functions"]
    return {
        "all": _mean(acc, at), "train": _mean(acc, at & t["in_train"]), "unseen": _mean(acc, at & ~t["in_train"]),
        "multi": _mean(acc, at & (n_fn >= 2)), "n_train": int((at & t["in_train"]).sum()),
        "by_n_functions": {k: _mean(acc, at & (n_fn == k)) for k in np.unique(n_fn).tolist()},
    }


def outorder_at(run: Run, metric: str) -> dict:
    """Out-of-order accuracy at the run's last evaluated step: per (#identities, displacement) group ("grid":
    {(i, d): (accuracy, compositions)}), per displacement ("by_displacement": {d: accuracy}) and over
    displacement >= 1 ("displaced")."""
    t = run.outorder
    at = t["step"] == last_step(t)
    acc, n_id, disp = t[metric], t["n_identity"], t["displacement"]
    grid = {}
    for i, d in sorted(set(zip(n_id[at].tolist(), disp[at].tolist(), strict=True))):
        mask = at & (n_id == i) & (disp == d)
        grid[i, d] = (float(acc[mask].mean()), int(mask.sum()))
    return {"grid": grid, "displaced": _mean(acc, at & (disp >= 1)),
            "by_displacement": {d: _mean(acc, at & (disp == d)) for d in np.unique(disp[at]).tolist()}}


def average(values: list[dict]) -> dict:
    """Key-wise mean over replicate runs of dicts of numbers (or of nested dicts of numbers); None values are
    left out, and a key is None when every run's is."""
    out = {}
    for key in dict.fromkeys(k for v in values for k in v):
        present = [v[key] for v in values if v.get(key) is not None]
        if present and isinstance(present[0], dict):
            out[key] = average(present)
        else:
            out[key] = float(np.mean(present)) if present else None
    return out


@dataclass(frozen=True)
class Group:
    """Replicate runs of one setting (the same dataset config but for its seed, the same model label)."""

    runs: tuple[Run, ...]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def inorder_training(self) -> bool:
        return self.first.strategy in INORDER_STRATEGIES

    def inorder(self, metric: str) -> dict:
        """inorder_at averaged over the runs, each at its own last step."""
        return average([inorder_at(r, metric) for r in self.runs if r.inorder is not None])

    def n_train(self) -> int:
        return round(self.inorder("token_acc")["n_train"])

    def steps(self) -> list[int]:
        return sorted({s for r in self.runs if r.inorder is not None for s in r.inorder["step"].tolist()})

    def curve_runs(self) -> list[Run]:
        """The replicates evaluated on the densest checkpoint grid (averaging replicates evaluated at other steps
        would give a jagged mean)."""
        evaluated = [r for r in self.runs if r.inorder is not None]
        grids = [sorted(set(r.inorder["step"].tolist())) for r in evaluated]
        densest = max(grids, key=len)
        return [r for r, grid in zip(evaluated, grids, strict=True) if grid == densest]

    def curve(self, metric: str) -> dict[int, dict]:
        """step -> inorder_at averaged over `curve_runs`."""
        runs = self.curve_runs()
        return {s: average([inorder_at(r, metric, s) for r in runs]) for s in sorted(set(runs[0].inorder["step"]))}

    def outorder(self, metric: str) -> dict:
        """outorder_at averaged over the runs (grid cells too)."""
        parts = [outorder_at(r, metric) for r in self.runs if r.outorder is not None]
        out = average([{k: v for k, v in p.items() if k != "grid"} for p in parts])
        cells = sorted({c for p in parts for c in p["grid"]})
        out["grid"] = {c: (float(np.mean([p["grid"][c][0] for p in parts if c in p["grid"]])),
                           max(p["grid"][c][1] for p in parts if c in p["grid"])) for c in cells}
        return out


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by setting, in the order their first run appears."""
    groups: dict[tuple, list[Run]] = {}
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
