"""findings.md and report.md (reports/<name>/) and REPRODUCTION.md, as text, with the runs table and the general
report's points in markdown."""

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from core.config import at_least
from report.general_figure import Plot
from report.runs import Run, flatten, headline
from report.stats import METHODS, group_runs
from report.verdicts import Criteria, Finding, fmt, md_table

REPRODUCTION_TITLE = "# Reproduction: compositional capabilities of autoregressive Transformers (arXiv 2311.12997)"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ---- the setting: what was run, read from the runs themselves ----


@dataclass(frozen=True)
class Reference:
    """config `reference`: the reference's training length, printed beside the runs' own."""

    documents: int = field(metadata=at_least(1))
    batch_size: int = field(metadata=at_least(1))
    steps: int = field(metadata=at_least(1))
    source: str  # where these numbers are stated


def counted(runs: list[Run], text: Callable[[Run], str]) -> str:
    """Each distinct text(run) with how many runs have it, in the order they first appear."""
    return "; ".join(f"{t} ({n} run{'s' * (n != 1)})" for t, n in Counter(text(r) for r in runs).items())


def model_text(r: Run, judged: str | None) -> str:
    """'Transformer (nanoGPT) 2 layers × 120 wide × 1 head', 'LSTM 2 layers × 120 wide', from run.json's model."""
    m = r.model
    layers = m.get("n_layer", "?")
    size = f"{layers} layer{'s' * (layers != 1)} × {m.get('n_embd', '?')} wide"
    if r.kind != "nanogpt":
        return f"{r.kind.upper()} {size}"
    heads = m.get("n_head", "?")
    return (f"Transformer (nanoGPT) {size} × {heads} head{'s' * (heads != 1)}"
            + (", attention-only" if m.get("mlp") is False else "") + (", judged" if r.arch == judged else ""))


def format_of(r: Run) -> str:
    """step-by-step, direct, LSTM (', direct' appended for a direct LSTM)."""
    return r.format if r.kind == "nanogpt" else r.kind.upper() + (", direct" if r.direct else "")


def length_text(steps: int, batch_size: int, documents: int, epochs: int = 1) -> str:
    return (f"{steps:,} steps of {batch_size} ({documents:,} documents"
            + (f", {epochs} epochs" if epochs != 1 else "") + ")")


def training_text(r: Run, reference: Reference) -> str:
    t = r.training
    if t is None:
        return "not recorded in run.json"
    share = 100 * t["steps"] / reference.steps
    return (f"{length_text(t['steps'], t['batch_size'], t['documents'], t['epochs'])}, "
            f"{f'{share:.0f}' if share >= 10 else f'{share:.2g}'}% of the reference's steps, "
            f"peak learning rate {t['learning_rate']:g}")


def seeds_text(runs: list[Run]) -> str:
    """'3 replicates (seeds 0, 1, 2): 17 settings; 1 replicate (seed 0): 2 settings'."""
    def order(seed: str) -> tuple:
        first = seed.split(" ", 1)[0]
        return (int(first) if first.isdigit() else -1, seed)

    sets = Counter(tuple(sorted((r.seed for r in g.runs), key=order)) for g in group_runs(runs))
    return "; ".join(f"{len(s)} replicate{'s' * (len(s) != 1)} (seed{'s' * (len(s) != 1)} {', '.join(s)}): {n} "
                     f"setting{'s' * (n != 1)}" for s, n in sorted(sets.items(), key=lambda kv: (-kv[1], kv[0])))


def setting(runs: list[Run], reference: Reference, confidence: float, judged: str | None = None) -> dict[str, str]:
    """The setting of a report, derived from its runs (run.json): the task (N, L, the in-order pool), the models
    (`judged`: the nanoGPT label the findings judge), the training length per format beside the reference's, the
    seeds, and the intervals (report.stats.METHODS)."""
    out = {"task": "; ".join(dict.fromkeys(
               f"N = {r.data['function']['n_functions']} functions per level, L = {r.data['function']['depth']} "
               f"levels: an in-order pool of (N+1)^L = {r.pool:,} compositions" for r in runs)),
           "models": counted(runs, lambda r: model_text(r, judged)),
           "training: the reference's": length_text(reference.steps, reference.batch_size, reference.documents)
           + f" ({reference.source})"}
    for form in dict.fromkeys(map(format_of, runs)):
        out[f"training: {form}"] = counted([r for r in runs if format_of(r) == form],
                                          lambda r: training_text(r, reference))
    out["seeds"] = seeds_text(runs)
    out["intervals"] = f"two-sided {confidence:.0%}; " + interval_text()
    return out


def setting_lines(rows: dict[str, str]) -> list[str]:
    return [
        "## Setting", "", "Read from the runs' run.json (the reference's training length: config/report/conf.yaml "
        "`reference`).", "", "| | |", "|---|---|", *[f"| {k} | {_cell(v)} |" for k, v in rows.items()], ""]


def interval_text() -> str:
    return "; ".join(f"{method}: {text}" for method, text in METHODS.items())


def scope_text(f: Finding, runs: list[Run]) -> str:
    """'at 25 of 1,024 compositions only': the training-composition counts of the runs a verdict rests on, out of
    the in-order pool; '' when it rests on none (not run)."""
    by_tag = {r.tag: r for r in runs}
    judged = [by_tag[t] for t in f.runs if t in by_tag]
    if not judged:
        return ""
    pools = "/".join(f"{p:,}" for p in sorted({r.pool for r in judged}))
    *rest, last = map(str, sorted({r.n_train for r in judged}))
    return f"at {', '.join(rest) + ' and ' if rest else ''}{last} of {pools} compositions only"


def verdict_text(f: Finding, scopes: dict[int, str]) -> str:
    """The verdict in bold with its scope: '**reproduced** at 25 of 1,024 compositions only'."""
    return f"**{f.verdict}**" + (f" {scopes[f.number]}" if scopes.get(f.number) else "")


def summary_table(findings: list[Finding], scopes: dict[int, str]) -> list[str]:
    lines = ["| # | finding | verdict | reason |", "|---|---|---|---|"]
    return lines + [f"| {f.number} | {_cell(f.title)} | {verdict_text(f, scopes)} | {_cell(f.reason)} |"
                    for f in findings]


def rules_lines(c: Criteria, confidence: float, metric_name: str) -> list[str]:
    """How verdicts are reached, and every threshold of `c` (then `confidence`) with its dotted name and value."""
    return [
        "## How the verdicts are reached", "",
        f"- **Fit gate**: a run whose {metric_name} on its own training compositions (accuracy_train) is below "
        f"`fit_min` = {c.fit_min:g} did not fit; a verdict resting on it is **inconclusive**, naming the run.",
        "- **Seeds**: replicates (runs whose settings differ only in the seed) are read at a common training step "
        f"(the latest step most of them were evaluated at) and averaged. Intervals are two-sided "
        f"{confidence:.0%}: {interval_text()} (report/stats.py). "
        f"A setting with fewer than `min_seeds` = {c.min_seeds} replicates gives **inconclusive**.",
        "- **Criteria at the interval's ends**: each criterion is checked at the end of its interval least favourable "
        "to it: holding there gives **reproduced**; failing even at the most favourable end gives **not "
        "reproduced**; in between (the interval straddles the threshold) **inconclusive (fragile)**. A difference "
        "of two settings gets an interval of the difference itself, clipped to [-1, 1]; each interval's method is "
        "named with it (and in findings.json).",
        "- **Scope**: each verdict names the training-composition counts of the runs it rests on, out of the task's "
        "in-order pool (N+1)^L, e.g. 'at 25 of 1,024 compositions only': it says nothing of the counts not judged.",
        "- **not run**: the runs the finding needs are absent; the reason says which.", "",
        "Thresholds (`criteria` of config/report/conf.yaml):", "",
        *[f"- `{key}` = {value}" for key, value in flatten({**asdict(c), "confidence": confidence}).items()]]


def runs_and_notes(runs_md: list[str], notes: list[str]) -> list[str]:
    """The closing sections of findings.md and report.md: the runs table, then the notes (if any)."""
    lines = ["", "## Runs", "", "Each run at its last evaluated step; every config key that differs between the runs "
             "is in [runs.csv](runs.csv).", "", *runs_md]
    return lines + (["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else [])


def findings_markdown(name: str, source: str, runs_md: list[str], metric_name: str, transformer: str | None,
                      findings: list[Finding], figures: dict[str, str], notes: list[str], criteria: Criteria,
                      confidence: float, provenance: dict[str, str], setting_rows: dict[str, str],
                      scopes: dict[int, str]) -> str:
    """`figures`: figure stem -> its title, for the figures that were drawn; `provenance`: command, machine and
    wall time of the runs (the sweep driver's timing.json, or the config); `setting_rows`: setting(); `scopes`:
    finding number -> scope_text."""
    lines = [f"# Findings: report `{name}`", "",
             f"Written by `04_report.py` (kind=paper) from {source}; rerun the report rather than editing this file.",
             "", "Runs produced by " + ", ".join(f"{key} {_cell(value) if key != 'command' else f'`{value}`'}"
                                                     for key, value in provenance.items())
             + " (timing.json: the sweep driver's record, summed over the invocations of this command that made "
             "these runs).", "", *setting_lines(setting_rows),
             f"Accuracy is the {metric_name} on the final output y_L, written autoregressively by the model "
             "(docs/task.md §8). Chance is 1/A per token. Every verdict follows from the fixed criterion stated "
             "with it.",
             f"Transformer judged in findings 1, 2, 4 and 5: `{transformer or 'none'}` (finding 3 compares the "
             "formats within each nanoGPT architecture; every run is listed under Runs).",
             "", *summary_table(findings, scopes), "", *rules_lines(criteria, confidence, metric_name)]
    for f in findings:
        lines += ["", f"## {f.number}. {f.title}", "", f"- **Study:** {f.claim}", f"- **Source:** {f.source}.",
                  f"- **Criterion:** {f.criterion}.", f"- **Verdict:** {verdict_text(f, scopes)}: {f.reason}", ""]
        lines += f.details
        if f.figure in figures:
            lines += ["", f"![{figures[f.figure]}]({f.figure}.png)", "",
                      f"Figure data: [{f.figure}.csv]({f.figure}.csv)"]
        elif f.figure:
            lines += ["", "Figure: not drawn (its runs are absent)."]
    return "\n".join(lines + runs_and_notes(runs_md, notes)) + "\n"


def general_markdown(name: str, source: str, description: list[str], figure: str, title: str, points_md: list[str],
                     runs_md: list[str], notes: list[str], setting_rows: dict[str, str]) -> str:
    lines = [f"# Report `{name}`", "",
             f"Written by `04_report.py` (kind=general) from {source}; rerun the report rather than editing this "
             "file. A general report compares runs and judges nothing: the study's findings and their criteria are "
             "written by `kind=paper` reports only.", "", *setting_lines(setting_rows), *description, "",
             f"![{title}]({figure}.png)", "", f"Figure data: [{figure}.csv]({figure}.csv)", "", *points_md]
    return "\n".join(lines + runs_and_notes(runs_md, notes)) + "\n"


def reproduction_markdown(name: str, source: str, provenance: dict[str, str], findings: list[Finding],
                          figures: dict[str, str], links: dict[str, str], findings_link: str, stages: list[str],
                          setting_rows: dict[str, str], scopes: dict[int, str]) -> str:
    """`links`: figure stem -> its path relative to REPRODUCTION.md (`findings_link`: findings.md's); `stages`: each
    stage's command line as the sweep driver ran it (its effective settings); `setting_rows`, `scopes`: as
    findings_markdown's."""
    lines = [REPRODUCTION_TITLE, "",
             f"Regenerated by `python 04_report.py kind=paper name={name}` from the evaluated runs; do not edit by "
             "hand.", "", "| | |", "|---|---|", *[f"| {key} | {_cell(value)} |" for key, value in provenance.items()],
             f"| runs | {_cell(source)} |", "", *setting_lines(setting_rows),
             "## Findings as measured", "", *summary_table(findings, scopes), "",
             f"The study's claims, the criteria, how verdicts are reached and every measured number: "
             f"[{findings_link}]({findings_link}).", ""]
    if stages:
        lines += ["## Settings as run", "",
                  f"Each stage as `{_cell(provenance.get('command', 'the sweep driver'))}` ran it, with every "
                  "effective override (the profile's sizes, the experiments' settings and seeds; timing.json):", "",
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
        train = fmt(h["accuracy_train"])
        if fit_min is not None and (h["accuracy_train"] is None or h["accuracy_train"] < fit_min):
            train += " (did not fit)"
        lines.append(f"| {r.tag} | {r.format} {r.split_label}, {r.arch} | {r.seed} | {h['n_train']} | {h['step']} | "
                     f"{train} | {fmt(h['accuracy_all'])} | {fmt(h['accuracy_unseen'])} | "
                     f"{fmt(h['accuracy_displaced'])} |")
    return lines


def points_markdown(rows: list[dict], plot: Plot) -> list[str]:
    """The figure's points as a markdown table: mean [interval], replicates, fit."""
    lines = ["| line | " + plot.x + " | step | runs | accuracy_train (min) | accuracy [interval] |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        interval = "" if r["ci_low"] is None else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        lines.append(f"| {r['line'] or '–'} | {r[plot.x]} | {r['step']} | {r['n_runs']} | {fmt(r['accuracy_train'])} "
                     f"({fmt(r['accuracy_train_min'])}) | {fmt(r['accuracy'])}{interval} |")
    return lines


def loss_floor_markdown(rows: list[dict], accuracy_train: dict[str, float | None]) -> list[str]:
    """The loss-against-floors section of a general report: each run at its last evaluated step
    (report.figure_rows.loss_floor_rows), beside its accuracy on its own training compositions."""
    last = {r["run"]: r for r in sorted(rows, key=lambda r: r["step"])}
    table = [[f"`{tag}`", r["line"], r["format"], r["n_train"], r["step"], f"{r['loss']:.3f}",
              f"{r['plateau_floor']:.3f}", f"{r['solved_floor']:.3f}", f"{r['loss'] - r['plateau_floor']:+.3f}",
              fmt(accuracy_train.get(tag))]
             for tag, r in last.items()]
    return ["", "## Training loss against the task's floors", "",
            "The loss on training documents (metrics.jsonl's `eval_train/loss`, the mean next-token cross-entropy "
            "over whole documents) at each run's last evaluation, beside two floors its task sets "
            "(`synthetic.task.loss_floors`): the plateau floor of a model that knows how prompts are drawn but "
            "guesses every output token, and the solved floor of one that writes every output. A run whose loss "
            "sits at the plateau floor has learned the prompt, not the answer: it does not fit its training "
            "compositions, whatever its accuracy elsewhere.", "",
            "![Loss on training documents against the task's floors](fig_loss_vs_floor.png)", "",
            "Figure data: [fig_loss_vs_floor.csv](fig_loss_vs_floor.csv)", "",
            *md_table(["run", "setting", "format", "training compositions", "step", "loss", "plateau floor",
                       "solved floor", "loss - plateau", "accuracy_train"], table)]
