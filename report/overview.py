"""The runs table every report writes (reports/<name>/runs.csv, and a markdown version): one row per run, every
config key that differs between the runs, and the run's headline numbers at its last evaluated step."""

import json

from report.measures import inorder_numbers, last_step, outorder_numbers
from report.runs import Run

HEADLINE = ["n_train", "step", "accuracy_train", "accuracy_all", "accuracy_unseen", "accuracy_displaced"]


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys (Run.config) whose value is not the same for every run (absent counts as a value)."""
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def headline(run: Run, metric: str) -> dict:
    """HEADLINE for one run: in-order accuracies at its last in-order step, displaced at its out-of-order step."""
    i = inorder_numbers(run, metric, last_step(run.inorder)) if run.inorder is not None else {}
    o = outorder_numbers(run, metric, last_step(run.outorder)) if run.outorder is not None else {}
    step = last_step(run.inorder) if run.inorder is not None else last_step(run.outorder)
    return {"n_train": run.n_train, "step": step, "accuracy_train": i.get("train"), "accuracy_all": i.get("all"),
            "accuracy_unseen": i.get("unseen"), "accuracy_displaced": o.get("displaced")}


def runs_rows(runs: list[Run], metric: str) -> tuple[list[str], list[dict]]:
    """(columns, rows) of runs.csv: run, the differing config keys, HEADLINE."""
    keys = differing_keys(runs)
    rows = [{"run": r.tag, **{k: r.config.get(k) for k in keys}, **headline(r, metric)} for r in runs]
    return ["run", *keys, *HEADLINE], rows


def runs_markdown(runs: list[Run], metric: str, fit_min: float | None = None) -> list[str]:
    """The runs as a markdown table (settings in words); with fit_min, runs below it are marked."""

    def acc(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = ["| run | setting | seed | training compositions | step | accuracy_train | all in-order | unseen | "
             "displaced (out-of-order) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        h = headline(r, metric)
        train = acc(h["accuracy_train"])
        if fit_min is not None and (h["accuracy_train"] is None or h["accuracy_train"] < fit_min):
            train += " (did not fit)"
        lines.append(f"| {r.tag} | {r.format} {r.split_label}, {r.arch} | {r.seed} | {h['n_train']} | {h['step']} | "
                     f"{train} | {acc(h['accuracy_all'])} | {acc(h['accuracy_unseen'])} | "
                     f"{acc(h['accuracy_displaced'])} |")
    return lines
