"""Finding 7 (SPEC.md §9: attention selects, the MLPs execute, the answer appears late) judged from the CSVs
that `05_analyze.py` writes, by fixed criteria stated here and in the markdown it returns.

  attention_selects  some head's share of attention on the current step's task token, averaged over the output
                     steps (best head per step), is at least ATTENTION_RATIO x what uniform attention gives
  answer_late        logit lens and linear probe are near chance at the embedding (<= chance + EARLY_MARGIN) and
                     high at the last site (>= LATE_ACCURACY), and the probe first reaches LATE_ACCURACY in the later
                     half of the network (site index >= half the last site's index)
  mlp_executes       the site where the linear probe first reaches LATE_ACCURACY is an MLP output
                     (`blocks.{l}.hook_resid_post`): the answer becomes linearly readable right after an MLP, not
                     after an attention sublayer (attention only moves and mixes what earlier sites hold; applying a
                     random bijection to a token needs a nonlinearity)
  both_necessary     the clean model beats chance by at least MIN_MARGIN (y_L token accuracy), and mean-ablating
                     some layer's attention, and some layer's MLP, each removes at least ABLATION_SHARE of that margin

Verdict: "supported" when every judged claim holds, "partly supported" when some do, "not supported" when none;
a claim whose CSV is missing is not judged (None) and the verdict says so.
"""

import csv
from pathlib import Path

ATTENTION_RATIO = 5.0
EARLY_MARGIN = 0.1
LATE_ACCURACY = 0.8
ABLATION_SHARE = 0.5
MIN_MARGIN = 0.5
CLAIMS = ("attention_selects", "answer_late", "mlp_executes", "both_necessary")


def _read(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def attention_numbers(rows: list[dict]) -> dict:
    """The head with the largest share on the current task token, per layer and per output step."""
    per_step = [r for r in rows if r["step"] != "all"]
    steps = sorted({int(r["step"]) for r in per_step})
    best_per_step = []
    for k in steps:
        best = max((r for r in per_step if int(r["step"]) == k), key=lambda r: float(r["share_current_task"]))
        best_per_step.append({"step": k, "layer": int(best["layer"]), "head": int(best["head"]),
                              "share": float(best["share_current_task"]),
                              "uniform": float(best["uniform_current_task"])})
    per_layer = []
    for layer in sorted({int(r["layer"]) for r in rows}):
        overall = [r for r in rows if r["step"] == "all" and int(r["layer"]) == layer]
        best = max(overall, key=lambda r: float(r["share_current_task"]))
        per_layer.append({"layer": layer, "best_head": int(best["head"]),
                          "share_current_task": float(best["share_current_task"]),
                          "share_prev_step": float(best["share_prev_step"]),
                          "uniform_current_task": float(best["uniform_current_task"])})
    share = sum(b["share"] for b in best_per_step) / len(best_per_step)
    uniform = sum(b["uniform"] for b in best_per_step) / len(best_per_step)
    return {"best_share_current_task": share, "uniform_current_task": uniform, "ratio": share / uniform,
            "per_layer": per_layer, "best_per_step": best_per_step}


def probe_numbers(rows: list[dict]) -> dict:
    """Accuracies per site (all steps), and the probe accuracy gained across attention vs MLP sublayers."""
    overall = sorted((r for r in rows if r["step"] == "all"), key=lambda r: int(r["index"]))
    sites = [{"site": r["site"], "label": r["label"], "index": int(r["index"]),
              "logit_lens_acc": float(r["logit_lens_acc"]), "probe_acc": float(r["probe_acc"])} for r in overall]
    gain = {"attn": 0.0, "mlp": 0.0}
    for before, after in zip(sites, sites[1:], strict=False):
        gain["attn" if after["site"].endswith("resid_mid") else "mlp"] += after["probe_acc"] - before["probe_acc"]
    readable = next((s for s in sites if s["probe_acc"] >= LATE_ACCURACY), None)
    return {"chance": float(rows[0]["chance"]), "sites": sites, "embed": sites[0], "final": sites[-1],
            "first_readable": readable, "probe_gain_attn": gain["attn"], "probe_gain_mlp": gain["mlp"]}


def ablation_numbers(rows: list[dict]) -> dict:
    """Clean accuracy, every ablation's, and the largest mean-ablation drop per component."""
    baseline = next(float(r["token_acc"]) for r in rows if r["component"] == "none")
    chance = float(rows[0]["chance"])
    ablations = [{"layer": int(r["layer"]), "component": r["component"], "mode": r["mode"],
                  "token_acc": float(r["token_acc"])} for r in rows if r["component"] != "none"]
    worst = {}
    for component in ("attn", "mlp"):
        accs = [a["token_acc"] for a in ablations if a["component"] == component and a["mode"] == "mean"]
        worst[component] = min(accs) if accs else None
    return {"baseline": baseline, "chance": chance, "ablations": ablations,
            "worst_mean_ablation_attn": worst["attn"], "worst_mean_ablation_mlp": worst["mlp"]}


def judge(numbers: dict) -> dict[str, bool | None]:
    claims: dict[str, bool | None] = dict.fromkeys(CLAIMS)
    if "attention" in numbers:
        claims["attention_selects"] = numbers["attention"]["ratio"] >= ATTENTION_RATIO
    if "probes" in numbers:
        p = numbers["probes"]
        early = all(p["embed"][k] <= p["chance"] + EARLY_MARGIN for k in ("logit_lens_acc", "probe_acc"))
        late = all(p["final"][k] >= LATE_ACCURACY for k in ("logit_lens_acc", "probe_acc"))
        readable = p["first_readable"]
        in_later_half = readable is not None and 2 * readable["index"] >= p["final"]["index"]
        claims["answer_late"] = early and late and in_later_half
        claims["mlp_executes"] = readable is not None and readable["site"].endswith("hook_resid_post")
    if "ablation" in numbers:
        a = numbers["ablation"]
        margin = a["baseline"] - a["chance"]
        worst = [a["worst_mean_ablation_attn"], a["worst_mean_ablation_mlp"]]
        claims["both_necessary"] = margin >= MIN_MARGIN and all(
            w is not None and w <= a["baseline"] - ABLATION_SHARE * margin for w in worst)
    return claims


def _markdown(verdict: str, claims: dict, numbers: dict) -> str:
    def mark(name: str) -> str:
        return {True: "holds", False: "fails", None: "not measured"}[claims[name]]

    parts = [f"**Finding 7 (attention selects, MLP executes, the answer appears late): {verdict}.**"]
    bullets = []
    if "attention" in numbers:
        at = numbers["attention"]
        bullets.append(
            f"Attention selects ({mark('attention_selects')}; criterion: best head's share on the current step's "
            f"task token >= {ATTENTION_RATIO:g}x uniform): {at['best_share_current_task']:.3f} vs uniform "
            f"{at['uniform_current_task']:.3f} ({at['ratio']:.1f}x); per layer "
            + ", ".join(f"L{x['layer']} {x['share_current_task']:.3f}" for x in at["per_layer"]) + ".")
    if "probes" in numbers:
        p = numbers["probes"]
        bullets.append(
            f"The answer appears late ({mark('answer_late')}; criterion: embedding <= chance + {EARLY_MARGIN:g}, "
            f"last site >= {LATE_ACCURACY:g}, the probe first >= {LATE_ACCURACY:g} in the later half; chance "
            f"{p['chance']:.3f}): logit lens / probe "
            + ", ".join(f"{s['label']} {s['logit_lens_acc']:.2f}/{s['probe_acc']:.2f}" for s in p["sites"]) + ".")
        readable = p["first_readable"]
        where = "never" if readable is None else f"first after {readable['label']} ({readable['probe_acc']:.3f})"
        bullets.append(
            f"MLP executes ({mark('mlp_executes')}; criterion: the probe first reaches {LATE_ACCURACY:g} right after "
            f"an MLP): {where}; probe accuracy gained across MLPs {p['probe_gain_mlp']:+.3f}, across attention "
            f"{p['probe_gain_attn']:+.3f}.")
    if "ablation" in numbers:
        a = numbers["ablation"]
        worst_attn, worst_mlp = a["worst_mean_ablation_attn"], a["worst_mean_ablation_mlp"]
        bullets.append(
            f"Both are necessary ({mark('both_necessary')}; criterion: clean accuracy >= chance + {MIN_MARGIN:g}, and "
            f"mean-ablating one layer's attention, and one layer's MLP, removes >= {ABLATION_SHARE:g} of that "
            f"margin): y_L token accuracy "
            f"{a['baseline']:.3f} clean, worst {worst_attn if worst_attn is None else f'{worst_attn:.3f}'} "
            f"(attention), {worst_mlp if worst_mlp is None else f'{worst_mlp:.3f}'} (MLP), chance {a['chance']:.3f}.")
    return "\n".join([*parts, *(f"- {b}" for b in bullets)])


def summarize_mechanism(analysis_dir: str | Path) -> dict:
    """{"verdict", "claims", "numbers", "markdown"} from attention.csv, probes.csv and ablation.csv in
    analysis_dir (each optional). Pure: reads the CSVs, writes nothing."""
    root = Path(analysis_dir)
    numbers: dict = {}
    for key, name, summarize in (("attention", "attention.csv", attention_numbers),
                                 ("probes", "probes.csv", probe_numbers),
                                 ("ablation", "ablation.csv", ablation_numbers)):
        rows = _read(root / name)
        if rows:
            numbers[key] = summarize(rows)
    claims = judge(numbers)
    judged = [v for v in claims.values() if v is not None]
    if not judged:
        verdict = "not measured"
    elif all(judged):
        verdict = "supported"
    elif any(judged):
        verdict = "partly supported"
    else:
        verdict = "not supported"
    if judged and len(judged) < len(claims):
        verdict += " (incomplete: " + ", ".join(k for k, v in claims.items() if v is None) + " not measured)"
    return {"verdict": verdict, "claims": claims, "numbers": numbers,
            "markdown": _markdown(verdict, claims, numbers)}
