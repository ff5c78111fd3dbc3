"""The report stage: config -> reports/<name>/{fig*.png, fig*.csv, findings.md, findings.json} and REPRODUCTION.md."""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from report import figures, tables
from report.files import write_rows_csv
from report.findings import METRIC_NAMES, finding1, finding2, finding3, finding4, finding5, finding6, finding7
from report.markdown import findings_markdown, reproduction_markdown
from report.runs import METRICS, ReportError, load_runs
from synthetic.atomic import write_text_atomic
from synthetic.config import get_choice, get_float, get_int, get_path, get_tag, lookup
from synthetic.errors import ConfigError

# criteria.<finding>.<key>: "count" (an integer >= 1) or "fraction" (a number in [0, 1])
CRITERIA = {
    "f1": {"max_compositions": "count", "min_unseen": "fraction"},
    "f2": {"min_single": "fraction", "max_multi": "fraction", "random_margin": "fraction"},
    "f3": {"min_gap": "fraction", "direct_max": "fraction", "stepbystep_min": "fraction"},
    "f4": {"min_drop": "fraction", "min_gain": "fraction"},
    "f5": {"level": "fraction", "min_rho": "fraction"},
    "f6": {"lstm_max": "fraction", "transformer_min": "fraction"},
}
PROVENANCE = ("command", "machine", "wall_time")


@dataclass(frozen=True)
class ReportConfig:
    name: str
    results_dir: str
    include: str
    out_dir: Path
    reproduction_md: Path | None
    metric: str
    transformer: str | None
    criteria: dict[str, dict]
    provenance: dict[str, str]  # command, machine, wall time: from the config, else the timing file


def _optional_str(config: dict, key: str) -> str | None:
    value = lookup(config, key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{key}={value!r} must be a non-empty string or null")
    return value


def _criteria(config: dict) -> dict[str, dict]:
    out = {}
    for finding, keys in CRITERIA.items():
        out[finding] = {}
        for key, kind in keys.items():
            dotted = f"criteria.{finding}.{key}"
            if kind == "count":
                out[finding][key] = get_int(config, dotted, minimum=1)
            else:
                value = get_float(config, dotted, minimum=0.0)
                if value > 1:
                    raise ConfigError(f"{dotted}={value} must be in [0, 1]")
                out[finding][key] = value
    return out


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _provenance(config: dict) -> dict[str, str]:
    """command, machine and wall time: a config value wins; else the sweep driver's timing file
    {"command", "machine", "wall_seconds"}; else 'not recorded'."""
    timing: dict = {}
    path = _optional_str(config, "timing_file")
    if path and Path(path).is_file():
        try:
            timing = json.loads(Path(path).read_text())
        except ValueError as err:
            raise ReportError(f"timing_file={path!r} is not JSON ({err})") from None
        if not isinstance(timing, dict):
            raise ReportError(f"timing_file={path!r} must hold a JSON object")
    seconds = timing.get("wall_seconds")
    from_file = {"command": timing.get("command"), "machine": timing.get("machine"),
                 "wall_time": duration_text(seconds) if isinstance(seconds, int | float) else None}
    out = {}
    for key in PROVENANCE:
        value = lookup(config, key)
        value = from_file[key] if value is None else value
        out[key.replace("_", " ")] = "not recorded" if value in (None, "") else str(value)
    return out


def parse_config(config: dict) -> ReportConfig:
    include = lookup(config, "include")
    if not isinstance(include, str) or not include:
        raise ConfigError(f"include={include!r} must be a non-empty glob over run tags, e.g. '*' or 'paper_*'")
    reproduction = lookup(config, "reproduction_md")
    return ReportConfig(
        name=get_tag(config, "name"), results_dir=get_path(config, "results_dir"), include=include,
        out_dir=Path(get_path(config, "out_dir")),
        reproduction_md=None if reproduction is None else Path(get_path(config, "reproduction_md")),
        metric=get_choice(config, "metric", METRICS), transformer=_optional_str(config, "transformer"),
        criteria=_criteria(config), provenance=_provenance(config),
    )


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


def build_report(config: dict) -> dict:
    """Read the runs, write every figure that has runs (with its CSV), findings.md/json and REPRODUCTION.md."""
    cfg = parse_config(config)
    runs, notes = load_runs(cfg.results_dir, cfg.include)
    study = tables.make_study(runs, cfg.metric, cfg.transformer)
    t1, t2, t3, t4, t5, t6 = (tables.compositions_table(study), tables.base_table(study), tables.outorder_table(study),
                              tables.dynamics_table(study), tables.lstm_table(study), tables.curves_table(study))
    c, m = cfg.criteria, cfg.metric
    findings = [finding1(t1, c["f1"], m), finding2(t2, c["f2"], m), finding3(t1, c["f3"], m),
                finding4(t3, c["f4"], m), finding5(t4, c["f5"], m), finding6(t5, c["f6"], m)]
    mechanism = finding7(runs)
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
    for table in (t1, t2, t3, t4, t5, t6):
        png, csv = cfg.out_dir / f"{table.name}.png", cfg.out_dir / f"{table.name}.csv"
        if not table.rows:
            png.unlink(missing_ok=True)  # a figure from an earlier report would no longer match its runs
            csv.unlink(missing_ok=True)
            notes.append(f"{table.name} not drawn: {table.missing}")
            continue
        write_rows_csv(csv, table.columns, table.rows)
        figures.save(_draw(table, titles[table.name], ylabel, c["f5"]["level"]), png)
        drawn[table.name] = titles[table.name]
    source = f"`{Path(cfg.results_dir) / cfg.include}`"
    text = findings_markdown(cfg.name, source, runs, m, study.transformer, findings, drawn, notes)
    write_text_atomic(cfg.out_dir / "findings.md", text)
    record = {"name": cfg.name, "metric": m, "transformer": study.transformer, "criteria": c,
              "runs": [r.tag for r in runs], "findings": [asdict(f) for f in findings], "figures": list(drawn)}
    write_text_atomic(cfg.out_dir / "findings.json", json.dumps(record, indent=1) + "\n")
    if cfg.reproduction_md is not None:
        base = cfg.reproduction_md.parent
        links = {stem: Path(os.path.relpath(cfg.out_dir / f"{stem}.png", base)).as_posix() for stem in drawn}
        findings_link = Path(os.path.relpath(cfg.out_dir / "findings.md", base)).as_posix()
        write_text_atomic(cfg.reproduction_md, reproduction_markdown(
            cfg.name, f"{len(runs)} from {source}", cfg.provenance, findings, drawn, links, findings_link))
    for f in findings:
        print(f"finding {f.number}: {f.verdict} ({f.title}): {f.measured}")
    for note in notes:
        print(f"note: {note}")
    written = [cfg.out_dir / "findings.md"] + ([cfg.reproduction_md] if cfg.reproduction_md else [])
    print(f"wrote {len(drawn)} figures with their CSVs to {cfg.out_dir}, and {', '.join(map(str, written))}")
    return {"verdicts": v, "figures": list(drawn), "runs": [r.tag for r in runs], "out_dir": str(cfg.out_dir)}
