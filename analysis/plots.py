"""The analysis figures (matplotlib, Agg canvas, no pyplot state), each written atomically as a PNG."""

from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm

from analysis.attention import ROLES, AttentionStats
from core.plotting import new_figure, save_png


def attention_heatmap(stats: AttentionStats, labels: list[str], path: Path) -> None:
    """One panel per (layer, head): attention averaged over documents, query position (rows) x key (columns)."""
    n_layer, H, T, _ = stats.mean_pattern.shape
    fig = new_figure(3.6 * H + 0.8, 3.4 * n_layer)
    axes = np.atleast_2d(fig.subplots(n_layer, H, squeeze=False))
    ticks = np.arange(T)
    for layer in range(n_layer):
        for head in range(H):
            ax = axes[layer, head]
            image = ax.imshow(stats.mean_pattern[layer, head], cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=1),
                              interpolation="nearest")
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(ticks, labels[:T], rotation=90, fontsize=4)
            ax.set_yticks(ticks, labels[:T], fontsize=4)
            ax.set_xlabel("key position", fontsize=7)
            ax.set_ylabel("query position", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=min(0.6, 0.1 + 1.0 / n_layer), label="mean attention (square-root scale)")
    fig.suptitle(f"Average attention pattern ({stats.n_documents} documents)", fontsize=10)
    save_png(fig, path)


def attention_task_bars(stats: AttentionStats, path: Path) -> None:
    """Per output step: share of attention on the current slot's task token, one bar per (layer, head),
    with the uniform-attention share as a black tick."""
    n_layer, H, n_steps, _ = stats.shares.shape
    cur = ROLES.index("current_task")
    fig = new_figure(max(5.0, 1.2 * n_steps + 2), 3.6)
    ax = fig.subplots()
    x = np.arange(n_steps)
    width = 0.8 / (n_layer * H)
    for i, (layer, head) in enumerate(np.ndindex(n_layer, H)):
        ax.bar(x - 0.4 + (i + 0.5) * width, stats.shares[layer, head, :, cur], width,
               label=f"L{layer}" if H == 1 else f"L{layer}H{head}")
    ax.scatter(x, stats.uniform[:, cur], marker="_", s=400, color="black", zorder=3, label="uniform")
    ax.set_xticks(x, [f"y{k + 1}" for k in range(n_steps)])
    ax.set_xlabel("output step being written")
    ax.set_ylabel("attention on its task token")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=min(8, n_layer * H + 1), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("Attention on the current step's task token")
    save_png(fig, path)


def probe_curve(rows: list[dict], path: Path) -> None:
    """Logit-lens and linear-probe accuracy (all output steps) at each residual site, with chance; rows keyed by
    analysis.probes.PROBE_HEADER."""
    overall = [r for r in rows if r["step"] == "all"]
    labels = [r["label"] for r in overall]
    x = np.arange(len(overall))
    fig = new_figure(max(5.0, 0.6 * len(overall) + 2), 3.6)
    ax = fig.subplots()
    ax.plot(x, [r["logit_lens_acc"] for r in overall], marker="o", label="logit lens")
    ax.plot(x, [r["probe_acc"] for r in overall], marker="s", label="linear probe (held-out)")
    ax.axhline(overall[0]["chance"], color="gray", linestyle="--", label="chance (1/A)")
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("residual stream site (after ...)")
    ax.set_ylabel("next output token accuracy")
    ax.legend(fontsize=8)
    ax.set_title("Where the answer appears, layer by layer")
    save_png(fig, path)


def ablation_bars(rows: list[dict], path: Path) -> None:
    """y_L token accuracy when one layer's attention or MLP output is zeroed or replaced by its mean; rows keyed
    by analysis.ablation.ablation_header (the clean baseline: component "none")."""
    clean = next(r for r in rows if r["component"] == "none")
    baseline, chance = clean["token_acc"], clean["chance"]
    ablations = [r for r in rows if r["component"] != "none"]
    layers = sorted({r["layer"] for r in ablations})
    kinds = [(c, m) for c in ("attn", "mlp") for m in ("zero", "mean") if any(r["component"] == c for r in ablations)]
    acc = {(r["layer"], r["component"], r["mode"]): r["token_acc"] for r in ablations}
    fig = new_figure(max(5.0, 1.1 * len(layers) + 2), 3.6)
    ax = fig.subplots()
    x = np.arange(len(layers))
    width = 0.8 / len(kinds)
    for i, (component, mode) in enumerate(kinds):
        ax.bar(x - 0.4 + (i + 0.5) * width, [acc[(lay, component, mode)] for lay in layers], width,
               label=f"{component} {mode}")
    ax.axhline(baseline, color="black", label=f"no ablation ({baseline:.3f})")
    ax.axhline(chance, color="gray", linestyle="--", label="chance (1/A)")
    ax.set_xticks(x, [f"layer {lay}" for lay in layers])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("y_L token accuracy (autoregressive)")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title("Ablating one sublayer at a time")
    save_png(fig, path)
