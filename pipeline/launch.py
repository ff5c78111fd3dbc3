"""What a job can learn about how Hydra launched it, and the CPU threads it should use."""

import os

import torch
from hydra.core.hydra_config import HydraConfig

TORCH_THREADS = torch.get_num_threads()  # torch's default at start: one per physical core, or OMP_NUM_THREADS
OWN_CPUS = ("submitit_slurm",)  # parallel launchers that give each job CPUs of its own (SLURM's cpus_per_task)


def launcher_name() -> str | None:
    """The `hydra/launcher` config chosen (basic, joblib, submitit_slurm, ray, ...); None outside a Hydra job."""
    return HydraConfig.get().runtime.choices.get("hydra/launcher") if HydraConfig.initialized() else None


def parallel_launcher() -> bool:
    """Whether this job may share the terminal with other jobs running at the same time (any launcher but the
    sequential `basic` one): progress bars are then off."""
    return launcher_name() not in (None, "basic")


def resolve_threads(threads: int | str) -> int:
    """The `threads` key of a stage as a thread count: `auto` = every CPU this process was granted (those it may run
    on: taskset, cgroups; at most the SLURM_CPUS_PER_TASK that SLURM granted its task when it says so) for a single
    job or a job of an OWN_CPUS launcher, one per job under any other parallel launcher (jobs then share the cores);
    0 = torch's default (one per physical core); n = n."""
    if threads != "auto":
        return int(threads) or TORCH_THREADS
    if parallel_launcher() and launcher_name() not in OWN_CPUS:
        return 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else TORCH_THREADS
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return max(1, min(TORCH_THREADS, min(allowed, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else allowed))


def set_threads(threads: int | str) -> None:
    torch.set_num_threads(resolve_threads(threads))
