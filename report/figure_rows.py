"""Which runs each figure of the paper report uses, and the rows (written as the figure's CSV) it is drawn from.

Runs are chosen by their settings, never by tag. Findings 1, 2, 4 and 5 judge one Transformer architecture (the
most common nanoGPT label among the runs unless the config names one); finding 3 compares the formats within each
nanoGPT architecture. Runs of another value of a CONTROL_KEYS key (an exposure control of finding 5) are kept
apart (Study.controls): no figure of this module and no verdict uses them; figure 4 is report.learning_order's.
Replicate runs (same setting, other seeds) are read at a common step (report.stats.Point); every accuracy row holds
the mean over them, its interval (ci_low, ci_high), the replicates counted (n_runs), and their accuracy on their own
training compositions (accuracy_train: the mean; accuracy_train_min: the lowest). In the figures of accuracy against
a count (1, 2, 5) a setting's row (`fitted` 1) holds the replicates that fit their training compositions
(accuracy_train >= Study.fit_min) and is drawn as the mean line; each replicate that did not fit follows it in a row
of its own (`fitted` 0, n_runs 1), drawn as a hollow marker. The verdicts read every replicate (the summaries).
"""

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from core.io import csv_text
from report.runs import INORDER_STRATEGIES, SEED_KEYS, ByFunctions, Cell, Quantity, ReportError, Run
from report.stats import Group, Point, estimate, group_runs
from synthetic.task import loss_floors

MIN_CHECKPOINTS = 3  # evaluated steps a run needs to show training dynamics
DIGITS = 6  # floats in the figure CSVs
FIT_COLUMNS = ["step", "accuracy", "ci_low", "ci_high", "n_runs", "accuracy_train", "accuracy_train_min"]
TASK_KEYS = ("data.n_alphabets", "data.seq_len", "data.with_replacement", "data.function.depth",
             "data.function.n_functions", "data.function.permute", "data.function.permute_levels")  # one task
CONTROL_KEYS = ("data.function.repeat",)  # runs of another value are controls (finding 5 shows them, none judges them)


@dataclass(frozen=True)
class FigureTable:
    """The data of one figure: its CSV rows, and the points its findings judge."""

    name: str  # file stem in the report folder, e.g. "fig1_compositions"
    columns: list[str]
    rows: list[dict]
    summary: dict = field(default_factory=dict)
    missing: str = ""  # why there are no rows (the runs the figure needs)
    extras: dict[str, tuple[list[str], list[dict]]] = field(default_factory=dict)  # more CSVs: stem -> (columns, rows)


@dataclass(frozen=True)
class Study:
    runs: list[Run]  # every run read, controls included
    groups: list[Group]  # the judged task's settings
    metric: str
    transformer: str | None  # the judged nanoGPT label; None when no nanoGPT run is present
    confidence: float  # of the intervals over replicates
    controls: list[Group] = field(default_factory=list)  # settings of another value of a CONTROL_KEYS key
    fit_min: float | None = None  # accuracy_train a replicate needs to count in a figure's mean; None: every one

    def select(self, keep: Callable[[Group], bool], arch: str | None = "judged") -> list[Group]:
        """Groups passing `keep`, of the judged Transformer (arch="judged"), of any model (None) or of `arch`."""
        wanted = self.transformer if arch == "judged" else arch
        return [g for g in self.groups if (wanted is None or g.first.arch == wanted) and keep(g)]

    def inorder(self, g: Group, metric: str | None = None) -> Point | None:
        return g.point("inorder", metric or self.metric, self.confidence)


def rows_csv(columns: list[str], rows: list[dict]) -> str:
    """A figure's CSV: rows keyed by `columns`; None becomes an empty cell, floats keep DIGITS digits."""
    return csv_text(columns, [["" if r[c] is None else round(r[c], DIGITS) if isinstance(r[c], float) else r[c]
                               for c in columns] for r in rows])


def accuracy_row(point: Point, key: Quantity) -> dict:
    """FIT_COLUMNS for quantity `key` of `point`, and its `runs`."""
    value, train = point.estimate(key), point.train_estimate()
    return {"step": point.step, "accuracy": value.mean if value.n else None, "ci_low": value.low,
            "ci_high": value.high, "n_runs": value.n, "accuracy_train": train.mean if train.n else None,
            "accuracy_train_min": point.train_min, "runs": " ".join(point.tags)}


def fit_rows(point: Point, key: Quantity, fit_min: float | None, **labels) -> list[dict]:
    """accuracy_row of the replicates of `point` that fit (accuracy_train >= fit_min; `fitted` 1), then one row
    per replicate that did not (`fitted` 0), each with `labels`; fit_min None: one row of every replicate."""
    def row(keep: list[int], fitted: int) -> dict:
        part = dataclasses.replace(point, runs=tuple(point.runs[i] for i in keep),
                                   numbers=tuple(point.numbers[i] for i in keep),
                                   train=tuple(point.train[i] for i in keep))
        return {**labels, **accuracy_row(part, key), "fitted": fitted}

    unfit = [i for i, a in enumerate(point.train) if fit_min is not None and (a is None or a < fit_min)]
    return [row([i for i in range(point.n) if i not in unfit], 1), *[row([i], 0) for i in unfit]]


def check_one_task(runs: list[Run]) -> None:
    """A paper report compares runs of one task: refuse runs that differ in a key of TASK_KEYS."""
    for key in TASK_KEYS:
        values = sorted({json.dumps(r.config.get(key)) for r in runs})
        if len(values) > 1:
            raise ReportError(f"kind=paper judges runs of one task, but these runs differ in {key} "
                              f"({', '.join(values)}); select one task with include= / exclude=")


def make_study(runs: list[Run], metric: str, transformer: str | None, confidence: float,
               fit_min: float | None = None) -> Study:
    """The judged task holds the CONTROL_KEYS values of most runs (ties: the first in JSON order), e.g.
    function.repeat=false beside one repeat=true exposure control; the other runs are its controls."""
    labels = Counter(r.arch for r in runs if r.kind == "nanogpt")
    if transformer is not None and transformer not in labels:
        raise ReportError(f"transformer={transformer!r} matches no run; the runs have: {', '.join(labels) or 'none'}")
    if transformer is None and labels:
        transformer = min(labels, key=lambda label: (-labels[label], label))
    values = [json.dumps([r.config.get(k) for k in CONTROL_KEYS]) for r in runs]
    counts = Counter(values)
    task = min(counts, key=lambda v: (-counts[v], v))
    return Study(runs, group_runs([r for r, v in zip(runs, values, strict=True) if v == task]), metric, transformer,
                 confidence, group_runs([r for r, v in zip(runs, values, strict=True) if v != task]), fit_min)


def data_setting(g: Group) -> str:
    """The dataset settings of a group (no model, no seed): groups with equal ones trained on the same data."""
    return json.dumps({k: v for k, v in g.first.config.items() if k.startswith("data.") and k not in SEED_KEYS},
                      sort_keys=True)


def by_count(groups: list[Group]) -> dict[int, Group]:
    """Training-composition count -> group; of several groups with one count, the one with the most runs."""
    out: dict[int, Group] = {}
    for g in sorted(groups, key=lambda g: -len(g.runs)):
        out.setdefault(g.n_train, g)
    return dict(sorted(out.items()))


def stepbystep(g: Group, table: str = "inorder") -> bool:
    return not g.first.direct and bool(g.evaluated(table))


def compositions_table(study: Study) -> FigureTable:
    """Figure 1 (findings 1 and 3): accuracy vs number of training compositions, `random` split, both formats,
    every nanoGPT architecture; all and unseen in-order compositions."""
    columns = ["format", "model", "split", "n_train", "compositions", *FIT_COLUMNS, "fitted", "chance", "runs"]
    groups = study.select(lambda g: g.first.strategy == "random" and g.first.kind == "nanogpt"
                          and bool(g.evaluated("inorder")), arch=None)
    rows, summary = [], {}
    for fmt in ("step-by-step", "direct"):
        for arch in sorted({g.first.arch for g in groups}):
            for n, g in by_count([g for g in groups if g.first.format == fmt and g.first.arch == arch]).items():
                point = summary[fmt, arch, n] = study.inorder(g)
                rows += [row for s in ("all", "unseen") for row in fit_rows(
                    point, s, study.fit_min, format=fmt, model=arch, split=g.first.split_label, n_train=n,
                    compositions=s, chance=g.first.chance(study.metric))]
    return FigureTable("fig1_compositions", columns, rows, summary,
                       missing="no nanoGPT `random`-split run was evaluated in order")


def ks_of(point: Point) -> list[int]:
    """The #functions present in a point's in-order numbers."""
    return [q.n_functions for q in point.quantities(ByFunctions) if not q.unseen]


def f2_key(k: int) -> ByFunctions:
    """Finding 2's quantity for k functions: all compositions for k <= 1 (the base set holds them), the unseen ones
    for k >= 2 (so the `random` control's own training compositions do not count)."""
    return ByFunctions(k, unseen=k >= 2)


def base_table(study: Study) -> FigureTable:
    """Figure 2 (finding 2): accuracy and sequence accuracy by #functions k (k <= 1: all compositions, k >= 2: the
    unseen ones), the base set alone vs the step-by-step `random` run with as many training compositions (the
    same amount of data, only not the base set); and the judged metric of every `random` setting with more
    (summary "controls": count -> point), the controls that compose where the equal-count one does not."""
    columns = ["series", "split", "n_train", "n_functions", "compositions", "metric", *FIT_COLUMNS, "fitted",
               "chance", "runs"]
    bases = by_count(study.select(lambda g: stepbystep(g) and g.first.strategy == "base"
                                  and g.first.split["n_compositions"] == 0))
    if not bases:
        return FigureTable("fig2_base_vs_random", columns, [], missing="no step-by-step `base` run with 0 extra "
                           "compositions")
    (n, base), = bases.items()  # the base set alone has one count
    randoms = by_count(study.select(lambda g: stepbystep(g) and g.first.strategy == "random"))
    chosen = {"base": base, "random": randoms.get(n)}
    rows, summary = [], {"n_train": n, "random_counts": list(randoms), "controls": {}}
    drawn = [(series, g, [study.metric, "seq_acc"]) for series, g in chosen.items()]
    drawn += [("controls", g, [study.metric]) for count, g in randoms.items() if count > n]
    for series, g, metrics in drawn:
        points = g and {m: study.inorder(g, m) for m in dict.fromkeys(metrics)}
        if series == "controls":
            summary["controls"][g.n_train] = points[study.metric]
        else:
            summary[series] = points
        for m, point in (points or {}).items():
            rows += [row for k in ks_of(point) for row in fit_rows(
                point, f2_key(k), study.fit_min, series=f"{series.replace('controls', 'random')}: "
                f"{g.first.split_label} ({g.n_train} training compositions)",
                split=g.first.split_label, n_train=g.n_train, n_functions=k, compositions="all" if k <= 1 else "unseen",
                metric=m, chance=g.first.chance(m))]
    return FigureTable("fig2_base_vs_random", columns, rows, summary)


def outorder_table(study: Study) -> FigureTable:
    """Figure 3 (finding 4): out-of-order accuracy by (#identities, displacement), one panel per step-by-step
    setting evaluated out of order; finding 4 pairs an in-order-trained and an out-of-order-trained one with the
    same number of training compositions."""
    columns = ["panel", "training", "split", "n_train", "n_identity", "displacement", *FIT_COLUMNS,
               "n_compositions", "chance", "runs"]
    evaluated = study.select(lambda g: stepbystep(g, "outorder"))
    rows, summary = [], {}
    for training, inorder in (("in-order", True), ("out-of-order", False)):
        summary[training] = {}
        for n, g in by_count([g for g in evaluated if (g.first.strategy in INORDER_STRATEGIES) == inorder]).items():
            point = summary[training][n] = g.point("outorder", study.metric, study.confidence)
            t = g.evaluated("outorder")[0].outorder  # not g.first: a replicate may hold in-order results only
            at = t["step"] == point.step
            for key in point.quantities(Cell):
                i, d = key.n_identity, key.displacement
                size = int((at & (t["n_identity"] == i) & (t["displacement"] == d)).sum())
                rows.append({"panel": f"{training} training: {g.first.split_label} ({n} compositions)",
                             "training": training, "split": g.first.split_label, "n_train": n, "n_identity": i,
                             "displacement": d, **accuracy_row(point, key), "n_compositions": size,
                             "chance": g.first.chance(study.metric)})
    return FigureTable("fig3_outorder", columns, rows, summary,
                       missing="no step-by-step run was evaluated out of order (03_evaluate_o.py)")


def lstm_table(study: Study) -> FigureTable:
    """Figure 5 (finding 6): LSTM vs Transformer on the same data (dataset settings equal but for the seed), at
    every training-composition count run with both; training and unseen compositions."""
    columns = ["data", "model", "kind", "n_train", "compositions", *FIT_COLUMNS, "fitted", "chance", "runs"]
    lstms = study.select(lambda g: g.first.kind == "lstm" and bool(g.evaluated("inorder")), arch=None)
    rows, pairs = [], []
    for lstm in sorted(lstms, key=lambda g: g.n_train):
        same = study.select(lambda g, lstm=lstm: g.first.kind == "nanogpt" and data_setting(g) == data_setting(lstm)
                            and bool(g.evaluated("inorder")), arch=None)
        if not same:
            continue
        transformer = next((g for g in same if g.first.arch == study.transformer), same[0])
        points = study.inorder(transformer), study.inorder(lstm)
        pairs.append({"n_train": lstm.n_train, "data": f"{lstm.first.format} {lstm.first.split_label}",
                      "transformer": points[0], "lstm": points[1]})
        for g, point in zip((transformer, lstm), points, strict=True):
            rows += [row for s in ("train", "unseen") for row in fit_rows(
                point, s, study.fit_min, data=pairs[-1]["data"], model=g.first.arch, kind=g.first.kind,
                n_train=g.n_train, compositions=s, chance=g.first.chance(study.metric))]
    return FigureTable("fig5_lstm_vs_transformer", columns, rows, {"pairs": pairs},
                       missing="no LSTM run with a Transformer run on the same data")


CURVES = {"loss": "loss", "accuracy": "eval_all/tf_acc", "accuracy_train": "eval_train/tf_acc"}  # column: record
CURVE_CI = {"loss": ("loss_ci_low", "loss_ci_high"), "accuracy": ("ci_low", "ci_high"),
            "accuracy_train": ("accuracy_train_ci_low", "accuracy_train_ci_high")}


def _by_step(run: Run) -> dict[int, dict]:
    """A run's metrics.jsonl records merged per step (a train and an eval record may share one)."""
    out: dict[int, dict] = {}
    for record in run.metrics:
        out.setdefault(int(record["step"]), {}).update(record)
    return out


def curves_table(study: Study) -> FigureTable:
    """Figure 6: training loss and teacher-forced accuracy on y_L over all in-order compositions (accuracy) and
    the training ones (accuracy_train) vs step, from each run's metrics.jsonl (copied into results/<tag>/ by the
    evaluation), averaged over a setting's replicates at the steps they all logged."""
    columns = ["setting", "model", "step", "n_runs", *[c for k in CURVES for c in (k, *CURVE_CI[k])], "chance",
               "runs"]
    rows = []
    for g in study.groups:
        logged = [r for r in g.runs if r.metrics]
        logs = [_by_step(r) for r in logged]
        for step in sorted(set.intersection(*(set(log) for log in logs))) if logs else []:
            row = {"setting": g.label, "model": g.first.arch, "step": step, "n_runs": len(logs),
                   "chance": g.first.chance("token_acc"), "runs": " ".join(r.tag for r in logged)}
            for column, name in CURVES.items():
                e = estimate([log[step].get(name) for log in logs], study.confidence)
                row |= {column: e.mean if e.n else None, CURVE_CI[column][0]: e.low, CURVE_CI[column][1]: e.high}
            if any(row[c] is not None for c in CURVES):
                rows.append(row)
    return FigureTable("fig6_training_curves", columns, rows, missing="no run's metrics.jsonl was found")


LOSS_FLOOR_COLUMNS = ["run", "line", "format", "n_train", "step", "loss", "plateau_floor", "solved_floor"]


def loss_floor_rows(runs: list[Run], line: Callable[[Run], str] = lambda run: run.tag) -> list[dict]:
    """Each run's loss on its training documents (metrics.jsonl's eval_train/loss) at every evaluated step, beside
    the floors its task sets (synthetic.task.loss_floors): `plateau_floor`, a model that knows how prompts are drawn
    but guesses every output token; `solved_floor`, one that writes every output. `line`: the run's setting in
    words, which its replicates share (the figure draws them in one color)."""
    rows = []
    for run in runs:
        solved, plateau = loss_floors(run.spec, run.n_train, bool(run.data["with_replacement"]))
        rows += [{"run": run.tag, "line": line(run), "format": run.format, "n_train": run.n_train, "step": r["step"],
                  "loss": round(r["eval_train/loss"], DIGITS), "plateau_floor": round(plateau, DIGITS),
                  "solved_floor": round(solved, DIGITS)}
                 for r in run.metrics if r.get("event") == "eval" and r.get("eval_train/loss") is not None]
    return rows
