"""Run a suite of experiments end to end:
`python -m sweep SUITE [EXPERIMENT ...] [profile=P] [launcher=L] [workdir=DIR] [k=v ...]`.

Each stage of each experiment group is one Hydra multirun (`script -m ...`), so Hydra's launchers (local,
joblib, submitit on SLURM, Ray) parallelize it. Stages run with `skip_complete=true`: a run whose outputs already
exist for the same config is skipped, so an interrupted sweep resumes where it stopped.
"""

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.cli import check_overrides
from pipeline.errors import ConfigError
from pipeline.io import write_json
from sweep.experiments import EVALUATIONS, ROOT, TAG_KEYS, load_experiment, load_list

SCRIPTS = {
    "gen": "01_generate_data.py",
    "train": "02_train.py",
    "inorder": "03_evaluate_i.py",
    "outorder": "03_evaluate_o.py",
    "analyze": "05_analyze.py",
}
CONFIGS = {"gen": ("gen", "conf"), "train": ("train", "conf"), "inorder": ("eval", "conf"),
           "outorder": ("eval", "conf_o"), "analyze": ("analyze", "conf")}


def stage_accepts(stage: str, override: str) -> bool:
    """Whether `override` means something to this stage: a key of its composed config (its config groups'
    keys included, e.g. the `sizes` group's nckpts) or one of its config groups."""
    if override.split("=", 1)[0].lstrip("+~").startswith("hydra"):
        return True
    try:
        check_overrides(*CONFIGS[stage], [override])
    except ConfigError:
        return False
    return True


def parse_overrides(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split the driver's own options (suite experiments, profile=, launcher=) from Hydra overrides."""
    options, overrides = {}, []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key in ("profile", "launcher", "workdir") and "=" in arg:
            options[key] = arg.split("=", 1)[1]
        elif "=" in arg:
            overrides.append(arg)
        else:
            options.setdefault("experiments", []).append(arg)
    return options, overrides


def sweep_axes(overrides: list[str]) -> dict[str, list]:
    """Dataset keys named in the tags that the user sweeps (e.g. seed=0,1,2), parsed the way the tags need them."""
    axes = {}
    for o in overrides:
        key, value = o.split("=", 1)
        if key in TAG_KEYS.values():
            axes[key] = [yaml.safe_load(v) for v in value.split(",")]  # "0" -> 0, "true" -> True, as Hydra reads them
    return axes


def _values(values: list) -> str:
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)


def stage_calls(experiments: list, axes: dict[str, list]) -> list[tuple[str, list[str]]]:
    """One Hydra multirun per stage (and per model/extra-overrides set), runs shared between experiments once."""
    calls = []
    groups = [g for exp in experiments for g in exp.groups]
    for g in groups:  # datasets: one product per group
        calls.append(("gen", [f"{k}={_values(v)}" for k, v in g.data.items()]))
    by_net: dict[tuple, list[str]] = {}  # runs with the same model and extra overrides share one multirun
    for g in groups:
        for net in g.nets:
            by_net.setdefault((net, *g.extra.get("train", [])), []).extend(g.data_tags(axes))
    for (net, *extra), tags in by_net.items():
        calls.append(("train", [f"data.tag={','.join(dict.fromkeys(tags))}", f"net={net}", *extra]))
    for stage in EVALUATIONS:
        by_extra: dict[tuple, list[str]] = {}
        for g in groups:
            if stage in g.evaluate:
                by_extra.setdefault(tuple(g.extra.get(stage, [])), []).extend(g.train_tags(axes))
        for extra, tags in by_extra.items():
            calls.append((stage, [f"ckpt_tag={','.join(dict.fromkeys(tags))}", *extra]))
    return calls


def launch(stage: str, overrides: list[str], log: list[str], workdir: Path) -> bool:
    """Run one stage as a Hydra multirun; relative paths (data/, ckpts/, results/, logs/) land in workdir."""
    args = [SCRIPTS[stage], "-m", "skip_complete=true", *overrides]
    print("+ " + shlex.join(args), flush=True)
    log.append(shlex.join(args))
    # Launcher workers (submitit, Ray) unpickle the task in a fresh interpreter: the project must be importable.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / args[0]), *args[1:]], cwd=workdir, env=env).returncode == 0


def main(argv: list[str]) -> int:
    if not argv:
        raise ConfigError("usage: python -m sweep SUITE [EXPERIMENT ...] [profile=NAME] [launcher=NAME] [k=v ...]")
    suite_name, *rest = argv
    suite = load_list("suite", suite_name)
    options, user = parse_overrides(rest)
    names = options.get("experiments") or suite["experiments"]
    unknown = [n for n in names if n not in suite["experiments"]]
    if unknown:
        raise ConfigError(f"experiment {unknown[0]!r} is not in suite {suite_name!r}; "
                          f"it has: {', '.join(suite['experiments'])}")
    profile = load_list("profile", options.get("profile", suite["profile"]))
    launcher = load_list("launcher", options["launcher"])["overrides"] if "launcher" in options else []
    experiments = [load_experiment(n) for n in names]
    axes = sweep_axes(user)
    workdir = Path(options.get("workdir", ROOT)).resolve()

    def stage_overrides(stage: str) -> list[str]:
        # Dataset axes (the keys of TAG_KEYS) name datasets: later stages follow them through the tags.
        routed = [o for o in user if stage == "gen" or o.split("=", 1)[0] not in axes]
        extra = [o for o in routed if stage_accepts(stage, o)]
        return [*profile.get(stage, []), *launcher, *extra]

    start, failures, log = time.time(), [], []
    for stage, overrides in stage_calls(experiments, axes):
        if not launch(stage, [*stage_overrides(stage), *overrides], log, workdir):
            failures.append(stage)
    wall = time.time() - start
    report_overrides = profile.get("report", [])
    names = [o.split("=", 1)[1] for o in report_overrides if o.startswith("name=")]
    report = names[-1] if names else suite.get("report", suite_name)
    timing = {"command": "./run.sh " + shlex.join(argv), "machine": machine_description(), "wall_seconds": wall,
              "stages": log}
    out = workdir / "reports" / report
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "timing.json", timing)
    if not failures:
        report_ok = subprocess.run([sys.executable, str(ROOT / "04_report.py"), f"name={report}", *report_overrides],
                                   cwd=workdir).returncode == 0
        failures += [] if report_ok else ["report"]
    print(f"sweep {suite_name}: {len(experiments)} experiments in {wall / 60:.1f} min"
          + (f"; FAILED: {', '.join(failures)}" if failures else f"; report in reports/{report}/"))
    return 1 if failures else 0


def machine_description() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
