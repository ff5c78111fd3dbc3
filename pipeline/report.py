"""Stage 4 (04_report.py): the evaluated runs under results/ -> reports/<name>/.

kind=general (the default): one figure of an in-order accuracy against a config key for the selected runs, its CSV,
report.md, report.json and runs.csv; nothing is judged. kind=paper (the sweep driver's paper suites): the study's
figures with their CSVs, findings.md and findings.json (a verdict per finding of docs/task.md §9), runs.csv, and
REPRODUCTION.md where reproduction_md names it (the paper suite's profiles do). Figure 4's CSV has two more beside it:
fig4_decomposition.csv (finding 5's residual per run, subset, checkpoint and #functions) and fig4_step_accuracy.csv
(the per-step teacher-forced accuracies it is built from).

The report reads results/ only. Its folder is written whole (staged, then swapped in) and replaces only a folder
that an earlier report wrote (it holds findings.json or report.json) or an empty one; one built from a run that this
report does not read only with overwrite=true. Its manifest.json entry (written last) names the results folder and,
per run read, its evaluations' fingerprints. REPRODUCTION.md is replaced only when it is a file this stage wrote
(its first line is the report's title).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.config import PATH, TAG, at_least, one_of, parse
from core.errors import ConfigError, OutputError
from core.io import OutputLock, StagedFolder, json_text, write_text
from core.manifest import MANIFEST, read_entries, write_entry
from core.stage import Stage, entries
from report import figure_rows, figures, general_figure, markdown
from report.findings import FINDINGS, figure_tables
from report.runs import METRICS, STEP_COLUMN, ReportError, Run, check_metric, headline, load_runs, runs_rows
from report.verdicts import METRIC_NAMES, Context, Criteria, Finding

STAGE = Stage(noun="report", script="04_report.py", config="report/conf", schema="pipeline.report:ReportConfig",
              location_keys=frozenset(), own_files=("fig*.png", "fig*.csv", "findings.md", "findings.json",
                                                    "report.md", "report.json", "runs.csv", "timing.json", MANIFEST))
MARKERS = ("findings.json", "report.json")  # a folder holding one was written by this stage


@dataclass(frozen=True)
class General:
    x: str
    group_by: list[str] | None
    compositions: str = field(metadata=one_of(*general_figure.SUBSETS))


@dataclass(frozen=True)
class ReportConfig:
    """config/report/conf.yaml, validated."""

    kind: str = field(metadata=one_of("general", "paper"))
    name: str = field(metadata=TAG)
    results_dir: str = field(metadata=PATH)
    include: list[str]
    exclude: list[str]
    out_dir: str = field(metadata=PATH)
    reproduction_md: str | None = field(metadata=PATH)
    metric: str
    confidence: float = field(metadata=at_least(0.5, 0.999))
    reference: markdown.Reference
    general: General
    transformer: str | None
    timing_file: str | None = field(metadata=PATH)
    command: str | None
    machine: str | None
    wall_time: str | None
    criteria: Criteria
    overwrite: bool

    def __post_init__(self) -> None:
        if not self.include or not all(self.include):
            raise ConfigError(f"include={self.include!r} must list non-empty globs over run tags, e.g. '[*]' or "
                              "'[paper_*,stepbystep_*]'")
        allowed = METRICS if self.kind == "paper" else (*METRICS, "y<k>_acc", "tf_y<k>_acc")
        if self.metric not in METRICS and (self.kind == "paper" or not STEP_COLUMN.fullmatch(self.metric)):
            raise ConfigError(f"metric={self.metric!r} is not allowed with kind={self.kind}; allowed: "
                              f"{', '.join(allowed)}")


def as_lists(raw: dict) -> dict:
    """include= and exclude= given as one glob (a string) stand for a list of one."""
    return {**raw, **{k: [raw[k]] for k in ("include", "exclude") if isinstance(raw.get(k), str)}}


def provenance(c: ReportConfig) -> dict[str, str]:
    """command, machine and wall time: a config value wins; else the sweep driver's timing file (its total over
    the invocations of the command, and each kind of stage's share); else 'not recorded'."""
    timing = read_timing(c)
    recorded = {"command": timing.get("command"), "machine": timing.get("machine"), "wall time": wall_text(timing)}
    given = {"command": c.command, "machine": c.machine, "wall time": c.wall_time}
    values = {key: recorded[key] if given[key] is None else given[key] for key in given}
    return {key: "not recorded" if value in (None, "") else str(value) for key, value in values.items()}


def wall_text(timing: dict) -> str | None:
    """'2 h 05 min in 2 invocations, 1 of them stopped before the report (generate 1%, train 80%, ...)' from the
    driver's timing.json, or None."""
    seconds = timing.get("total_seconds", timing.get("wall_seconds"))
    if not isinstance(seconds, int | float):
        return None
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    duration = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
    earlier = timing.get("invocations") or []
    stopped = sum(isinstance(i, dict) and i.get("finished") is False for i in earlier)  # killed, or a stage failed
    shares = timing.get("stage_shares") or {}
    return (duration + (f" in {1 + len(earlier)} invocations" if earlier else "")
            + (f", {stopped} of them stopped before the report" if stopped else "")
            + (f" ({', '.join(f'{kind} {share:.0%}' for kind, share in shares.items())})" if shares else ""))


def read_timing(c: ReportConfig) -> dict:
    """The sweep driver's timing file, or {} when there is none."""
    timing: dict = {}
    if c.timing_file and Path(c.timing_file).is_file():
        try:
            timing = json.loads(Path(c.timing_file).read_text())
        except ValueError as err:
            raise ReportError(f"timing_file={c.timing_file!r} is not JSON ({err})") from None
        if not isinstance(timing, dict):
            raise ReportError(f"timing_file={c.timing_file!r} must hold a JSON object")
    return timing


def check_out_dir(out_dir: Path) -> None:
    """A report replaces only a folder an earlier report wrote (it holds findings.json or report.json), or one
    holding nothing but the sweep driver's timing.json; never one holding anything a report does not write
    (Stage.check_target)."""
    STAGE.check_target(out_dir)
    ours = any((out_dir / m).is_file() for m in MARKERS)
    if not ours and any(n != "timing.json" for n in entries(out_dir)):
        raise OutputError(f"out_dir={str(out_dir)!r} holds files that 04_report.py did not write; choose another "
                          "name= (or out_dir=): a folder of other files is never replaced")


def check_replaces(out_dir: Path, runs: list[Run], overwrite: bool) -> None:
    """The report in out_dir is replaced by one of the same runs or more (a resumed sweep re-reports its folder, runs
    added), or with overwrite=true; never silently by one that leaves out a run it was built from (the "runs" its
    findings.json or report.json records; an unreadable record counts as none)."""
    try:
        built = next(json.loads((out_dir / m).read_text())["runs"] for m in MARKERS if (out_dir / m).is_file())
        left_out = [str(t) for t in built if t not in {r.tag for r in runs}]
    except (StopIteration, ValueError, KeyError, TypeError):
        return
    if left_out and not overwrite:
        shown = ", ".join(left_out[:3]) + (f" and {len(left_out) - 3} more" if len(left_out) > 3 else "")
        raise OutputError(f"out_dir={str(out_dir)!r} holds a report of other runs ({shown} not read now); write this "
                          "one under another name= (or out_dir=) to keep both; overwrite=true replaces that report")


def check_reproduction_md(path: Path) -> None:
    """REPRODUCTION.md is replaced only when this stage wrote it (its first line is the report's title)."""
    if path.exists() and (not path.is_file() or path.read_text(errors="replace").split("\n", 1)[0]
                          != markdown.REPRODUCTION_TITLE):
        raise OutputError(f"reproduction_md={str(path)!r} is a file that 04_report.py did not write; name a new file, "
                          "or pass reproduction_md=null")


def replicate_notes(runs: list[Run]) -> list[str]:
    """Runs with equal settings and equal seeds are not seed replicates: something not in run.json (training
    settings) tells them apart, yet they are averaged as one setting."""
    seen: dict[tuple, str] = {}
    notes = []
    for r in runs:
        key = (r.setting, r.seed)
        if key in seen:
            notes.append(f"{seen[key]} and {r.tag} have the same settings and seed in run.json; they are averaged as "
                         "replicates although something else (a training setting) may tell them apart")
        seen.setdefault(key, r.tag)
    return notes


FIGURES = {  # figure -> (title, draw(rows, title, ylabel)); a title says what is plotted, never a verdict
    "fig1_compositions": ("Accuracy vs training compositions (`random` split), step-by-step and direct",
                          figures.compositions_figure),
    "fig2_base_vs_random": ("Accuracy by #functions: the base set alone vs `random` with as many training "
                            "compositions and with more", lambda rows, title, _: figures.base_figure(rows, title)),
    "fig3_outorder": ("Out-of-order accuracy by #identities and displacement, per training setting",
                      figures.outorder_figure),
    "fig4_dynamics": ("Accuracy over training per #functions, and its residual beyond compounding (base + random, "
                      "random)", figures.dynamics_figure),
    "fig5_lstm_vs_transformer": ("Accuracy vs training compositions, Transformer and LSTM on the same data",
                                 figures.lstm_figure),
    "fig6_training_curves": ("Training curves: loss and teacher-forced accuracy on y_L (metrics.jsonl)",
                             lambda rows, title, _: figures.curves_figure(rows, title)),
}


def paper_report(c: ReportConfig, study: figure_rows.Study, notes: list[str], source: str, shown: dict[str, str],
                 staged: Path) -> tuple[list, dict, dict]:
    """Write the paper report's figures, CSVs, findings.md and findings.json into `staged`, `shown` the setting
    (report.markdown.setting); (findings, drawn, each finding's scope)."""
    criteria, runs = c.criteria, study.runs
    built = figure_tables(study, criteria)
    ctx = Context(study, {t.name: t for t in built}, criteria)
    findings: list[Finding] = [f for f in (judge(ctx) for judge in FINDINGS) if f is not None]
    scopes = {f.number: markdown.scope_text(f, runs) for f in findings}
    drawn = {}
    for table in built:
        if not table.rows:
            notes.append(f"{table.name} not drawn: {table.missing}")
            continue
        title, draw = FIGURES[table.name]
        over = "the seeds that fit" if "fitted" in table.columns else "seeds"
        write_text(staged / f"{table.name}.csv", figure_rows.rows_csv(table.columns, table.rows))
        for stem, (columns, rows) in table.extras.items():
            write_text(staged / f"{stem}.csv", figure_rows.rows_csv(columns, rows))
        figures.save(draw(table.rows, f"{title}\n(error bars and bands: {c.confidence:.0%} interval over {over})",
                          f"{METRIC_NAMES[c.metric]} on y_L"), staged / f"{table.name}.png")
        drawn[table.name] = title
    write_text(staged / "findings.md", markdown.findings_markdown(
        c.name, source, markdown.runs_markdown(runs, c.metric, criteria.fit_min), METRIC_NAMES[c.metric],
        study.transformer, findings, drawn, notes, criteria, c.confidence, provenance(c), shown, scopes))
    record = {"name": c.name, "kind": c.kind, "metric": c.metric, "transformer": study.transformer,
              "confidence": c.confidence, "criteria": asdict(criteria), "setting": shown,
              "runs": [r.tag for r in runs],
              "findings": [asdict(f) | {"scope": scopes[f.number]} for f in findings], "figures": list(drawn)}
    write_text(staged / "findings.json", json_text(record))
    return findings, drawn, scopes


def general_report(c: ReportConfig, runs: list[Run], notes: list[str], source: str, shown: dict[str, str],
                   staged: Path) -> dict:
    """Write the general report's figure, its CSV, report.md and report.json into `staged`; its record."""
    plot = general_figure.resolve(runs, c.general.x, c.general.group_by, c.metric, c.general.compositions)
    columns, rows = general_figure.general_rows(runs, plot, c.confidence)
    if not rows:
        raise ReportError("none of the selected runs was evaluated in order (03_evaluate_i.py): nothing to plot")
    x_name = plot.x.rsplit(".", 1)[-1]
    stem = f"fig_{c.metric}_vs_{x_name}"
    ylabel = f"{METRIC_NAMES.get(c.metric, c.metric)} on y_L ({plot.subset} in-order compositions)"
    title = f"{ylabel} vs {plot.x}" + (f", by {', '.join(plot.lines)}" if plot.lines else "")
    write_text(staged / f"{stem}.csv", figure_rows.rows_csv(columns, rows))
    figures.save(figures.general_figure(rows, f"{title}\n(bars: {c.confidence:.0%} interval over seeds)", plot.x,
                                        ylabel), staged / f"{stem}.png")
    lines = (f"one line per value of {', '.join(f'`{k}`' for k in plot.lines)}" if plot.lines
             else "one line (no grouping key)")
    description = [
        f"{ylabel[0].upper()}{ylabel[1:]} against `{plot.x}`, {lines}. Each point is one setting: its "
        f"replicates (runs whose settings differ only in the seed) read at a common training step (the latest step "
        f"most of them were evaluated at) and averaged, with a two-sided {c.confidence:.0%} interval "
        f"({markdown.interval_text()}); accuracy_train is the "
        "replicates' accuracy on their own training compositions (mean, and the lowest)."]
    # finding 3's scope: did a run learn more than the prompt? A line per run, a color per setting of the figure
    floors = figure_rows.loss_floor_rows(runs, lambda run: plot.line_label(run) or "every run")
    if floors:
        write_text(staged / "fig_loss_vs_floor.csv", figure_rows.rows_csv(figure_rows.LOSS_FLOOR_COLUMNS, floors))
        figures.save(figures.loss_floor_figure(floors, "Loss on training documents against the task's floors "
                                               "(dashed: plateau, outputs guessed; dotted: solved)"),
                     staged / "fig_loss_vs_floor.png")
    fit = {r.tag: headline(r, c.metric)["accuracy_train"] for r in runs}
    write_text(staged / "report.md", markdown.general_markdown(
        c.name, source, description, stem, title,
        markdown.points_markdown(rows, plot) + (markdown.loss_floor_markdown(floors, fit) if floors else []),
        markdown.runs_markdown(runs, c.metric), notes, shown))
    record = {"name": c.name, "kind": c.kind, "metric": c.metric, "confidence": c.confidence, "x": plot.x,
              "group_by": plot.lines, "compositions": plot.subset, "runs": [r.tag for r in runs], "figure": stem,
              "points": rows}
    write_text(staged / "report.json", json_text(record))
    return record


def run(raw: dict) -> dict:
    """Read the selected runs and write the report of its kind (module docstring)."""
    c = parse(ReportConfig, as_lists(raw))
    out_dir = Path(c.out_dir)
    reproduction = Path(c.reproduction_md) if c.kind == "paper" and c.reproduction_md else None
    check_out_dir(out_dir)
    if reproduction is not None:
        check_reproduction_md(reproduction)
    runs, notes = load_runs(c.results_dir, c.include, c.exclude)
    check_replaces(out_dir, runs, c.overwrite)
    check_metric(runs, c.metric)
    notes += replicate_notes(runs)
    if c.kind == "paper":
        figure_rows.check_one_task(runs)
        study = figure_rows.make_study(runs, c.metric, c.transformer, c.confidence, c.criteria.fit_min)
    shown = markdown.setting(runs, c.reference, c.confidence, study.transformer if c.kind == "paper" else None)
    source = f"{len(runs)} run{'s' * (len(runs) != 1)} of `{c.results_dir}` (include {c.include}, exclude {c.exclude})"
    with OutputLock(out_dir), StagedFolder(out_dir) as staged:
        write_text(staged.path / "runs.csv", figure_rows.rows_csv(*runs_rows(runs, c.metric)))
        if c.kind == "paper":
            findings, drawn, scopes = paper_report(c, study, notes, source, shown, staged.path)
        else:
            record = general_report(c, runs, notes, source, shown, staged.path)
        read = {r.tag: {stage: e.fingerprint for stage, e in read_entries(r.folder).items()} for r in runs}
        write_entry(staged.path, "report", config=raw, fingerprint=raw,
                    upstream={"folder": c.results_dir, "fingerprint": read},
                    files=sorted(p.name for p in staged.path.iterdir() if p.is_file()))
        staged.publish(carry=["timing.json"])
    if c.kind == "general":
        for note in notes:
            print(f"note: {note}")
        print(f"wrote {record['figure']}.png with its CSV, report.md and runs.csv to {out_dir}")
        return {"kind": c.kind, "runs": record["runs"], "figure": record["figure"], "out_dir": str(out_dir)}
    if reproduction is not None:
        base = reproduction.parent
        links = {stem: Path(os.path.relpath(out_dir / f"{stem}.png", base)).as_posix() for stem in drawn}
        findings_link = Path(os.path.relpath(out_dir / "findings.md", base)).as_posix()
        stages = read_timing(c).get("stages")  # the stages' command lines as the sweep driver ran them, if it did
        stages = [str(s) for s in stages] if isinstance(stages, list) else []
        write_text(reproduction, markdown.reproduction_markdown(c.name, source, provenance(c), findings, drawn,
                                                                links, findings_link, stages, shown, scopes))
    for f in findings:
        print(f"finding {f.number}: {f.verdict}{' ' * bool(scopes[f.number])}{scopes[f.number]} ({f.title}): "
              f"{f.reason}")
    for note in notes:
        print(f"note: {note}")
    written = [out_dir / "findings.md"] + ([reproduction] if reproduction else [])
    print(f"wrote {len(drawn)} figures with their CSVs to {out_dir}, and {', '.join(map(str, written))}")
    return {"kind": c.kind, "verdicts": {f.number: f.verdict for f in findings}, "figures": list(drawn),
            "runs": [r.tag for r in runs], "out_dir": str(out_dir)}
