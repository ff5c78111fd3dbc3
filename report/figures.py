"""The report's figures, each drawn only from the rows of its CSV (report.figure_rows, report.general_figure).
Matplotlib's object API on the Agg canvas: no window, no global pyplot state. Every accuracy axis spans [0, 1] with
chance as a dashed line; means over replicates carry their interval (ci_low, ci_high) as error bars or bands (the
callers' titles say which interval). A row of a replicate that did not fit its training compositions (`fitted` 0,
report.figure_rows.fit_rows) is a hollow marker beside the mean line, which leaves it out; the legend says so."""

import math
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from core.plotting import new_figure, save_png

FORMAT_COLORS = {"step-by-step": "tab:blue", "direct": "tab:red"}
KIND_COLORS = {"nanogpt": "tab:blue", "lstm": "tab:orange"}
MARKERS = "osD^v<>p*h"
LOG_SPAN = 10  # a count axis is logarithmic when it spans at least this factor (and holds >= 3 values)
HOLLOW = "hollow: did not fit its training compositions; left out of the mean"


def _accuracy_axis(ax, ylabel: str, chance: float) -> None:
    ax.axhline(chance, ls="--", color="gray", lw=1, label=f"chance ({chance:.2g})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def value_axis(ax, values: list, label: str) -> list:
    """An x axis for `values` (numbers or labels); returns the x position of each value. Numbers stand at themselves,
    on a log scale when there are >= 3 of them, all positive, spanning >= LOG_SPAN (one or two points never do);
    ticks are the values themselves. Anything else is categorical, in the order given."""
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    if numeric:
        ticks = sorted(distinct)
        if len(ticks) >= 3 and ticks[0] > 0 and ticks[-1] / ticks[0] >= LOG_SPAN:
            ax.set_xscale("log")
            label += " (log scale)"
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.minorticks_off()
        positions = values
    else:
        ax.set_xticks(range(len(distinct)), [str(v) for v in distinct])
        positions = [distinct.index(v) for v in values]
    ax.set_xlabel(label)
    return positions


def _yerr(rows: list[dict], key: str = "accuracy") -> list[list[float]]:
    """Error bar lengths below and above each row's `key` (0 where it has no interval)."""
    return [[0.0 if r["ci_low"] is None else r[key] - r["ci_low"] for r in rows],
            [0.0 if r["ci_high"] is None else r["ci_high"] - r[key] for r in rows]]


def errorbar_line(ax, x: list, rows: list[dict], **style) -> None:
    """Mean accuracies (rows without one left out) with their intervals as error bars; the rows of replicates that
    did not fit (`fitted` 0) as hollow markers of the same colour and marker, not joined to the line (they carry
    the label when no mean is left)."""
    points = [(xi, r) for xi, r in zip(x, rows, strict=True) if r["accuracy"] is not None]
    kept = [(xi, r) for xi, r in points if r.get("fitted", 1)]
    hollow = [(xi, r) for xi, r in points if not r.get("fitted", 1)]
    if kept:
        ax.errorbar([k[0] for k in kept], [k[1]["accuracy"] for k in kept], yerr=_yerr([k[1] for k in kept]),
                    capsize=3, **style)
    if hollow:
        ax.plot([h[0] for h in hollow], [h[1]["accuracy"] for h in hollow], ls="none", mfc="none", mew=1.2,
                marker=style.get("marker", "o"), color=style.get("color"), alpha=style.get("alpha"),
                label=None if kept else style.get("label"))


def _finish(ax, rows: list[dict], title: str, ylabel: str) -> Figure:
    """The accuracy axis, the title and the legend, with the HOLLOW entry when a row is a replicate that did not fit."""
    _accuracy_axis(ax, ylabel, rows[0]["chance"])
    ax.set_title(title, fontsize=10)
    if any(not r.get("fitted", 1) for r in rows):
        ax.plot([], [], ls="none", marker="o", mfc="none", color="gray", label=HOLLOW)
    ax.legend(fontsize=8, loc="best")
    return ax.figure


def band_line(ax, rows: list[dict], key: str, low: str, high: str, color, label: str | None, style: str = "-",
              marker: str = ".") -> None:
    """The rows' mean `key` against their step, its interval (`low`, `high`) as a translucent band (rows without an
    interval get none)."""
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], style, marker=marker, ms=4, color=color, lw=1.2,
            label=label)
    spans = [r for r in rows if r[low] is not None]
    if spans:
        ax.fill_between([r["step"] for r in spans], [r[low] for r in spans], [r[high] for r in spans], color=color,
                        alpha=0.2, lw=0)


def save(fig: Figure, path: Path) -> None:
    save_png(fig, path, dpi=110, tight=True)


def compositions_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """Accuracy vs number of training compositions: one colour per format, one marker per model; solid = all
    in-order compositions, dashed = the unseen ones."""
    ax = new_figure(7, 4.5, layout=None).subplots()
    models = list(dict.fromkeys(r["model"] for r in rows))
    value_axis(ax, [r["n_train"] for r in rows], "training compositions (in-order, `random` split)")
    for (fmt, color), (m, model) in ((f, m) for f in FORMAT_COLORS.items() for m in enumerate(models)):
        for subset, style in (("all", "-"), ("unseen", "--")):
            part = [r for r in rows if r["format"] == fmt and r["model"] == model and r["compositions"] == subset]
            name = f"{fmt}{f' {model}' if len(models) > 1 else ''}: {'all in-order' if subset == 'all' else 'unseen'}"
            errorbar_line(ax, [r["n_train"] for r in part], part, color=color, ls=style,
                          marker=MARKERS[m % len(MARKERS)], alpha=1.0 if subset == "all" else 0.7, label=name)
    return _finish(ax, rows, title, ylabel)


def base_figure(rows: list[dict], title: str) -> Figure:
    """Accuracy by number of functions in the composition (k >= 2: the unseen compositions), one colour per
    training split (the base set, then `random` by count); solid = the judged metric, dotted = sequence accuracy."""
    ax = new_figure(7, 4.5, layout=None).subplots()
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    colors = ("tab:purple", "tab:green", "tab:olive", "tab:cyan", "tab:brown", "tab:pink", "tab:gray")
    for series, color in zip(dict.fromkeys(r["series"] for r in rows), colors, strict=False):
        for metric, style in zip(metrics, ("-", ":"), strict=False):
            part = [r for r in rows if r["series"] == series and r["metric"] == metric]
            errorbar_line(ax, [r["n_functions"] for r in part], part, color=color, ls=style, marker="o",
                          label=f"{series} [{metric}]")
    ax.set_xticks(sorted({r["n_functions"] for r in rows}))
    ax.set_xlabel("#functions in the composition (non-identity slots; from 2 on: unseen compositions only)")
    return _finish(ax, rows, title, "accuracy on y_L (solid: the judged metric; dotted: seq_acc)")


def outorder_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """One heatmap per training setting: rows #identities, columns displacement, cells annotated with the mean
    and the interval's half-width; the colour bar marks chance."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    n_ids = sorted({r["n_identity"] for r in rows})
    disps = sorted({r["displacement"] for r in rows})
    fig = new_figure(5.2 * len(panels) + 1, 4.8, layout=None)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, panel in zip(axes, panels, strict=True):
        grid = [[math.nan] * len(disps) for _ in n_ids]
        for r in rows:
            if r["panel"] == panel and r["accuracy"] is not None:
                i, j = n_ids.index(r["n_identity"]), disps.index(r["displacement"])
                grid[i][j] = r["accuracy"]
                half = "" if r["ci_high"] is None else f"\n±{(r['ci_high'] - r['ci_low']) / 2:.2f}"
                ax.text(j, i, f"{r['accuracy']:.2f}{half}", ha="center", va="center", fontsize=7,
                        color="black" if r["accuracy"] > 0.6 else "white")
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        ax.set_xticks(range(len(disps)), [str(d) for d in disps])
        ax.set_yticks(range(len(n_ids)), [str(i) for i in n_ids])
        ax.set_xlabel("displacement (slots holding another level's function)")
        ax.set_ylabel("#identities")
        ax.set_title(panel.replace(": ", ":\n", 1), fontsize=9)
    fig.subplots_adjust(top=0.78)  # room for the two-line panel titles under the suptitle
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label(f"{ylabel} (dashed: chance)")
    bar.ax.axhline(rows[0]["chance"], ls="--", color="white", lw=1.5)
    fig.suptitle(f"{title}\ncells: mean ± half the interval", fontsize=10)
    return fig


def dynamics_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """One column per panel. Top: accuracy over training steps, one line per #functions (band: interval over
    seeds). Bottom: the residual against #functions (observed minus predicted chance-corrected y_L token accuracy,
    mean over each seed's learning window; error bars: interval over seeds), dotted at 0 (compounding explains
    all)."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    n_fns = sorted({r["n_functions"] for r in rows})
    cmap = matplotlib.colormaps["viridis"]
    fig = new_figure(6 * len(panels), 8.5, layout=None)
    axes = fig.subplots(2, len(panels), squeeze=False)
    for (top, bottom), panel in zip(axes.T, panels, strict=True):
        part = [r for r in rows if r["panel"] == panel and r["quantity"] == "accuracy"]
        for k in n_fns:
            line = sorted((r for r in part if r["n_functions"] == k), key=lambda r: r["step"])
            band_line(top, line, "value", "ci_low", "ci_high", cmap(k / max(n_fns[-1], 1) * 0.9), f"{k} functions",
                      marker="o")
        top.set_xlabel("training step")
        if part:
            _accuracy_axis(top, ylabel, part[0]["chance"])
            top.set_title(f"{panel} ({part[0]['split']}, {max(r['n_runs'] for r in part)} runs)", fontsize=9)
        top.legend(fontsize=7, loc="lower right")
        residual = sorted((r for r in rows if r["panel"] == panel and r["quantity"] == "residual"),
                          key=lambda r: r["n_functions"])
        if residual:
            bottom.errorbar([r["n_functions"] for r in residual], [r["value"] for r in residual],
                            yerr=_yerr(residual, "value"), capsize=3, marker="o", color="tab:purple",
                            label="residual (observed − predicted)")
            bottom.set_title(f"{panel}: residual over the learning window ({max(r['n_runs'] for r in residual)} "
                             "seeds)", fontsize=9)
            bottom.legend(fontsize=7, loc="best")
        else:
            bottom.set_title(f"{panel}: no seed has a learning window", fontsize=9)
        bottom.axhline(0, ls=":", color="black", lw=1)
        bottom.set_xticks(n_fns)
        bottom.set_xlabel("#functions in the composition")
        bottom.set_ylabel("residual y_L q (chance-corrected token accuracy)")
        bottom.grid(alpha=0.3)
    fig.subplots_adjust(hspace=0.35, top=0.88)  # room between the rows' axis labels and titles
    fig.suptitle(title, fontsize=10)
    return fig


def lstm_figure(rows: list[dict], title: str, ylabel: str) -> Figure:
    """Accuracy vs training compositions, Transformer and LSTM on the same data: solid = unseen compositions,
    dashed = training ones."""
    ax = new_figure(7, 4.5, layout=None).subplots()
    value_axis(ax, [r["n_train"] for r in rows], "training compositions")
    for model in dict.fromkeys(r["model"] for r in rows):
        for subset, style in (("unseen", "-"), ("train", "--")):
            part = sorted((r for r in rows if r["model"] == model and r["compositions"] == subset),
                          key=lambda r: r["n_train"])
            errorbar_line(ax, [r["n_train"] for r in part], part, ls=style, marker="o",
                          color=KIND_COLORS.get(part[0]["kind"], "gray"), label=f"{model}: {subset}")
    return _finish(ax, rows, title, ylabel)


def curves_figure(rows: list[dict], title: str) -> Figure:
    """Training loss (log scale) and teacher-forced accuracy on y_L (solid: all in-order, dashed: training
    compositions) vs step, one colour per setting, bands: interval over its replicates."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cmap = matplotlib.colormaps["tab10" if len(settings) <= 10 else "tab20"]
    fig = new_figure(13, 4.8, layout=None)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for n, setting in enumerate(settings):
        part = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["step"])
        color = cmap(n % cmap.N)
        for ax, key, low, high, style in ((loss_ax, "loss", "loss_ci_low", "loss_ci_high", "-"),
                                          (acc_ax, "accuracy", "ci_low", "ci_high", "-"),
                                          (acc_ax, "accuracy_train", "accuracy_train_ci_low",
                                           "accuracy_train_ci_high", "--")):
            points = [r for r in part if r[key] is not None]
            if points:
                band_line(ax, points, key, low, high, color, setting if key != "accuracy_train" else None, style)
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


def general_figure(rows: list[dict], title: str, x: str, ylabel: str) -> Figure:
    """The general report's figure: `accuracy` against column `x`, one line per `line` value, error bars over
    seeds."""
    fig = new_figure(7.5, 4.5, layout=None)
    ax = fig.subplots()
    positions = value_axis(ax, [r[x] for r in rows], x)
    colors = line_colors(rows)
    for line, color in colors.items():
        part = [(x, r) for x, r in zip(positions, rows, strict=True) if r["line"] == line]
        errorbar_line(ax, [p[0] for p in part], [p[1] for p in part], color=color, marker="o", label=line or None)
    _accuracy_axis(ax, ylabel, rows[0]["chance"])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def line_colors(rows: list[dict]) -> dict:
    """A color per value of the rows' `line` column, in order of appearance."""
    lines = list(dict.fromkeys(r["line"] for r in rows))
    cmap = matplotlib.colormaps["tab10" if len(lines) <= 10 else "tab20"]
    return {line: cmap(n % cmap.N) for n, line in enumerate(lines)}


def loss_floor_figure(rows: list[dict], title: str) -> Figure:
    """Loss on the training documents vs step (report.figure_rows.loss_floor_rows), one panel per count of training
    compositions and one line per run, a color per setting (its replicates share it); dashed: the plateau floor
    (outputs guessed), dotted: the solved floor."""
    counts = sorted({r["n_train"] for r in rows})
    colors = line_colors(rows)
    fig = new_figure(4.6 * len(counts), 4.2, layout=None)
    for ax, n in zip(fig.subplots(1, len(counts), squeeze=False)[0], counts, strict=True):
        part = [r for r in rows if r["n_train"] == n]
        for tag in dict.fromkeys(r["run"] for r in part):
            line = sorted((r for r in part if r["run"] == tag), key=lambda r: r["step"])
            ax.plot([r["step"] for r in line], [r["loss"] for r in line], lw=1, color=colors[line[0]["line"]],
                    label=line[0]["line"])
        for key, style in (("plateau_floor", "--"), ("solved_floor", ":")):
            for floor in sorted({r[key] for r in part}):
                ax.axhline(floor, color="black", ls=style, lw=1)
        ax.set_title(f"{n} training compositions", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss on training documents (eval_train)")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        once = dict(zip(labels, handles, strict=True))  # a setting once, however many replicates it has
        ax.legend(once.values(), once.keys(), fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
