"""The sweep driver's files (config/sweep/): experiments, suites, profiles and launchers, each parsed once into a
frozen dataclass (core.config.parse): a key a schema does not know, or a value of the wrong type, is a one-line
error naming the file. A key left out takes the default written beside it.

An experiment file is data only: a finding number, a title and groups. A group is a cartesian product, as
Hydra's `-m` makes one: dataset settings (01_generate_data.py keys -> lists of values) x models (02_train.py `net`
choices), the stages after training (`evaluate`: inorder, outorder, analyze), and optional extra overrides for
its training (`train`), its evaluations (`eval`, both scripts: they share one config and one results folder) and
its analysis (`analyze`).
"""

from dataclasses import dataclass, field
from itertools import product
from typing import TypeVar

from omegaconf import OmegaConf

from core.config import one_of, parse
from core.errors import ConfigError
from core.stage import CONFIG

T = TypeVar("T")
SWEEP_CONFIG = CONFIG / "sweep"  # experiment/, suite/, profile/, launcher/: read by this driver only
EXPERIMENTS = SWEEP_CONFIG / "experiment"
EVALUATIONS = ("inorder", "outorder", "analyze")


@dataclass(frozen=True)
class Group:
    data: dict[str, list] = field(default_factory=dict)  # 01_generate_data.py key -> values swept
    net: list[str] = field(default_factory=lambda: ["nanogpt"])  # 02_train.py net choices swept
    evaluate: list[str] = field(default_factory=lambda: ["inorder"], metadata=one_of(*EVALUATIONS))
    train: list[str] = field(default_factory=list)  # the group's own overrides, per stage family
    eval: list[str] = field(default_factory=list)
    analyze: list[str] = field(default_factory=list)

    def data_values(self) -> dict[str, list[str]]:
        """The dataset settings swept, each value as Hydra override text (value_text)."""
        return {k: [value_text(v) for v in values] for k, values in self.data.items()}

    def data_points(self) -> list[list[str]]:
        """Every dataset of the group as 01_generate_data.py overrides (`key=value`)."""
        values = self.data_values()
        return [[f"{k}={v}" for k, v in zip(values, point, strict=True)] for point in product(*values.values())]


@dataclass(frozen=True)
class Experiment:
    """config/sweep/experiment/<name>.yaml."""

    finding: int | None = None  # the finding of docs/task.md §9 it tests; None for a study of one's own
    title: str | None = None  # one line
    groups: list[Group] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.groups:
            raise ConfigError("groups=[] must list at least one group (data, net, evaluate, ...)")


@dataclass(frozen=True)
class Suite:
    """config/sweep/suite/<name>.yaml."""

    experiments: list[str]  # run in this order
    profile: str  # config/sweep/profile/<profile>.yaml
    report: str | None = None  # reports/<report>/; None: no report (the default pipeline)
    paper: bool = True  # its report judges the study's findings (kind=paper); else a general report
    reproduction_md: str | None = None  # the record the whole suite's report rewrites (04_report.py reproduction_md)


@dataclass(frozen=True)
class Profile:
    """config/sweep/profile/<name>.yaml: overrides per stage family, and 04_report.py's."""

    gen: list[str] = field(default_factory=list)
    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    analyze: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Launcher:
    """config/sweep/launcher/<name>.yaml."""

    overrides: list[str]  # Hydra overrides added to every stage


def value_text(value: object) -> str:
    """A YAML value as Hydra override text: true/false lower-case, others as written."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def load(schema: type[T], name: str) -> T:
    """config/sweep/<kind>/<name>.yaml parsed into `schema`, or a one-line ConfigError naming the file."""
    kind = schema.__name__.lower()  # Experiment -> experiment/, Suite, Profile, Launcher
    path = SWEEP_CONFIG / kind / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (SWEEP_CONFIG / kind).glob("*.yaml"))
        raise ConfigError(f"{kind}={name!r} is unknown; known: {', '.join(known)}")
    try:
        return parse(schema, OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    except ConfigError as err:
        raise ConfigError(f"{path.relative_to(SWEEP_CONFIG.parents[1])}: {err}") from None


def suite_of(name: str) -> Suite:
    """The suite `name`, or a suite of the single experiment `name` (its own report, judged by no paper finding)."""
    if (EXPERIMENTS / f"{name}.yaml").is_file() and not (SWEEP_CONFIG / "suite" / f"{name}.yaml").exists():
        return Suite(experiments=[name], profile="cpu", report=name, paper=False)
    return load(Suite, name)
