"""Stage 4: figures, findings.md (a verdict per finding of docs/task.md §9) and REPRODUCTION.md from evaluated runs
(README, "Reports")."""

import hydra
from omegaconf import DictConfig

from pipeline import report
from pipeline.cli import check_argv, run_stage


@hydra.main(version_base="1.3", config_path="config/report", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(report.run, cfg)


if __name__ == "__main__":
    check_argv("report", "conf")
    main()
