"""Typed reads of a plain config dict, each failing with a one-line ConfigError that names the key."""

from typing import Any

from synthetic.errors import ConfigError

_MISSING = object()


def lookup(cfg: dict, key: str) -> Any:
    """The value at dotted `key` ("function.split.strategy")."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{key} is missing from the config")
        node = node[part]
    return node


def get_int(cfg: dict, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    value = lookup(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}={value} must be <= {maximum}")
    return value


def get_float(cfg: dict, key: str, minimum: float | None = None) -> float:
    value = lookup(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}={value!r} must be a number")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} must be >= {minimum}")
    return float(value)


def get_bool(cfg: dict, key: str) -> bool:
    value = lookup(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    return value


def get_choice(cfg: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = lookup(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def get_tag(cfg: dict, key: str = "tag") -> str:
    """A run tag: one folder name, never a path (so `data/${tag}` cannot escape through '..' or '/')."""
    value = lookup(cfg, key)
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise ConfigError(f"{key}={value!r} must be a plain folder name (no '/', not '.' or '..')")
    return value


def get_path(cfg: dict, key: str) -> str:
    """A relative path may not climb out of the working directory with '..'; absolute paths are the user's."""
    value = lookup(cfg, key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}={value!r} must be a non-empty path")
    if not value.startswith("/") and ".." in value.replace("\\", "/").split("/"):
        raise ConfigError(f"{key}={value!r} escapes the project through '..'; use an absolute path instead")
    return value
