"""Run a suite of experiments, or one experiment, end to end:
`python -m sweep SUITE|EXPERIMENT [EXPERIMENT ...] [profile=P] [launcher=L] [workdir=DIR] [status=true] [k=v ...]`.

Each stage of each experiment group is one Hydra multirun (`script -m ...`), so Hydra's launchers (local,
joblib, submitit on SLURM, Ray) parallelize it. Stages run with `skip_complete=true`: a run whose outputs already
exist for the same config is skipped, so an interrupted sweep resumes where it stopped.

Overrides run exactly as typed: each `k=v` goes to every stage whose composed config has that key, 04_report.py's
included (a dataset key to 01_generate_data.py only: later stages follow the datasets through their tags), after
the profile's and the experiment's, so it wins (check_clashes refuses a key an experiment crosses); one that no
stage has, or a value that a stage's typed config or Hydra refuses in any job, stops the driver before anything
runs. The driver learns every run's tag by composing the stage's config with the same overrides the job gets
(pipeline/tags.py), so each stage finds the previous stage's runs whatever was swept, and the report reads those
runs alone.
"""

import copy
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import product
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from core.config import parse
from core.errors import USER_ERRORS, ConfigError, first_line
from core.io import write_json
from core.manifest import read_entry
from core.stage import CONFIG, ROOT, STAGES
from pipeline.cli import DIE_WITH_PARENT, check_overrides, choices, compose_stage, config_groups, die_with, hydra_error
from pipeline.tags import name_run, schema_of
from sweep.experiments import EVALUATIONS, EXPERIMENTS, Experiment, Group, Launcher, Profile, Suite, load, suite_of

SCRIPTS = {name: s.script for name, s in STAGES.items()} | {"report": "04_report.py"}
FAMILY = {name: s.config.split("/")[0] for name, s in STAGES.items()} | {"report": "report"}  # its config folder
NAMED = {folder: name for name, folder in FAMILY.items() if name != "report"}  # whose runs name_run names
SHARE = {"gen": "generate", "train": "train", "inorder": "evaluate", "outorder": "evaluate", "analyze": "analyze"}
DRIVER_OPTIONS = ("profile", "launcher", "workdir", "status")
BEAT = 30.0  # seconds: while a stage runs, the driver rewrites its timing record this often


def is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra")


def accepts(family: str, override: str) -> bool:
    """Whether `override` means something to this stage family's config (config/<family>/conf.yaml): one of its
    keys (its config groups' keys included, e.g. the `sizes` group's nckpts) or one of its config groups."""
    try:
        check_overrides(family, [override], multirun=True)  # the driver runs every stage with -m
    except ConfigError:
        return False
    return True


def route(user: list[str]) -> dict[str, list[str]]:
    """The user's overrides per stage family. A key of the dataset config goes to 01_generate_data.py alone; any
    other to every family that has it, 04_report.py's included; Hydra's own to every stage but the report (the
    multiruns'). A key no stage has is an error (one line)."""
    routed: dict[str, list[str]] = {family: [] for family in dict.fromkeys(FAMILY.values())}
    for override in user:
        hydra = is_hydra(override)
        families = [f for f in routed if f != "report"] if hydra else [f for f in routed if accepts(f, override)]
        if not families:
            raise ConfigError(f"{override!r}: no stage's config has this key (01_generate_data.py, 02_train.py, "
                              "03_evaluate_*.py, 05_analyze.py, 04_report.py); check its spelling in "
                              "config/<stage>/conf.yaml")
        for family in ["gen"] if "gen" in families and not hydra else families:
            routed[family].append(override)
    return routed


def expand(overrides: list[str]) -> list[list[str]]:
    """Every job of a multirun over `overrides`, as Hydra's basic sweeper makes them: sweeps (`a=1,2`) expanded,
    in Hydra's order, and a key given twice taking its last value (so the user's, given last, wins)."""
    options: dict[str, list[str]] = {}
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.get_key_element()
        options[key] = [f"{key}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
    return [list(job) for job in product(*options.values())]


@lru_cache(maxsize=64)
def _base(folder: str, groups: tuple[str, ...]) -> DictConfig:
    """The stage's config composed with its config-group and Hydra overrides alone (the slow part of a compose;
    Hydra checks its own settings here: hydra.launcher.n_jobs=abc is refused), and of Hydra's node only the group
    choices that name_run reads (copying the rest costs more than the rest)."""
    cfg = compose_stage(folder, list(groups))
    with open_dict(cfg):
        cfg.hydra = {"runtime": {"choices": OmegaConf.to_container(cfg.hydra.runtime.choices)}}
    return cfg


@lru_cache(maxsize=4096)
def _parsed(override: str) -> Override:
    (parsed,) = OverridesParser.create().parse_overrides([override])
    return parsed


def apply(o: Override, cfg: DictConfig) -> None:
    """One key override, as Hydra's compose applies it (check_overrides has refused what Hydra would: an unknown
    key, `+key` of a key that exists, `~key` of one that does not)."""
    if o.is_delete():
        *parent, leaf = o.key_or_group.split(".")
        with open_dict(cfg):
            del (OmegaConf.select(cfg, ".".join(parent)) if parent else cfg)[leaf]
    else:
        OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True, force_add=o.is_add() or o.is_force_add())


@lru_cache(maxsize=4096)
def _composed(folder: str, overrides: tuple[str, ...]) -> dict:
    """A job's config as its stage receives it (resolved, without Hydra's node): the group and Hydra overrides'
    compose, then the other overrides applied in order, as Hydra's compose applies them after the defaults list."""
    groups = config_groups(CONFIG / folder)
    parsed = [_parsed(o) for o in overrides]
    first = [o.key_or_group in groups or is_hydra(o.input_line) for o in parsed]
    cfg = copy.deepcopy(_base(folder, tuple(o.input_line for o, f in zip(parsed, first, strict=True) if f)))
    for o in (o for o, f in zip(parsed, first, strict=True) if not f):
        apply(o, cfg)
    if folder in NAMED:
        name_run(NAMED[folder], cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    del resolved["hydra"]
    return resolved


def composed(stage: str, overrides: list[str]) -> dict:
    """A job's config (non-sweep overrides) as `stage` receives it; an override that cannot be resolved is a
    one-line ConfigError naming the script."""
    try:
        return copy.deepcopy(_composed(FAMILY[stage], tuple(overrides)))  # a copy: a caller's edit spares the cache
    except OmegaConfBaseException as err:  # e.g. an interpolation that names no key: seed=${nope}
        key = getattr(err, "full_key", None)
        raise ConfigError(f"{SCRIPTS[stage]}: {f'{key}: ' if key else ''}{first_line(err)}") from None
    except HydraException as err:  # a Hydra setting its launcher refuses: hydra.launcher.n_jobs=abc
        raise ConfigError(f"{SCRIPTS[stage]}: {hydra_error(err)}") from None


def check_job(stage: str, overrides: list[str]) -> None:
    """Validate one job's config as its stage does at entry (its typed config): a bad value is a one-line
    ConfigError naming the script, before anything runs."""
    config = composed(stage, overrides)
    try:
        if stage == "report":
            from pipeline.report import ReportConfig, as_lists  # on first use, as schema_of imports: they load torch

            parse(ReportConfig, as_lists(config))
        else:
            parse(schema_of(stage), config)
    except USER_ERRORS as err:
        raise ConfigError(f"{SCRIPTS[stage]}: {err}") from None


def experiment_values(g: Group, family: str) -> dict[str, list[str]]:
    """A group's own values of a stage family's keys: its datasets (gen), its models and training overrides
    (train), its evaluation or analysis overrides."""
    if family == "gen":
        return g.data_values()
    own = {"net": list(g.net)} if family == "train" else {}
    return own | {_parsed(o).key_or_group: choices(_parsed(o)) for o in getattr(g, family)}


def check_clashes(user: dict[str, list[str]], name: str, experiment: Experiment) -> None:
    """A key typed runs after an experiment's value of it, so the typed value wins (`./run.sh tiny net=lstm` trains
    LSTMs); a key the experiment crosses over several values (lstm_vs_transformer's net: nanogpt and lstm) is
    refused in one line naming both: one typed value would collapse the experiment's comparison."""
    for family in ("gen", "train", "eval", "analyze"):  # the families an experiment sets values of
        for override in user[family]:
            key = _parsed(override).key_or_group
            values = {v: None for g in experiment.groups for v in experiment_values(g, family).get(key, [])}
            if len(values) > 1:
                raise ConfigError(f"{override} clashes with experiment {name}, which crosses {key} over "
                                  f"{', '.join(values)}; to run other values, copy config/sweep/experiment/"
                                  f"{name}.yaml to a new name and set {key} there, or leave {override} out")


@dataclass(frozen=True)
class Plan:
    """The per-stage overrides of one sweep and the Hydra multiruns that carry them out."""

    experiments: list[Experiment]
    profile: Profile  # config/sweep/profile/<name>.yaml
    launcher: list[str]
    user: dict[str, list[str]]  # family -> the user's overrides (route)

    def args(self, family: str, *own: str, follow: str = "") -> list[str]:
        """The profile's overrides, the launcher's, the experiment's own, the user's (later ones win), and the
        tags of the previous stage's runs that this one follows (data.tag=, ckpt_tag=)."""
        return [*getattr(self.profile, family), *self.launcher, *own, *self.user[family], *filter(None, [follow])]

    def data_tags(self, g: Group) -> list[str]:
        return [composed("gen", job)["tag"] for point in g.data_points() for job in expand(self.args("gen", *point))]

    def train_tags(self, g: Group, net: str) -> list[str]:
        return [composed("train", job)["tag"] for tag in dict.fromkeys(self.data_tags(g))
                for job in expand(self.args("train", *g.train, f"net={net}", follow=f"data.tag={tag}"))]

    def calls(self) -> list[tuple[str, list[str]]]:
        """One Hydra multirun per stage (and per model/extra-overrides set); runs shared between experiments
        are launched once. Every job's config is validated here (check_job), so a bad value stops the driver
        before anything runs."""
        calls, groups = [], [g for exp in self.experiments for g in exp.groups]
        for g in groups:  # datasets: one product per group (its data keys, then the user's: theirs win)
            data = [f"{k}={','.join(values)}" for k, values in g.data_values().items()]
            calls.append(("gen", self.args("gen", *data)))
        by_net: dict[tuple, list[str]] = {}  # runs with the same model and extra overrides share one multirun
        for g in groups:
            for net in g.net:
                by_net.setdefault((net, *g.train), []).extend(self.data_tags(g))
        for (net, *extra), tags in by_net.items():
            calls.append(("train", self.args("train", *extra, f"net={net}",
                                             follow=f"data.tag={','.join(dict.fromkeys(tags))}")))
        for stage in EVALUATIONS:
            family = FAMILY[stage]
            by_extra: dict[tuple, list[str]] = {}
            for g in groups:
                if stage in g.evaluate:
                    tags = [t for net in g.net for t in self.train_tags(g, net)]
                    by_extra.setdefault(tuple(getattr(g, family)), []).extend(tags)
            for extra, tags in by_extra.items():
                calls.append((stage, self.args(family, *extra, follow=f"ckpt_tag={','.join(dict.fromkeys(tags))}")))
        for stage, overrides in calls:
            for job in expand(overrides):
                check_job(stage, job)
        return calls

    def report(self, calls: list[tuple[str, list[str]]], first: list[str]) -> list[str]:
        """04_report.py's overrides: `first` (kind, name), the profile's, the results of exactly the evaluations
        in `calls` (results_dir= their folder, include= their tags), then the user's; validated like every job."""
        jobs = [composed(stage, job) for stage, overrides in calls if stage in ("inorder", "outorder")
                for job in expand(overrides)]
        folders = list(dict.fromkeys(str(Path(job["out_dir"]).parent) for job in jobs))
        if len(folders) > 1:
            raise ConfigError(f"the evaluations write under {', '.join(folders)}: a report reads one results_dir; "
                              "give every evaluation one out_dir folder (out_dir=<folder>/${tag})")
        overrides = [*first, *self.profile.report, *(f"results_dir={f}" for f in folders),
                     f"include=[{','.join(dict.fromkeys(job['tag'] for job in jobs))}]", *self.user["report"]]
        check_job("report", overrides)
        return overrides


def parse_args(args: list[str]) -> tuple[dict, list[str]]:
    """Split the driver's own options (experiments, profile=, launcher=, workdir=, status=) from Hydra overrides."""
    options: dict = {}
    overrides = []
    for arg in args:
        key, equals, value = arg.partition("=")
        if not equals:
            options.setdefault("experiments", []).append(arg)
        elif key in DRIVER_OPTIONS:
            options[key] = value
        else:
            overrides.append(arg)
    return options, overrides


def launch(args: list[str], workdir: Path, beat: Callable[[], object] = lambda: None) -> bool:
    """Run a numbered script, calling `beat` every BEAT seconds while it runs; relative paths (data/, ckpts/,
    results/, logs/, reports/) land in workdir. On Linux the script dies with the driver, and each of its jobs with
    the script (die_with)."""
    print("+ " + shlex.join(args), flush=True)
    # Launcher workers (submitit, Ray) unpickle the task in a fresh interpreter: the project must be importable.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           DIE_WITH_PARENT: "1"}
    preexec = partial(die_with, os.getpid()) if sys.platform == "linux" else None
    with subprocess.Popen([sys.executable, str(ROOT / args[0]), *args[1:]], cwd=workdir, env=env,
                          preexec_fn=preexec) as stage:  # preexec_fn: the driver runs no threads
        try:
            while True:
                try:
                    return stage.wait(timeout=BEAT) == 0
                except subprocess.TimeoutExpired:
                    beat()
        except BaseException:  # Ctrl-C, or a record it could not write: the stage goes too (as subprocess.run does)
            stage.kill()
            raise


class Clock:
    """Wall time per kind of stage, read at every tick. A gap between ticks longer than 2 * BEAT counts as 2 * BEAT:
    the sweep was stopped (Ctrl-Z, SIGSTOP) and resumed, and its record is the time it ran."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(["generate", "train", "evaluate", "analyze"], 0.0)
        self.kind: str | None = None
        self.last = time.monotonic()

    def start(self, kind: str) -> None:
        self.tick()
        self.kind = kind

    def tick(self) -> dict[str, float]:
        now = time.monotonic()
        if self.kind is not None:
            self.seconds[self.kind] = self.seconds.get(self.kind, 0.0) + min(now - self.last, 2 * BEAT)
        self.last = now
        return dict(self.seconds)


def report_args(suite: Suite, names: list[str], profile: str) -> list[str]:
    """04_report.py's kind and name. A paper suite's report judges the study's findings, any other compares its
    runs; only the whole suite at its own profile writes its record (the suite's reproduction_md: REPRODUCTION.md
    for paper). The name is the suite's report, then the experiments chosen when not the whole suite, then
    `profile_<name>` when not the suite's own (`./run.sh paper profile=full`: paper_profile_full, which no suite's
    report is named), so that no sweep replaces another's report."""
    own = names == suite.experiments and profile == suite.profile
    name = "_".join([str(suite.report), *(names if names != suite.experiments else []),
                     *([f"profile_{profile}"] if profile != suite.profile else [])])
    record = [f"reproduction_md={suite.reproduction_md}"] if suite.reproduction_md and own else []
    return [f"kind={'paper' if suite.paper else 'general'}", *record, f"name={name}"]


def main(argv: list[str]) -> int:
    if not argv:
        raise ConfigError("usage: python -m sweep SUITE|EXPERIMENT [EXPERIMENT ...] [profile=NAME] [launcher=NAME] "
                          "[workdir=DIR] [status=true] [k=v ...]")
    suite_name, *rest = argv
    suite = suite_of(suite_name)
    options, typed = parse_args(rest)
    names = options.get("experiments") or suite.experiments
    unknown = [n for n in names if n not in suite.experiments]
    if unknown:
        hint = f"; run it on its own with ./run.sh {unknown[0]}" * (EXPERIMENTS / f"{unknown[0]}.yaml").is_file()
        raise ConfigError(f"experiment {unknown[0]!r} is not in suite {suite_name!r}; "
                          f"it has: {', '.join(suite.experiments)}{hint}")
    if options.get("status", "false") not in ("true", "false"):
        raise ConfigError(f"status={options['status']!r} must be true (say what workdir holds of the plan, run "
                          "nothing) or false")
    profile_name = options.get("profile", suite.profile)
    profile = load(Profile, profile_name)
    launcher = load(Launcher, options["launcher"]).overrides if "launcher" in options else []
    user = route(typed)
    experiments = [load(Experiment, n) for n in names]
    for name, experiment in zip(names, experiments, strict=True):
        check_clashes(user, name, experiment)
    plan = Plan(experiments, profile, launcher, user)
    calls = plan.calls()  # composes every run's config: a bad value stops here, before anything runs
    report = plan.report(calls, report_args(suite, names, profile_name)) if suite.report is not None else None
    workdir = Path(options.get("workdir", ROOT)).resolve()
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"workdir={str(workdir)!r} is a file; name a folder (it is created when missing)")
    print(f"{suite_name} in {workdir}: {progress(calls, workdir)}", flush=True)
    if options.get("status") == "true":
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    earlier_runs = resumed(calls, workdir)  # checked before the stages make any
    timing_file = workdir / composed("report", report)["out_dir"] / "timing.json" if report is not None else None
    command = "./run.sh " + shlex.join(argv)
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python " \
              f"{platform.python_version()}"
    earlier = earlier_invocations(timing_file, command) if timing_file and earlier_runs else []
    clock, failures, log = Clock(), [], []

    def record(finished: bool = False) -> None:
        """The report folder's timing.json, rewritten at every beat: a sweep killed midway leaves its time so far."""
        if timing_file is not None:
            write_json(timing_file, timing_record(command, machine, log, earlier, clock.tick(), finished))

    for stage, overrides in calls:
        args = [SCRIPTS[stage], "-m", "skip_complete=true", *overrides]
        log.append(shlex.join(args))
        clock.start(SHARE[stage])
        if not launch(args, workdir, beat=record):
            failures.append(stage)
    wall = sum(clock.tick().values())
    out = f"; FAILED: {', '.join(failures)}" if failures else ""
    if report is not None:
        record()
        if not failures:
            clock.start("report")
            # the clock ticks, nothing is written: the report swaps in its whole folder, timing.json carried over
            if not launch(["04_report.py", *report], workdir, beat=clock.tick):
                failures.append("report")
            record(finished=True)  # the report's own time is known once it ran: added to its record after it
        out = f"; FAILED: {', '.join(failures)}" if failures else f"; report in {timing_file.parent}/"
    n = len(plan.experiments)
    print(f"sweep {suite_name}: {n} experiment{'s' * (n != 1)} in {wall / 60:.1f} min{out}")
    return 1 if failures else 0


def progress(calls: list[tuple[str, list[str]]], workdir: Path) -> str:
    """'gen 30 of 30 done, train 28 of 97 done (2 started), ...': the planned outputs (each once, however many
    experiments share it) by what their folders' manifests say, not verified (a stage checks its files itself)."""
    outputs: dict[str, set[Path]] = {}
    for stage, overrides in calls:
        outputs.setdefault(stage, set()).update(workdir / composed(stage, job)["out_dir"] for job in expand(overrides))
    words = []
    for stage, folders in outputs.items():
        entries = [read_entry(folder, stage) for folder in folders]
        done, started = sum(e is not None and e.complete for e in entries), sum(e is not None and not e.complete
                                                                                 for e in entries)
        words.append(f"{stage} {done} of {len(folders)} done" + (f" ({started} started)" if started else ""))
    return ", ".join(words)


def resumed(calls: list[tuple[str, list[str]]], workdir: Path) -> bool:
    """Whether any dataset the sweep plans is already in workdir: else no earlier invocation made any of its runs,
    and a timing.json found in its report folder is another sweep's record (a committed copy, say)."""
    return any((workdir / composed("gen", job)["out_dir"] / "meta.json").is_file()
               for stage, overrides in calls if stage == "gen" for job in expand(overrides))


def earlier_invocations(path: Path, command: str) -> list[dict]:
    """The invocations of `command` that a timing.json at `path` records (a resumed sweep), [] for another command
    or none: each {"wall_seconds", "stage_seconds", "finished"}."""
    try:
        before = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return []  # an unreadable record: the sums start anew
    if not isinstance(before, dict) or before.get("command") != command:
        return []
    return [*before.get("invocations", []),
            {key: before.get(key) for key in ("wall_seconds", "stage_seconds", "finished")}]


def timing_record(command: str, machine: str, stages: list[str], earlier: list[dict], seconds: dict[str, float],
                  finished: bool) -> dict:
    """The report folder's timing.json: this invocation's command, machine, wall time (its stages', not the
    report's), command lines, seconds per kind of stage and whether it ran to its report; the earlier invocations of
    the same command; and over all of them `total_seconds`, `total_stage_seconds` and each kind's share of the
    total."""
    totals: dict[str, float] = {}
    for record in [*earlier, {"stage_seconds": seconds}]:
        for kind, value in (record.get("stage_seconds") or {}).items():
            totals[kind] = totals.get(kind, 0.0) + value
    total = sum(totals.values())
    wall = sum(value for kind, value in seconds.items() if kind != "report")
    return {"command": command, "machine": machine, "wall_seconds": wall, "stages": stages, "stage_seconds": seconds,
            "finished": finished, "invocations": earlier, "total_seconds": total, "total_stage_seconds": totals,
            "stage_shares": {kind: value / total if total else 0.0 for kind, value in totals.items()}}
