"""Finding 7 (docs/task.md §9: attention selects, the MLPs execute; the first arXiv version: the answer appears
late), judged on the numbers 05_analyze.py stored (results/<tag>/analysis/summary.json, "mechanism";
analysis/summary.py) by the criteria `criteria.f7` of config/report/conf.yaml. The claims, by source:

the ICML version's (abstract, contribution (4)); finding 7's verdict is theirs
  attention_selects  some head's share of attention on the current step's task token, averaged over the output
                     steps (best head per step), is at least attention_ratio x what uniform attention gives
  mlp_executes       the site where `readout` (the linear probe or the logit lens) first reaches late_accuracy is an
                     MLP output (`blocks.{l}.hook_resid_post`): the answer becomes readable right after an MLP, not
                     after an attention sublayer (attention only moves and mixes what earlier sites hold; applying a
                     random bijection to a token needs a nonlinearity)
  both_necessary     the clean model beats chance by at least min_margin (y_L token accuracy), and mean-ablating
                     some layer's attention, and some layer's MLP, each removes at least ablation_share of that margin
  patched_*          judge_patching's three claims on activation patching at the step's own positions, steps pooled.
                     Not judged, shown: with several heads per layer, each layer's strongest head (strongest_heads)

the first arXiv version's (abstract, contribution (4): attention in the latter half of the model is critical); its
own line, not part of the verdict
  answer_late        by `readout`: near chance at the embedding (<= chance + early_margin), high at the last site
                     (>= late_accuracy), and first >= late_accuracy in a block l >= late_fraction x n_layer (the last
                     half of the blocks); NOT_TESTABLE in a model of fewer than min_layers blocks. The other readout's
                     layer is shown beside it (finding7's readability table)

A claim whose part of the analysis was not run (or, patching, is not measurable) is not judged (None) in that run.

A setting's replicates are judged claim by claim (`claim_state`): a claim holds when it holds in every analysed
replicate, fails when it fails in every one, is fragile when it holds in some and fails in others, and is not
measured when some replicate did not measure it. Why not a mean and interval: answer_late and mlp_executes are
decided by where a readout first reads the answer, a site, not a number to average.
"""

import csv
import math
from pathlib import Path

from report.runs import Run, accuracy_train, last_step
from report.stats import FAILS, FRAGILE, HOLDS, MISSING, Point, all_of, estimate
from report.verdicts import COUNT, F7, INCONCLUSIVE, NOT_RUN, WORD, Context, Finding, fit_text, fmt, gate, md_table

CLAIMS = ("attention_selects", "answer_late", "mlp_executes", "both_necessary")
PATCHED_CLAIMS = ("patched_attention_selects", "patched_mlp_executes", "patched_identity_alike")
LATE = "answer_late"  # the first arXiv version's claim; every other claim is the ICML version's
NOT_TESTABLE = "not testable at this depth"  # answer_late in a model of fewer than criteria.f7.min_layers blocks
MARKS = {True: "holds", False: "fails", None: "not measured", NOT_TESTABLE: NOT_TESTABLE}  # one run's, in words
READOUTS = {"probe": ("probe_acc", "linear probe"), "logit_lens": ("logit_lens_acc", "logit lens")}  # column, name


def site_layer(site: str) -> int:
    """The block a residual site belongs to: -1 for the embedding (`blocks.0.hook_resid_pre`), l for
    `blocks.{l}.hook_resid_mid` and `blocks.{l}.hook_resid_post`."""
    return -1 if site.endswith("hook_resid_pre") else int(site.split(".")[1])


def n_blocks(probes: dict) -> int:
    """The model's blocks, from its last residual site."""
    return site_layer(probes["final"]["site"]) + 1


def first_readable(probes: dict, level: float, readout: str = "probe") -> dict | None:
    """The first residual site where `readout` (a key of READOUTS) reaches `level`."""
    column = READOUTS[readout][0]
    return next((s for s in probes["sites"] if s[column] >= level), None)


def judge_answer_late(probes: dict, c: F7) -> bool | str:
    """answer_late by c.readout (see the module's docstring), or NOT_TESTABLE below c.min_layers blocks."""
    blocks = n_blocks(probes)
    if blocks < c.min_layers:
        return NOT_TESTABLE
    column = READOUTS[c.readout][0]
    readable = first_readable(probes, c.late_accuracy, c.readout)
    return (probes["embed"][column] <= probes["chance"] + c.early_margin
            and probes["final"][column] >= c.late_accuracy
            and readable is not None and site_layer(readable["site"]) >= math.ceil(c.late_fraction * blocks))


def judge_mechanism(numbers: dict, c: F7) -> dict[str, bool | str | None]:
    """Each claim of CLAIMS: True, False, None when its numbers are absent, or (answer_late) NOT_TESTABLE.
    `c`: criteria.f7."""
    claims: dict[str, bool | str | None] = dict.fromkeys(CLAIMS)
    if "attention" in numbers:
        claims["attention_selects"] = numbers["attention"]["ratio"] >= c.attention_ratio
    if "probes" in numbers:
        p = numbers["probes"]
        readable = first_readable(p, c.late_accuracy, c.readout)
        claims[LATE] = judge_answer_late(p, c)
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
    """A claim over a setting's analysed replicates: HOLDS in every one, FAILS in every one, NOT_TESTABLE in every
    one, MISSING when one did not measure it (or there is none), FRAGILE otherwise (report.stats' states)."""
    if per_run and all(held == NOT_TESTABLE for held in per_run):
        return NOT_TESTABLE
    if not per_run or None in per_run or NOT_TESTABLE in per_run:
        return MISSING
    return HOLDS if all(per_run) else FAILS if not any(per_run) else FRAGILE


def readable_at(probes: dict, level: float, readout: str) -> str:
    """Where `readout` first reaches `level`, in words: 'L3 mlp (block 3 of 12, 0.880)', or 'never'."""
    site = first_readable(probes, level, readout)
    if site is None:
        return "never"
    return f"{site['label']} (block {site_layer(site['site'])} of {n_blocks(probes)}, {site[READOUTS[readout][0]]:.3f})"


def late_criterion(c: F7) -> str:
    return (f"by the {READOUTS[c.readout][1]} (criteria.f7.readout), embedding <= chance + {c.early_margin:g}, last "
            f"site >= {c.late_accuracy:g}, first >= {c.late_accuracy:g} in a block >= {c.late_fraction:g} x n_layer; "
            f"judged from min_layers = {c.min_layers} blocks on")


def mechanism_lines(claims: dict, numbers: dict, c: F7, n_head: int | None = None) -> list[str]:
    """Markdown bullets: each claim, its criterion with the thresholds written out, and its numbers; `n_head`: the
    model's heads per layer, when known (with one, per head adds nothing and the bullets say so)."""

    def mark(name: str) -> str:
        return MARKS[claims.get(name)]

    bullets = []
    if "attention" in numbers:
        at = numbers["attention"]
        one_head = " (one head per layer: the best head is its layer's attention)" if n_head == 1 else ""
        heads = n_head is not None and n_head > 1  # name each layer's best head

        def best(x: dict) -> str:
            return f"L{x['layer']}" + (f" H{x['best_head']}" if heads else "") + f" {x['share_current_task']:.3f}"

        bullets.append(
            f"Attention selects ({mark('attention_selects')}; criterion: best head's share on the current step's "
            f"task token >= {c.attention_ratio:g}x uniform): {at['best_share_current_task']:.3f} vs uniform "
            f"{at['uniform_current_task']:.3f} ({at['ratio']:.1f}x){one_head}; per layer"
            + (" (its best head)" if heads else "") + " " + ", ".join(best(x) for x in at["per_layer"]) + ".")
    if "probes" in numbers:
        p = numbers["probes"]
        other = next(r for r in READOUTS if r != c.readout)
        bullets.append(
            f"The answer appears late ({mark(LATE)}; the first arXiv version's claim; criterion: "
            f"{late_criterion(c)}; chance {p['chance']:.3f}): first >= {c.late_accuracy:g}: "
            f"{READOUTS[c.readout][1]} (judged) {readable_at(p, c.late_accuracy, c.readout)}, "
            f"{READOUTS[other][1]} {readable_at(p, c.late_accuracy, other)}; logit lens / probe "
            + ", ".join(f"{s['label']} {s['logit_lens_acc']:.2f}/{s['probe_acc']:.2f}" for s in p["sites"]) + ".")
        bullets.append(
            f"MLP executes ({mark('mlp_executes')}; criterion: the {READOUTS[c.readout][1]} first reaches "
            f"{c.late_accuracy:g} right after an MLP): first >= {c.late_accuracy:g}: "
            f"{readable_at(p, c.late_accuracy, c.readout)}; "
            f"probe accuracy gained across MLPs {p['probe_gain_mlp']:+.3f}, across attention "
            f"{p['probe_gain_attn']:+.3f}.")
    if "ablation" in numbers:
        a = numbers["ablation"]
        bullets.append(
            f"Both are necessary ({mark('both_necessary')}; criterion: clean accuracy >= chance + "
            f"{c.min_margin:g}, and mean-ablating one layer's attention, and one layer's MLP, removes >= "
            f"{c.ablation_share:g} of that margin): y_L token accuracy {a['baseline']:.3f} clean, worst "
            f"{fmt(a['worst_mean_ablation_attn'])} (attention), {fmt(a['worst_mean_ablation_mlp'])} (MLP), chance "
            f"{a['chance']:.3f}.")
    if "patching" in numbers:
        p = judge_patching(numbers["patching"], c.min_restored, c.min_gap)
        fn, ident, layer = numbers["patching"]["function"], numbers["patching"]["identity"], p["selecting_layer"]
        downstream = [x for x in fn["step"]["mlp"][layer:] if x is not None]
        heads = strongest_heads(fn["step"])  # none with one head per layer
        bullets.append(
            f"Patching at the step's positions (attention selects {mark('patched_attention_selects')}, MLP executes "
            f"{mark('patched_mlp_executes')}, identity alike {mark('patched_identity_alike')}; criterion: restored "
            f">= {c.min_restored:g} of a gap >= {c.min_gap:g}): gap {fn['gap']:.2f} (function steps), "
            f"{ident['gap']:.2f} (identity steps); layer {layer}'s attention restores "
            f"{_restored(fn['step']['attn'][layer])} (function), {_restored(ident['step']['attn'][layer])} (identity); "
            f"best MLP from layer {layer} on {_restored(max(downstream, default=None))} (function)."
            + (" Strongest head per layer (function steps; its fraction restored, and its share of the layer's "
               "attention output's): " + ", ".join(f"L{layer} H{head} {restored:.2f} ({_restored(share)})"
                                                   for layer, head, restored, share in heads) + "." if heads else ""))
    return [f"- {b}" for b in bullets]


def _restored(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def strongest_heads(step: dict) -> list[tuple[int, int, float, float | None]]:
    """Which head carries a layer's attention effect: per layer with more than one head and a measured head,
    (layer, head, restored, share) of the head whose patch restores the most, `step` being one slot kind's
    patching numbers at one positions (patching_numbers' [kind][positions]); share = its fraction restored over
    the layer's attention output's, None unless the layer's attention restores something (> 0). Heads are not
    additive downstream (a nonlinear model), so shares need not sum to 1 over a layer's heads."""
    out = []
    for layer, heads in enumerate(step["head"]):
        measured = [(r, h) for h, r in enumerate(heads) if r is not None]
        if len(heads) < 2 or not measured:
            continue
        restored, head = max(measured, key=lambda m: m[0])  # the lowest such head on a tie
        attn = step["attn"][layer]
        out.append((layer, head, restored, restored / attn if attn is not None and attn > 0 else None))
    return out


def patching_rows(runs_numbers: list[dict], confidence: float) -> list[list[str]]:
    """Patching numbers of a setting's replicates (one model, so the same sites): the fraction restored by each site
    (in layer order: attention, its heads, MLP) per positions ("step", "all"), at function steps and at identity
    steps, as the replicates' mean [interval] (report.stats; a replicate with nothing to restore there is left out);
    first the gap (clean minus corrupted logit difference) per slot kind."""
    kinds, step = ("function", "identity"), runs_numbers[0]["function"]["step"]
    sites = [site for layer, heads in enumerate(step["head"]) for site in [
        (f"L{layer} attn", "attn", layer, None), *[(f"L{layer} H{h}", "head", layer, h) for h in range(len(heads))],
        *[(f"L{layer} mlp", "mlp", layer, None)] * (layer < len(step["mlp"]))]]
    rows = [["gap (logit difference)", "–",
             *[estimate([n[kind]["gap"] for n in runs_numbers], confidence).text() for kind in kinds]]]
    for positions in ("step", "all"):
        for label, component, layer, head in sites:
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
    claims = {"attention_selects": at_least(function["attn"][selecting]),
              "mlp_executes": any(at_least(r) for r in function["mlp"][selecting:]),
              "identity_alike": at_least(identity["attn"][selecting])}
    return {"measurable": measurable, "claims": {k: v if measurable else None for k, v in claims.items()},
            "selecting_layer": selecting, "numbers": numbers}


def _read_csv(folder: str, name: str) -> list[dict] | None:
    """An analysis's CSV (05_analyze.py: patching.csv, probes.csv) as rows, or None when it is absent."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float | None:
    return float(text) if text else None  # None or '': not measured (estimate leaves NaN out too)


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


def architecture(model: dict) -> str:
    """`12 layers x 6 heads`: what tells two analysed settings of one dataset apart."""
    return f"{model.get('n_layer')} layers x {model.get('n_head')} head{'s' * (model.get('n_head') != 1)}"


def judge_setting(ctx: Context, runs: list[Run], label: str) -> dict:
    """One analysed setting's replicates judged: their fit, each replicate's claims, each claim's state over them,
    answer late on its own, and the verdict of the ICML claims (gated on fit and min_seeds)."""
    c, f = ctx.criteria, ctx.criteria.f7
    # the analysed checkpoint, or the run's last in-order step when the analysed one was not evaluated in order
    steps = [r.mechanism["step"] if r.inorder is None or (r.inorder["step"] == r.mechanism["step"]).any()
             else last_step(r.inorder) for r in runs]
    fit = Point(label, steps[0], tuple(runs), tuple({} for _ in runs),
                tuple(accuracy_train(r, ctx.study.metric, s) for r, s in zip(runs, steps, strict=True)),
                ctx.study.confidence)
    per_run = [judge_mechanism(r.mechanism, f) | judge_patched(r.mechanism, f) for r in runs]
    claims = [claim for claim in CLAIMS + PATCHED_CLAIMS if claim != LATE] + [LATE]
    states = {claim: claim_state([judged[claim] for judged in per_run]) for claim in claims}
    late = states.pop(LATE)

    def count(claim: str) -> str:
        held, unmeasured = (sum(p[claim] is value for p in per_run) for value in (True, None))
        return f"{held}/{len(runs)} hold" + (f", {unmeasured} not measured" if unmeasured else "")

    blocks = sorted({n_blocks(r.mechanism["probes"]) for r in runs if "probes" in r.mechanism})
    blocked = gate([fit], c)
    return {"fit": fit, "per_run": per_run, "states": states, "late": late, "blocked": blocked,
            "measured": "; ".join(f"{claim.replace('_', ' ')} {state} ({count(claim)})"
                                  for claim, state in states.items()),
            "why_late": (f"{'/'.join(map(str, blocks))} blocks, fewer than min_layers = {f.min_layers}"
                         if late == NOT_TESTABLE else count(LATE)),
            "verdict": INCONCLUSIVE if blocked else WORD[all_of(states.values())]}


def finding7(ctx: Context) -> Finding:
    """Mechanism, judged (judge_setting) on the numbers 05_analyze.py stored for the analysed replicates of the
    deepest analysed nanoGPT setting (then the one with the most analysed replicates, then the fewest heads), which
    must fit their training compositions and number at least min_seeds; not run when no nanoGPT run was analysed
    (05_analyze.py analyses nanoGPT only). The verdict is the ICML claims'; answer late (the first arXiv version's)
    is judged on its own line; every other analysed setting (more heads at that depth, a shallower model) is judged
    the same way and shown beside it, not in the verdict."""
    base = dict(number=7, title="Mechanism: attention selects, MLP executes", figure=None,
        source="attention selects, MLP executes (the verdict): the ICML 2024 version's abstract (and the current arXiv "
               "one), contribution (4): attention layers select the capability, feed-forward layers execute it; the "
               "answer appears late (its own line, not in the verdict): the first arXiv version's abstract (v1, Nov "
               "2023), contribution (4): attention layers in the latter half of the model are critical (\"seem "
               "critical\", NeurReps 2023 extended abstract); read here as: the answer first becomes readable in the "
               "last half of the blocks; the attention, probe, ablation and patching tests are this project's "
               "(docs/task.md §9)",
        claim="Attention selects which function to apply (the current step's output attends to its task token); the "
              "MLPs apply it (ICML version). The first version adds: the answer appears in the residual stream only "
              "in later layers.")
    analysed = [(g, [r for r in g.runs if r.kind == "nanogpt" and r.mechanism is not None]) for g in ctx.study.groups]
    analysed = [(g, runs) for g, runs in analysed if runs]
    if not analysed:
        return Finding(**base, criterion="every claim of criteria.f7 holds in every analysed replicate of the deepest "
                       "analysed Transformer setting", verdict=NOT_RUN, details=[],
                       reason="no nanoGPT run was analysed (05_analyze.py; it analyses nanoGPT only)")
    f = ctx.criteria.f7
    # the deepest setting, then the one with the most analysed replicates, then the fewest heads (the study's one)
    analysed.sort(key=lambda a: (-a[0].first.model.get("n_layer", 0), -len(a[1]), a[0].first.model.get("n_head", 1),
                                 a[0].label))
    (g, runs), others = analysed[0], analysed[1:]
    primary = judge_setting(ctx, runs, g.label)
    per_run, late, why_late = primary["per_run"], primary["late"], primary["why_late"]
    details = [f"- {COUNT}: {runs[0].n_train}; accuracy_train at the analysed steps: {fit_text(primary['fit'])}",
               f"- Verdict: the ICML claims' (every row of the table but answer late). **Answer late**, the first "
               f"arXiv version's claim (see Source), is judged on its own: **{late}** ({why_late}); criterion: "
               f"{late_criterion(f)}.", "",
               *md_table(["claim", *[r.tag for r in runs], "over the replicates"],
                         [[claim.replace("_", " "), *[MARKS[p[claim]] for p in per_run], state]
                          for claim, state in (primary["states"] | {LATE: late}).items()])]
    probed = [(r.tag, r.mechanism["probes"]) for r in runs if "probes" in r.mechanism]
    if probed:  # per replicate: its blocks, where each readout first reaches late_accuracy, and answer late
        other = next(r for r in READOUTS if r != f.readout)
        details += ["", f"**Where the answer is first readable** (the first residual site where a readout reaches "
                    f"late_accuracy = {f.late_accuracy:g}, per replicate; answer late is judged by the "
                    f"{READOUTS[f.readout][1]} (criteria.f7.readout), the {READOUTS[other][1]} is shown beside it):",
                    "", *md_table(["replicate", "blocks", f"{READOUTS[f.readout][1]} (judged)", READOUTS[other][1],
                                   "answer late"],
                                  [[tag, str(n_blocks(p)), *[readable_at(p, f.late_accuracy, o) for o in
                                                             (f.readout, other)], MARKS[judge_answer_late(p, f)]]
                                   for tag, p in probed])]
    per_head = " With one head per layer, each `L{l} H0` row repeats its layer's `attn` row: per head adds nothing." \
        if g.first.model.get("n_head") == 1 else ""
    patched = [r.mechanism["patching"] for r in runs if "patching" in r.mechanism]
    if patched:
        details += ["", f"**Activation patching** (fraction of the clean-minus-corrupted logit difference restored by "
                    f"patching one site from the clean run; steps pooled; positions `step`: the step's own positions, "
                    f"`all`: every position; the replicates' mean [interval], {len(patched)} analysed; per step: "
                    f"each analysis's patching.csv).{per_head}", "",
                    *md_table(["site", "positions", "function steps", "identity steps"],
                              patching_rows(patched, ctx.study.confidence))]
    folders = [r.mechanism["folder"] for r in runs]
    per_step = patching_step_rows(folders, ctx.study.confidence)
    if per_step:
        details += ["", f"**Activation patching per output step** (positions `step`; fraction restored at the steps "
                    f"whose slot holds a function, and at those whose slot holds the identity; the replicates' mean "
                    f"[interval], from each analysis's patching.csv; judged: the pooled table above, thresholds "
                    f"criteria.f7.min_restored = {f.min_restored:g}, min_gap = {f.min_gap:g}).{per_head}", "",
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
    for r, judged in zip(runs, per_run, strict=True):
        details += ["", f"{r.tag} (step {r.mechanism['step']}; figures and CSVs in {r.mechanism['folder']}):",
                    *mechanism_lines(judged, r.mechanism, f, r.model.get("n_head"))]
    beside = ""
    if others:  # judged alike and shown, not in the verdict: e.g. more heads at the same depth
        judged_others = [(og, judge_setting(ctx, oruns, og.label), oruns) for og, oruns in others]
        details += ["", "**Other analysed settings** (judged the same way; not in the verdict):", "",
                    *md_table(["setting", "model", "analysed", "verdict", "claims", "answer late"],
                              [[og.label, architecture(og.first.model), ", ".join(r.tag for r in oruns),
                                o["verdict"], o["measured"], f"{o['late']} ({o['why_late']})"]
                               for og, o, oruns in judged_others])]
        beside = "; other settings (not in the verdict): " + ", ".join(
            f"{architecture(og.first.model)} {o['verdict']}" for og, o, _ in judged_others)
    return Finding(
        **base,
        criterion=f"every ICML claim below (criteria.f7; all but answer late) holds in every analysed replicate of the "
                  f"deepest analysed Transformer setting (then the most analysed, then the fewest heads), "
                  f"{g.label}, {architecture(g.first.model)} ({len(runs)} analysed: "
                  f"{', '.join(r.tag for r in runs)}); a claim that holds in some replicates and fails in others is "
                  f"fragile; the replicates must fit their training compositions and number at least min_seeds. "
                  f"Answer late (the first arXiv version's) is judged on its own line: {late_criterion(f)}",
        verdict=primary["verdict"], runs=[r.tag for r in runs], details=details,
        reason=f"{primary['blocked'] + '; ' if primary['blocked'] else ''}{primary['measured']}; answer late (first "
               f"arXiv version; not in the verdict) {late} ({why_late}){beside}")
