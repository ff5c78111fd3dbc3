"""Stage 5: mechanistic analysis of one nanoGPT checkpoint: attention, probes, ablations (README, "Analysis")."""

import hydra
from omegaconf import DictConfig

from pipeline import analyze
from pipeline.cli import check_argv, run_stage


@hydra.main(version_base="1.3", config_path="config/analyze", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(analyze.run, cfg, "analyze")


if __name__ == "__main__":
    check_argv("analyze", "conf")
    main()
