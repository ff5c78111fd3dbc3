"""The study's findings (docs/task.md §9), each judged by a fixed criterion whose thresholds come from the report
config (config/report/conf.yaml, `criteria`), on runs that fit, over seeds, with intervals (report.verdicts).

A finding is a function Context -> Finding, listed in FINDINGS; it reads the figure tables (report.figure_rows) it
needs from the context. Findings 1 to 4 and 6 are here; finding 5 is report.learning_order's, finding 7
report.mechanism's. To add or replace one, write the function and put it in FINDINGS.
"""

from collections.abc import Callable
from dataclasses import replace
from statistics import fmean

from report import figure_rows
from report.figure_rows import FigureTable, Study, f2_key, ks_of
from report.learning_order import dynamics_table, finding5
from report.markdown import length_text
from report.mechanism import finding7
from report.runs import ByDisplacement, ByFunctions, Quantity
from report.stats import HOLDS, Check, Point, all_of, difference
from report.verdicts import (
    COUNT,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    STATE,
    WORD,
    Context,
    Criteria,
    Finding,
    count_text,
    decide,
    fit_text,
    gate,
    make_finding,
    md_table,
    pick,
)

SBS, DIRECT = "step-by-step", "direct"


def points_table(first: str, rows: list[tuple[str, Point]], columns: list[tuple[str, Quantity]]) -> list[str]:
    """Markdown: one line per (label, point): training compositions (unless `first` is that count), step, runs,
    fit, then each (header, quantity) as mean [interval]."""
    count = first != COUNT
    return md_table([first, *[COUNT] * count, "step", "runs", "accuracy_train", *[h for h, _ in columns]],
                    [[label, *[p.n_train] * count, p.step, p.n, fit_text(p),
                      *[p.estimate(k).text() for _, k in columns]] for label, p in rows])


def fit_counts(p: Point, fit_min: float) -> str:
    """'2/3 fit': how many of a point's replicates reach fit_min on their training compositions."""
    return f"{p.n - len(p.unfit(fit_min))}/{p.n} fit"


def finding1(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f1
    base = dict(number=1, title="A few random compositions suffice (step-by-step)", figure="fig1_compositions",
        source="the paper's abstract, contribution (1) (small amounts of training data, combinatorially many "
               "functions); the counts: no section of the paper established (docs/task.md §9)",
        claim="Step-by-step, trained on a few dozen random in-order compositions (about 30-100 of 3125), the model "
              "generalizes to nearly all in-order compositions (accuracy ≈ 100%).",
        criterion=f"judged on the step-by-step `random` setting of the judged Transformer with the most training "
                  f"compositions up to {f.max_compositions} (among those whose replicates all fit and number at "
                  f"least min_seeds, if any): mean {ctx.name} on the unseen in-order compositions over its seeds "
                  f">= {f.min_unseen} at the interval's low end")
    points = {n: p for (fmt_, arch, n), p in ctx.tables["fig1_compositions"].summary.items()
              if fmt_ == SBS and arch == ctx.study.transformer}
    details = points_table(COUNT, [(str(n), p) for n, p in points.items()],
                           [("all in-order", "all"), ("unseen", "unseen")])
    small = {n: [p] for n, p in points.items() if n <= f.max_compositions}
    if not small:
        return Finding(**base, verdict=NOT_RUN, reason="no step-by-step `random` run with at most "
                       f"{f.max_compositions} compositions", details=details if points else [])
    n, _, note = pick(small, c)
    check = Check(f"unseen accuracy with {n} compositions", points[n].estimate("unseen"), ">=", f.min_unseen)
    enough = [k for k, p in points.items() if Check("", p.estimate("unseen"), ">=", f.min_unseen).state == HOLDS]
    details += ["", f"Fewest training compositions whose unseen accuracy reaches {f.min_unseen} at the interval's "
                f"low end: {min(enough) if enough else 'none run'}."]
    return make_finding(base, [points[n]], [check], c, details, note)


def finding2(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f2
    t = ctx.tables["fig2_base_vs_random"]
    base = dict(number=2, title="The base set alone does not compose", figure=t.name,
        source="not in the abstract; closest: an earlier abstract version's contribution (3), that the training "
               "data decides which unseen combinations compose (docs/task.md §9)",
        claim="Trained on the base set alone (identity + every single function), the model does not generalize to "
              "compositions of two or more functions.",
        criterion=f"`base` with 0 extra compositions scores {ctx.name} >= {f.min_single} on 1-function "
                  f"compositions; each number of functions k >= 2 is then judged on its own: `base` scores <= "
                  f"{f.max_multi} on the unseen k-function compositions, and a step-by-step `random` control scores "
                  f"at least {f.random_margin} higher on them (the interval of the difference). The control at k is "
                  f"the `random` setting with the fewest training compositions, as many as the base set's or more, "
                  f"that composes there itself ({ctx.name} on its unseen k-function compositions >= "
                  f"{f.control_min}, its replicates fit and number at least min_seeds): the equal-count one where "
                  "it composes, else a larger count run; each at the interval's conservative end, and reproduced "
                  "when every k is")
    s = t.summary
    if not s:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    present = {series: s[series] for series in ("base", "random") if s[series]}  # series -> {metric: point}
    metric = ctx.study.metric
    present |= {f"random {n}": {metric: p} for n, p in s["controls"].items()}
    b, r = s["base"][metric], s["random"] and s["random"][metric]
    ks = ks_of(b)
    details = md_table(["#functions", *[f"{series.split()[0]} ({p.n_train} {COUNT}, {p.n} runs): {m}"
                                        for series, ps in present.items() for m, p in ps.items()]],
                       [[k if k <= 1 else f"{k} (unseen)", *[p.estimate(f2_key(k)).text() for ps in present.values()
                                                             for p in ps.values()]] for k in ks])
    details += ["", *points_table("setting", [(ps[metric].label, ps[metric]) for ps in present.values()], [])]
    if r is None:
        counts = ", ".join(map(str, s["random_counts"])) or "none"
        return Finding(**base, verdict=NOT_RUN, details=details, reason=f"needs a step-by-step `random` run with "
                       f"{s['n_train']} training compositions (the base set's count); `random` counts run: {counts}")
    single = Check("base, 1 function", b.estimate(ByFunctions(1)), ">=", f.min_single)
    blocked = gate([b], c)
    if blocked:
        return Finding(**base, verdict=INCONCLUSIVE, reason=blocked, details=details, runs=b.tags,
                       checks=[single.record()])
    controls = {r.n_train: r, **s["controls"]}  # count -> point, the fewest first

    def composes(p: Point, k: int) -> bool:
        return not gate([p], c) and Check("", p.estimate(f2_key(k)), ">=", f.control_min).state == HOLDS

    checks, states, lines, rows, used = [single], [single.state], [], [], {}  # used: count -> control judged
    for k in (k for k in ks if k >= 2):
        n = next((n for n, p in controls.items() if composes(p, k)), None)
        below = Check(f"base, {k} functions", b.estimate(f2_key(k)), "<=", f.max_multi)
        gap = None if n is None else Check(f"random {n} minus base, {k} functions",
                                           difference(controls[n], b, f2_key(k)), ">=", f.random_margin)
        if gap is None:
            verdict, why = INCONCLUSIVE, (f"no `random` control composes at {k} functions (unseen >= "
                                          f"{f.control_min}): " + ", ".join(
                                              f"{m} {p.estimate(f2_key(k)).text()}" for m, p in controls.items()))
        else:
            verdict, why = decide([b, controls[n]], [below, gap], c)
            used[n] = controls[n]
        checks += [below, *[gap] * (gap is not None)]
        states.append(STATE[verdict])
        lines.append(f"{k} functions: {verdict} ({why})")
        equal = difference(r, b, f2_key(k))
        rows.append([k, n or "none", below.value.text(), gap.value.text() if gap else "–",
                     f"{equal.text()} ({equal.method})" if equal.low is not None else equal.text(), verdict])
    details += ["", f"Each number of functions on its own: the control that composes there (unseen >= "
                f"{f.control_min}), and the equal-count control's difference beside it (it decides only where it "
                "composes itself):", "",
                *md_table(["#functions", "control (training compositions)", "base, unseen", "control minus base",
                           f"random {r.n_train} minus base", "verdict"], rows)]
    reason = "; ".join([*[single.text()] * (single.state != HOLDS), *lines])
    return Finding(**base, verdict=WORD[all_of(states)], reason=reason, details=details,
                   runs=[t for p in [b, *used.values()] for t in p.tags], checks=[ch.record() for ch in checks])


def finding3(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f3
    base = dict(number=3, title="Direct generalizes far worse than step-by-step", figure="fig1_compositions",
        source="the paper's abstract, contribution (2); \"even with thousands\": no section of the paper "
               "established (docs/task.md §9)",
        claim="The direct format (final output only) generalizes far worse than step-by-step, even with thousands "
              "of training compositions.",
        criterion=f"at the largest training-composition count at which both formats fit (every replicate >= fit_min "
                  f"on its training compositions, at least min_seeds of each), with the same model, step-by-step "
                  f"minus direct {ctx.name} on the unseen compositions >= {f.min_gap} at the interval's low end")
    summary = ctx.tables["fig1_compositions"].summary
    pairs = {(n, arch): [p, summary[DIRECT, arch, n]] for (fmt_, arch, n), p in summary.items()
             if fmt_ == SBS and (DIRECT, arch, n) in summary}
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, reason="needs `random` runs of both formats with the same count and "
                       "model", details=[])
    rows = [(f"{fmt_}, {n}, {arch}", p) for (n, arch), ps in pairs.items()
            for fmt_, p in zip((SBS, DIRECT), ps, strict=True)]
    details = points_table("format, compositions, model", rows, [("unseen", "unseen")])
    key, passed, _ = pick(pairs, c, rank=lambda k: (k[0], k[1] == ctx.study.transformer))
    sbs, direct = pairs[key]
    details += ["", f"Replicates that fit their training compositions (accuracy_train >= fit_min {c.fit_min:g}), "
                "per count: " + "; ".join(f"{n} ({arch}): step-by-step {fit_counts(ps[0], c.fit_min)}, direct "
                                          f"{fit_counts(ps[1], c.fit_min)}" for (n, arch), ps in pairs.items())
                + "."]
    unfit_direct = {k: ps[1] for k, ps in pairs.items() if gate([ps[1]], c)}
    if unfit_direct:
        details += ["", "Not every direct replicate fit its training compositions at " + ", ".join(
            f"{n} compositions ({arch}; {fit_counts(p, c.fit_min)} at step {p.step})"
            for (n, arch), p in unfit_direct.items())
            + ": finding 3 is not judged there, only at the largest count where both formats fit."]
    check = Check(f"step-by-step minus direct, unseen, {key[0]} compositions ({key[1]})",
                  difference(sbs, direct, "unseen"), ">=", f.min_gap)
    found = make_finding(base, [sbs, direct], [check], c, details)
    if not passed:
        return found
    n = key[0]  # judged at n; a larger count was run where a format does not fit: the verdict says so
    scope = f"up to {n} compositions" if found.verdict == REPRODUCED else (
        f"at {n} compositions, the largest count at which both formats fit")
    return replace(found, reason=f"{found.verdict} {scope}; above {n} not testable: "
                                 f"{untestable({k: pairs[k] for k in passed}, c)}. {found.reason}")


def untestable(pairs: dict[tuple, list[Point]], c: Criteria) -> str:
    """Why finding 3 cannot be judged at these counts (key -> [step-by-step, direct]), direct first: 'the direct
    model does not fit its training compositions (512 compositions (nanogpt L2 d120): 0/3 fit)'."""
    parts = []
    for i, name in ((1, DIRECT), (0, SBS)):
        short = {k: ps[i] for k, ps in pairs.items() if gate([ps[i]], c)}
        if short:
            why = ("does not fit its training compositions" if any(p.unfit(c.fit_min) for p in short.values())
                   else f"has fewer than min_seeds {c.min_seeds} replicates")
            parts.append(f"the {name} model {why} (" + "; ".join(
                f"{count_text(k)}: {fit_counts(p, c.fit_min)}" + (f", {p.n} runs" * (p.n < c.min_seeds))
                + loss_text(p) for k, p in short.items()) + ")")
    return " and ".join(parts)


def loss_text(p: Point) -> str:
    """', final loss 1.790 against the plateau floor 1.783' (the replicates' means, from metrics.jsonl): how close a
    setting that does not fit sits to the loss of a model that learned the prompt but guesses the answer."""
    last = {r["run"]: r for r in sorted(figure_rows.loss_floor_rows(list(p.runs)), key=lambda r: r["step"])}
    if not last:
        return ""
    loss, floor = (fmean(r[key] for r in last.values()) for key in ("loss", "plateau_floor"))
    return f", final loss {loss:.3f} against the plateau floor {floor:.3f}"


def finding4(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f4
    t = ctx.tables["fig3_outorder"]
    base = dict(number=4, title="Out-of-order needs out-of-order training", figure=t.name,
        source="the paper's abstract, contribution (3); the word \"displacement\" per a third-party review "
               "(liner.com) (docs/task.md §9)",
        claim="Trained in order only, accuracy falls as displacement grows; out-of-order training compositions "
              "restore it.",
        criterion=f"an in-order-trained and an out-of-order-trained (`*_combo`) step-by-step setting with the same "
                  f"number of training compositions (the largest such count): trained in order, {ctx.name} at "
                  f"displacement 0 minus the largest displacement >= {f.min_drop}; and out-of-order training "
                  f"minus in-order training over displacement >= 1 >= {f.min_gain}; at the intervals' "
                  "conservative ends")
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
    n, _, note = pick(pairs, c)
    inorder, combo = pairs[n]
    worst = max(q.displacement for q in inorder.quantities(ByDisplacement))
    checks = [Check(f"in-order training ({n} compositions): displacement 0 minus {worst}",
                    difference(inorder, inorder, ByDisplacement(0), ByDisplacement(worst)), ">=", f.min_drop),
              Check("out-of-order minus in-order training, displacement >= 1",
                    difference(combo, inorder, "displaced"), ">=", f.min_gain)]
    return make_finding(base, [inorder, combo], checks, c, details, note)


def finding6(ctx: Context) -> Finding:
    c, f = ctx.criteria, ctx.criteria.f6
    t = ctx.tables["fig5_lstm_vs_transformer"]
    base = dict(number=6, title="An LSTM does not compose", figure=t.name,
        source="the reference pipeline's README (\"unlike LSTMs\"); not in the abstract (docs/task.md §9)",
        claim="An LSTM trained on the same few compositions does not generalize compositionally.",
        criterion=f"at the fewest training compositions at which the Transformer's {ctx.name} on unseen compositions "
                  f"reaches {f.transformer_min} at the interval's low end (both models fit there, at least "
                  f"min_seeds each; without such a count: the largest count where both fit), the LSTM's trained on "
                  f"the same data stays <= {f.lstm_max} at the interval's high end")
    pairs = t.summary.get("pairs", [])
    if not pairs:
        return Finding(**base, verdict=NOT_RUN, reason=t.missing, details=[])
    details = points_table("model, data", [(f"{p[m].label}", p[m]) for p in pairs for m in ("transformer", "lstm")],
                           [("unseen", "unseen")])

    def reaches(p: Point) -> bool:
        return Check("", p.estimate("unseen"), ">=", f.transformer_min).state == HOLDS

    def needed(points: dict[int, Point]) -> tuple[str, str]:
        """The fewest count whose replicates fit and reach transformer_min (its compositions needed), and beside it
        the counts run and those that could not be judged (a replicate did not fit, or fewer than min_seeds)."""
        reached = [n for n, p in sorted(points.items()) if not gate([p], c) and reaches(p)]
        unjudged = [f"{n} ({fit_counts(p, c.fit_min)})" for n, p in sorted(points.items()) if gate([p], c)]
        return str(reached[0]) if reached else "none of the counts run", ", ".join(map(str, sorted(points))) + (
            f"; not judged at {', '.join(unjudged)}" if unjudged else "")

    def trained(points: dict[int, Point]) -> tuple[str, str]:
        """How the model's runs were trained (run.json, each distinct value once): length, peak learning rate."""
        ts = [r.training for p in points.values() for r in p.runs]
        lengths = [length_text(t["steps"], t["batch_size"], t["documents"], t["epochs"]) if t else "not recorded"
                   for t in ts]
        rates = [f"{t['learning_rate']:g}" if t else "not recorded" for t in ts]
        return "; ".join(dict.fromkeys(lengths)), "; ".join(dict.fromkeys(rates))

    # the Transformer's step-by-step `random` settings at every count run (finding 1's, the same data as the LSTM's)
    paired = next((p["transformer"].runs[0].arch for p in pairs if p["transformer"].runs), None)
    transformers = {n: p for (fmt_, arch, n), p in ctx.tables["fig1_compositions"].summary.items()
                    if fmt_ == SBS and arch == paired} or {p["n_train"]: p["transformer"] for p in pairs}
    models = {"Transformer": transformers, "LSTM": {p["n_train"]: p["lstm"] for p in pairs}}
    rows = [[name, *needed(points), *trained(points)] for name, points in models.items()]
    details += ["", f"Training compositions each model needs to reach {f.transformer_min} on unseen compositions "
                "(interval's low end; only counts whose replicates all fit, at least min_seeds), and how each was "
                "trained (run.json):", "",
                *md_table(["model", "training compositions needed", "counts run", "training", "peak learning rate"],
                          rows)]
    needs = ", ".join(f"{name} {n} ({length}, peak learning rate {rate})" for name, n, _, length, rate in rows)
    candidates = {p["n_train"]: [p["transformer"], p["lstm"]] for p in pairs}
    first_reached = [n for n, ps in candidates.items() if not gate(ps, c) and reaches(ps[0])]
    n, _, note = (min(first_reached), [], "") if first_reached else pick(candidates, c)
    transformer, lstm = candidates[n]
    checks = [Check(f"Transformer unseen, {n} compositions", transformer.estimate("unseen"), ">=",
                    f.transformer_min),
              Check(f"LSTM unseen, {n} compositions", lstm.estimate("unseen"), "<=", f.lstm_max)]
    found = make_finding(base, [transformer, lstm], checks, c, details, note)
    return replace(found, reason=f"{found.reason}. Compositions needed: {needs}.")


def figure_tables(study: Study, criteria: Criteria) -> list[FigureTable]:
    """Every figure's table, in figure order: what the findings read (Context.tables) and the report draws."""
    return [figure_rows.compositions_table(study), figure_rows.base_table(study), figure_rows.outorder_table(study),
            dynamics_table(study, criteria.f5, criteria.fit_min), figure_rows.lstm_table(study),
            figure_rows.curves_table(study)]


FINDINGS: tuple[Callable[[Context], Finding | None], ...] = (finding1, finding2, finding3, finding4, finding5,
                                                              finding6, finding7)
