"""The study's findings (docs/task.md §9), each judged by a fixed criterion whose thresholds come from the report
config (config/report/conf.yaml, `criteria`), on runs that fit, over seeds, with intervals (report.verdicts).

A finding is a function Context -> Finding, listed in FINDINGS; it reads the figure tables (report.tables) it
needs from the context. To add or replace one, write the function and put it in FINDINGS.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from report import learning_order as lo
from report import tables
from report.criteria import Criteria
from report.dynamics import Panel, crossing_cells, dynamics_table
from report.estimates import HOLDS, Check, Estimate, all_of, estimate
from report.measures import (
    ByDisplacement,
    ByFunctions,
    Point,
    Quantity,
    accuracy_train,
    first_crossing,
    last_step,
    spearman,
)
from report.mechanism import (
    CLAIMS,
    MARKS,
    PATCHED_CLAIMS,
    claim_state,
    judge_mechanism,
    judge_patched,
    mechanism_lines,
    patching_rows,
    patching_step_rows,
    probe_split_rows,
)
from report.runs import Run
from report.tables import MIN_CHECKPOINTS, FigureTable, Study, f2_key, ks_of
from report.verdicts import INCONCLUSIVE, NOT_RUN, WORD, decide, eligible, gate

METRIC_NAMES = {"token_acc": "token accuracy", "seq_acc": "sequence accuracy", "tf_acc": "teacher-forced accuracy"}
SBS, DIRECT = "step-by-step", "direct"


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    source: str  # where the claim comes from (docs/task.md §9)
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
    criteria: Criteria

    @property
    def metric(self) -> str:
        return self.study.metric

    @property
    def name(self) -> str:
        return METRIC_NAMES[self.study.metric]


def signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.4f}"


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "never" if value == math.inf else f"{value:.3f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def fit_text(p: Point) -> str:
    """'1.000 (min 0.998)': the replicates' mean accuracy on their own training compositions and the lowest."""
    return f"{fmt(p.train_estimate().mean)} (min {fmt(p.train_min)})" if p.train_min is not None else "–"


COUNT = "training compositions"


def n_train(p: Point) -> int | str:
    """The training compositions of a point's setting (its replicates share the dataset settings)."""
    return p.runs[0].n_train if p.runs else "–"


def points_table(first: str, rows: list[tuple[str, Point]], columns: list[tuple[str, Quantity]]) -> list[str]:
    """Markdown: one line per (label, point): training compositions (unless `first` is that count), step, runs,
    fit, then each (header, quantity) as mean [interval]."""
    count = first != COUNT
    return _table([first, *[COUNT] * count, "step", "runs", "accuracy_train", *[h for h, _ in columns]],
                  [[label, *[n_train(p)] * count, p.step, p.n, fit_text(p), *[p.estimate(k).text() for _, k in columns]]
                   for label, p in rows])


def fit_counts(p: Point, fit_min: float) -> str:
    """'2/3 fit': how many of a point's replicates reach fit_min on their training compositions."""
    return f"{p.n - len(p.unfit(fit_min))}/{p.n} fit"


def _finding(base: dict, points: list[Point], checks: list[Check], c: Criteria, details: list[str],
             note: str = "") -> Finding:
    verdict, reason = decide(points, checks, c)
    return Finding(**base, verdict=verdict, reason=note + reason, details=details,
                   runs=[t for p in points for t in p.tags], checks=[ch.record() for ch in checks])


def _count(key: int | tuple) -> str:
    return f"{key[0]} compositions ({key[1]})" if isinstance(key, tuple) else f"{key} compositions"


def pick(candidates: dict, c: Criteria, rank: Callable = lambda key: key) -> tuple:
    """The candidate (key -> the points it compares) of highest `rank` among those whose points are all eligible
    (they fit, with min_seeds replicates), else of highest rank among all; and a note naming the higher-ranked
    candidates passed over, and why."""
    ok = [k for k, points in candidates.items() if all(eligible(p, c) for p in points)]
    chosen = max(ok or list(candidates), key=rank)
    passed = [k for k in candidates if k not in ok and rank(k) > rank(chosen)]
    return chosen, "".join(f"passed over {_count(k)}: {gate(candidates[k], c)}. " for k in passed)


def finding1(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f1
    base = dict(
        number=1, title="A few random compositions suffice (step-by-step)", figure="fig1_compositions",
        source="the paper's abstract, contribution (1) (small amounts of training data, combinatorially many "
               "functions); the counts: no section of the paper established (docs/task.md §9)",
        claim="Step-by-step, trained on a few dozen random in-order compositions (about 30-100 of 3125), the model "
              "generalizes to nearly all in-order compositions (accuracy ≈ 100%).",
        criterion=f"judged on the step-by-step `random` setting of the judged Transformer with the most training "
                  f"compositions up to {f.max_compositions} (among those whose replicates all fit and number at "
                  f"least min_seeds, if any): mean {ctx.name} on the unseen in-order compositions over its seeds "
                  f">= {f.min_unseen} at the interval's low end",
    )
    points = {n: p for (fmt_, arch, n), p in ctx.tables["fig1_compositions"].summary.items()
              if fmt_ == SBS and arch == ctx.study.transformer}
    details = points_table(COUNT, [(str(n), p) for n, p in points.items()],
                           [("all in-order", "all"), ("unseen", "unseen")])
    small = {n: [p] for n, p in points.items() if n <= f.max_compositions}
    if not small:
        return Finding(**base, verdict=NOT_RUN, reason="no step-by-step `random` run with at most "
                       f"{f.max_compositions} compositions", details=details if points else [])
    n, note = pick(small, c)
    check = Check(f"unseen accuracy with {n} compositions", points[n].estimate("unseen"), ">=", f.min_unseen)
    enough = [k for k, p in points.items() if Check("", p.estimate("unseen"), ">=", f.min_unseen).state == HOLDS]
    details += ["", f"Fewest training compositions whose unseen accuracy reaches {f.min_unseen} at the interval's "
                f"low end: {min(enough) if enough else 'none run'}."]
    return _finding(base, [points[n]], [check], c, details, note)


def finding2(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f2
    t = ctx.tables["fig2_base_vs_random"]
    base = dict(
        number=2, title="The base set alone does not compose", figure=t.name,
        source="not in the abstract; closest: an earlier abstract version's contribution (3), that the training "
               "data decides which unseen combinations compose (docs/task.md §9)",
        claim="Trained on the base set alone (identity + every single function), the model does not generalize to "
              "compositions of two or more functions.",
        criterion=f"`base` with 0 extra compositions scores {ctx.name} >= {f.min_single} on 1-function "
                  f"compositions and <= {f.max_multi} on the unseen compositions of each number of functions "
                  f"k >= 2 (each k judged on its own), and the step-by-step `random` setting with as many training "
                  f"compositions scores at least {f.random_margin} higher on them at each such k; each at the "
                  "interval's conservative end",
    )
    s = t.summary
    if not s:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    present = {series: s[series] for series in ("base", "random") if s[series]}  # series -> {metric: point}
    b, r = s["base"][ctx.metric], s["random"] and s["random"][ctx.metric]
    ks = ks_of(b)
    details = _table(["#functions", *[f"{series} ({n_train(p)} {COUNT}, {p.n} runs): {m}"
                                      for series, ps in present.items() for m, p in ps.items()]],
                     [[k if k <= 1 else f"{k} (unseen)", *[p.estimate(f2_key(k)).text() for ps in present.values()
                                                           for p in ps.values()]] for k in ks])
    details += ["", *points_table("setting", [(ps[ctx.metric].label, ps[ctx.metric]) for ps in present.values()], [])]
    if r is None:
        counts = ", ".join(map(str, s["random_counts"])) or "none"
        return Finding(**base, verdict=NOT_RUN, details=details, reason=f"needs a step-by-step `random` run with "
                       f"{s['n_train']} training compositions (the base set's count); `random` counts run: {counts}")
    checks = [Check("base, 1 function", b.estimate(ByFunctions(1)), ">=", f.min_single)]
    for k in (k for k in ks if k >= 2):
        checks += [Check(f"base, {k} functions", b.estimate(f2_key(k)), "<=", f.max_multi),
                   Check(f"random minus base, {k} functions", r.estimate(f2_key(k)) - b.estimate(f2_key(k)), ">=",
                         f.random_margin)]
    return _finding(base, [b, r], checks, c, details)


def finding3(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f3
    base = dict(
        number=3, title="Direct generalizes far worse than step-by-step", figure="fig1_compositions",
        source="the paper's abstract, contribution (2); \"even with thousands\": no section of the paper "
               "established (docs/task.md §9)",
        claim="The direct format (final output only) generalizes far worse than step-by-step, even with thousands "
              "of training compositions.",
        criterion=f"at the largest training-composition count at which both formats fit (every replicate >= fit_min "
                  f"on its training compositions, at least min_seeds of each), with the same model, step-by-step "
                  f"minus direct {ctx.name} on the unseen compositions >= {f.min_gap} at the interval's low end",
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
    details += ["", f"Replicates that fit their training compositions (accuracy_train >= fit_min {c.fit_min:g}), "
                "per count: " + "; ".join(f"{n} ({arch}): step-by-step {fit_counts(ps[0], c.fit_min)}, direct "
                                          f"{fit_counts(ps[1], c.fit_min)}" for (n, arch), ps in pairs.items())
                + "."]
    unfit_direct = {k: ps[1] for k, ps in pairs.items() if not eligible(ps[1], c)}
    if unfit_direct:
        details += ["", "Not every direct replicate fit its training compositions at " + ", ".join(
            f"{n} compositions ({arch}; {fit_counts(p, c.fit_min)} at step {p.step})"
            for (n, arch), p in unfit_direct.items())
            + ": finding 3 is not judged there, only at the largest count where both formats fit."]
    check = Check(f"step-by-step minus direct, unseen, {key[0]} compositions ({key[1]})",
                  sbs.estimate("unseen") - direct.estimate("unseen"), ">=", f.min_gap)
    return _finding(base, [sbs, direct], [check], c, details, note)


def finding4(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f4
    t = ctx.tables["fig3_outorder"]
    base = dict(
        number=4, title="Out-of-order needs out-of-order training", figure=t.name,
        source="the paper's abstract, contribution (3); the word \"displacement\" per a third-party review "
               "(liner.com) (docs/task.md §9)",
        claim="Trained in order only, accuracy falls as displacement grows; out-of-order training compositions "
              "restore it.",
        criterion=f"an in-order-trained and an out-of-order-trained (`*_combo`) step-by-step setting with the same "
                  f"number of training compositions (the largest such count): trained in order, {ctx.name} at "
                  f"displacement 0 minus the largest displacement >= {f.min_drop}; and out-of-order training "
                  f"minus in-order training over displacement >= 1 >= {f.min_gain}; at the intervals' "
                  "conservative ends",
    )
    s = t.summary
    if not s["in-order"] or not s["out-of-order"]:
        absent = [f"no {w} step-by-step run evaluated out of order" for w, k in
                  (("in-order-trained", "in-order"), ("out-of-order-trained (`*_combo`)", "out-of-order")) if not s[k]]
        return Finding(**base, verdict=NOT_RUN, details=[], reason="; ".join(absent))
    rows = [(f"{training}: {p.label}", p) for training, ps in s.items() for p in ps.values()]
    disps = sorted({q.displacement for _, p in rows for q in p.quantities(ByDisplacement)})
    details = points_table("training", rows, [*[(f"displacement {d}", ByDisplacement(d)) for d in disps],
                                              ("displacement >= 1", "displaced")])
    pairs = {n: [s["in-order"][n], s["out-of-order"][n]] for n in s["in-order"] if n in s["out-of-order"]}
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, details=details, reason="needs an in-order-trained and an "
                       "out-of-order-trained run with the same number of training compositions; in-order: "
                       f"{', '.join(map(str, s['in-order']))}; out-of-order: {', '.join(map(str, s['out-of-order']))}")
    n, note = pick(pairs, c)
    inorder, combo = pairs[n]
    worst = max(q.displacement for q in inorder.quantities(ByDisplacement))
    checks = [Check(f"in-order training ({n} compositions): displacement 0 minus {worst}",
                    inorder.estimate(ByDisplacement(0)) - inorder.estimate(ByDisplacement(worst)), ">=",
                    f.min_drop),
              Check("out-of-order minus in-order training, displacement >= 1",
                    combo.estimate("displaced") - inorder.estimate("displaced"), ">=", f.min_gain)]
    return _finding(base, [inorder, combo], checks, c, details, note)


def crossing_steps(curve: list[Point], level: float) -> dict[int, float]:
    """#functions k (>= 1) -> the step at which the replicates' mean accuracy on k-function compositions first
    reaches `level`."""
    ks = [k for k in ks_of(curve[0]) if k >= 1]
    means = {k: [p.estimate(ByFunctions(k)) for p in curve] for k in ks}
    return {k: first_crossing([p.step for p in curve], [e.mean if e.n else None for e in v], level)
            for k, v in means.items()}


CLAIMED = {lo.FEWER_FIRST: "fewer functions first: the residual falls with k",
           lo.MORE_FIRST: "more functions first: the residual rises with k"}


def _claim_check(panel: Panel, direction: int, ctx: Context) -> tuple[Check, str | None]:
    """A claim's criterion on its panel and why its seeds cannot decide it (None when they can)."""
    c, f = ctx.criteria, ctx.criteria.f5
    check = lo.slope_check(panel.stats, direction, f.min_effect, ctx.study.confidence,
                           f"{panel.name}: residual slope (q per function)")
    return check, lo.gate(panel.stats, panel.names, fit_min=c.fit_min, low=f.window_low,
                          high=f.window_high, min_seeds=c.min_seeds)


def dynamics_details(ctx: Context, panels: dict[str, Panel], controls: list[Panel]) -> list[str]:
    """findings.md's tables for finding 5: residual against k, per-step accuracies over the window, t_k, the former
    rank correlation, and the controls (not judged)."""
    f, confidence = ctx.criteria.f5, ctx.study.confidence
    measured = {name: p for name, p in panels.items() if p.evals is not None}
    lines = ["**Residual against k** (chance-corrected y_L token accuracy q, observed minus predicted from the "
             "per-step accuracies; each seed's mean over its learning window, then the seeds' mean [interval]):", "",
             *_table(["panel", COUNT, "k", "observed q", "predicted q", "residual", "seeds"],
                     [[name, p.group.n_train, r["k"], fmt(r["observed"]), fmt(r["predicted"]),
                       Estimate(r["residual"], r["low"], r["high"], r["n"]).text(), r["n"]]
                      for name, p in measured.items() for r in lo.residual_by_k(p.stats, confidence)]), ""]
    for name, p in measured.items():
        lines.append(f"- {name}, per seed: " + "; ".join(
            f"{p.names[s.seed]} slope {signed(s.slope)}, window steps {', '.join(map(str, s.window)) or 'none'}, "
            f"accuracy_train {fmt(s.accuracy_train)}" for s in p.stats))
    lines += ["", "Settings: " + "; ".join(
        f"{name}: {p.group.n_train} {COUNT}, {len(p.runs)} seeds, accuracy_train at the last checkpoint "
        f"{p.train_estimate(confidence).text()}" for name, p in measured.items()) + "."]
    steps = {name: lo.window_step_accuracy(p.evals, p.stats) for name, p in measured.items()}
    slots = sorted({slot for by in steps.values() for slot, _ in by})
    lines += ["", "**Per-step teacher-forced token accuracy** (step k's tokens given the true earlier steps), by slot "
              "and by what the slot holds, each seed's mean over its learning window, then the seeds' mean "
              "[interval]; all in-order compositions:", "",
              *_table(["slot", *[f"{name}: {kind}" for name in steps for kind in (lo.IDENTITY, lo.FUNCTION)]],
                      [[slot, *[estimate(by.get((slot, kind), []), confidence).text() for by in steps.values()
                                for kind in (lo.IDENTITY, lo.FUNCTION)]] for slot in slots])]
    for name, p in measured.items():
        ks, rows = crossing_cells(p, f.levels, confidence)
        lines += ["", f"**t_k, {name}** (training step at which k-function compositions first reach the level, "
                  "each seed's curve interpolated between checkpoints; the seeds' mean [interval] among those that "
                  "reached it; context, not the verdict):", "",
                  *_table(["metric", "compositions", "level", *[f"k={k}" for k in ks]], rows)]

    def rho(curve: list[Point], level: float) -> str:
        t = crossing_steps(curve, level)
        return fmt(spearman(list(t), list(t.values())) if len(t) >= 2 else math.nan)

    curves = {name: p.group.curve(ctx.metric, confidence) for name, p in panels.items()}
    lines += ["", f"Spearman(k, t_k) on the seeds' mean {ctx.name} curve, all in-order compositions (the former "
              "criterion; compounding alone can produce it; context): " + "; ".join(
                  f"{name}: " + ", ".join(f"level {level:g} {rho(curve, level)}" for level in f.levels)
                  for name, curve in curves.items())]
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
    base = dict(
        number=5, title="Training dynamics: order in which compositions are learned", figure=t.name,
        source="secondary: an AI-written review of the paper's first arXiv version; no passage of the paper states "
               "it (docs/task.md §9)",
        claim="With base + random training, compositions of fewer functions are learned first; with random in-order "
              "training, compositions of more functions come first.",
        criterion=f"y_L accuracy compounds the errors of the steps, so fewer functions come first whenever identity "
                  f"steps are learned before function steps; the test is what compounding does not explain. At "
                  f"every checkpoint each composition's chance-corrected y_L token accuracy q is predicted as the "
                  f"product of its steps' teacher-forced q (step k's tokens given the true earlier steps; each step's "
                  f"q per slot and identity/function over that checkpoint's compositions); per seed the residual "
                  f"(observed minus predicted) is averaged per k = #functions over the learning window (checkpoints "
                  f"whose mean q over all in-order compositions is in {window}) and its least-squares slope against "
                  f"k >= 1 taken. base + random must have slope <= -{f.min_effect:g} (fewer first), random slope "
                  f">= +{f.min_effect:g} (more first), each at its interval's conservative end over the seeds; "
                  f"every seed must fit its training compositions at its last checkpoint (token accuracy >= fit_min) "
                  f"and have a learning window, and there must be >= min_seeds seeds",
    )
    absent = [name for name in lo.CLAIMS if name not in panels]
    details = dynamics_details(ctx, panels, controls) if panels or controls else []
    if absent:
        return Finding(**base, verdict=NOT_RUN, details=details, reason=" and ".join(f"no `{name}`" for name in absent)
                       + f" step-by-step run evaluated at >= {MIN_CHECKPOINTS} checkpoints")
    runs = [r.tag for p in panels.values() for r in p.runs]
    missing = [p.missing for p in panels.values() if p.missing]
    if missing:
        return Finding(**base, verdict=INCONCLUSIVE, reason="; ".join(missing), details=details, runs=runs)
    claims = {name: _claim_check(panels[name], direction, ctx) for name, direction in lo.CLAIMS.items()}
    checks = [check for check, _ in claims.values()]
    blocked = [f"{name}: {why}" for name, (_, why) in claims.items() if why]
    if blocked:
        verdict, reason = INCONCLUSIVE, "; ".join(blocked) + "; measured: " + "; ".join(ch.text() for ch in checks)
    else:
        state = all_of(ch.state for ch in checks)
        verdict, reason = WORD[state], "; ".join(ch.text() for ch in checks)
    words = [f"- {name} ({CLAIMED[lo.CLAIMS[name]]}): " + (f"inconclusive: {why}" if why else
             f"{WORD[check.state]}: {check.text()}") for name, (check, why) in claims.items()]
    summary = [f"**In words.** The claim comes from a secondary source (an AI-written review of the paper's first "
               f"version). Tested: whether, during learning, the accuracy of k-function compositions departs from what "
               f"their per-step accuracies predict under independent errors, in the claimed direction, by at least "
               f"{f.min_effect:g} q per function. Verdict: **{verdict}**.", "", *words, ""]
    return Finding(**base, verdict=verdict, reason=reason, details=summary + details, runs=runs,
                   checks=[ch.record() for ch in checks])


def finding6(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f6
    t = ctx.tables["fig5_lstm_vs_transformer"]
    base = dict(
        number=6, title="An LSTM does not compose", figure=t.name,
        source="the reference pipeline's README (\"unlike LSTMs\"); not in the abstract (docs/task.md §9)",
        claim="An LSTM trained on the same few compositions does not generalize compositionally.",
        criterion=f"at the fewest training compositions at which the Transformer's {ctx.name} on unseen compositions "
                  f"reaches {f.transformer_min} at the interval's low end (both models fit there, at least "
                  f"min_seeds each; without such a count: the largest count where both fit), the LSTM's trained on "
                  f"the same data stays <= {f.lstm_max} at the interval's high end",
    )
    pairs = t.summary.get("pairs", [])
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    details = points_table("model, data", [(f"{p[m].label}", p[m]) for p in pairs for m in ("transformer", "lstm")],
                           [("unseen", "unseen")])

    def reaches(p: Point) -> bool:
        return Check("", p.estimate("unseen"), ">=", f.transformer_min).state == HOLDS

    def needed(points: dict[int, Point]) -> str:
        """The fewest counts whose replicates fit and reach transformer_min, among the counts run, and the counts
        that could not be judged (a replicate did not fit, or fewer than min_seeds)."""
        reached = [n for n, p in sorted(points.items()) if eligible(p, c) and reaches(p)]
        unjudged = [f"{n} ({fit_counts(p, c.fit_min)})" for n, p in sorted(points.items()) if not eligible(p, c)]
        text = str(reached[0]) if reached else "none of the counts run"
        return text + f" (of {', '.join(map(str, sorted(points)))}" + (
            f"; not judged at {', '.join(unjudged)}" if unjudged else "") + ")"

    # the Transformer's step-by-step `random` settings at every count run (finding 1's, the same data as the LSTM's)
    paired = next((p["transformer"].runs[0].arch for p in pairs if p["transformer"].runs), None)
    transformers = {n: p for (fmt_, arch, n), p in ctx.tables["fig1_compositions"].summary.items()
                    if fmt_ == SBS and arch == paired} or {p["n_train"]: p["transformer"] for p in pairs}
    details += ["", f"Training compositions needed to reach {f.transformer_min} on unseen compositions (interval's "
                f"low end; only counts whose replicates all fit, at least min_seeds): Transformer "
                f"{needed(transformers)}, LSTM {needed({p['n_train']: p['lstm'] for p in pairs})}."]
    candidates = {p["n_train"]: [p["transformer"], p["lstm"]] for p in pairs}
    first_reached = [n for n, ps in candidates.items() if all(eligible(q, c) for q in ps) and reaches(ps[0])]
    n, note = (min(first_reached), "") if first_reached else pick(candidates, c)
    transformer, lstm = candidates[n]
    checks = [Check(f"Transformer unseen, {n} compositions", transformer.estimate("unseen"), ">=",
                    f.transformer_min),
              Check(f"LSTM unseen, {n} compositions", lstm.estimate("unseen"), "<=", f.lstm_max)]
    return _finding(base, [transformer, lstm], checks, c, details, note)


def _analysed_step(run: Run) -> int:
    """The analysed checkpoint, or the run's last in-order step when the analysed one was not evaluated in order."""
    step = run.mechanism["step"]
    return step if run.inorder is None or (run.inorder["step"] == step).any() else last_step(run.inorder)


def finding7(ctx: Context) -> Finding:
    """Mechanism, judged (report.mechanism) on the numbers 05_analyze.py stored for the analysed replicates of the
    deepest analysed nanoGPT setting (then the one with the most analysed replicates), which must fit their training
    compositions and number at least min_seeds; not run when no nanoGPT run was analysed (05_analyze.py analyses
    nanoGPT only)."""
    base = dict(
        number=7, title="Mechanism: attention selects, MLP executes", figure=None,
        source="the paper's abstract, contribution (4) (attention selects the capability, feed-forward layers "
               "execute it); the attention, probe, ablation and patching tests are this project's (docs/task.md §9)",
        claim="Attention selects which function to apply (the current step's output attends to its task token); the "
              "MLPs apply it; the answer appears in the residual stream only in later layers.",
    )
    analysed = [(g, [r for r in g.runs if r.kind == "nanogpt" and r.mechanism is not None]) for g in ctx.study.groups]
    analysed = [(g, runs) for g, runs in analysed if runs]
    if not analysed:
        return Finding(**base, criterion="every claim of criteria.f7 holds in every analysed replicate of the deepest "
                       "analysed Transformer setting", verdict=NOT_RUN, details=[],
                       reason="no nanoGPT run was analysed (05_analyze.py; it analyses nanoGPT only)")
    c, f = ctx.criteria, ctx.criteria.f7
    g, runs = max(analysed, key=lambda a: (a[0].first.model.get("n_layer", 0), len(a[1]), a[0].label))
    steps = [_analysed_step(r) for r in runs]
    fit = Point(g.label, steps[0], tuple(runs), tuple({} for _ in runs),
                tuple(accuracy_train(r, ctx.metric, s) for r, s in zip(runs, steps, strict=True)), ctx.study.confidence)
    per_run = [judge_mechanism(r.mechanism, f) | judge_patched(r.mechanism, f) for r in runs]
    states = {claim: claim_state([claims[claim] for claims in per_run]) for claim in CLAIMS + PATCHED_CLAIMS}

    def count(claim: str) -> str:
        held, unmeasured = (sum(p[claim] is value for p in per_run) for value in (True, None))
        return f"{held}/{len(runs)} hold" + (f", {unmeasured} not measured" if unmeasured else "")

    measured = "; ".join(f"{claim.replace('_', ' ')} {state} ({count(claim)})" for claim, state in states.items())
    blocked = gate([fit], c)
    verdict = INCONCLUSIVE if blocked else WORD[all_of(states.values())]
    details = [f"- {COUNT}: {runs[0].n_train}; accuracy_train at the analysed steps: {fit_text(fit)}", "",
               "| claim | " + " | ".join(r.tag for r in runs) + " | over the replicates |",
               "|---|" + "---|" * (len(runs) + 1),
               *[f"| {claim.replace('_', ' ')} | " + " | ".join(
                   MARKS[p[claim]] for p in per_run)
                 + f" | {state} |" for claim, state in states.items()]]
    patched = [r.mechanism["patching"] for r in runs if "patching" in r.mechanism]
    if patched:
        details += ["", f"**Activation patching** (fraction of the clean-minus-corrupted logit difference restored by "
                    f"patching one site from the clean run; steps pooled; positions `step`: the step's own positions, "
                    f"`all`: every position; the replicates' mean [interval], {len(patched)} analysed; per step: "
                    f"each analysis's patching.csv):", "",
                    *_table(["site", "positions", "function steps", "identity steps"],
                            patching_rows(patched, ctx.study.confidence))]
    folders = [r.mechanism["folder"] for r in runs]
    per_step = patching_step_rows(folders, ctx.study.confidence)
    if per_step:
        details += ["", f"**Activation patching per output step** (positions `step`; fraction restored at the steps "
                    f"whose slot holds a function, and at those whose slot holds the identity; the replicates' mean "
                    f"[interval], from each analysis's patching.csv; judged: the pooled table above, thresholds "
                    f"criteria.f7.min_restored = {f.min_restored:g}, min_gap = {f.min_gap:g}):", "",
                    *_table(["step", "site", "function steps", "identity steps"], per_step)]
    probes = probe_split_rows(folders, ctx.study.confidence)
    if probes:
        details += ["", "**Logit lens and linear probe by what the slot holds** (accuracy on the current step's answer "
                    "at each residual site, all steps pooled; identity slots copy, function slots apply a bijection; "
                    "the replicates' mean [interval], from each analysis's probes.csv; context for answer late and "
                    f"MLP executes, which are judged on the unsplit numbers with early_margin = "
                    f"{f.early_margin:g}, late_accuracy = {f.late_accuracy:g}):", "",
                    *_table(["site", "logit lens: identity", "probe: identity", "logit lens: function",
                             "probe: function"], probes)]
    for r, claims in zip(runs, per_run, strict=True):
        details += ["", f"{r.tag} (step {r.mechanism['step']}; figures and CSVs in {r.mechanism['folder']}):",
                    *mechanism_lines(claims, r.mechanism, f)]
    return Finding(
        **base,
        criterion=f"every claim below (criteria.f7) holds in every analysed replicate of the deepest analysed "
                  f"Transformer setting, {g.label} ({len(runs)} analysed: {', '.join(r.tag for r in runs)}); a claim "
                  f"that holds in some replicates and fails in others is fragile; the replicates must fit their "
                  f"training compositions and number at least min_seeds",
        verdict=verdict, reason=f"{blocked}; {measured}" if blocked else measured, runs=[r.tag for r in runs],
        details=details,
    )


def figure_tables(study: Study, criteria: Criteria) -> list[FigureTable]:
    """Every figure's table, in figure order: what the findings read (Context.tables) and the report draws."""
    return [tables.compositions_table(study), tables.base_table(study), tables.outorder_table(study),
            dynamics_table(study, criteria.f5, criteria.fit_min), tables.lstm_table(study),
            tables.curves_table(study)]


FINDINGS: tuple[Callable[[Context], Finding | None], ...] = (finding1, finding2, finding3, finding4, finding5,
                                                              finding6, finding7)
