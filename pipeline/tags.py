"""Run identities: every run's folder is named by its settings, so no two runs of any sweep share one, and each
stage finds the previous one's output.

A run's tag is a readable name built from the settings most often varied (`stepbystep_random50_seed1`,
`<data>_lstm`; `data_tag`, `train_tag`), and, when any other setting that changes the stage's output differs from
the stage's defaults, a short hash of those settings: `stepbystep_random50-3fa91c`. Which settings change a
stage's output is its fingerprint (core/stage.py): everything but its neutral keys (where, how fast) and its
location keys (where its inputs and outputs live). The YAML files leave `tag: null`; `name_run` fills it in Python
on the composed config, in each numbered script and in the sweep driver, which composes the same configs to learn
each run's tag.
"""

import hashlib
import importlib
import json
from contextlib import nullcontext
from functools import lru_cache

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.config import flatten, neutral_keys
from core.stage import CONFIG, DEFAULT_N_FUNCTIONS, STAGES

NAMED_KEYS = {  # config/<folder>/conf.yaml -> the keys its readable tag names
    "gen": ("direct", "seed", "function.split.strategy", "function.split.n_compositions", "function.n_functions"),
    "train": ("data.tag",),
    "eval": ("ckpt_tag",),
    "analyze": ("ckpt_tag",),
}
NAMED_GROUPS = {"train": ("net",)}  # config groups a readable tag names: defaults are compared with that choice
HASH_LENGTH = 6  # hex digits: 16.7 million names, a collision within one study is ~1e-5 even for 20 runs


def data_tag(direct: bool, strategy: str, n_compositions: int, seed: int = 0, n_identity: int = 0,
             n_compositions_inorder: int = 0, n_functions: int = DEFAULT_N_FUNCTIONS) -> str:
    """`stepbystep_random50`, `direct_base0_seed2`, `stepbystep_random_biased25_id2`, `stepbystep_random50_n4`, ...
    (seed 0 and N = 3 are implicit)."""
    tag = f"{'direct' if direct else 'stepbystep'}_{strategy}{n_compositions}"
    tag += f"_id{n_identity}" if strategy == "random_biased" else ""
    tag += f"_in{n_compositions_inorder}" if strategy == "randombase_combo" else ""
    tag += f"_n{n_functions}" if n_functions != DEFAULT_N_FUNCTIONS else ""
    return tag + (f"_seed{seed}" if seed else "")


def train_tag(dataset_tag: str, net_name: str) -> str:
    """The default model (nanogpt) keeps the dataset's tag; any other model is appended: `<data>_lstm`."""
    return dataset_tag if net_name == "nanogpt" else f"{dataset_tag}_{net_name}"


def group_choice(group: str, root: DictConfig) -> str | None:
    """The option of config group `group` this config was composed with: from Hydra's runtime in a job, or from
    the composed config's own `hydra` node (compose(..., return_hydra_config=True), as the sweep driver does)."""
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get(group)
    return OmegaConf.select(root, f"hydra.runtime.choices.{group}", default=None)


def readable_tag(stage: str, root: DictConfig) -> str:
    """The part of a run's tag that names its most varied settings: the dataset's (data_tag), the model's
    (train_tag: `net` is the config group chosen, or the model kind without Hydra's node), the run evaluated."""
    if stage == "gen":
        split = root.function.split
        return data_tag(root.direct, split.strategy, split.n_compositions, root.seed, split.n_identity,
                        split.n_compositions_inorder, root.function.n_functions)
    if stage == "train":
        return train_tag(root.data.tag, group_choice("net", root) or root.net.kind)
    return root.ckpt_tag


def schema_of(stage: str) -> type:
    """The typed config of core.stage.STAGES[stage], its module imported on first use."""
    module, name = STAGES[stage].schema.split(":")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=64)
def stage_defaults(config: str, groups: tuple[str, ...]) -> dict:
    """The stage config `config` ("train/conf") as composed with no overrides but the group choices `groups`,
    flattened and unresolved. Inside a Hydra job (or the driver's compose) the config's folder is already Hydra's
    search path; elsewhere (tests) it is opened here."""
    folder, name = config.split("/")
    opened = GlobalHydra.instance().is_initialized()
    with nullcontext() if opened else initialize_config_dir(version_base="1.3", config_dir=str(CONFIG / folder)):
        return flatten(OmegaConf.to_container(compose(config_name=name, overrides=list(groups)), resolve=False))


def differing_settings(stage: str, root: DictConfig) -> dict:
    """The settings of this run that change the stage's output, are not named by its readable tag, and differ
    from the stage's defaults (as typed: interpolations compare unresolved). {dotted key: value}."""
    s = STAGES[stage]
    named = list(NAMED_KEYS[s.config.split("/")[0]])
    if stage == "gen":  # the tag names these only for the strategies that use them
        strategy = OmegaConf.select(root, "function.split.strategy")
        named += {"random_biased": ["function.split.n_identity"],
                  "randombase_combo": ["function.split.n_compositions_inorder"]}.get(strategy, [])
    groups = tuple(f"{g}={c}" for g in NAMED_GROUPS.get(stage, ()) if (c := group_choice(g, root)) is not None)
    current = flatten({k: v for k, v in OmegaConf.to_container(root, resolve=False).items() if k != "hydra"})
    defaults = stage_defaults(s.config, groups)
    ignored = {"tag", *neutral_keys(schema_of(stage)), *s.location_keys, *named}
    absent = "<absent>"
    return {k: current.get(k, absent) for k in sorted(current.keys() | defaults.keys())
            if not any(k == i or k.startswith(f"{i}.") for i in ignored)
            and current.get(k, absent) != defaults.get(k, absent)}


def name_run(stage: str, root: DictConfig) -> None:
    """Give a composed config whose `tag` is null (the YAML's default) its run's tag, before it is resolved (its
    out_dir and wandb name interpolate it): the readable tag, plus `-<hash>` of differing_settings when any. Each
    numbered script and the sweep driver call this on the config they composed, so both name a run alike."""
    if root.tag is not None:
        return
    readable, differing = readable_tag(stage, root), differing_settings(stage, root)
    digest = hashlib.sha256(json.dumps(differing, sort_keys=True, default=str).encode()).hexdigest()
    root.tag = f"{readable}-{digest[:HASH_LENGTH]}" if differing else readable
