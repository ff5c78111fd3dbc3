"""Figure 4 and the measurements of finding 5 (docs/task.md §9: a secondary source's claim about the order in which
compositions are learned): which settings the two panels judge, each replicate's y_L accuracy decomposed into its
per-step teacher-forced accuracies (report.learning_order), the figure's rows, its two extra CSVs, and the rows of
the tables findings.md shows.

Panels: "base + random" (step-by-step `base` with extra compositions) and "random" (step-by-step `random`), each the
judged Transformer's setting with the most evaluated checkpoints (>= MIN_CHECKPOINTS), then the most replicates.
Controls: step-by-step `random` settings of another function.repeat (Study.controls) and `random_biased` ones of the
judged Transformer with as many checkpoints: decomposed and shown, never judged. The decomposition is of token
accuracy whatever the report's metric (the independence model is one of tokens; chance 1/A).
"""

import json
import math
from dataclasses import dataclass

from report import learning_order as lo
from report.criteria import F5
from report.estimates import Estimate, estimate
from report.measures import ByFunctions, Group, accuracy_train
from report.runs import ReportError, Run
from report.tables import CONTROL_KEYS, MIN_CHECKPOINTS, FigureTable, Study, accuracy_row, ks_of, runs_cell, stepbystep

COLUMNS = ["panel", "split", "quantity", "n_functions", "step", "value", "ci_low", "ci_high", "n_runs",
           "accuracy_train", "accuracy_train_min", "chance", "observed", "predicted", "runs"]
# one run per row (n_runs 1, no interval: ci_low and ci_high empty; the seeds' intervals are fig4_dynamics.csv's);
# accuracy_train: that run's y_L token accuracy on its own training compositions at that checkpoint
PER_RUN = ["accuracy_train", "ci_low", "ci_high", "n_runs"]
DECOMPOSITION = ["panel", "judged", "run", "seed", "subset", "step", "k", "in_window", "observed", "predicted",
                 "residual", "n_compositions", *PER_RUN]
STEP_ACCURACY = ["panel", "judged", "run", "seed", "subset", "step", "slot", "kind", "in_window", "tf_acc",
                 "n_compositions", *PER_RUN]


@dataclass(frozen=True)
class Panel:
    """One setting's replicates, decomposed (Evals.seed i is runs[i], whatever its data.seed)."""

    name: str  # "base + random", "random", or a control's label
    group: Group
    runs: tuple[Run, ...]  # the replicates evaluated in order
    judged: bool
    evals: lo.Evals | None  # None when a run's results lack the per-step columns
    stats: tuple[lo.SeedStat, ...]
    missing: str = ""  # why evals is None

    @property
    def names(self) -> dict[int, str]:
        return {i: r.tag for i, r in enumerate(self.runs)}

    @property
    def n_alphabets(self) -> int:
        return self.group.first.data["n_alphabets"]

    def train_estimate(self, confidence: float) -> Estimate:
        """The replicates' token accuracy on their training compositions at their last checkpoints."""
        return estimate([None if math.isnan(s.accuracy_train) else s.accuracy_train for s in self.stats], confidence)


def decompose(name: str, group: Group, judged: bool, f5: F5, fit_min: float) -> Panel:
    runs = tuple(group.evaluated("inorder"))
    try:
        ev = lo.evals_from_tables({i: r.inorder for i, r in enumerate(runs)}, {i: r.tag for i, r in enumerate(runs)})
    except ReportError as err:
        return Panel(name, group, runs, judged, None, (), f"{err} (03_evaluate_i.py writes them: rerun it)")
    stats = lo.seed_statistics(ev, group.first.data["n_alphabets"], low=f5.window_low, high=f5.window_high,
                               fit_level=fit_min)
    return Panel(name, group, runs, judged, ev, tuple(stats))


def _dense(g: Group) -> bool:
    return stepbystep(g) and g.n_steps() >= MIN_CHECKPOINTS


def judged_panels(study: Study, f5: F5, fit_min: float) -> dict[str, Panel]:
    """Each claim's panel (learning_order.CLAIMS) that has a setting, decomposed."""
    candidates = {
        "base + random": study.select(lambda g: _dense(g) and g.first.strategy == "base"
                                      and g.first.split["n_compositions"] > 0),
        "random": study.select(lambda g: _dense(g) and g.first.strategy == "random"),
    }
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
        for r in lo.residual_by_k(p.stats, study.confidence):
            rows.append({"panel": name, "split": g.first.split_label, "quantity": "residual", "n_functions": r["k"],
                         "step": None, "value": r["residual"], "ci_low": r["low"], "ci_high": r["high"],
                         "n_runs": r["n"], "accuracy_train": train.mean if train.n else None,
                         "accuracy_train_min": min(s.accuracy_train for s in p.stats) if train.n else None,
                         "chance": 0.0, "observed": r["observed"], "predicted": r["predicted"],
                         "runs": runs_cell(p.names[s.seed] for s in p.stats if s.window and r["k"] in s.residual)})
    every = [*panels.values(), *controls]
    return FigureTable("fig4_dynamics", COLUMNS, rows, {"panels": panels, "controls": controls},
                       missing=f"no step-by-step `base` (+ extra) or `random` run evaluated at >= {MIN_CHECKPOINTS} "
                               "checkpoints",
                       extras={"fig4_decomposition": (DECOMPOSITION, decomposition_rows(every)),
                               "fig4_step_accuracy": (STEP_ACCURACY, step_accuracy_rows(every))})


def _labelled(p: Panel, subset: str, row: dict, fits: dict) -> dict:
    """A learning_order row (its seed: the index of the run in p.runs) labelled by panel, run and data seed, with
    the run's token accuracy on its training compositions at that step (PER_RUN; `fits` caches it per run and
    step)."""
    run, window = p.runs[row["seed"]], next(s.window for s in p.stats if s.seed == row["seed"])
    key = (run.tag, int(row["step"]))
    if key not in fits:
        fits[key] = accuracy_train(run, "token_acc", int(row["step"]))
    return {**row, "panel": p.name, "judged": int(p.judged), "run": run.tag, "seed": run.seed, "subset": subset,
            "in_window": int(row["step"] in window), "accuracy_train": fits[key], "ci_low": None, "ci_high": None,
            "n_runs": 1}


def decomposition_rows(panels: list[Panel]) -> list[dict]:
    """learning_order.residual_rows of every panel and subset, labelled by run."""
    fits: dict = {}
    return [_labelled(p, subset, r, fits) for p in panels if p.evals is not None for subset in lo.SUBSETS
            for r in lo.residual_rows(p.evals, p.n_alphabets, subset)]


def step_accuracy_rows(panels: list[Panel]) -> list[dict]:
    """learning_order.step_accuracy_rows of every panel and subset, labelled by run."""
    fits: dict = {}
    return [_labelled(p, subset, r, fits) for p in panels if p.evals is not None for subset in lo.SUBSETS
            for r in lo.step_accuracy_rows(p.evals, subset)]


def crossing_cells(p: Panel, levels: list[float], confidence: float) -> tuple[list[int], list[list[str]]]:
    """t_k per (metric, subset, level) row and k column: the seeds' mean step [interval] among those that reached
    the level, and how many never did (learning_order.crossing_summary)."""
    summary = lo.crossing_summary(lo.crossing_rows(p.evals, levels), confidence)
    ks = sorted({s["k"] for s in summary})
    cells: dict[tuple, dict[int, str]] = {}
    for s in summary:
        text = "never" if s["n"] == 0 else f"{s['mean']:.0f}" + (
            "" if s["low"] is None else f" [{s['low']:.0f}, {s['high']:.0f}]")
        text += f" ({s['n_never']} never)" if s["n"] and s["n_never"] else ""
        cells.setdefault((s["metric"], s["subset"], s["level"]), {})[s["k"]] = text
    return ks, [[metric, subset, f"{level:g}", *[row.get(k, "–") for k in ks]]
                for (metric, subset, level), row in sorted(cells.items())]
