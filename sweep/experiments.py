"""Experiments (config/sweep/experiment/*.yaml): which runs each pipeline stage must sweep.

An experiment file is data only: a finding number, a title and groups. A group is a cartesian product, as
Hydra's `-m` makes one: dataset settings (01_generate_data.py keys -> lists of values) x models (02_train.py `net`
choices), the stages after training (`evaluate`: inorder, outorder, analyze), and optional extra overrides for
its training (`train`), its evaluations (`eval`, both scripts: they share one config and one results folder) and
its analysis (`analyze`).
"""

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SWEEP_CONFIG = ROOT / "config" / "sweep"  # experiment/, suite/, profile/, launcher/: read by this driver only
EXPERIMENTS = SWEEP_CONFIG / "experiment"
EVALUATIONS = ("inorder", "outorder", "analyze")
EXTRA_KEYS = ("train", "eval", "analyze")  # a group's own overrides, per stage family
GROUP_KEYS = ("data", "net", "evaluate", *EXTRA_KEYS)


@dataclass(frozen=True)
class Group:
    data: dict[str, list]  # 01_generate_data.py key -> values swept
    nets: list[str]  # 02_train.py net choices swept
    evaluate: list[str] = field(default_factory=lambda: ["inorder"])  # stages after training
    extra: dict[str, list[str]] = field(default_factory=dict)  # "train" | "eval" | "analyze" -> overrides

    def data_points(self) -> list[list[str]]:
        """Every dataset of the group as 01_generate_data.py overrides (`key=value`)."""
        keys = list(self.data)
        return [[f"{k}={value_text(v)}" for k, v in zip(keys, values, strict=True)]
                for values in product(*self.data.values())]


@dataclass(frozen=True)
class Experiment:
    name: str
    finding: int | None  # the finding of docs/task.md §9 it tests; None for a study of one's own
    title: str
    groups: list[Group]


def value_text(value: object) -> str:
    """A YAML value as Hydra override text: true/false lower-case, others as written."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _listify(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def load_experiment(name: str) -> Experiment:
    path = EXPERIMENTS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
        raise ConfigError(f"experiment={name!r} is unknown; known: {', '.join(known)}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    groups = []
    for g in raw.get("groups") or []:
        unknown = [k for k in g if k not in GROUP_KEYS]
        if unknown:
            hint = " (the evaluations share one config now: use eval)" if {"inorder", "outorder"} & set(unknown) else ""
            raise ConfigError(f"{path.name}: group key {unknown[0]!r} is not allowed; allowed: "
                              f"{', '.join(GROUP_KEYS)}{hint}")
        evaluate = _listify(g.get("evaluate", ["inorder"]))
        bad = [e for e in evaluate if e not in EVALUATIONS]
        if bad:
            raise ConfigError(f"{path.name}: evaluate={bad} is not allowed; allowed: {', '.join(EVALUATIONS)}")
        data = {k: _listify(v) for k, v in g.get("data", {}).items()}
        extra = {stage: [str(o) for o in _listify(g[stage])] for stage in EXTRA_KEYS if stage in g}
        groups.append(Group(data, _listify(g.get("net", ["nanogpt"])), evaluate, extra))
    if not groups:
        raise ConfigError(f"{path.name} has no groups: list at least one under groups:")
    finding = raw.get("finding")
    return Experiment(name, None if finding is None else int(finding), str(raw.get("title", name)), groups)


def load_list(kind: str, name: str) -> dict:
    """A suite (experiments + profile), a profile (per-stage overrides) or a launcher (Hydra overrides)."""
    path = SWEEP_CONFIG / kind / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (SWEEP_CONFIG / kind).glob("*.yaml"))
        raise ConfigError(f"{kind}={name!r} is unknown; known: {', '.join(known)}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
