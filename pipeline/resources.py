"""Resource bounds checked while validating a config, before anything is written (one line instead of a crash
or a machine driven into swap)."""

import os

from pipeline.errors import ConfigError


def available_memory() -> int:
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def require_memory(key: str, value: object, n_bytes: float) -> None:
    """Refuse `key=value` when the work it asks for needs more than the machine's memory."""
    limit = available_memory()
    if n_bytes > limit:
        raise ConfigError(f"{key}={value} needs about {gib(n_bytes)} of memory, more than this machine's "
                          f"{gib(limit)}; lower it")
