"""The study's findings (docs/task.md §9), each judged by a fixed criterion whose thresholds come from the report
config (config/report/conf.yaml, `criteria`), on runs that fit, over seeds, with intervals (report.verdicts).

A finding is a function Context -> Finding, listed in FINDINGS; it reads the figure tables (report.tables) it
needs from the context. To add or replace one, write the function and put it in FINDINGS.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from report.estimates import HOLDS, Check
from report.measures import Point, accuracy_train, first_crossing, last_step, spearman
from report.mechanism import judge_mechanism, mechanism_lines
from report.tables import MIN_CHECKPOINTS, FigureTable, Study, f2_key, ks_of
from report.verdicts import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, decide, eligible, gate

METRIC_NAMES = {"token_acc": "token accuracy", "seq_acc": "sequence accuracy", "tf_acc": "teacher-forced accuracy"}
SBS, DIRECT = "step-by-step", "direct"


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    claim: str  # what the study found
    criterion: str  # the fixed test, thresholds written out
    verdict: str  # one of report.verdicts.VERDICTS
    reason: str  # one line: the numbers that decided the verdict
    details: list[str]  # markdown lines: the measured numbers
    figure: str | None  # stem of the figure that shows it
    runs: list[str] = field(default_factory=list)  # the runs the verdict rests on
    checks: list[dict] = field(default_factory=list)  # report.estimates.Check.record() of each criterion


@dataclass(frozen=True)
class Context:
    """What a finding reads: the study, its figure tables by name and the criteria (config `criteria`)."""

    study: Study
    tables: dict[str, FigureTable]
    criteria: dict

    @property
    def metric(self) -> str:
        return self.study.metric

    @property
    def name(self) -> str:
        return METRIC_NAMES[self.study.metric]


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "never" if value == math.inf else f"{value:.3f}"


def fmt_step(value: float) -> str:
    return "never" if value == math.inf else f"{value:.0f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def fit_text(p: Point) -> str:
    """'1.000 (min 0.998)': the replicates' mean accuracy on their own training compositions and the lowest."""
    return f"{fmt(p.train_estimate().mean)} (min {fmt(p.train_min)})" if p.train_min is not None else "–"


def points_table(first: str, rows: list[tuple[str, Point]], columns: list[tuple[str, str]]) -> list[str]:
    """Markdown: one line per (label, point): step, runs, fit, then each (header, quantity) as mean [interval]."""
    return _table([first, "step", "runs", "accuracy_train", *[h for h, _ in columns]],
                  [[label, p.step, p.n, fit_text(p), *[p.estimate(k).text() for _, k in columns]]
                   for label, p in rows])


def _finding(base: dict, points: list[Point], checks: list[Check], c: dict, details: list[str],
             note: str = "") -> Finding:
    verdict, reason = decide(points, checks, c)
    return Finding(**base, verdict=verdict, reason=note + reason, details=details,
                   runs=[t for p in points for t in p.tags], checks=[ch.record() for ch in checks])


def _count(key: int | tuple) -> str:
    return f"{key[0]} compositions ({key[1]})" if isinstance(key, tuple) else f"{key} compositions"


def pick(candidates: dict, c: dict, rank: Callable = lambda key: key) -> tuple:
    """The candidate (key -> the points it compares) of highest `rank` among those whose points are all eligible
    (they fit, with min_seeds replicates), else of highest rank among all; and a note naming the higher-ranked
    candidates passed over, and why."""
    ok = [k for k, points in candidates.items() if all(eligible(p, c) for p in points)]
    chosen = max(ok or list(candidates), key=rank)
    passed = [k for k in candidates if k not in ok and rank(k) > rank(chosen)]
    return chosen, "".join(f"passed over {_count(k)}: {gate(candidates[k], c)}. " for k in passed)


def finding1(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f1"]
    base = dict(
        number=1, title="A few random compositions suffice (step-by-step)", figure="fig1_compositions",
        claim="Step-by-step, trained on a few dozen random in-order compositions (about 30-100 of 3125), the model "
              "generalizes to nearly all in-order compositions (accuracy ≈ 100%).",
        criterion=f"judged on the step-by-step `random` setting of the judged Transformer with the most training "
                  f"compositions up to {f['max_compositions']} (among those whose replicates all fit and number at "
                  f"least min_seeds, if any): mean {ctx.name} on the unseen in-order compositions over its seeds "
                  f">= {f['min_unseen']} at the interval's low end",
    )
    points = {n: p for (fmt_, arch, n), p in ctx.tables["fig1_compositions"].summary.items()
              if fmt_ == SBS and arch == ctx.study.transformer}
    details = points_table("training compositions", [(str(n), p) for n, p in points.items()],
                           [("all in-order", "all"), ("unseen", "unseen")])
    small = {n: [p] for n, p in points.items() if n <= f["max_compositions"]}
    if not small:
        return Finding(**base, verdict=NOT_RUN, reason="no step-by-step `random` run with at most "
                       f"{f['max_compositions']} compositions", details=details if points else [])
    n, note = pick(small, c)
    check = Check(f"unseen accuracy with {n} compositions", points[n].estimate("unseen"), ">=", f["min_unseen"])
    enough = [k for k, p in points.items() if Check("", p.estimate("unseen"), ">=", f["min_unseen"]).state == HOLDS]
    details += ["", f"Fewest training compositions whose unseen accuracy reaches {f['min_unseen']} at the interval's "
                f"low end: {min(enough) if enough else 'none run'}."]
    return _finding(base, [points[n]], [check], c, details, note)


def finding2(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f2"]
    t = ctx.tables["fig2_base_vs_random"]
    base = dict(
        number=2, title="The base set alone does not compose", figure=t.name,
        claim="Trained on the base set alone (identity + every single function), the model does not generalize to "
              "compositions of two or more functions.",
        criterion=f"`base` with 0 extra compositions scores {ctx.name} >= {f['min_single']} on 1-function "
                  f"compositions and <= {f['max_multi']} on the unseen compositions of each number of functions "
                  f"k >= 2 (each k judged on its own), and the step-by-step `random` setting with as many training "
                  f"compositions scores at least {f['random_margin']} higher on them at each such k; each at the "
                  "interval's conservative end",
    )
    s = t.summary
    if not s:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    present = {series: s[series] for series in ("base", "random") if s[series]}  # series -> {metric: point}
    b, r = s["base"][ctx.metric], s["random"] and s["random"][ctx.metric]
    ks = ks_of(b)
    details = _table(["#functions", *[f"{series}: {m}" for series, ps in present.items() for m in ps]],
                     [[k if k <= 1 else f"{k} (unseen)", *[p.estimate(f2_key(k)).text() for ps in present.values()
                                                           for p in ps.values()]] for k in ks])
    details += ["", *points_table("setting", [(ps[ctx.metric].label, ps[ctx.metric]) for ps in present.values()], [])]
    if r is None:
        counts = ", ".join(map(str, s["random_counts"])) or "none"
        return Finding(**base, verdict=NOT_RUN, details=details, reason=f"needs a step-by-step `random` run with "
                       f"{s['n_train']} training compositions (the base set's count); `random` counts run: {counts}")
    checks = [Check("base, 1 function", b.estimate("k=1"), ">=", f["min_single"])]
    for k in (k for k in ks if k >= 2):
        checks += [Check(f"base, {k} functions", b.estimate(f2_key(k)), "<=", f["max_multi"]),
                   Check(f"random minus base, {k} functions", r.estimate(f2_key(k)) - b.estimate(f2_key(k)), ">=",
                         f["random_margin"])]
    return _finding(base, [b, r], checks, c, details)


def finding3(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f3"]
    base = dict(
        number=3, title="Direct generalizes far worse than step-by-step", figure="fig1_compositions",
        claim="The direct format (final output only) generalizes far worse than step-by-step, even with thousands "
              "of training compositions.",
        criterion=f"at the largest training-composition count at which both formats fit (every replicate >= fit_min "
                  f"on its training compositions, at least min_seeds of each), with the same model, step-by-step "
                  f"minus direct {ctx.name} on the unseen compositions >= {f['min_gap']} at the interval's low end",
    )
    summary = ctx.tables["fig1_compositions"].summary
    pairs = {(n, arch): [p, summary[DIRECT, arch, n]] for (fmt_, arch, n), p in summary.items()
             if fmt_ == SBS and (DIRECT, arch, n) in summary}
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, reason="needs `random` runs of both formats with the same count and "
                       "model", details=[])
    rows = [(f"{fmt_}, {n}, {arch}", p) for (n, arch), ps in pairs.items()
            for fmt_, p in zip((SBS, DIRECT), ps, strict=True)]
    details = points_table("format, compositions, model", rows, [("unseen", "unseen")])
    key, note = pick(pairs, c, rank=lambda k: (k[0], k[1] == ctx.study.transformer))
    sbs, direct = pairs[key]
    check = Check(f"step-by-step minus direct, unseen, {key[0]} compositions ({key[1]})",
                  sbs.estimate("unseen") - direct.estimate("unseen"), ">=", f["min_gap"])
    return _finding(base, [sbs, direct], [check], c, details, note)


def finding4(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f4"]
    t = ctx.tables["fig3_outorder"]
    base = dict(
        number=4, title="Out-of-order needs out-of-order training", figure=t.name,
        claim="Trained in order only, accuracy falls as displacement grows; out-of-order training compositions "
              "restore it.",
        criterion=f"an in-order-trained and an out-of-order-trained (`*_combo`) step-by-step setting with the same "
                  f"number of training compositions (the largest such count): trained in order, {ctx.name} at "
                  f"displacement 0 minus the largest displacement >= {f['min_drop']}; and out-of-order training "
                  f"minus in-order training over displacement >= 1 >= {f['min_gain']}; at the intervals' "
                  "conservative ends",
    )
    s = t.summary
    if not s["in-order"] or not s["out-of-order"]:
        absent = [f"no {w} step-by-step run evaluated out of order" for w, k in
                  (("in-order-trained", "in-order"), ("out-of-order-trained (`*_combo`)", "out-of-order")) if not s[k]]
        return Finding(**base, verdict=NOT_RUN, details=[], reason="; ".join(absent))
    rows = [(f"{training}: {p.label}", p) for training, ps in s.items() for p in ps.values()]
    disps = sorted({int(k[2:]) for _, p in rows for k in p.numbers[0] if k.startswith("d=")})
    details = points_table("training", rows, [*[(f"displacement {d}", f"d={d}") for d in disps],
                                              ("displacement >= 1", "displaced")])
    pairs = {n: [s["in-order"][n], s["out-of-order"][n]] for n in s["in-order"] if n in s["out-of-order"]}
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, details=details, reason="needs an in-order-trained and an "
                       "out-of-order-trained run with the same number of training compositions; in-order: "
                       f"{', '.join(map(str, s['in-order']))}; out-of-order: {', '.join(map(str, s['out-of-order']))}")
    n, note = pick(pairs, c)
    inorder, combo = pairs[n]
    worst = max(int(k[2:]) for k in inorder.numbers[0] if k.startswith("d="))
    checks = [Check(f"in-order training ({n} compositions): displacement 0 minus {worst}",
                    inorder.estimate("d=0") - inorder.estimate(f"d={worst}"), ">=", f["min_drop"]),
              Check("out-of-order minus in-order training, displacement >= 1",
                    combo.estimate("displaced") - inorder.estimate("displaced"), ">=", f["min_gain"])]
    return _finding(base, [inorder, combo], checks, c, details, note)


def crossing_steps(curve: list[Point], level: float) -> dict[int, float]:
    """#functions k (>= 1) -> the step at which the replicates' mean accuracy on k-function compositions first
    reaches `level`."""
    ks = [k for k in ks_of(curve[0]) if k >= 1]
    means = {k: [p.estimate(f"k={k}") for p in curve] for k in ks}
    return {k: first_crossing([p.step for p in curve], [e.mean if e.n else None for e in v], level)
            for k, v in means.items()}


def finding5(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f5"]
    t = ctx.tables["fig4_dynamics"]
    base = dict(
        number=5, title="Training dynamics: order in which compositions are learned", figure=t.name,
        claim="With base + random training, compositions of fewer functions are learned first; with random in-order "
              "training, compositions of more functions come first.",
        criterion=f"with k = #functions >= 1 and t_k = the training step at which the seeds' mean {ctx.name} on "
                  f"k-function compositions first reaches {f['level']} (interpolated between checkpoints; never = "
                  f"last), the Spearman correlation of k and t_k is >= {f['min_rho']} for base + random and <= "
                  f"-{f['min_rho']} for random",
    )
    panels = ("base + random", "random")
    crossings = {p: crossing_steps(t.summary[p], f["level"]) if p in t.summary else {} for p in panels}
    rho = {p: spearman(list(v), list(v.values())) if len(v) >= 2 else math.nan for p, v in crossings.items()}
    ks = sorted({k for v in crossings.values() for k in v})
    details = _table(["#functions", *[f"t_k {p}" for p in panels]],
                     [[k, *[fmt_step(crossings[p][k]) if k in crossings[p] else "–" for p in panels]] for k in ks])
    details += ["", "Spearman " + ", ".join(f"{p}: {fmt(rho[p])}" for p in panels)]
    measured = ", ".join(f"rho {p} {fmt(rho[p])}" for p in panels if crossings[p])
    if not all(crossings.values()):
        absent = " and ".join(f"`{p}`" for p in panels if not crossings[p])
        reason = f"no {absent} run evaluated at >= {MIN_CHECKPOINTS} checkpoints" + (measured and f"; {measured}")
        return Finding(**base, verdict=NOT_RUN, reason=reason, details=details if ks else [])
    last = [t.summary[p][-1] for p in panels]  # fit and replicates at the curves' last step
    details += ["", *points_table("panel", list(zip(panels, last, strict=True)), [])]
    runs = [tag for p in last for tag in p.tags]
    blocked = gate(last, c)
    if blocked:
        return Finding(**base, verdict=INCONCLUSIVE, reason=f"{blocked}; {measured}", details=details, runs=runs)
    ok = rho["base + random"] >= f["min_rho"] and rho["random"] <= -f["min_rho"]  # nan compares False
    return Finding(**base, verdict=REPRODUCED if ok else NOT_REPRODUCED, reason=measured, details=details, runs=runs)


def finding6(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria["f6"]
    t = ctx.tables["fig5_lstm_vs_transformer"]
    base = dict(
        number=6, title="An LSTM does not compose", figure=t.name,
        claim="An LSTM trained on the same few compositions does not generalize compositionally.",
        criterion=f"at the fewest training compositions at which the Transformer's {ctx.name} on unseen compositions "
                  f"reaches {f['transformer_min']} at the interval's low end (both models fit there, at least "
                  f"min_seeds each; without such a count: the largest count where both fit), the LSTM's trained on "
                  f"the same data stays <= {f['lstm_max']} at the interval's high end",
    )
    pairs = t.summary.get("pairs", [])
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    details = points_table("model, data", [(f"{p[m].label}", p[m]) for p in pairs for m in ("transformer", "lstm")],
                           [("unseen", "unseen")])

    def reaches(p: Point) -> bool:
        return Check("", p.estimate("unseen"), ">=", f["transformer_min"]).state == HOLDS

    need = {m: next((str(p["n_train"]) for p in pairs if eligible(p[m], c) and reaches(p[m])),
                    f"more than {pairs[-1]['n_train']}") for m in ("transformer", "lstm")}
    details += ["", f"Training compositions needed to reach {f['transformer_min']} on unseen compositions (interval's "
                f"low end): Transformer {need['transformer']}, LSTM {need['lstm']}."]
    candidates = {p["n_train"]: [p["transformer"], p["lstm"]] for p in pairs}
    first_reached = [n for n, ps in candidates.items() if all(eligible(q, c) for q in ps) and reaches(ps[0])]
    n, note = (min(first_reached), "") if first_reached else pick(candidates, c)
    transformer, lstm = candidates[n]
    checks = [Check(f"Transformer unseen, {n} compositions", transformer.estimate("unseen"), ">=",
                    f["transformer_min"]),
              Check(f"LSTM unseen, {n} compositions", lstm.estimate("unseen"), "<=", f["lstm_max"])]
    return _finding(base, [transformer, lstm], checks, c, details, note)


def finding7(ctx: Context) -> Finding | None:
    """Mechanism, judged (report.mechanism) on the numbers 05_analyze.py stored for the deepest analysed nanoGPT
    run, which must fit its training compositions; None when no run was analysed."""
    analysed = [r for r in ctx.study.runs if r.kind == "nanogpt" and r.mechanism is not None]
    if not analysed:
        return None
    c = ctx.criteria
    run = max(analysed, key=lambda r: (r.model.get("n_layer", 0), r.tag))
    step = run.mechanism["step"]
    if run.inorder is not None and not (run.inorder["step"] == step).any():
        step = last_step(run.inorder)  # the analysed checkpoint was not evaluated in order: its last one was
    fit = Point(run.tag, step, (run,), ({},), (accuracy_train(run, ctx.metric, step),), ctx.study.confidence)
    claims = judge_mechanism(run.mechanism, c["f7"])
    judged = [v for v in claims.values() if v is not None]
    marks = {True: "holds", False: "fails", None: "not measured"}
    reason = "; ".join(f"{k.replace('_', ' ')} {marks[v]}" for k, v in claims.items())
    unfit = fit.unfit(c["fit_min"])
    verdict = INCONCLUSIVE if unfit else NOT_RUN if not judged else (
        REPRODUCED if len(judged) == len(claims) and all(judged) else NOT_REPRODUCED)
    if unfit:
        reason = f"did not fit its training compositions (accuracy_train below fit_min {c['fit_min']:g}): " \
                 f"{unfit[0]}; {reason}"
    return Finding(
        number=7, title="Mechanism: attention selects, MLP executes", figure=None,
        claim="Attention selects which function to apply (the current step's output attends to its task token); the "
              "MLPs apply it; the answer appears in the residual stream only in later layers.",
        criterion=f"every claim below holds (criteria.f7), on the deepest analysed Transformer, {run.tag} ({run.arch}, "
                  f"step {run.mechanism['step']}), which fits its training compositions; figures in "
                  f"{run.folder / 'analysis'}",
        verdict=verdict, reason=reason, runs=[run.tag],
        details=[f"- accuracy_train at step {step}: {fit_text(fit)}", *mechanism_lines(claims, run.mechanism, c["f7"])],
    )


FINDINGS: tuple[Callable[[Context], Finding | None], ...] = (finding1, finding2, finding3, finding4, finding5,
                                                              finding6, finding7)
