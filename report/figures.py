"""The report's figures, each drawn only from the rows of its CSV (report.tables). Matplotlib's object API on the
Agg canvas: no window, no global pyplot state. Every accuracy axis spans [0, 1] with chance as a dashed line."""

import math
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from pipeline.plotting import new_figure, save_png

FORMAT_COLORS = {"step-by-step": "tab:blue", "direct": "tab:red"}
KIND_COLORS = {"nanogpt": "tab:blue", "lstm": "tab:orange"}


def _accuracy_axis(ax, ylabel: str, chance: float) -> None:
    """An accuracy y axis from 0 to 1 with the chance level drawn as a dashed line."""
    ax.axhline(chance, ls="--", color="gray", lw=1, label=f"chance ({chance:.2g})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def save(fig: Figure, path: Path) -> None:
    save_png(fig, path, dpi=110, tight=True)


def compositions_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """Accuracy vs number of training compositions (log x): one colour per format, solid = all in-order
    compositions, dashed = the unseen ones."""
    fig = new_figure(7, 4.5, layout=None)
    ax = fig.subplots()
    for fmt, color in FORMAT_COLORS.items():
        part = [r for r in rows if r["format"] == fmt]
        if not part:
            continue
        x = [r["n_train"] for r in part]
        ax.plot(x, [r["accuracy_all"] for r in part], "o-", color=color, label=f"{fmt}: all in-order")
        unseen = [(r["n_train"], r["accuracy_unseen"]) for r in part if r["accuracy_unseen"] is not None]
        ax.plot([u[0] for u in unseen], [u[1] for u in unseen], "s--", color=color, alpha=0.7,
                label=f"{fmt}: unseen only")
    ax.set_xscale("log")
    counts = sorted({r["n_train"] for r in rows})
    ax.set_xticks(counts, [str(n) for n in counts])  # the counts run, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("training compositions (in-order, `random` split; log scale)")
    _accuracy_axis(ax, ylabel, rows[0]["chance"])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def base_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """Accuracy by number of functions in the composition, one line per training split."""
    fig = new_figure(7, 4.5, layout=None)
    ax = fig.subplots()
    for series, color in zip(dict.fromkeys(r["series"] for r in rows), ("tab:purple", "tab:green"), strict=False):
        part = [r for r in rows if r["series"] == series]
        ax.plot([r["n_functions"] for r in part], [r["accuracy"] for r in part], "o-", color=color, label=series)
    ax.set_xticks(sorted({r["n_functions"] for r in rows}))
    ax.set_xlabel("#functions in the composition (non-identity slots)")
    _accuracy_axis(ax, ylabel, rows[0]["chance"])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def outorder_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """One heatmap per training kind: rows #identities, columns displacement, cells annotated; the colour bar
    marks chance."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    n_ids = sorted({r["n_identity"] for r in rows})
    disps = sorted({r["displacement"] for r in rows})
    fig = new_figure(5.2 * len(panels) + 1, 4.8, layout=None)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, panel in zip(axes, panels, strict=True):
        grid = [[math.nan] * len(disps) for _ in n_ids]
        for r in rows:
            if r["panel"] == panel:
                grid[n_ids.index(r["n_identity"])][disps.index(r["displacement"])] = r["accuracy"]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        for i, line in enumerate(grid):
            for j, value in enumerate(line):
                if not math.isnan(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if value > 0.6 else "white")
        ax.set_xticks(range(len(disps)), [str(d) for d in disps])
        ax.set_yticks(range(len(n_ids)), [str(i) for i in n_ids])
        ax.set_xlabel("displacement (slots holding another level's function)")
        ax.set_ylabel("#identities")
        ax.set_title(panel, fontsize=9)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label(f"{ylabel} (dashed: chance)")
    bar.ax.axhline(rows[0]["chance"], ls="--", color="white", lw=1.5)
    fig.suptitle(title, fontsize=10)
    return fig


def dynamics_figure(rows: list[dict], title: str, ylabel: str, level: float) -> Figure:
    """Accuracy over training steps, one line per #functions, one panel per training split."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    n_fns = sorted({r["n_functions"] for r in rows})
    cmap = matplotlib.colormaps["viridis"]
    fig = new_figure(6 * len(panels), 4.5, layout=None)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels, strict=True):
        part = [r for r in rows if r["panel"] == panel]
        for k in n_fns:
            line = sorted((r["step"], r["accuracy"]) for r in part if r["n_functions"] == k)
            color = cmap(k / max(n_fns[-1], 1) * 0.9)
            ax.plot([s for s, _ in line], [a for _, a in line], "o-", ms=3, color=color, label=f"{k} functions")
        ax.axhline(level, ls=":", color="black", lw=1, label=f"'learned' level ({level})")
        ax.set_xlabel("training step")
        _accuracy_axis(ax, ylabel, part[0]["chance"])
        ax.set_title(f"{panel} ({part[0]['split']})", fontsize=9)
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def lstm_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """Grouped bars per data setting: Transformer and LSTM, training (solid) and unseen (hatched) compositions."""
    settings = list(dict.fromkeys(r["data"] for r in rows))
    fig = new_figure(max(6, 2.6 * len(settings)), 4.5, layout=None)
    ax = fig.subplots()
    width = 0.2
    for s, setting in enumerate(settings):
        for m, row in enumerate(r for r in rows if r["data"] == setting):  # Transformer, then LSTM
            for j, (key, hatch) in enumerate((("accuracy_train", ""), ("accuracy_unseen", "//"))):
                x = s + (2 * m + j - 1.5) * width
                label = f"{row['model']}: {'training' if j == 0 else 'unseen'}" if s == 0 else None
                ax.bar(x, row[key] or 0.0, width, color=KIND_COLORS.get(row["kind"], "gray"), hatch=hatch,
                       edgecolor="black", label=label)
    ax.set_xticks(range(len(settings)), settings, fontsize=8)
    ax.set_xlabel("training data")
    _accuracy_axis(ax, ylabel, rows[0]["chance"])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def curves_figure(rows: list[dict], title: str) -> Figure:
    """Training loss (log scale) and teacher-forced eval accuracy on y_L (solid: all in-order, dashed: training
    compositions) vs step, one colour per run."""
    runs = list(dict.fromkeys(r["run"] for r in rows))
    cmap = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
    fig = new_figure(13, 4.8, layout=None)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for n, run in enumerate(runs):
        part = sorted((r for r in rows if r["run"] == run), key=lambda r: r["step"])
        color = cmap(n % cmap.N)
        for ax, key, style in ((loss_ax, "loss", "-"), (acc_ax, "eval_all_acc", "-"), (acc_ax, "eval_train_acc", "--")):
            points = [(r["step"], r[key]) for r in part if r[key] is not None]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, marker=".", ms=4, color=color, lw=1.2,
                        label=run if key != "eval_train_acc" else None)
    loss_ax.set_yscale("log")
    loss_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    loss_ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    loss_ax.yaxis.set_minor_formatter(NullFormatter())
    loss_ax.set_xlabel("training step")
    loss_ax.set_ylabel("training loss (next-token cross-entropy)")
    loss_ax.grid(alpha=0.3)
    acc_ax.set_xlabel("training step")
    _accuracy_axis(acc_ax, "teacher-forced accuracy on y_L", rows[0]["chance"])
    acc_ax.set_title("solid: all in-order compositions (eval_all); dashed: training ones (eval_train)", fontsize=9)
    acc_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title, fontsize=10)
    return fig
