"""Shared command-line glue for the numbered scripts: one-line errors instead of tracebacks."""

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig

from synthetic.errors import PipelineError
from synthetic.tags import register_resolvers

register_resolvers()  # before any script composes its config

T = TypeVar("T")


def enter_launch_dir() -> None:
    """Inside a Hydra job, work in the directory the command was launched from (`hydra.runtime.cwd`): the configs'
    relative paths (data/, ckpts/, results/) mean that directory. Why: remote launchers (Ray workers) start jobs
    elsewhere, and `hydra.job.chdir: false` alone would then write the outputs there."""
    if HydraConfig.initialized():
        launch_dir = HydraConfig.get().runtime.cwd
        if launch_dir and os.getcwd() != launch_dir:
            os.chdir(launch_dir)


def run_or_exit(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call `fn` in the launch directory; a PipelineError becomes `error: <message>` on stderr and exit status 2."""
    enter_launch_dir()
    try:
        return fn(*args, **kwargs)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: nothing partial was left behind", file=sys.stderr)
        sys.exit(130)
