"""Stage 5: mechanistic analysis of one nanoGPT checkpoint: attention, probes, ablations (README, "Analysis")."""

import hydra
from omegaconf import DictConfig, OmegaConf

from analysis.stage import run_analysis
from synthetic.cli import run_or_exit


def main(cfg: DictConfig) -> dict:
    """Analyze the checkpoint; writes out_dir/*.csv, *.png and summary.json, returns the summary."""
    return run_analysis(OmegaConf.to_container(cfg, resolve=True))


@hydra.main(version_base="1.3", config_path="config/analyze", config_name="conf")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    cli()
