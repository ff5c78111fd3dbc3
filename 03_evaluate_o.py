"""Stage 3b: autoregressive accuracy of out-of-order compositions by (#identities, displacement) (README)."""

import hydra
from omegaconf import DictConfig

from pipeline.cli import check_argv, run_stage
from pipeline.evaluate import run_outorder


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(run_outorder, cfg, "outorder")


if __name__ == "__main__":
    check_argv("eval", "conf")
    main()
