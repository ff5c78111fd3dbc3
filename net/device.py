"""Device selection and mixed precision."""

import torch

from core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """"auto" picks CUDA when present, else CPU; "cpu", "cuda" and "cuda:<i>" are checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name} is not auto, cpu, cuda or cuda:<index>")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available here (use device=auto or device=cpu)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def precision(device: torch.device, bf16: bool, bf16_cpu: bool = False) -> str:
    """What a run computes in on `device`: "bf16" (autocast: `bf16` on CUDA, `bf16_cpu` on CPU) or "float32". Part
    of a run's identity: the same config in another precision gives other numbers."""
    return "bf16" if (bf16 if device.type == "cuda" else bf16_cpu) else "float32"


def recorded_precision(config: dict) -> str:
    """The precision of a run written before runs recorded theirs, from the keys it recorded (device=auto read as
    this machine resolves it: the machine a run's folder is on is, nearly always, the one that wrote it)."""
    name = str(config.get("device", "auto"))
    cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    return precision(torch.device("cuda" if cuda else "cpu"), config.get("bf16", False), config.get("bf16_cpu", False))


def autocast_context(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on `device` (cpu or cuda) when `bf16` is true (the caller decides whether CPU gets it)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)
