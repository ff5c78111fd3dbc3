"""Run a suite of experiments, or one experiment, end to end:
`python -m sweep SUITE|EXPERIMENT [EXPERIMENT ...] [profile=P] [launcher=L] [workdir=DIR] [k=v ...]`.

Each stage of each experiment group is one Hydra multirun (`script -m ...`), so Hydra's launchers (local,
joblib, submitit on SLURM, Ray) parallelize it. Stages run with `skip_complete=true`: a run whose outputs already
exist for the same config is skipped, so an interrupted sweep resumes where it stopped.

Overrides run exactly as typed: each `k=v` goes to every stage whose composed config has that key (a dataset key
to 01_generate_data.py only: later stages follow the datasets through their tags), after the profile's, so it wins;
one that no stage has, or a value that a stage's typed config refuses in any job, stops the driver before anything
runs. The driver learns every run's tag by composing the stage's config with the same overrides the job gets
(pipeline/tags.py), so each stage finds the previous stage's runs whatever was swept.
"""

import copy
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from core.config import parse
from core.errors import USER_ERRORS, ConfigError, first_line
from core.io import write_json
from pipeline.cli import CONFIG, check_overrides, compose_stage, config_groups
from sweep.experiments import (
    EVALUATIONS,
    EXPERIMENTS,
    ROOT,
    SWEEP_CONFIG,
    Experiment,
    Group,
    Launcher,
    Profile,
    Suite,
    load,
    value_text,
)

SCRIPTS = {
    "gen": "01_generate_data.py",
    "train": "02_train.py",
    "inorder": "03_evaluate_i.py",
    "outorder": "03_evaluate_o.py",
    "analyze": "05_analyze.py",
}
CONFIGS = {"gen": ("gen", "conf"), "train": ("train", "conf"), "inorder": ("eval", "conf"),
           "outorder": ("eval", "conf"), "analyze": ("analyze", "conf")}
FAMILY = {"gen": "gen", "train": "train", "inorder": "eval", "outorder": "eval", "analyze": "analyze"}  # profile key
DRIVER_OPTIONS = ("profile", "launcher", "workdir")


def is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra")


def stage_accepts(family: str, override: str) -> bool:
    """Whether `override` means something to this stage family's config: one of its keys (its config groups'
    keys included, e.g. the `sizes` group's nckpts) or one of its config groups."""
    if is_hydra(override):
        return True
    stage = next(s for s, f in FAMILY.items() if f == family)
    try:
        check_overrides(*CONFIGS[stage], [override], multirun=True)  # the driver runs every stage with -m
    except ConfigError:
        return False
    return True


def route(user: list[str]) -> dict[str, list[str]]:
    """The user's overrides per stage family. A key of the dataset config goes to 01_generate_data.py alone; any
    other to every family that has it; Hydra's own to all. A key no stage has is an error (one line)."""
    routed: dict[str, list[str]] = {"gen": [], "train": [], "eval": [], "analyze": []}
    for override in user:
        families = list(routed) if is_hydra(override) else [f for f in routed if stage_accepts(f, override)]
        if not families:
            raise ConfigError(f"{override!r}: no stage's config has this key (01_generate_data.py, 02_train.py, "
                              "03_evaluate_*.py, 05_analyze.py); check its spelling in config/<stage>/conf.yaml")
        for family in ["gen"] if "gen" in families and not is_hydra(override) else families:
            routed[family].append(override)
    return routed


def expand(overrides: list[str]) -> list[list[str]]:
    """Every job of a multirun over `overrides`: sweeps (`a=1,2`) expanded, in Hydra's order."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++", OverrideType.DEL: "~"}
    options = []
    for o in parsed:
        head = f"{prefix.get(o.type, '')}{o.get_key_element()}"
        if o.is_sweep_override():
            options.append([f"{head}={value}" for value in o.sweep_string_iterator()])
        else:
            options.append([o.input_line])
    return [list(job) for job in product(*options)]


@lru_cache(maxsize=64)
def _base(folder: str, name: str, groups: tuple[str, ...]) -> DictConfig:
    """The stage's config composed with its config-group overrides alone (the slow part of a compose), and of
    Hydra's node only the group choices that the tag resolvers read (copying the rest costs more than the rest)."""
    cfg = compose_stage(CONFIG / folder, name, list(groups))
    with open_dict(cfg):
        cfg.hydra = {"runtime": {"choices": OmegaConf.to_container(cfg.hydra.runtime.choices)}}
    return cfg


@lru_cache(maxsize=4096)
def _parsed(override: str) -> Override:
    (parsed,) = OverridesParser.create().parse_overrides([override])
    return parsed


@lru_cache(maxsize=4096)
def _composed(folder: str, name: str, overrides: tuple[str, ...]) -> dict:
    """A job's config as its stage receives it (resolved, without Hydra's node): the group overrides' compose,
    then the other overrides applied in order, as Hydra's compose applies them after the defaults list."""
    groups = config_groups(CONFIG / folder)
    jobs = [_parsed(o) for o in overrides if not is_hydra(o)]
    cfg = copy.deepcopy(_base(folder, name, tuple(o.input_line for o in jobs if o.key_or_group in groups)))
    ConfigLoaderImpl._apply_overrides_to_config([o for o in jobs if o.key_or_group not in groups], cfg)
    cfg.tag = cfg.tag  # resolved once: out_dir, wandb.name, ... interpolate it, and each would recompute it
    resolved = OmegaConf.to_container(cfg, resolve=True)
    del resolved["hydra"]
    return resolved


def composed(stage: str, overrides: list[str]) -> dict:
    """A job's config (non-sweep overrides) as `stage` receives it; an override that cannot be resolved is a
    one-line ConfigError naming the script."""
    try:
        return _composed(*CONFIGS[stage], tuple(overrides))
    except OmegaConfBaseException as err:  # e.g. an interpolation that names no key: seed=${nope}
        key = getattr(err, "full_key", None)
        raise ConfigError(f"{SCRIPTS[stage]}: {f'{key}: ' if key else ''}{first_line(err)}") from None


def composed_tag(stage: str, overrides: list[str]) -> str:
    """The tag a job of `stage` gets with these (non-sweep) overrides: the stage's own resolvers decide it."""
    return str(composed(stage, overrides)["tag"])


@lru_cache(maxsize=1)
def schemas() -> dict[str, type]:
    """Each stage's typed config (imported on first use: the stage modules load torch)."""
    from pipeline.analyze import AnalyzeConfig
    from pipeline.evaluate import EvalConfig
    from pipeline.generate import GenerateConfig
    from pipeline.train import TrainConfig

    return {"gen": GenerateConfig, "train": TrainConfig, "eval": EvalConfig, "analyze": AnalyzeConfig}


def check_job(stage: str, overrides: list[str]) -> None:
    """Validate one job's config as its stage does at entry (its typed config): a bad value is a one-line
    ConfigError naming the script, before anything runs."""
    config = composed(stage, overrides)
    try:
        parse(schemas()[FAMILY[stage]], config)
    except USER_ERRORS as err:
        raise ConfigError(f"{SCRIPTS[stage]}: {err}") from None


@dataclass(frozen=True)
class Plan:
    """The per-stage overrides of one sweep and the Hydra multiruns that carry them out."""

    experiments: list[Experiment]
    profile: Profile  # config/sweep/profile/<name>.yaml
    launcher: list[str]
    user: dict[str, list[str]]  # family -> the user's overrides (route)

    def common(self, family: str) -> list[str]:
        """The profile's overrides, the launcher's, then the user's (later ones win)."""
        return [*self.profile.for_family(family), *self.launcher, *self.user[family]]

    def data_tags(self, g: Group) -> list[str]:
        return [composed_tag("gen", job) for point in g.data_points()
                for job in expand([*self.common("gen"), *point])]

    def train_tags(self, g: Group, net: str) -> list[str]:
        return [composed_tag("train", job) for tag in dict.fromkeys(self.data_tags(g))
                for job in expand([*self.common("train"), *g.train, f"data.tag={tag}",
                                   f"net={net}"])]

    def calls(self) -> list[tuple[str, list[str]]]:
        """One Hydra multirun per stage (and per model/extra-overrides set); runs shared between experiments
        are launched once. Every job's config is validated here (check_job), so a bad value stops the driver
        before anything runs."""
        calls, groups = [], [g for exp in self.experiments for g in exp.groups]
        for g in groups:  # datasets: one product per group (its data keys last: they define the group)
            data = [f"{k}={','.join(value_text(v) for v in values)}" for k, values in g.data.items()]
            calls.append(("gen", [*self.common("gen"), *data]))
        by_net: dict[tuple, list[str]] = {}  # runs with the same model and extra overrides share one multirun
        for g in groups:
            for net in g.net:
                by_net.setdefault((net, *g.train), []).extend(self.data_tags(g))
        for (net, *extra), tags in by_net.items():
            calls.append(("train", [*self.common("train"), *extra, f"data.tag={','.join(dict.fromkeys(tags))}",
                                    f"net={net}"]))
        for stage in EVALUATIONS:
            family = FAMILY[stage]
            by_extra: dict[tuple, list[str]] = {}
            for g in groups:
                if stage in g.evaluate:
                    tags = [t for net in g.net for t in self.train_tags(g, net)]
                    by_extra.setdefault(tuple(g.for_family(family)), []).extend(tags)
            for extra, tags in by_extra.items():
                calls.append((stage, [*self.common(family), *extra, f"ckpt_tag={','.join(dict.fromkeys(tags))}"]))
        for stage, overrides in calls:
            for job in expand(overrides):
                check_job(stage, job)
        return calls


def parse_args(args: list[str]) -> tuple[dict, list[str]]:
    """Split the driver's own options (experiments, profile=, launcher=, workdir=) from Hydra overrides."""
    options: dict = {}
    overrides = []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key in DRIVER_OPTIONS and "=" in arg:
            options[key] = arg.split("=", 1)[1]
        elif "=" in arg:
            overrides.append(arg)
        else:
            options.setdefault("experiments", []).append(arg)
    return options, overrides


def launch(stage: str, overrides: list[str], log: list[str], workdir: Path) -> bool:
    """Run one stage as a Hydra multirun; relative paths (data/, ckpts/, results/, logs/) land in workdir."""
    args = [SCRIPTS[stage], "-m", "skip_complete=true", *overrides]
    print("+ " + shlex.join(args), flush=True)
    log.append(shlex.join(args))
    # Launcher workers (submitit, Ray) unpickle the task in a fresh interpreter: the project must be importable.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / args[0]), *args[1:]], cwd=workdir, env=env).returncode == 0


def suite_of(name: str) -> Suite:
    """The suite `name`, or a suite of the single experiment `name` (its own report, judged by no paper finding)."""
    if (EXPERIMENTS / f"{name}.yaml").is_file() and not (SWEEP_CONFIG / "suite" / f"{name}.yaml").exists():
        return Suite(experiments=[name], profile="cpu", report=name, paper=False)
    return load(Suite, name)


def main(argv: list[str]) -> int:
    if not argv:
        raise ConfigError("usage: python -m sweep SUITE|EXPERIMENT [EXPERIMENT ...] [profile=NAME] [launcher=NAME] "
                          "[workdir=DIR] [k=v ...]")
    suite_name, *rest = argv
    suite = suite_of(suite_name)
    options, user = parse_args(rest)
    names = options.get("experiments") or suite.experiments
    unknown = [n for n in names if n not in suite.experiments]
    if unknown:
        alone = (EXPERIMENTS / f"{unknown[0]}.yaml").is_file()
        hint = f"; run it on its own with ./run.sh {unknown[0]}" if alone else ""
        raise ConfigError(f"experiment {unknown[0]!r} is not in suite {suite_name!r}; "
                          f"it has: {', '.join(suite.experiments)}{hint}")
    profile = load(Profile, options.get("profile", suite.profile))
    launcher = load(Launcher, options["launcher"]).overrides if "launcher" in options else []
    plan = Plan([load(Experiment, n) for n in names], profile, launcher, route(user))
    calls = plan.calls()  # composes every run's config: a bad value stops here, before anything runs
    workdir = Path(options.get("workdir", ROOT)).resolve()
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"workdir={str(workdir)!r} is a file; name a folder (it is created when missing)")
    workdir.mkdir(parents=True, exist_ok=True)

    start, failures, log = time.time(), [], []
    for stage, overrides in calls:
        if not launch(stage, overrides, log, workdir):
            failures.append(stage)
    wall = time.time() - start
    # a paper suite's report judges the study's findings; any other compares its runs and never writes
    # REPRODUCTION.md
    kind = ["kind=paper"] if suite.paper else ["kind=general", "reproduction_md=null"]
    report_overrides = [*kind, *profile.report]
    names_given = [o.split("=", 1)[1] for o in report_overrides if o.startswith("name=")]
    report = names_given[-1] if names_given else suite_name if suite.report is None else suite.report
    timing = {"command": "./run.sh " + shlex.join(argv), "machine": machine_description(), "wall_seconds": wall,
              "stages": log}
    write_json(workdir / "reports" / report / "timing.json", timing)
    if not failures:
        report_ok = subprocess.run([sys.executable, str(ROOT / "04_report.py"), f"name={report}", *report_overrides],
                                   cwd=workdir).returncode == 0
        failures += [] if report_ok else ["report"]
    print(f"sweep {suite_name}: {len(plan.experiments)} experiments in {wall / 60:.1f} min"
          + (f"; FAILED: {', '.join(failures)}" if failures else f"; report in reports/{report}/"))
    return 1 if failures else 0


def machine_description() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
