"""findings.md and report.md (reports/<name>/) and REPRODUCTION.md, as text, with the runs table and the general
report's points in markdown."""

from dataclasses import asdict

from report.general_figure import Plot
from report.runs import Run, flatten, headline
from report.stats import METHODS
from report.verdicts import Criteria, Finding

REPRODUCTION_TITLE = "# Reproduction: compositional capabilities of autoregressive Transformers (arXiv 2311.12997)"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _acc(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def summary_table(findings: list[Finding]) -> list[str]:
    lines = ["| # | finding | verdict | reason |", "|---|---|---|---|"]
    return lines + [f"| {f.number} | {_cell(f.title)} | **{f.verdict}** | {_cell(f.reason)} |" for f in findings]


def interval_text(confidence: float) -> str:
    return (f"a two-sided {confidence:.0%} interval over the replicates inside [0, 1]: Student-t on the logit scale, "
            "mapped back (logit-t, report/stats.py logit_ci)")


def rules_lines(c: Criteria, confidence: float, metric_name: str) -> list[str]:
    """How verdicts are reached, and every threshold of `c` (then `confidence`) with its dotted name and value."""
    return [
        "## How the verdicts are reached", "",
        f"- **Fit gate**: a run whose {metric_name} on its own training compositions (accuracy_train) is below "
        f"`fit_min` = {c.fit_min:g} did not fit; a verdict resting on it is **inconclusive**, naming the run.",
        "- **Seeds**: replicates (runs whose settings differ only in the seed) are read at a common training step "
        f"(the latest step most of them were evaluated at) and averaged; the interval is "
        f"{interval_text(confidence)}. "
        f"A setting with fewer than `min_seeds` = {c.min_seeds} replicates gives **inconclusive**.",
        "- **Criteria at the interval's ends**: each criterion is checked at the end of its interval least favourable "
        "to it: holding there gives **reproduced**; failing even at the most favourable end gives **not "
        "reproduced**; in between (the interval straddles the threshold) **inconclusive (fragile)**. A difference "
        "of two settings gets an interval of the difference itself, clipped to [-1, 1]. Each interval's method is "
        "named with it (and in findings.json): " + "; ".join(f"{m}: {text}" for m, text in METHODS.items()) + ".",
        "- **not run**: the runs the finding needs are absent; the reason says which.", "",
        "Thresholds (`criteria` of config/report/conf.yaml):", "",
        *[f"- `{key}` = {value}" for key, value in flatten({**asdict(c), "confidence": confidence}).items()],
    ]


def runs_and_notes(runs_md: list[str], notes: list[str]) -> list[str]:
    """The closing sections of findings.md and report.md: the runs table, then the notes (if any)."""
    lines = ["", "## Runs", "", "Each run at its last evaluated step; every config key that differs between the runs "
             "is in [runs.csv](runs.csv).", "", *runs_md]
    return lines + (["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else [])


def findings_markdown(name: str, source: str, runs_md: list[str], metric_name: str, transformer: str | None,
                      findings: list[Finding], figures: dict[str, str], notes: list[str], criteria: Criteria,
                      confidence: float, provenance: dict[str, str] | None = None) -> str:
    """`figures`: figure stem -> its title, for the figures that were drawn; `provenance`: command, machine and
    wall time of the runs (the sweep driver's timing.json, or the config)."""
    measured = [] if not provenance else [
        "Runs produced by " + ", ".join(f"{key} {_cell(value) if key != 'command' else f'`{value}`'}"
                                        for key, value in provenance.items())
        + " (timing.json: the sweep driver's record of its last invocation into this folder).", ""]
    lines = [
        f"# Findings: report `{name}`", "",
        f"Written by `04_report.py` (kind=paper) from {source}; rerun the report rather "
        "than editing this file.", "", *measured,
        f"Accuracy is the {metric_name} on the final output y_L, written autoregressively by the model "
        "(docs/task.md §8). Chance is 1/A per token. Every verdict follows from the fixed criterion stated with it.",
        f"Transformer judged in findings 1, 2, 4 and 5: `{transformer or 'none'}` (finding 3 compares the formats "
        "within each nanoGPT architecture; every run is listed under Runs).",
        "", *summary_table(findings), "", *rules_lines(criteria, confidence, metric_name),
    ]
    for f in findings:
        lines += ["", f"## {f.number}. {f.title}", "", f"- **Study:** {f.claim}", f"- **Source:** {f.source}.",
                  f"- **Criterion:** {f.criterion}.",
                  f"- **Verdict:** **{f.verdict}**: {f.reason}", ""]
        lines += f.details
        if f.figure in figures:
            lines += ["", f"![{figures[f.figure]}]({f.figure}.png)", "",
                      f"Figure data: [{f.figure}.csv]({f.figure}.csv)"]
        elif f.figure:
            lines += ["", "Figure: not drawn (its runs are absent)."]
    return "\n".join(lines + runs_and_notes(runs_md, notes)) + "\n"


def general_markdown(name: str, source: str, description: list[str], figure: str, title: str, points_md: list[str],
                     runs_md: list[str], notes: list[str]) -> str:
    lines = [
        f"# Report `{name}`", "",
        f"Written by `04_report.py` (kind=general) from {source}; rerun the report rather "
        "than editing this file. A general report compares runs and judges nothing: the study's findings and their "
        "criteria are written by `kind=paper` reports only.", "",
        *description, "",
        f"![{title}]({figure}.png)", "", f"Figure data: [{figure}.csv]({figure}.csv)", "",
        *points_md,
    ]
    return "\n".join(lines + runs_and_notes(runs_md, notes)) + "\n"


def reproduction_markdown(name: str, source: str, provenance: dict[str, str], findings: list[Finding],
                          figures: dict[str, str], links: dict[str, str], findings_link: str,
                          stages: list[str] | None = None) -> str:
    """`links`: figure stem and "findings" -> path relative to REPRODUCTION.md; `stages`: each stage's command
    line as the sweep driver ran it (its effective settings)."""
    lines = [
        REPRODUCTION_TITLE, "",
        f"Regenerated by `python 04_report.py kind=paper name={name}` from the evaluated runs; do not edit by hand.",
        "",
        "| | |", "|---|---|",
        *[f"| {key} | {_cell(value)} |" for key, value in provenance.items()],
        f"| runs | {_cell(source)} |", "",
        "## Findings as measured", "",
        *summary_table(findings), "",
        f"The study's claims, the criteria, how verdicts are reached and every measured number: "
        f"[{findings_link}]({findings_link}).", "",
    ]
    if stages:
        lines += ["## Settings as run", "",
                  f"Each stage as `{_cell(provenance.get('command', 'the sweep driver'))}` ran it, with every "
                  "effective override (the profile's sizes, the experiments' settings and seeds; timing.json):",
                  "",
                  *[f"- `{stage}`" for stage in stages], ""]
    lines += ["## Figures"]
    for stem, title in figures.items():
        lines += ["", f"### {title}", "", f"![{title}]({links[stem]})", "",
                  f"Data: [{links[stem][:-4]}.csv]({links[stem][:-4]}.csv)"]
    if not figures:
        lines += ["", "No figure was drawn: none of the runs each figure needs is present."]
    return "\n".join(lines) + "\n"


def runs_markdown(runs: list[Run], metric: str, fit_min: float | None = None) -> list[str]:
    """The runs as a markdown table (settings in words); with fit_min, runs below it are marked."""
    lines = ["| run | setting | seed | training compositions | step | accuracy_train | all in-order | unseen | "
             "displaced (out-of-order) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        h = headline(r, metric)
        train = _acc(h["accuracy_train"])
        if fit_min is not None and (h["accuracy_train"] is None or h["accuracy_train"] < fit_min):
            train += " (did not fit)"
        lines.append(f"| {r.tag} | {r.format} {r.split_label}, {r.arch} | {r.seed} | {h['n_train']} | {h['step']} | "
                     f"{train} | {_acc(h['accuracy_all'])} | {_acc(h['accuracy_unseen'])} | "
                     f"{_acc(h['accuracy_displaced'])} |")
    return lines


def points_markdown(rows: list[dict], plot: Plot) -> list[str]:
    """The figure's points as a markdown table: mean [interval], replicates, fit."""
    lines = ["| line | " + plot.x + " | step | runs | accuracy_train (min) | accuracy [interval] |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        interval = "" if r["ci_low"] is None else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(f"| {r['line'] or '–'} | {r[plot.x]} | {r['step']} | {r['n_runs']} | {_acc(r['accuracy_train'])} "
                     f"({_acc(r['accuracy_train_min'])}) | {_acc(r['accuracy'])}{interval} |")
    return lines
