"""The numbers finding 7 is judged on (docs/task.md §9: attention selects, the MLPs execute, the answer appears
late), computed from the analysis rows (dicts keyed by each CSV's header). 05_analyze.py stores them in
summary.json ("mechanism"); the report judges them by the criteria of config/report/conf.yaml
(report/mechanism.py), so every threshold lives in one place.
"""

from analysis.patching import patching_numbers


def attention_numbers(rows: list[dict]) -> dict:
    """The head with the largest share on the current task token, per layer and per output step."""
    def top(of) -> dict:
        return max(of, key=lambda r: float(r["share_current_task"]))

    per_step = [r for r in rows if r["step"] != "all"]
    best_per_step = []
    for k in sorted({int(r["step"]) for r in per_step}):
        best = top(r for r in per_step if int(r["step"]) == k)
        best_per_step.append({"step": k, "layer": int(best["layer"]), "head": int(best["head"]),
                              "share": float(best["share_current_task"]),
                              "uniform": float(best["uniform_current_task"])})
    per_layer = []
    for layer in sorted({int(r["layer"]) for r in rows}):
        best = top(r for r in rows if r["step"] == "all" and int(r["layer"]) == layer)
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
    return {"chance": float(rows[0]["chance"]), "sites": sites, "embed": sites[0], "final": sites[-1],
            "probe_gain_attn": gain["attn"], "probe_gain_mlp": gain["mlp"]}


def ablation_numbers(rows: list[dict]) -> dict:
    """Clean accuracy, every ablation's, and the largest mean-ablation drop per component."""
    baseline = next(float(r["token_acc"]) for r in rows if r["component"] == "none")
    chance = float(rows[0]["chance"])
    ablations = [{"layer": int(r["layer"]), "component": r["component"], "mode": r["mode"],
                  "token_acc": float(r["token_acc"])} for r in rows if r["component"] != "none"]
    worst = {component: min((a["token_acc"] for a in ablations if a["component"] == component and a["mode"] == "mean"),
                            default=None) for component in ("attn", "mlp")}
    return {"baseline": baseline, "chance": chance, "ablations": ablations,
            "worst_mean_ablation_attn": worst["attn"], "worst_mean_ablation_mlp": worst["mlp"]}


def mechanism_numbers(attention: list[dict] | None, probes: list[dict] | None, ablation: list[dict] | None,
                      patching: list[dict] | None = None) -> dict:
    """{"attention": ..., "probes": ..., "ablation": ..., "patching": ...} for the parts that were run (absent ones
    are left out). "patching" is analysis.patching.patching_numbers: numbers only, judged by the report."""
    parts = (("attention", attention, attention_numbers), ("probes", probes, probe_numbers),
             ("ablation", ablation, ablation_numbers), ("patching", patching, patching_numbers))
    return {name: summarize(rows) for name, rows, summarize in parts if rows}
