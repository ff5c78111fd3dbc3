"""Run tags derived from a run's settings, so sweeps never collide and each stage finds the previous one's output.

Registered as OmegaConf resolvers (`${data_tag:...}`, `${train_tag:...}`) by `pipeline.cli`, and called by the
sweep driver, so the YAML and the driver always agree.
"""

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

DEFAULT_N_FUNCTIONS = 3  # config/gen/conf.yaml's function.n_functions: implicit in tags, any other N is named


def data_tag(direct: bool, strategy: str, n_compositions: int, seed: int = 0, n_identity: int = 0,
             n_compositions_inorder: int = 0, n_functions: int = DEFAULT_N_FUNCTIONS) -> str:
    """`stepbystep_random50`, `direct_base0_seed2`, `stepbystep_random_biased25_id2`, `stepbystep_random50_n4`, ...
    (seed 0 and N = 3 are implicit)."""
    tag = f"{'direct' if direct else 'stepbystep'}_{strategy}{n_compositions}"
    if strategy == "random_biased":
        tag += f"_id{n_identity}"
    if strategy == "randombase_combo":
        tag += f"_in{n_compositions_inorder}"
    if n_functions != DEFAULT_N_FUNCTIONS:
        tag += f"_n{n_functions}"
    return tag + (f"_seed{seed}" if seed else "")


def train_tag(dataset_tag: str, net_name: str) -> str:
    """The default model (nanogpt) keeps the dataset's tag; any other model is appended: `<data>_lstm`."""
    return dataset_tag if net_name == "nanogpt" else f"{dataset_tag}_{net_name}"


def net_choice(fallback: str) -> str:
    """`${net_choice:${net.kind}}` in config/train/conf.yaml: the `net` config group chosen (nanogpt, lstm,
    nanogpt_deep, ...) when Hydra launched the run; `fallback` for configs composed without Hydra's runtime (tests)."""
    return HydraConfig.get().runtime.choices["net"] if HydraConfig.initialized() else fallback


def register_resolvers() -> None:
    for name, fn in (("data_tag", data_tag), ("train_tag", train_tag), ("net_choice", net_choice)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
