"""Experiments (config/sweep/experiment/*.yaml) expanded into the runs each pipeline stage must sweep.

An experiment file is data only: a finding number, a title and groups. A group is a cartesian product, as
Hydra's `-m` makes one: dataset settings (01_generate_data.py keys -> lists of values) x models (02_train.py
`net` choices). Tags come from `synthetic.tags`, the same functions the YAML resolvers call, so the driver knows
every run's folder without running anything.
"""

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.errors import ConfigError
from pipeline.tags import data_tag, train_tag

ROOT = Path(__file__).resolve().parent.parent
SWEEP_CONFIG = ROOT / "config" / "sweep"  # experiment/, suite/, profile/, launcher/: read by this driver only
EXPERIMENTS = SWEEP_CONFIG / "experiment"
EVALUATIONS = ("inorder", "outorder", "analyze")
TAG_KEYS = {  # data_tag argument -> 01_generate_data.py key
    "direct": "direct",
    "strategy": "function.split.strategy",
    "n_compositions": "function.split.n_compositions",
    "seed": "seed",
    "n_identity": "function.split.n_identity",
    "n_compositions_inorder": "function.split.n_compositions_inorder",
    "n_functions": "function.n_functions",
}


@dataclass(frozen=True)
class Group:
    data: dict[str, list]  # 01_generate_data.py key -> values swept
    nets: list[str]  # 02_train.py net choices swept
    evaluate: list[str] = field(default_factory=lambda: ["inorder"])  # stages after training
    extra: dict[str, list[str]] = field(default_factory=dict)  # stage -> this group's own extra overrides

    def data_points(self, user_axes: dict[str, list]) -> list[dict]:
        """Every dataset of the group as {gen key: value}, the user's axes (e.g. seed=0,1,2) included."""
        axes = {**self.data, **{k: v for k, v in user_axes.items() if k not in self.data}}
        return [dict(zip(axes, values, strict=True)) for values in product(*axes.values())]

    def data_tags(self, user_axes: dict[str, list]) -> list[str]:
        defaults = gen_defaults()
        tags = []
        for point in self.data_points(user_axes):
            settings = {arg: point.get(key, OmegaConf.select(defaults, key)) for arg, key in TAG_KEYS.items()}
            tags.append(data_tag(**settings))
        return tags

    def train_tags(self, user_axes: dict[str, list]) -> list[str]:
        return [train_tag(d, net) for d in self.data_tags(user_axes) for net in self.nets]


@dataclass(frozen=True)
class Experiment:
    name: str
    finding: int
    title: str
    groups: list[Group]


def gen_defaults():
    return OmegaConf.load(ROOT / "config" / "gen" / "conf.yaml")


def _listify(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def load_experiment(name: str) -> Experiment:
    path = EXPERIMENTS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
        raise ConfigError(f"experiment={name!r} is unknown; known: {', '.join(known)}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    groups = []
    for g in raw["groups"]:
        evaluate = _listify(g.get("evaluate", ["inorder"]))
        bad = [e for e in evaluate if e not in EVALUATIONS]
        if bad:
            raise ConfigError(f"{path.name}: evaluate={bad} is not allowed; allowed: {', '.join(EVALUATIONS)}")
        data = {k: _listify(v) for k, v in g.get("data", {}).items()}
        extra = {stage: [str(o) for o in _listify(g[stage])] for stage in ("train", *EVALUATIONS) if stage in g}
        groups.append(Group(data, _listify(g.get("net", ["nanogpt"])), evaluate, extra))
    return Experiment(name, int(raw["finding"]), str(raw["title"]), groups)


def load_list(kind: str, name: str) -> dict:
    """A suite (experiments + profile), a profile (per-stage overrides) or a launcher (Hydra overrides)."""
    path = SWEEP_CONFIG / kind / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (SWEEP_CONFIG / kind).glob("*.yaml"))
        raise ConfigError(f"{kind}={name!r} is unknown; known: {', '.join(known)}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
