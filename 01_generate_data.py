"""Stage 1: generate a function-composition dataset into data/<tag>/ (README, "Generating data")."""

import hydra
from omegaconf import DictConfig

from pipeline import generate
from pipeline.cli import check_argv, run_stage


@hydra.main(version_base="1.3", config_path="config/gen", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(generate.run, cfg, "gen")


if __name__ == "__main__":
    check_argv("gen", "conf")
    main()
