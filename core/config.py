"""Typed configs: one validation pass at a stage's entry turns the composed config (a plain dict) into a frozen
dataclass, and nothing after that reads raw config nodes.

A schema is a frozen dataclass whose fields mirror the YAML file, key for key (the YAML keeps the documented
defaults, the schema the types and bounds). Bounds sit in each field's metadata:

    n_alphabets: int = field(metadata=at_least(2))
    strategy: str = field(metadata=one_of("random", "base"))
    out_dir: str = field(metadata=PATH | NEUTRAL)

A field marked NEUTRAL does not change the stage's output (where it goes, how fast, whether to skip): it is left out
of the stage's fingerprint, hence of the run's identity and tag. A field with a default may be left out of the YAML
(the sweep driver's files); the stages' schemas give none, so their YAML holds every key. Cross-field rules go in
the schema's `__post_init__`. The first problem becomes a one-line ConfigError that names the dotted key, the value
and what is allowed; a key the schema does not know is refused the same way.
"""

import dataclasses
import math
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from core.errors import ConfigError

T = TypeVar("T")
TAG = {"kind": "tag"}  # a plain folder name: never a path, so `data/${tag}` cannot escape
PATH = {"kind": "path"}  # a relative path may not climb out with '..'; an absolute path is the user's
MAX_SEED = 2**63 - 1  # torch.manual_seed takes no more (and a dataset's seed seeds its training run by default)
NEUTRAL = {"neutral": True}  # a key that does not change the output (where it goes, how fast, whether to skip)


def at_least(minimum: float, maximum: float | None = None) -> dict:
    return {"min": minimum, "max": maximum}


def one_of(*choices: str) -> dict:
    return {"choices": choices}


def int_or(*words: str, minimum: int = 0) -> dict:
    """An integer >= minimum, or one of `words`: for a field typed `int | str` (threads: auto | 0 | n)."""
    return {"min": minimum, "words": words}


def escapes(path: str) -> bool:
    """A relative path that climbs out of the project with '..' (an absolute path is the user's)."""
    return not path.startswith("/") and ".." in path.replace("\\", "/").split("/")


def _bounds(key: str, value: Any, meta: Mapping) -> None:
    low, high, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"{key}={value} must be in [{low:g}, {high:g}]")
    if low is not None and value < low:  # (a maximum comes only with a minimum: at_least)
        raise ConfigError(f"{key}={value} must be >= {low}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {', '.join(map(str, choices))}")
    if meta.get("kind") == "tag" and (not value or value in (".", "..") or "/" in value or "\\" in value):
        raise ConfigError(f"{key}={value!r} must be a plain folder name (no '/', not '.' or '..')")
    if meta.get("kind") == "path" and not value:
        raise ConfigError(f"{key}={value!r} must be a non-empty path")
    if meta.get("kind") == "path" and escapes(value):
        raise ConfigError(f"{key}={value!r} escapes the project through '..'; use an absolute path instead")


def _value(hint: Any, value: Any, key: str, meta: Mapping) -> Any:
    """`value` checked against the type `hint` (and the bounds in `meta`), converted where needed (int -> float)."""
    if "words" in meta:  # int | str (see int_or)
        if isinstance(value, str) and value in meta["words"]:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < meta["min"]:
            raise ConfigError(f"{key}={value!r} must be {' or '.join(meta['words'])} or an integer >= {meta['min']}")
        return value
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, key, meta)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, key)
    if hint is list or origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r} must be a list")
        return [_value(args[0] if args else Any, v, f"{key}[{i}]", meta) for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} must be a group of keys")
        if not args:
            return dict(value)
        return {_value(args[0], k, f"{key}.{k}", {}): _value(args[1], v, f"{key}.{k}", meta) for k, v in value.items()}
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}={value!r} must be an integer")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{key}={value!r} must be a finite number")
        value = float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string")
    _bounds(key, value, meta)
    return value


def parse(schema: type[T], raw: Any, key: str = "") -> T:
    """The frozen `schema` instance for the plain dict `raw`, or a one-line ConfigError (key = dotted prefix)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key or 'the config'}={raw!r} must be a group of keys")
    hints = get_type_hints(schema)
    fields = [f for f in dataclasses.fields(schema) if f.init]
    names = [f.name for f in fields]
    for name in raw:
        if name not in names:
            raise ConfigError(f"{key + '.' if key else ''}{name} is not a key of this config; allowed here: "
                              f"{', '.join(names)}")
    values = {}
    for f in fields:
        dotted = f"{key}.{f.name}" if key else f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{dotted} is missing from the config")
            continue  # the schema's default
        values[f.name] = _value(hints[f.name], raw[f.name], dotted, f.metadata)
    return schema(**values)


def fingerprint(schema: type, config: dict, precision: str | None = None) -> dict:
    """A stage's identity: its config (a plain dict of `schema`) without the NEUTRAL keys, plus the precision it
    computes in (float32 or bf16, whatever device=auto picked) for stages that run a model. Equal fingerprints,
    equal outputs."""
    kept = {k: v for k, v in config.items() if k not in neutral_keys(schema)}
    return kept if precision is None else kept | {"precision": precision}


def neutral_keys(schema: type) -> set[str]:
    """The top-level keys of `schema` marked NEUTRAL."""
    return {f.name for f in dataclasses.fields(schema) if f.metadata.get("neutral")}


def flatten(obj: object, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1} (lists and scalars are leaves)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, object] = {}
    for key, value in obj.items():
        out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out
