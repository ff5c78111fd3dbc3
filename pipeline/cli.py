"""The command-line side of every numbered script: Hydra's shared settings, overrides checked before Hydra sees
them, and one-line errors instead of tracebacks. A numbered script is a `@hydra.main` function calling
run_stage, and calls check_argv before Hydra reads the command line (01_generate_data.py shows the shape); every
stage's config is config/<stage_dir>/conf.yaml.
"""

import contextlib
import ctypes
import difflib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config import escapes, flatten
from core.errors import USER_ERRORS, ConfigError, first_line
from core.stage import CONFIG
from pipeline.tags import NAMED_KEYS, name_run

RENAMED = {"sizes_o": "sizes"}  # old key -> new key: refused with one line that names the new one
NODE_INTERPOLATION = re.compile(r"\$\{([\w.-]+)\}")  # ${key} (a resolver call, ${name:...}, is not one)
T = TypeVar("T")
DIE_WITH_PARENT = "COMPOSITIONAL_DIE_WITH_PARENT"  # set by the driver, then the stage's pid: its jobs die with it
PR_SET_PDEATHSIG = 1  # linux/prctl.h


# config/hydra.yaml as the option `hydra: pipeline` that every stage's conf.yaml names in its defaults (Hydra's own
# settings, defined once), registered before any script composes its config
ConfigStore.instance().store(group="hydra", name="pipeline", node=OmegaConf.load(CONFIG / "hydra.yaml"))


def die_with(parent: int) -> None:
    """The kernel kills this process when `parent` dies, kill -9 included (Linux's PR_SET_PDEATHSIG): called in a
    stage's process before it runs (the driver's preexec_fn), and in each of its jobs, so that nothing the driver
    started outlives it holding an output's lock. A parent that died before this call is noticed here."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


class Tee:
    """A text stream (sys.stdout or sys.stderr) whose writes also go to the job's log file, as a terminal would
    leave them: a line rewritten after '\\r' (a progress bar) is logged in its last state, once it ends. The rest
    is the stream's."""

    def __init__(self, stream, file) -> None:
        self.stream, self.file, self.line = stream, file, ""

    def write(self, text: str) -> int:
        *done, self.line = (self.line + text).split("\n")
        self.file.writelines(line.rsplit("\r", 1)[-1] + "\n" for line in done)
        self.file.flush()
        return self.stream.write(text)

    def end_log(self) -> None:
        """Log the unfinished last line, if it shows anything."""
        if self.line.rsplit("\r", 1)[-1]:
            self.file.write(self.line.rsplit("\r", 1)[-1] + "\n")

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextlib.contextmanager
def job_log() -> Iterator[None]:
    """Inside a Hydra job, copy what the job prints (stdout and stderr) into Hydra's log file for it,
    <hydra.runtime.output_dir>/<hydra.job.name>.log; the terminal output stays as it is. Elsewhere, nothing."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    output_dir = OmegaConf.select(hydra, "runtime.output_dir", default=None) if hydra else None
    if not output_dir:
        yield
        return
    with open(Path(output_dir) / f"{hydra.job.name}.log", "a", encoding="utf-8") as file:
        sys.stdout, sys.stderr = tees = Tee(sys.stdout, file), Tee(sys.stderr, file)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = (tee.stream for tee in tees)
            for tee in tees:
                tee.end_log()


def run_stage(stage: Callable[[dict], T], cfg: DictConfig, named: str | None = None) -> T:
    """Name the run (`named`: its core.stage.STAGES key, for a config with a `tag`), resolve the composed config into
    a plain dict and run the stage on it, through run_or_exit."""
    def resolved() -> T:
        if named:
            name_run(named, cfg)
        return stage(OmegaConf.to_container(cfg, resolve=True))
    return run_or_exit(resolved)


def run_or_exit(fn: Callable[..., T], *args: object) -> T:
    """Call `fn` in the launch directory (`hydra.runtime.cwd`, which the configs' relative paths mean: remote
    launchers such as Ray start jobs elsewhere, and `hydra.job.chdir: false` alone would write the outputs there),
    its output also in the job's log (job_log); a bad value or file becomes `error: <one line>`, exit status 2."""
    stage = int(os.environ.get(DIE_WITH_PARENT) or os.getpid())
    if stage != os.getpid() and sys.platform == "linux":  # a job in a process of its own, below the stage
        if os.getppid() == stage:
            die_with(stage)  # a joblib worker: the stage, which dies with the driver, is its parent
        elif not Path(f"/proc/{stage}").exists():
            os.kill(os.getpid(), signal.SIGKILL)  # its stage died before it started: nothing waits for its output
    launch_dir = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else None
    if launch_dir and os.getcwd() != launch_dir:
        os.chdir(launch_dir)
    with job_log():
        try:
            return fn(*args)
        except USER_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OmegaConfBaseException as err:  # e.g. an interpolation that names no key: seed=${nope}
            key = getattr(err, "full_key", None)
            print(f"error: {f'{key}: ' if key else ''}{first_line(err)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: nothing partial was left behind", file=sys.stderr)
            sys.exit(130)


def config_groups(config_dir: Path) -> dict[str, list[str]]:
    """The config groups of a stage's config folder (net, sizes, ...) and their options."""
    return {p.name: sorted(f.stem for f in p.glob("*.yaml")) for p in config_dir.iterdir() if p.is_dir()}


def choices(o: Override) -> list[str]:
    return [str(v) for v in o.sweep_string_iterator()] if o.is_sweep_override() else [str(o.value())]


def compose_stage(stage_dir: str, overrides: list[str]) -> DictConfig:
    """The stage's config with Hydra's own settings (so that those overrides are checked too)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG / stage_dir)):
        return compose(config_name="conf", overrides=overrides, return_hydra_config=True)


def hydra_error(err: Exception) -> str:
    """Hydra's message in one line: its first line, and the first line of its cause (the reason)."""
    return first_line(err) + (f" ({first_line(err.__cause__)})" if err.__cause__ is not None else "")


def _unreadable(parser: OverridesParser, args: list[str]) -> str:
    """The first of args that Hydra cannot parse on its own (all of them when each parses alone)."""
    for arg in args:
        try:
            parser.parse_overrides([arg])
        except HydraException:
            return arg
    return " ".join(args)


def check_overrides(stage_dir: str, args: list[str], multirun: bool = False) -> None:
    """Refuse, in one line (ConfigError), what Hydra would refuse in several: malformed syntax, an unknown config
    group option, an unknown key, and a Hydra setting (hydra.run.dir, hydra.job.name, ...) climbing out with '..'.
    Hydra's own settings are composed once to check them (hydra/launcher=..., hydra.job.chdir=...). Values are
    checked later, by the stage's typed config. `multirun`: the command line has -m, so a sweep (key=a,b) is allowed."""
    parser = OverridesParser.create()
    try:
        overrides = parser.parse_overrides(args)
    except HydraException as err:
        raise ConfigError(f"cannot read the override {_unreadable(parser, args)!r}: {first_line(err)}") from None
    groups = config_groups(CONFIG / stage_dir)
    picked = []
    for o in overrides:
        key = o.key_or_group
        if not key:
            raise ConfigError(f"cannot read the override {o.input_line!r}: it names no key before '='")
        if o.is_sweep_override() and not multirun:
            raise ConfigError(f"{o.input_line!r} gives several values: add -m (--multirun) to run one job per value; "
                              f"a list is {key}=[...], a string with commas is quoted: {key}='...'")
        if key in RENAMED:
            raise ConfigError(f"{key} is now {RENAMED[key]}: both evaluation scripts share config/eval/conf.yaml "
                              f"and its sizes group; use {RENAMED[key]}={choices(o)[0]}")
        if key in groups:
            for choice in choices(o):
                if choice not in groups[key]:
                    raise ConfigError(f"{key}={choice!r} is not an option; options: {', '.join(groups[key])} "
                                      f"(config/{stage_dir}/{key}/)")
            picked.append(f"{key}={choices(o)[0]}")
        elif key.startswith("hydra"):  # its output folders, and what they are made of (hydra.job.name, ...)
            for choice in choices(o):
                if escapes(choice):
                    raise ConfigError(f"{key}={choice!r} would let Hydra's output folders escape the project through "
                                      "'..'; use an absolute path")
            picked.append(o.input_line if not o.is_sweep_override() else f"{key}={choices(o)[0]}")
        elif o.type == OverrideType.DEL:  # ~key (=value): Hydra checks that the key is there (with that value)
            picked.append(o.input_line)
    try:
        cfg = compose_stage(stage_dir, picked)
    except HydraException as err:
        raise ConfigError(hydra_error(err)) from None
    finally:
        GlobalHydra.instance().clear()
    values = list(flatten(OmegaConf.to_container(cfg, resolve=False)).items())
    values[:0] = [("tag", f"${{{key}}}") for key in NAMED_KEYS.get(stage_dir, ())]  # name_run names it by these
    # a deleted key (~key) that a remaining value interpolates is refused, naming both (else the error names only
    # the value whose interpolation fails)
    for o in (o for o in overrides if o.type == OverrideType.DEL):
        key = o.key_or_group
        for name, value in values:
            for used in NODE_INTERPOLATION.findall(str(value)):
                if used == key or used.startswith(f"{key}."):
                    raise ConfigError(f"{o.input_line} deletes {key}, but {name} uses it (${{{used}}}); give {key} "
                                      f"a value ({key}=...) instead of deleting it")
    known = [k for k, _ in values if not k.startswith("hydra.")]
    for o in overrides:
        key = o.key_or_group
        if key in groups or key.startswith("hydra") or o.type == OverrideType.DEL:  # composed above
            continue
        exists = key in known or any(k.startswith(f"{key}.") for k in known)
        if o.type == OverrideType.ADD and exists:
            raise ConfigError(f"+{key}: config/{stage_dir}/conf.yaml already has {key}; change it with {key}=...")
        if not exists:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else " (nor of its config groups)"
            raise ConfigError(f"{key} is not a key of config/{stage_dir}/conf.yaml{hint}")


def check_argv(stage_dir: str) -> None:
    """check_overrides on this process's command line (unless Hydra's own flags are used, e.g. --cfg job):
    a bad one is `error: <one line>` and exit status 2, before Hydra runs. Launched by the sweep driver, this
    process is the stage whose jobs die with it (run_or_exit)."""
    if DIE_WITH_PARENT in os.environ:
        os.environ[DIE_WITH_PARENT] = str(os.getpid())
    args = [a for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    if not any(a.startswith("-") for a in args):
        run_or_exit(check_overrides, stage_dir, args, len(args) < len(sys.argv) - 1)
