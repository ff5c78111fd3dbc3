"""The general report (kind=general): the selected runs, one in-order accuracy plotted against one config key (or
the training step), one line per value of the grouping keys, replicates (seeds) averaged with their interval.
Nothing is judged against the paper's thresholds.

Keys are Run.config's ('data.function.split.n_compositions', 'model.n_layer', ...), any unambiguous ending of one
('n_compositions', 'function.n_functions'), a derived key of DERIVED, or 'step' (x only: curves over training).
"""

import json
from dataclasses import dataclass

from report.figure_rows import accuracy_row
from report.runs import SEED_KEYS, ReportError, Run, differing_keys
from report.stats import Group, Point, group_runs

STEP = "step"
DERIVED = {  # derived key -> (its value for a run, the config key prefixes it is computed from)
    "n_train": (lambda r: r.n_train, ("data.function.",)),
    "format": (lambda r: r.format, ("data.direct",)),
    "split": (lambda r: r.split_label, ("data.function.",)),
    "model": (lambda r: r.arch, ("model.",)),
}
DATA_IMPLIED = {  # model key -> the value the run's dataset implies (net.vocab_size=null: the dataset's vocabulary)
    "model.vocab_size": lambda r: r.spec.vocab_size,
}
SUBSETS = ("all", "train", "unseen")


def value(run: Run, key: str) -> object:
    return DERIVED[key][0](run) if key in DERIVED else run.config.get(key)


def resolve_key(name: str, field: str, runs: list[Run]) -> str:
    """The config key `name` stands for: itself, a derived key, or the one key ending with '.<name>'."""
    keys = sorted({k for r in runs for k in r.config})
    if name in keys or name in DERIVED:
        return name
    matches = [k for k in keys if k.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    hint = f"it could be {', '.join(matches)}" if matches else f"keys: {', '.join(keys + list(DERIVED))}"
    raise ReportError(f"{field}={name!r} names no single config key of the runs; {hint}")


def default_lines(runs: list[Run], x: str) -> list[str]:
    """Every config key that differs between the runs, but x, the keys x is derived from, the seeds, keys that
    differ only by being absent from some runs (an LSTM has no n_head: its kind tells it apart already), and keys of
    DATA_IMPLIED at the value their runs' datasets imply (the data keys, shown or x, tell those runs apart)."""
    sources = DERIVED[x][1] if x in DERIVED else (x,)
    keys = [k for k in differing_keys(runs) if k not in SEED_KEYS and not k.startswith(sources)]
    keys = [k for k in keys if not (k in DATA_IMPLIED and all(r.config.get(k) == DATA_IMPLIED[k](r) for r in runs))]
    return [k for k in keys if len({json.dumps(r.config[k]) for r in runs if k in r.config}) > 1]


@dataclass(frozen=True)
class Plot:
    """The resolved figure: x key, line keys, the quantity drawn."""

    x: str
    lines: list[str]
    metric: str
    subset: str

    def line_label(self, run: Run) -> str:
        """'n_layer=2, lr=0.001': each key by its last dotted part, or whole where two would share that."""
        last = [k.rsplit(".", 1)[-1] for k in self.lines]
        return ", ".join(f"{s if last.count(s) == 1 else k}={value(run, k)}"
                         for k, s in zip(self.lines, last, strict=True))


def resolve(runs: list[Run], x: str, group_by: list[str] | None, metric: str, subset: str) -> Plot:
    x = STEP if x == STEP else resolve_key(x, "general.x", runs)
    lines = default_lines(runs, x) if group_by is None else [resolve_key(k, "general.group_by", runs) for k in group_by]
    return Plot(x, lines, metric, subset)


def _cells(plot: Plot, groups: list[Group]) -> dict[tuple, Group]:
    """(line label, x value) -> its one setting; two settings on one point is an error naming a key that
    tells them apart."""
    cells: dict[tuple, Group] = {}
    for g in groups:
        cell = (plot.line_label(g.first), None if plot.x == STEP else value(g.first, plot.x))
        if cell in cells:
            a, b = cells[cell].first, g.first
            key = next(k for k in sorted(set(a.config) | set(b.config)) if k not in SEED_KEYS
                       and json.dumps(a.config.get(k)) != json.dumps(b.config.get(k)))
            raise ReportError(f"runs {a.tag} and {b.tag} fall on one point of the figure but differ in {key}; add it "
                              f"to general.group_by, or leave one out with exclude=")
        cells[cell] = g
    return cells


def general_rows(runs: list[Run], plot: Plot, confidence: float) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the general figure's CSV: per line and x value, the mean accuracy over the setting's
    replicates at their common step (x=step: at every step of its curve), its interval and fit."""
    columns = ["line", *([] if plot.x == STEP else [plot.x]), "compositions", "step", "accuracy", "ci_low", "ci_high",
               "n_runs", "accuracy_train", "accuracy_train_min", "chance", "runs"]
    groups = [g for g in group_runs(runs) if g.evaluated("inorder")]
    rows = []
    for (line, x), g in _cells(plot, groups).items():
        points: list[Point] = (g.curve(plot.metric, confidence) if plot.x == STEP
                               else [g.point("inorder", plot.metric, confidence)])
        for p in points:
            rows.append({"line": line, plot.x: p.step if plot.x == STEP else x, "compositions": plot.subset,
                         **accuracy_row(p, plot.subset), "chance": g.first.chance(plot.metric)})
    numeric = all(isinstance(r[plot.x], int | float) and not isinstance(r[plot.x], bool) for r in rows)
    rows.sort(key=lambda r: (r["line"], r[plot.x] if numeric else str(r[plot.x])))
    return columns, rows
