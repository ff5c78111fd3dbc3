"""What a job can learn about how Hydra launched it."""

from hydra.core.hydra_config import HydraConfig


def launcher_name() -> str | None:
    """The `hydra/launcher` config chosen (basic, joblib, submitit_slurm, ray, ...); None outside a Hydra job."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("hydra/launcher")


def parallel_launcher() -> bool:
    """Whether this job may share the terminal with other jobs running at the same time (any launcher but the
    sequential `basic` one): progress bars are then off."""
    return launcher_name() not in (None, "basic")
