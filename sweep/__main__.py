"""Run a suite of experiments end to end: `python -m sweep SUITE [EXPERIMENT ...] [profile=P] [launcher=L] [k=v ...]`.

Each stage of each experiment group is one Hydra multirun (`script -m ...`), so Hydra's launchers (local,
joblib, submitit on SLURM, Ray) parallelize it. Stages run with `skip_complete=true`: a run whose outputs already
exist for the same config is skipped, so an interrupted sweep resumes where it stopped.
"""

import json
import platform
import shlex
import subprocess
import sys
import time

from omegaconf import OmegaConf

from sweep.experiments import ROOT, load_experiment, load_list
from synthetic.cli import run_or_exit
from synthetic.errors import ConfigError

SCRIPTS = {
    "gen": "01_generate_data.py",
    "train": "02_train.py",
    "inorder": "03_evaluate_i.py",
    "outorder": "03_evaluate_o.py",
    "analyze": "05_analyze.py",
}
CONFIGS = {"gen": "gen/conf", "train": "train/conf", "inorder": "eval/conf", "outorder": "eval/conf_o",
           "analyze": "analyze/conf"}


def stage_accepts(stage: str, key: str) -> bool:
    """Whether an override `key=...` means something to this stage (a key of its config or a config group)."""
    if key.startswith("hydra"):
        return True
    conf_file = ROOT / "config" / f"{CONFIGS[stage]}.yaml"
    groups = [p.name for p in conf_file.parent.iterdir() if p.is_dir()]
    return key in groups or OmegaConf.select(OmegaConf.load(conf_file), key, default="__absent__") != "__absent__"


def parse_overrides(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split the driver's own options (suite experiments, profile=, launcher=) from Hydra overrides."""
    options, overrides = {}, []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key in ("profile", "launcher") and "=" in arg:
            options[key] = arg.split("=", 1)[1]
        elif "=" in arg:
            overrides.append(arg)
        else:
            options.setdefault("experiments", []).append(arg)
    return options, overrides


def sweep_axes(overrides: list[str]) -> dict[str, list]:
    """Dataset keys the user sweeps (e.g. seed=0,1,2), parsed the way the tags need them."""
    axes = {}
    for o in overrides:
        key, value = o.split("=", 1)
        if key in ("seed", "direct") or key.startswith("function.split."):
            axes[key] = [OmegaConf.create({"v": v})["v"] if v else v for v in value.split(",")]
    return axes


def launch(stage: str, overrides: list[str], log: list[str]) -> bool:
    command = [sys.executable, SCRIPTS[stage], "-m", "skip_complete=true", *overrides]
    print("+ " + shlex.join(command[1:]), flush=True)
    log.append(shlex.join(command[1:]))
    return subprocess.run(command, cwd=ROOT).returncode == 0


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

    def stage_overrides(stage: str) -> list[str]:
        extra = [o for o in user if stage_accepts(stage, o.split("=", 1)[0].lstrip("+~"))]
        return [*profile.get(stage, []), *launcher, *extra]

    start, failures, log = time.time(), [], []
    for stage in SCRIPTS:
        for exp in experiments:
            for group in exp.groups:
                if stage == "gen":
                    data = [f"{k}={','.join(str(v).lower() if isinstance(v, bool) else str(v) for v in vals)}"
                            for k, vals in group.data.items()]
                    overrides = [*stage_overrides(stage), *data]
                elif stage == "train":
                    tags = ",".join(dict.fromkeys(group.data_tags(axes)))
                    overrides = [*stage_overrides(stage), f"data.tag={tags}", f"net={','.join(group.nets)}",
                                 *group.train]
                elif stage in group.evaluate:
                    overrides = [*stage_overrides(stage), f"ckpt_tag={','.join(group.train_tags(axes))}"]
                else:
                    continue
                if not launch(stage, overrides, log):
                    failures.append(f"{exp.name}: {stage}")
    wall = time.time() - start
    report = suite.get("report", suite_name)
    timing = {"command": "./run.sh " + shlex.join(argv), "machine": machine_description(), "wall_seconds": wall,
              "stages": log}
    out = ROOT / "reports" / report
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    if not failures:
        report_ok = subprocess.run([sys.executable, "04_report.py", f"name={report}"], cwd=ROOT).returncode == 0
        failures += [] if report_ok else ["report"]
    print(f"sweep {suite_name}: {len(experiments)} experiments in {wall / 60:.1f} min"
          + (f"; FAILED: {', '.join(failures)}" if failures else f"; report in reports/{report}/"))
    return 1 if failures else 0


def machine_description() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(run_or_exit(main, sys.argv[1:]))
