"""Stage 3a: autoregressive accuracy of every in-order composition over training (README, "Evaluation")."""

import hydra
from omegaconf import DictConfig, OmegaConf

from net.evaluate import run_inorder
from synthetic.cli import run_or_exit


def main(cfg: DictConfig) -> dict:
    """Evaluate `nckpts` checkpoints of ckpt_dir; writes out_dir/inorder.csv and summary.json, returns the summary."""
    return run_inorder(OmegaConf.to_container(cfg, resolve=True))


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    cli()
