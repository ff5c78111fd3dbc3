"""The study's findings (docs/task.md §9), each judged by a fixed criterion whose thresholds come from the report
config (config/report/conf.yaml, `criteria`). A finding whose runs are absent is "not run"."""

import math
from dataclasses import dataclass

from report.measures import first_crossing, spearman
from report.mechanism import judge_mechanism, mechanism_lines
from report.runs import Run
from report.tables import MIN_CHECKPOINTS, FigureTable

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
METRIC_NAMES = {"token_acc": "token accuracy", "seq_acc": "sequence accuracy", "tf_acc": "teacher-forced accuracy"}


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    claim: str  # what the study found
    criterion: str  # the fixed test, thresholds written out
    verdict: str  # REPRODUCED | NOT_REPRODUCED | NOT_RUN
    measured: str  # one line for the summary table
    details: list[str]  # markdown lines: the measured numbers
    figure: str | None  # stem of the figure that shows it


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "never" if value == math.inf else f"{value:.3f}"


def fmt_step(value: float) -> str:
    return "never" if value == math.inf else f"{value:.0f}"


def _judge(ok: bool) -> str:
    return REPRODUCED if ok else NOT_REPRODUCED


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def finding1(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=1, title="A few random compositions suffice (step-by-step)", figure=t.name,
        claim="Step-by-step, trained on a few dozen random in-order compositions (about 30-100 of 3125), the model "
              "generalizes to nearly all in-order compositions (accuracy ≈ 100%).",
        criterion=f"the best step-by-step `random` run with at most {c['max_compositions']} training compositions "
                  f"reaches {name} >= {c['min_unseen']} on the unseen in-order compositions",
    )
    rows = [r for r in t.rows if r["format"] == "step-by-step"]
    eligible = [r for r in rows if r["n_train"] <= c["max_compositions"] and r["accuracy_unseen"] is not None]
    details = _table(["training compositions", "all in-order", "unseen", "runs"],
                     [[r["n_train"], fmt(r["accuracy_all"]), fmt(r["accuracy_unseen"]), r["n_runs"]] for r in rows])
    if not eligible:
        return Finding(**base, verdict=NOT_RUN, measured="no step-by-step `random` run with at most "
                       f"{c['max_compositions']} compositions", details=details if rows else [])
    best = max(eligible, key=lambda r: r["accuracy_unseen"])
    enough = [r["n_train"] for r in eligible if r["accuracy_unseen"] >= c["min_unseen"]]
    measured = f"best unseen {fmt(best['accuracy_unseen'])} with {best['n_train']} compositions"
    measured += f"; fewest reaching {c['min_unseen']}: {min(enough)}" if enough else ""
    return Finding(**base, verdict=_judge(best["accuracy_unseen"] >= c["min_unseen"]), measured=measured,
                   details=details)


def finding2(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=2, title="The base set alone does not compose", figure=t.name,
        claim="Trained on the base set alone (identity + every single function), the model does not generalize to "
              "compositions of two or more functions.",
        criterion=f"`base` with 0 extra compositions scores {name} >= {c['min_single']} on 1-function compositions "
                  f"and <= {c['max_multi']} on compositions of >= 2 functions, while the smallest step-by-step "
                  f"`random` run with at least as many training compositions scores at least {c['random_margin']} "
                  "higher on the latter",
    )
    s = t.summary
    if "base" not in s:
        return Finding(**base, verdict=NOT_RUN, measured=t.missing, details=[])
    rows = [[f"{k}: {v['label']}", v["n_train"], fmt(v["by_n_functions"].get(1)), fmt(v["multi"])]
            for k, v in s.items()]
    details = _table(["run", "training compositions", "1 function", ">= 2 functions"], rows)
    b = s["base"]
    single = b["by_n_functions"].get(1)
    measured = f"base: 1 fn {fmt(single)}, >= 2 fns {fmt(b['multi'])}"
    if "random" not in s or single is None or b["multi"] is None or s["random"]["multi"] is None:
        return Finding(**base, verdict=NOT_RUN, measured=measured + "; no `random` run to compare", details=details)
    r = s["random"]
    measured += f"; {r['label']}: >= 2 fns {fmt(r['multi'])}"
    ok = single >= c["min_single"] and b["multi"] <= c["max_multi"] and r["multi"] - b["multi"] >= c["random_margin"]
    return Finding(**base, verdict=_judge(ok), measured=measured, details=details)


def finding3(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=3, title="Direct generalizes far worse than step-by-step", figure=t.name,
        claim="The direct format (final output only) generalizes far worse than step-by-step, even with thousands "
              "of training compositions.",
        criterion=f"on the unseen compositions, at the largest training-composition count run in both formats, direct "
                  f"{name} is lower than step-by-step by >= {c['min_gap']}; or direct never exceeds "
                  f"{c['direct_max']} while step-by-step exceeds {c['stepbystep_min']}",
    )
    unseen = {f: {r["n_train"]: r["accuracy_unseen"] for r in t.rows if r["format"] == f
                  and r["accuracy_unseen"] is not None} for f in ("step-by-step", "direct")}
    if not unseen["direct"] or not unseen["step-by-step"]:
        return Finding(**base, verdict=NOT_RUN, measured="needs `random` runs of both formats", details=[])
    counts = sorted(set(unseen["direct"]) | set(unseen["step-by-step"]))
    details = _table(["training compositions", "step-by-step unseen", "direct unseen"],
                     [[n, fmt(unseen["step-by-step"].get(n)), fmt(unseen["direct"].get(n))] for n in counts])
    best_direct, best_sbs = max(unseen["direct"].values()), max(unseen["step-by-step"].values())
    ok = best_direct <= c["direct_max"] and best_sbs > c["stepbystep_min"]
    measured = f"best direct {fmt(best_direct)}, best step-by-step {fmt(best_sbs)}"
    common = sorted(set(unseen["direct"]) & set(unseen["step-by-step"]))
    if common:
        n = common[-1]
        gap = unseen["step-by-step"][n] - unseen["direct"][n]
        ok = ok or gap >= c["min_gap"]
        measured = f"at {n} compositions: step-by-step {fmt(unseen['step-by-step'][n])} vs direct " \
                   f"{fmt(unseen['direct'][n])} (gap {gap:+.3f}); " + measured
    return Finding(**base, verdict=_judge(ok), measured=measured, details=details)


def finding4(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=4, title="Out-of-order needs out-of-order training", figure=t.name,
        claim="Trained in order only, accuracy falls as displacement grows; out-of-order training compositions "
              "restore it.",
        criterion=f"trained in order only, {name} at the largest displacement is lower than at displacement 0 by "
                  f">= {c['min_drop']}; and trained with fully displaced compositions it is higher over displacement "
                  f">= 1 by >= {c['min_gain']}",
    )
    s = t.summary
    if "in-order" not in s:
        return Finding(**base, verdict=NOT_RUN, measured=t.missing, details=[])
    disps = sorted({d for v in s.values() for d, acc in v["by_displacement"].items() if acc is not None})
    details = _table(["training", *[f"displacement {d}" for d in disps], "displacement >= 1"],
                     [[f"{k}: {v['label']}", *[fmt(v["by_displacement"].get(d)) for d in disps], fmt(v["displaced"])]
                      for k, v in s.items()])
    by_disp = s["in-order"]["by_displacement"]
    inorder = s["in-order"]
    worst = max(d for d, acc in by_disp.items() if acc is not None)
    drop = None if by_disp.get(0) is None else by_disp[0] - by_disp[worst]
    measured = f"in-order training: {fmt(by_disp.get(0))} at displacement 0, {fmt(by_disp[worst])} at {worst}"
    if "out-of-order" not in s or drop is None:
        return Finding(**base, verdict=NOT_RUN, measured=measured + "; no out-of-order-trained run", details=details)
    gain = s["out-of-order"]["displaced"] - inorder["displaced"]
    measured += f"; out-of-order training gains {gain:+.3f} over displacement >= 1"
    return Finding(**base, verdict=_judge(drop >= c["min_drop"] and gain >= c["min_gain"]), measured=measured,
                   details=details)


def crossing_steps(rows: list[dict], panel: str, level: float) -> dict[int, float]:
    """#functions (>= 1) -> the step its accuracy first reaches `level`, for one panel of the dynamics table."""
    series: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        if r["panel"] == panel and r["n_functions"] >= 1:
            series.setdefault(r["n_functions"], []).append((r["step"], r["accuracy"]))
    return {k: first_crossing([s for s, _ in sorted(v)], [a for _, a in sorted(v)], level)
            for k, v in sorted(series.items())}


def finding5(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=5, title="Training dynamics: order in which compositions are learned", figure=t.name,
        claim="With base + random training, compositions of fewer functions are learned first; with random in-order "
              "training, compositions of more functions come first.",
        criterion=f"with k = #functions >= 1 and t_k = the training step at which {name} on k-function "
                  f"compositions first reaches {c['level']} (interpolated between checkpoints; never = last), the "
                  f"Spearman correlation of k and t_k is >= {c['min_rho']} for base + random and <= -{c['min_rho']} "
                  f"for random",
    )
    panels = ("base + random", "random")
    crossings = {p: crossing_steps(t.rows, p, c["level"]) for p in panels}
    rho = {p: spearman(list(v), list(v.values())) if len(v) >= 2 else math.nan for p, v in crossings.items()}
    ks = sorted({k for v in crossings.values() for k in v})
    details = _table(["#functions", *[f"t_k {p}" for p in panels]],
                     [[k, *[fmt_step(crossings[p][k]) if k in crossings[p] else "–" for p in panels]] for k in ks])
    details += ["", "Spearman " + ", ".join(f"{p}: {fmt(rho[p])}" for p in panels)]
    measured = ", ".join(f"rho {p} {fmt(rho[p])}" for p in panels if crossings[p])
    if not all(crossings.values()):
        absent = " and ".join(f"`{p}`" for p in panels if not crossings[p])
        measured = f"no {absent} run evaluated at >= {MIN_CHECKPOINTS} checkpoints" + (measured and f"; {measured}")
        return Finding(**base, verdict=NOT_RUN, measured=measured, details=details if ks else [])
    ok = rho["base + random"] >= c["min_rho"] and rho["random"] <= -c["min_rho"]  # nan compares False
    return Finding(**base, verdict=_judge(ok), measured=measured, details=details)


def finding6(t: FigureTable, c: dict, metric: str) -> Finding:
    name = METRIC_NAMES[metric]
    base = dict(
        number=6, title="An LSTM does not compose", figure=t.name,
        claim="An LSTM trained on the same few compositions does not generalize compositionally.",
        criterion=f"on the data setting with the most training compositions that both models were trained on, the "
                  f"LSTM's {name} on unseen compositions is <= {c['lstm_max']} while the Transformer's is "
                  f">= {c['transformer_min']}",
    )
    if not t.rows:
        return Finding(**base, verdict=NOT_RUN, measured=t.missing, details=[])
    details = _table(["data", "model", "training compositions", "train", "unseen", "runs"],
                     [[r["data"], r["model"], r["n_train"], fmt(r["accuracy_train"]), fmt(r["accuracy_unseen"]),
                       r["n_runs"]] for r in t.rows])
    pairs = [t.rows[i : i + 2] for i in range(0, len(t.rows), 2)]  # (Transformer, LSTM) per data setting
    transformer, lstm = max(pairs, key=lambda p: p[1]["n_train"])
    measured = f"{transformer['data']}: Transformer {fmt(transformer['accuracy_unseen'])}, LSTM " \
               f"{fmt(lstm['accuracy_unseen'])} unseen"
    if transformer["accuracy_unseen"] is None or lstm["accuracy_unseen"] is None:
        return Finding(**base, verdict=NOT_RUN, measured=measured + " (no unseen compositions)", details=details)
    ok = lstm["accuracy_unseen"] <= c["lstm_max"] and transformer["accuracy_unseen"] >= c["transformer_min"]
    return Finding(**base, verdict=_judge(ok), measured=measured, details=details)


def finding7(runs: list[Run], c: dict) -> Finding | None:
    """Mechanism, judged (report.mechanism) on the numbers 05_analyze.py stored for the deepest analysed nanoGPT
    run; None when no run was analysed."""
    analysed = [r for r in runs if r.kind == "nanogpt" and r.mechanism is not None]
    if not analysed:
        return None
    run = max(analysed, key=lambda r: (r.model.get("n_layer", 0), r.tag))
    claims = judge_mechanism(run.mechanism, c)
    judged = [v for v in claims.values() if v is not None]
    verdict = NOT_RUN if not judged else _judge(len(judged) == len(claims) and all(judged))
    marks = {True: "holds", False: "fails", None: "not measured"}
    measured = "; ".join(f"{k.replace('_', ' ')} {marks[v]}" for k, v in claims.items())
    return Finding(
        number=7, title="Mechanism: attention selects, MLP executes", figure=None,
        claim="Attention selects which function to apply (the current step's output attends to its task token); the "
              "MLPs apply it; the answer appears in the residual stream only in later layers.",
        criterion=f"every claim below holds (criteria.f7), on the deepest analysed Transformer, {run.tag} ({run.arch}, "
                  f"step {run.mechanism['step']}); figures in {run.folder / 'analysis'}",
        verdict=verdict, measured=measured, details=mechanism_lines(claims, run.mechanism, c),
    )
