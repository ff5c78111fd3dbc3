"""Stage 3b: autoregressive accuracy of out-of-order compositions by (#identities, displacement) (README)."""

import hydra
from omegaconf import DictConfig, OmegaConf

from net.evaluate import run_outorder
from synthetic.cli import run_or_exit


def main(cfg: DictConfig) -> dict:
    """Evaluate one checkpoint of ckpt_dir; writes out_dir/outorder.csv and summary.json, returns the summary."""
    return run_outorder(OmegaConf.to_container(cfg, resolve=True))


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf_o")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    cli()
