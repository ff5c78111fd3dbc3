"""Which runs each figure uses, and the rows (written as the figure's CSV) it is drawn from.

Runs are chosen by their settings, never by tag. Findings 1-5 judge one Transformer architecture (the most
common nanoGPT label among the runs unless the config names one). Replicate runs (same setting, other seeds)
are averaged, each at its last evaluated checkpoint.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.io import csv_text
from report.measures import Group, group_runs
from report.runs import ReportError, Run

MIN_CHECKPOINTS = 3  # evaluated steps a run needs to show training dynamics
DIGITS = 6  # floats in the figure CSVs


@dataclass(frozen=True)
class FigureTable:
    """The data of one figure: its CSV rows, and the numbers its findings judge."""

    name: str  # file stem in the report folder, e.g. "fig1_compositions"
    columns: list[str]
    rows: list[dict]
    summary: dict = field(default_factory=dict)
    missing: str = ""  # why there are no rows (the runs the figure needs)


@dataclass(frozen=True)
class Study:
    runs: list[Run]
    groups: list[Group]
    metric: str
    transformer: str | None  # the judged nanoGPT label; None when no nanoGPT run is present

    def select(self, keep: Callable[[Group], bool], arch: str | None = "judged") -> list[Group]:
        """Groups passing `keep`, of the judged Transformer (arch="judged"), of any model (None) or of `arch`."""
        wanted = self.transformer if arch == "judged" else arch
        return [g for g in self.groups if (wanted is None or g.first.arch == wanted) and keep(g)]


def rows_csv(columns: list[str], rows: list[dict]) -> str:
    """A figure's CSV: rows keyed by `columns`; None becomes an empty cell, floats keep DIGITS digits."""
    return csv_text(columns, [["" if r[c] is None else round(r[c], DIGITS) if isinstance(r[c], float) else r[c]
                               for c in columns] for r in rows])


def make_study(runs: list[Run], metric: str, transformer: str | None) -> Study:
    labels = Counter(r.arch for r in runs if r.kind == "nanogpt")
    if transformer is not None and transformer not in labels:
        raise ReportError(f"transformer={transformer!r} matches no run; the runs have: {', '.join(labels) or 'none'}")
    if transformer is None and labels:
        transformer = min(labels, key=lambda label: (-labels[label], label))
    return Study(runs, group_runs(runs), metric, transformer)


def _stepbystep_inorder(g: Group) -> bool:
    return not g.first.direct and any(r.inorder is not None for r in g.runs)


def compositions_table(study: Study) -> FigureTable:
    """Figure 1 (findings 1 and 3): accuracy vs number of training compositions, `random` split, both formats."""
    columns = ["format", "model", "split", "n_train", "accuracy_all", "accuracy_unseen", "n_runs", "chance"]
    groups = study.select(lambda g: g.first.strategy == "random" and any(r.inorder is not None for r in g.runs))
    rows = []
    for g in groups:
        acc = g.inorder(study.metric)
        rows.append({"format": g.first.format, "model": g.first.arch, "split": g.first.split_label,
                     "n_train": g.n_train(), "accuracy_all": acc["all"], "accuracy_unseen": acc["unseen"],
                     "n_runs": len(g.runs), "chance": g.first.chance(study.metric)})
    rows.sort(key=lambda r: (r["format"] != "step-by-step", r["n_train"]))
    return FigureTable("fig1_compositions", columns, rows, missing="no `random`-split run was evaluated in order")


def base_table(study: Study) -> FigureTable:
    """Figure 2 (finding 2): accuracy by #functions, the base set alone vs the smallest `random` run with at least
    as many training compositions (the same amount of data or more, only not the base set)."""
    columns = ["series", "split", "n_train", "n_functions", "accuracy", "n_runs", "chance"]
    bases = study.select(lambda g: _stepbystep_inorder(g) and g.first.strategy == "base"
                         and g.first.split["n_compositions"] == 0)
    if not bases:
        return FigureTable("fig2_base_vs_random", columns, [], missing="no step-by-step `base` run with 0 extra "
                           "compositions")
    base = bases[0]
    randoms = study.select(lambda g: _stepbystep_inorder(g) and g.first.strategy == "random")
    chosen = {"base": base}
    if randoms:
        n = base.n_train()
        at_least = [g for g in randoms if g.n_train() >= n]
        pool, pick = (at_least, min) if at_least else (randoms, max)
        chosen["random"] = pick(pool, key=lambda g: g.n_train())
    rows, summary = [], {}
    for series, g in chosen.items():
        acc = g.inorder(study.metric)
        summary[series] = {**acc, "n_train": g.n_train(), "label": g.first.split_label}
        name = f"{series}: {g.first.split_label} ({g.n_train()} training compositions)"
        for k, value in sorted(acc["by_n_functions"].items()):
            rows.append({"series": name, "split": g.first.split_label, "n_train": g.n_train(),
                         "n_functions": k, "accuracy": value, "n_runs": len(g.runs),
                         "chance": g.first.chance(study.metric)})
    return FigureTable("fig2_base_vs_random", columns, rows, summary)


def outorder_table(study: Study) -> FigureTable:
    """Figure 3 (finding 4): out-of-order accuracy by (#identities, displacement): the in-order-trained setting
    that learned in-order composition best, beside the out-of-order-trained setting that does best displaced."""
    columns = ["panel", "training", "split", "n_identity", "displacement", "accuracy", "n_compositions", "n_runs",
               "chance"]
    evaluated = study.select(lambda g: not g.first.direct and any(r.outorder is not None for r in g.runs))
    inorder = [g for g in evaluated if g.inorder_training]
    combo = [g for g in evaluated if not g.inorder_training]
    panels = {}
    if inorder:
        panels["in-order"] = max(inorder, key=lambda g: g.outorder(study.metric)["by_displacement"].get(0) or 0.0)
    if combo:
        panels["out-of-order"] = max(combo, key=lambda g: g.outorder(study.metric)["displaced"] or 0.0)
    rows, summary = [], {}
    for training, g in panels.items():
        acc = g.outorder(study.metric)
        summary[training] = {**{k: v for k, v in acc.items() if k != "grid"}, "label": g.first.split_label}
        for (i, d), (value, n) in acc["grid"].items():
            rows.append({"panel": f"{training} training: {g.first.split_label}", "training": training,
                         "split": g.first.split_label, "n_identity": i, "displacement": d, "accuracy": value,
                         "n_compositions": n, "n_runs": len(g.runs), "chance": g.first.chance(study.metric)})
    return FigureTable("fig3_outorder", columns, rows, summary,
                       missing="no step-by-step run was evaluated out of order (03_evaluate_o.py)")


def dynamics_table(study: Study) -> FigureTable:
    """Figure 4 (finding 5): accuracy by #functions over training, base + random vs random (the setting with
    the most evaluated checkpoints of each, then the most accurate)."""
    columns = ["panel", "split", "step", "n_functions", "accuracy", "n_runs", "chance"]
    candidates = {
        "base + random": study.select(lambda g: _stepbystep_inorder(g) and g.first.strategy == "base"
                                      and g.first.split["n_compositions"] > 0 and len(g.steps()) >= MIN_CHECKPOINTS),
        "random": study.select(lambda g: _stepbystep_inorder(g) and g.first.strategy == "random"
                               and len(g.steps()) >= MIN_CHECKPOINTS),
    }
    rows = []
    for panel, groups in candidates.items():
        if not groups:
            continue
        g = max(groups, key=lambda g: (len(g.steps()), g.inorder(study.metric)["all"] or 0.0))
        for step, acc in g.curve(study.metric).items():
            for k, value in sorted(acc["by_n_functions"].items()):
                rows.append({"panel": panel, "split": g.first.split_label, "step": step, "n_functions": k,
                             "accuracy": value, "n_runs": len(g.curve_runs()), "chance": g.first.chance(study.metric)})
    return FigureTable("fig4_dynamics", columns, rows, missing=f"no step-by-step `base` (+ extra) or `random` run "
                       f"evaluated at >= {MIN_CHECKPOINTS} checkpoints")


def lstm_table(study: Study) -> FigureTable:
    """Figure 5 (finding 6): LSTM vs Transformer on the same data (same dataset config but for its seed)."""
    columns = ["data", "model", "kind", "n_train", "accuracy_train", "accuracy_unseen", "n_runs", "chance"]
    lstms = study.select(lambda g: g.first.kind == "lstm" and any(r.inorder is not None for r in g.runs), arch=None)
    rows = []
    for lstm in lstms:
        same = study.select(lambda g, lstm=lstm: g.first.kind == "nanogpt" and g.first.setting[0] ==
                            lstm.first.setting[0] and any(r.inorder is not None for r in g.runs), arch=None)
        if not same:
            continue
        transformer = next((g for g in same if g.first.arch == study.transformer), same[0])
        for g in (transformer, lstm):
            acc = g.inorder(study.metric)
            rows.append({"data": f"{g.first.format} {g.first.split_label}", "model": g.first.arch,
                         "kind": g.first.kind, "n_train": g.n_train(), "accuracy_train": acc["train"],
                         "accuracy_unseen": acc["unseen"], "n_runs": len(g.runs),
                         "chance": g.first.chance(study.metric)})
    return FigureTable("fig5_lstm_vs_transformer", columns, rows,
                       missing="no LSTM run with a Transformer run on the same data")


def curves_table(study: Study) -> FigureTable:
    """Figure 6: training loss and teacher-forced accuracy on y_L (eval_all, eval_train) vs step, from each run's
    metrics.jsonl (copied into results/<tag>/ by the evaluation)."""
    columns = ["run", "model", "step", "loss", "eval_all_acc", "eval_train_acc", "chance"]
    rows = []
    for run in study.runs:
        for record in run.metrics:
            row = {"run": run.tag, "model": run.arch, "step": int(record["step"]), "loss": None,
                   "eval_all_acc": None, "eval_train_acc": None, "chance": run.chance("token_acc")}
            if record.get("event") == "train":
                row["loss"] = record.get("loss")
            elif record.get("event") == "eval":
                row["eval_all_acc"] = record.get("eval_all/tf_acc")
                row["eval_train_acc"] = record.get("eval_train/tf_acc")
            if any(row[c] is not None for c in ("loss", "eval_all_acc", "eval_train_acc")):
                rows.append(row)
    return FigureTable("fig6_training_curves", columns, rows, missing="no run's metrics.jsonl was found")
