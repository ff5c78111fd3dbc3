"""Stage 3a: autoregressive accuracy of every in-order composition over training (README, "Evaluation")."""

import hydra
from omegaconf import DictConfig

from pipeline.cli import check_argv, run_stage
from pipeline.evaluate import run_inorder


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(run_inorder, cfg, "inorder")


if __name__ == "__main__":
    check_argv("eval", "conf")
    main()
