"""Finding 7 (docs/task.md §9: attention selects, the MLPs execute, the answer appears late), judged on the
numbers 05_analyze.py stored (results/<tag>/analysis/summary.json, "mechanism"; analysis/summary.py) by the
criteria `criteria.f7` of config/report/conf.yaml:

  attention_selects  some head's share of attention on the current step's task token, averaged over the output
                     steps (best head per step), is at least attention_ratio x what uniform attention gives
  answer_late        logit lens and linear probe are near chance at the embedding (<= chance + early_margin) and
                     high at the last site (>= late_accuracy), and the probe first reaches late_accuracy in the later
                     half of the network (site index >= half the last site's index)
  mlp_executes       the site where the linear probe first reaches late_accuracy is an MLP output
                     (`blocks.{l}.hook_resid_post`): the answer becomes linearly readable right after an MLP, not
                     after an attention sublayer (attention only moves and mixes what earlier sites hold; applying a
                     random bijection to a token needs a nonlinearity)
  both_necessary     the clean model beats chance by at least min_margin (y_L token accuracy), and mean-ablating
                     some layer's attention, and some layer's MLP, each removes at least ablation_share of that margin
  patched_* (judge_patched) patching at the step's own positions, steps pooled (judge_patching
                     with min_restored, min_gap): patched_attention_selects (one layer's attention output restores
                     >= min_restored of the logit difference at function steps), patched_mlp_executes (an MLP output of
                     that layer or a later one does), patched_identity_alike (that layer's attention does at identity
                     steps too); none is judged unless the clean-minus-corrupted gap is >= min_gap at both kinds

A claim whose part of the analysis was not run (or, patching, is not measurable) is not judged (None) in that run.

A setting's replicates are judged claim by claim (`claim_state`): a claim holds when it holds in every analysed
replicate, fails when it fails in every one, is fragile when it holds in some and fails in others, and is not
measured when some replicate did not measure it. Why not a mean and interval: answer_late and mlp_executes are
decided by where the probe first reads the answer, a site, not a number to average.
"""

import csv
import math
from pathlib import Path

from report.runs import Run, accuracy_train, last_step
from report.stats import FAILS, FRAGILE, HOLDS, MISSING, Point, all_of, estimate
from report.verdicts import COUNT, F7, INCONCLUSIVE, NOT_RUN, WORD, Context, Finding, fit_text, gate, md_table

CLAIMS = ("attention_selects", "answer_late", "mlp_executes", "both_necessary")
MARKS = {True: "holds", False: "fails", None: "not measured"}  # a claim's judgement in one run, in words
PATCHED_CLAIMS = ("patched_attention_selects", "patched_mlp_executes", "patched_identity_alike")


def first_readable(probes: dict, level: float) -> dict | None:
    """The first residual site where the linear probe reaches `level`."""
    return next((s for s in probes["sites"] if s["probe_acc"] >= level), None)


def judge_mechanism(numbers: dict, c: F7) -> dict[str, bool | None]:
    """Each claim of CLAIMS: True, False, or None when its numbers are absent. `c`: criteria.f7."""
    claims: dict[str, bool | None] = dict.fromkeys(CLAIMS)
    if "attention" in numbers:
        claims["attention_selects"] = numbers["attention"]["ratio"] >= c.attention_ratio
    if "probes" in numbers:
        p = numbers["probes"]
        early = all(p["embed"][k] <= p["chance"] + c.early_margin for k in ("logit_lens_acc", "probe_acc"))
        late = all(p["final"][k] >= c.late_accuracy for k in ("logit_lens_acc", "probe_acc"))
        readable = first_readable(p, c.late_accuracy)
        in_later_half = readable is not None and 2 * readable["index"] >= p["final"]["index"]
        claims["answer_late"] = early and late and in_later_half
        claims["mlp_executes"] = readable is not None and readable["site"].endswith("hook_resid_post")
    if "ablation" in numbers:
        a = numbers["ablation"]
        margin = a["baseline"] - a["chance"]
        worst = [a["worst_mean_ablation_attn"], a["worst_mean_ablation_mlp"]]
        claims["both_necessary"] = margin >= c.min_margin and all(
            w is not None and w <= a["baseline"] - c.ablation_share * margin for w in worst)
    return claims


def judge_patched(numbers: dict, c: F7) -> dict[str, bool | None]:
    """Each claim of PATCHED_CLAIMS (judge_patching): True, False, or None when patching was not
    run or its gap is below min_gap. `c`: criteria.f7."""
    if "patching" not in numbers:
        return dict.fromkeys(PATCHED_CLAIMS)
    patched = judge_patching(numbers["patching"], c.min_restored, c.min_gap)["claims"]
    return {f"patched_{name}": held for name, held in patched.items()}


def claim_state(per_run: list[bool | None]) -> str:
    """A claim over a setting's analysed replicates: HOLDS in every one, FAILS in every one, MISSING when one did
    not measure it (or there is none), FRAGILE otherwise (report.stats' states)."""
    if not per_run or None in per_run:
        return MISSING
    return HOLDS if all(per_run) else FAILS if not any(per_run) else FRAGILE


def mechanism_lines(claims: dict, numbers: dict, c: F7) -> list[str]:
    """Markdown bullets: each claim, its criterion with the thresholds written out, and its numbers."""

    def mark(name: str) -> str:
        return MARKS[claims.get(name)]

    bullets = []
    if "attention" in numbers:
        at = numbers["attention"]
        bullets.append(
            f"Attention selects ({mark('attention_selects')}; criterion: best head's share on the current step's "
            f"task token >= {c.attention_ratio:g}x uniform): {at['best_share_current_task']:.3f} vs uniform "
            f"{at['uniform_current_task']:.3f} ({at['ratio']:.1f}x); per layer "
            + ", ".join(f"L{x['layer']} {x['share_current_task']:.3f}" for x in at["per_layer"]) + ".")
    if "probes" in numbers:
        p = numbers["probes"]
        bullets.append(
            f"The answer appears late ({mark('answer_late')}; criterion: embedding <= chance + "
            f"{c.early_margin:g}, last site >= {c.late_accuracy:g}, the probe first >= {c.late_accuracy:g} "
            f"in the later half; chance {p['chance']:.3f}): logit lens / probe "
            + ", ".join(f"{s['label']} {s['logit_lens_acc']:.2f}/{s['probe_acc']:.2f}" for s in p["sites"]) + ".")
        readable = first_readable(p, c.late_accuracy)
        where = "never" if readable is None else f"first after {readable['label']} ({readable['probe_acc']:.3f})"
        bullets.append(
            f"MLP executes ({mark('mlp_executes')}; criterion: the probe first reaches {c.late_accuracy:g} right "
            f"after an MLP): {where}; probe accuracy gained across MLPs {p['probe_gain_mlp']:+.3f}, across "
            f"attention {p['probe_gain_attn']:+.3f}.")
    if "ablation" in numbers:
        a = numbers["ablation"]

        def acc(value: float | None) -> str:
            return "–" if value is None else f"{value:.3f}"

        bullets.append(
            f"Both are necessary ({mark('both_necessary')}; criterion: clean accuracy >= chance + "
            f"{c.min_margin:g}, and mean-ablating one layer's attention, and one layer's MLP, removes >= "
            f"{c.ablation_share:g} of that margin): y_L token accuracy {a['baseline']:.3f} clean, worst "
            f"{acc(a['worst_mean_ablation_attn'])} (attention), {acc(a['worst_mean_ablation_mlp'])} (MLP), chance "
            f"{a['chance']:.3f}.")
    if "patching" in numbers:
        p = judge_patching(numbers["patching"], c.min_restored, c.min_gap)
        fn, ident, layer = numbers["patching"]["function"], numbers["patching"]["identity"], p["selecting_layer"]
        downstream = [x for x in fn["step"]["mlp"][layer:] if x is not None]
        bullets.append(
            f"Patching at the step's positions (attention selects {mark('patched_attention_selects')}, MLP executes "
            f"{mark('patched_mlp_executes')}, identity alike {mark('patched_identity_alike')}; criterion: restored "
            f">= {c.min_restored:g} of a gap >= {c.min_gap:g}): gap {fn['gap']:.2f} (function steps), "
            f"{ident['gap']:.2f} (identity steps); layer {layer}'s attention restores "
            f"{_restored(fn['step']['attn'][layer])} (function), {_restored(ident['step']['attn'][layer])} (identity); "
            f"best MLP from layer {layer} on {_restored(max(downstream, default=None))} (function).")
    return [f"- {b}" for b in bullets]


def _restored(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def patching_sites(numbers: dict) -> list[tuple[str, str, int, int | None]]:
    """(label, component, layer, head) of every patched site, in layer order: attention, its heads, MLP."""
    step = numbers["function"]["step"]
    sites = []
    for layer, heads in enumerate(step["head"]):
        sites.append((f"L{layer} attn", "attn", layer, None))
        sites += [(f"L{layer} H{h}", "head", layer, h) for h in range(len(heads))]
        if layer < len(step["mlp"]):
            sites.append((f"L{layer} mlp", "mlp", layer, None))
    return sites


def patching_rows(runs_numbers: list[dict], confidence: float) -> list[list[str]]:
    """Patching numbers of a setting's replicates (one model, so the same sites): the fraction restored by each site
    per positions ("step", "all"), at function steps and at identity steps, as the replicates' mean [interval]
    (report.stats; a replicate with nothing to restore there is left out); first the gap (clean minus corrupted
    logit difference) per slot kind."""
    kinds = ("function", "identity")
    rows = [["gap (logit difference)", "–",
             *[estimate([n[kind]["gap"] for n in runs_numbers], confidence).text() for kind in kinds]]]
    for positions in ("step", "all"):
        for label, component, layer, head in patching_sites(runs_numbers[0]):
            values = {kind: [n[kind][positions][component][layer] for n in runs_numbers] for kind in kinds}
            if head is not None:
                values = {kind: [v[head] for v in vs] for kind, vs in values.items()}
            rows.append([label, positions, *[estimate(values[kind], confidence).text() for kind in kinds]])
    return rows


def judge_patching(numbers: dict, min_restored: float, min_gap: float) -> dict:
    """Judge the claims below on patching_numbers(...) (patched at the step's own positions, steps pooled). Pure.

      measurable          the clean answer beats the corrupted one by >= min_gap (mean logit difference, clean
                          minus corrupted) at identity steps and at function steps; otherwise no claim is judged (None)
      attention_selects   at function steps, patching one layer's attention output restores >= min_restored
                          (that layer, the "selecting layer", alone carries which function the slot names)
      mlp_executes        at function steps, patching the MLP output of the selecting layer or a later one restores
                          >= min_restored (the answer is written by an MLP downstream of the selection)
      identity_alike      at identity steps, the selecting layer's attention also restores >= min_restored (the
                          identity is selected the way a function is)
    """
    function, identity = numbers["function"]["step"], numbers["identity"]["step"]

    def at_least(value: float | None) -> bool:
        return value is not None and value >= min_restored

    selecting = max(range(len(function["attn"])), key=lambda layer: -math.inf if function["attn"][layer] is None
                    else function["attn"][layer])
    measurable = numbers["function"]["gap"] >= min_gap and numbers["identity"]["gap"] >= min_gap
    claims = {
        "attention_selects": at_least(function["attn"][selecting]),
        "mlp_executes": any(at_least(r) for r in function["mlp"][selecting:]),
        "identity_alike": at_least(identity["attn"][selecting]),
    }
    return {"measurable": measurable, "claims": {k: v if measurable else None for k, v in claims.items()},
            "selecting_layer": selecting, "numbers": numbers,
            "thresholds": {"min_restored": min_restored, "min_gap": min_gap}}


def _read_csv(folder: str, name: str) -> list[dict] | None:
    """An analysis's CSV (05_analyze.py: patching.csv, probes.csv) as rows, or None when it is absent."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def patching_step_rows(folders: list[str], confidence: float) -> list[list]:
    """Per output step and site, patched at the step's own positions: the fraction restored at function steps and
    at identity steps, as the replicates' mean [interval] (each analysis's patching.csv); [] when a replicate lacks
    the file."""
    tables = [_read_csv(folder, "patching.csv") for folder in folders]
    if not tables or any(t is None for t in tables):
        return []
    cell = [{(r["step"], r["label"], r["slot_kind"]): _number(r["restored"]) for r in t
             if r["positions"] == "step"} for t in tables]
    steps = sorted({r["step"] for t in tables for r in t if r["step"].isdigit()}, key=int)
    labels = list(dict.fromkeys(r["label"] for r in tables[0] if r["positions"] == "step"))
    return [[step, label, *[estimate([c.get((step, label, kind)) for c in cell], confidence).text()
                            for kind in ("function", "identity")]] for step in steps for label in labels]


def probe_split_rows(folders: list[str], confidence: float) -> list[list]:
    """Per residual site, all steps pooled: logit lens and probe accuracy at identity slots and at function slots,
    as the replicates' mean [interval] (each analysis's probes.csv); [] when a replicate lacks the file or the
    split."""
    tables = [_read_csv(folder, "probes.csv") for folder in folders]
    columns = ("logit_lens_acc_identity", "probe_acc_identity", "logit_lens_acc_function", "probe_acc_function")
    if not tables or any(t is None or not t or any(c not in t[0] for c in columns) for t in tables):
        return []
    pooled = [{r["label"]: r for r in t if r["step"] == "all"} for t in tables]
    labels = list(pooled[0])
    return [[label, *[estimate([_number(p.get(label, {}).get(c)) for p in pooled], confidence).text()
                      for c in columns]] for label in labels]


def _analysed_step(run: Run) -> int:
    """The analysed checkpoint, or the run's last in-order step when the analysed one was not evaluated in order."""
    step = run.mechanism["step"]
    return step if run.inorder is None or (run.inorder["step"] == step).any() else last_step(run.inorder)


def finding7(ctx: Context) -> Finding:
    """Mechanism, judged (judge_mechanism, judge_patched) on the numbers 05_analyze.py stored for the analysed
    replicates of the deepest analysed nanoGPT setting (then the one with the most analysed replicates), which must
    fit their training compositions and number at least min_seeds; not run when no nanoGPT run was analysed
    (05_analyze.py analyses nanoGPT only)."""
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
                    *md_table(["site", "positions", "function steps", "identity steps"],
                              patching_rows(patched, ctx.study.confidence))]
    folders = [r.mechanism["folder"] for r in runs]
    per_step = patching_step_rows(folders, ctx.study.confidence)
    if per_step:
        details += ["", f"**Activation patching per output step** (positions `step`; fraction restored at the steps "
                    f"whose slot holds a function, and at those whose slot holds the identity; the replicates' mean "
                    f"[interval], from each analysis's patching.csv; judged: the pooled table above, thresholds "
                    f"criteria.f7.min_restored = {f.min_restored:g}, min_gap = {f.min_gap:g}):", "",
                    *md_table(["step", "site", "function steps", "identity steps"], per_step)]
    probes = probe_split_rows(folders, ctx.study.confidence)
    if probes:
        details += ["", "**Logit lens and linear probe by what the slot holds** (accuracy on the current step's answer "
                    "at each residual site, all steps pooled; identity slots copy, function slots apply a bijection; "
                    "the replicates' mean [interval], from each analysis's probes.csv; context for answer late and "
                    f"MLP executes, which are judged on the unsplit numbers with early_margin = "
                    f"{f.early_margin:g}, late_accuracy = {f.late_accuracy:g}):", "",
                    *md_table(["site", "logit lens: identity", "probe: identity", "logit lens: function",
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
