"""Stage 4: figures, findings.md (a verdict per finding of SPEC.md §9) and REPRODUCTION.md from evaluated runs
(README, "Reports")."""

import hydra
from omegaconf import DictConfig, OmegaConf

from report.build import build_report
from synthetic.cli import run_or_exit


def main(cfg: DictConfig) -> dict:
    """Read results_dir/<include>/, write out_dir/ and reproduction_md; returns the verdicts and figures written."""
    return build_report(OmegaConf.to_container(cfg, resolve=True))


@hydra.main(version_base="1.3", config_path="config/report", config_name="conf")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    cli()
