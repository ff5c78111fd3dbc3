"""Stage 4 (04_report.py): the evaluated runs under results/ -> reports/<name>/ (figures beside their CSVs,
findings.md, findings.json) and, for the paper report, REPRODUCTION.md.

The report reads results/ only. Its folder is written whole (staged, then swapped in) and replaces only a folder
that an earlier report wrote (it holds findings.json) or an empty one; REPRODUCTION.md is replaced only when it is
a file this stage wrote (its first line is the report's title).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import PATH, TAG, at_least, one_of, parse, to_dict
from pipeline.errors import ConfigError, OutputError
from pipeline.io import OutputLock, StagedFolder, json_text, write_text
from pipeline.stage import Stage, entries
from report import figures, tables
from report.findings import METRIC_NAMES, finding1, finding2, finding3, finding4, finding5, finding6, finding7
from report.markdown import REPRODUCTION_TITLE, findings_markdown, reproduction_markdown
from report.runs import METRICS, ReportError, load_runs

OWN_FILES = ("fig*.png", "fig*.csv", "findings.md", "findings.json", "timing.json")
STAGE = Stage(noun="report", script="04_report.py", neutral_keys=frozenset(), own_files=OWN_FILES)
FRACTION = at_least(0.0, 1.0)


@dataclass(frozen=True)
class F1:
    max_compositions: int = field(metadata=at_least(1))
    min_unseen: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F2:
    min_single: float = field(metadata=FRACTION)
    max_multi: float = field(metadata=FRACTION)
    random_margin: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F3:
    min_gap: float = field(metadata=FRACTION)
    direct_max: float = field(metadata=FRACTION)
    stepbystep_min: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F4:
    min_drop: float = field(metadata=FRACTION)
    min_gain: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F5:
    level: float = field(metadata=FRACTION)
    min_rho: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F6:
    lstm_max: float = field(metadata=FRACTION)
    transformer_min: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class F7:
    attention_ratio: float = field(metadata=at_least(0.0))
    early_margin: float = field(metadata=FRACTION)
    late_accuracy: float = field(metadata=FRACTION)
    ablation_share: float = field(metadata=FRACTION)
    min_margin: float = field(metadata=FRACTION)


@dataclass(frozen=True)
class Criteria:
    f1: F1
    f2: F2
    f3: F3
    f4: F4
    f5: F5
    f6: F6
    f7: F7


@dataclass(frozen=True)
class ReportConfig:
    """config/report/conf.yaml, validated."""

    name: str = field(metadata=TAG)
    results_dir: str = field(metadata=PATH)
    include: str
    out_dir: str = field(metadata=PATH)
    reproduction_md: str | None = field(metadata=PATH)
    metric: str = field(metadata=one_of(*METRICS))
    transformer: str | None
    timing_file: str | None = field(metadata=PATH)
    command: str | None
    machine: str | None
    wall_time: str | None
    criteria: Criteria

    def __post_init__(self) -> None:
        if not self.include:
            raise ConfigError(f"include={self.include!r} must be a non-empty glob over run tags, e.g. '*' or 'paper_*'")


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def provenance(c: ReportConfig) -> dict[str, str]:
    """command, machine and wall time: a config value wins; else the sweep driver's timing file
    {"command", "machine", "wall_seconds"}; else 'not recorded'."""
    timing: dict = {}
    if c.timing_file and Path(c.timing_file).is_file():
        try:
            timing = json.loads(Path(c.timing_file).read_text())
        except ValueError as err:
            raise ReportError(f"timing_file={c.timing_file!r} is not JSON ({err})") from None
        if not isinstance(timing, dict):
            raise ReportError(f"timing_file={c.timing_file!r} must hold a JSON object")
    seconds = timing.get("wall_seconds")
    from_file = {"command": timing.get("command"), "machine": timing.get("machine"),
                 "wall_time": duration_text(seconds) if isinstance(seconds, int | float) else None}
    given = {"command": c.command, "machine": c.machine, "wall_time": c.wall_time}
    out = {}
    for key, value in given.items():
        value = from_file[key] if value is None else value
        out[key.replace("_", " ")] = "not recorded" if value in (None, "") else str(value)
    return out


def _draw(table: tables.FigureTable, title: str, ylabel: str, level: float) -> figures.Figure:
    if table.name == "fig1_compositions":
        return figures.compositions_figure(table.rows, title, ylabel)
    if table.name == "fig2_base_vs_random":
        return figures.base_figure(table.rows, title, ylabel)
    if table.name == "fig3_outorder":
        return figures.outorder_figure(table.rows, title, ylabel)
    if table.name == "fig4_dynamics":
        return figures.dynamics_figure(table.rows, title, ylabel, level)
    if table.name == "fig5_lstm_vs_transformer":
        return figures.lstm_figure(table.rows, title, ylabel)
    return figures.curves_figure(table.rows, title)


def check_out_dir(out_dir: Path) -> None:
    """A report replaces only a folder an earlier report wrote (it holds findings.json), or one holding nothing but
    the sweep driver's timing.json; never one holding anything a report does not write (Stage.check_target)."""
    STAGE.check_target(out_dir)
    if not (out_dir / "findings.json").is_file() and any(n != "timing.json" for n in entries(out_dir)):
        raise OutputError(f"out_dir={str(out_dir)!r} holds files that 04_report.py did not write; choose another "
                              "name= (or out_dir=): a folder of other files is never replaced")


def check_reproduction_md(path: Path) -> None:
    """REPRODUCTION.md is replaced only when this stage wrote it (its first line is the report's title)."""
    if path.exists() and (not path.is_file() or path.read_text(errors="replace").split("\n", 1)[0]
                          != REPRODUCTION_TITLE):
        raise OutputError(f"reproduction_md={str(path)!r} is a file that 04_report.py did not write; name a new file, "
                          "or pass reproduction_md=null")


def run(raw: dict) -> dict:
    """Read the runs, write every figure that has runs (with its CSV), findings.md/json and REPRODUCTION.md."""
    c = parse(ReportConfig, raw)
    criteria = to_dict(c.criteria)
    out_dir = Path(c.out_dir)
    reproduction = None if c.reproduction_md is None else Path(c.reproduction_md)
    check_out_dir(out_dir)
    if reproduction is not None:
        check_reproduction_md(reproduction)
    runs, notes = load_runs(c.results_dir, c.include)
    study = tables.make_study(runs, c.metric, c.transformer)
    t1, t2, t3, t4, t5, t6 = (tables.compositions_table(study), tables.base_table(study), tables.outorder_table(study),
                              tables.dynamics_table(study), tables.lstm_table(study), tables.curves_table(study))
    m = c.metric
    findings = [finding1(t1, criteria["f1"], m), finding2(t2, criteria["f2"], m), finding3(t1, criteria["f3"], m),
                finding4(t3, criteria["f4"], m), finding5(t4, criteria["f5"], m), finding6(t5, criteria["f6"], m)]
    mechanism = finding7(runs, criteria["f7"])
    findings += [mechanism] if mechanism else []
    v = {f.number: f.verdict for f in findings}
    titles = {
        t1.name: f"Step-by-step composes from a few training compositions, direct does not "
                 f"(finding 1: {v[1]}; finding 3: {v[3]})",
        t2.name: f"The base set alone does not compose two or more functions (finding 2: {v[2]})",
        t3.name: f"Out-of-order compositions need out-of-order training (finding 4: {v[4]})",
        t4.name: f"Order of learning: base + random learns fewer functions first, random more first "
                 f"(finding 5: {v[5]})",
        t5.name: f"An LSTM does not compose, a Transformer on the same data does (finding 6: {v[6]})",
        t6.name: "Training curves: loss and teacher-forced accuracy on y_L (metrics.jsonl)",
    }
    ylabel = f"{METRIC_NAMES[m]} on y_L"
    drawn = {}
    source = f"`{Path(c.results_dir) / c.include}`"
    with OutputLock(out_dir), StagedFolder(out_dir) as staged:
        for table in (t1, t2, t3, t4, t5, t6):
            if not table.rows:
                notes.append(f"{table.name} not drawn: {table.missing}")
                continue
            write_text(staged.path / f"{table.name}.csv", tables.rows_csv(table.columns, table.rows))
            figures.save(_draw(table, titles[table.name], ylabel, criteria["f5"]["level"]),
                         staged.path / f"{table.name}.png")
            drawn[table.name] = titles[table.name]
        text = findings_markdown(c.name, source, runs, m, study.transformer, findings, drawn, notes)
        write_text(staged.path / "findings.md", text)
        record = {"name": c.name, "metric": m, "transformer": study.transformer, "criteria": criteria,
                  "runs": [r.tag for r in runs], "findings": [asdict(f) for f in findings], "figures": list(drawn)}
        write_text(staged.path / "findings.json", json_text(record))
        staged.publish(carry=["timing.json"])
    if reproduction is not None:
        base = reproduction.parent
        links = {stem: Path(os.path.relpath(out_dir / f"{stem}.png", base)).as_posix() for stem in drawn}
        findings_link = Path(os.path.relpath(out_dir / "findings.md", base)).as_posix()
        write_text(reproduction, reproduction_markdown(
            c.name, f"{len(runs)} from {source}", provenance(c), findings, drawn, links, findings_link))
    for f in findings:
        print(f"finding {f.number}: {f.verdict} ({f.title}): {f.measured}")
    for note in notes:
        print(f"note: {note}")
    written = [out_dir / "findings.md"] + ([reproduction] if reproduction else [])
    print(f"wrote {len(drawn)} figures with their CSVs to {out_dir}, and {', '.join(map(str, written))}")
    return {"verdicts": v, "figures": list(drawn), "runs": [r.tag for r in runs], "out_dir": str(out_dir)}
