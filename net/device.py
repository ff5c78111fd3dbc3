"""Device selection and mixed precision."""

import contextlib

import torch

from core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """"auto" picks CUDA when present, else CPU; "cpu", "cuda" and "cuda:<i>" are checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name} is not auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device={name} is not auto, cpu, cuda or cuda:<index>")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available here (use device=auto or device=cpu)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def autocast_context(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when `bf16` is true (the caller decides whether CPU gets it), else nothing."""
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
