"""What a job can learn about how Hydra launched it, and the CPU threads it should use."""

import os

import torch
from hydra.core.hydra_config import HydraConfig

TORCH_THREADS = torch.get_num_threads()  # torch's default at start: one per physical core, or OMP_NUM_THREADS


def launcher_name() -> str | None:
    """The `hydra/launcher` config chosen (basic, joblib, submitit_slurm, ray, ...); None outside a Hydra job."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("hydra/launcher")


def parallel_launcher() -> bool:
    """Whether this job may share the terminal with other jobs running at the same time (any launcher but the
    sequential `basic` one): progress bars are then off."""
    return launcher_name() not in (None, "basic")


def resolve_threads(threads: int | str) -> int:
    """The `threads` key of a stage as a thread count: `auto` = every core this process may use for a single job,
    one per job under a parallel launcher (jobs then share the cores); 0 = torch's default (one per physical core);
    n = n."""
    if threads == "auto":
        if parallel_launcher():
            return 1
        allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else TORCH_THREADS  # taskset, SLURM
        return max(1, min(TORCH_THREADS, allowed))
    return int(threads) or TORCH_THREADS


def set_threads(threads: int | str) -> int:
    """torch.set_num_threads(resolve_threads(threads)); returns the count."""
    count = resolve_threads(threads)
    torch.set_num_threads(count)
    return count
