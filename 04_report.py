"""Stage 4: figures, findings.md (a verdict per finding of docs/task.md §9) and REPRODUCTION.md from evaluated runs
(README, "Reports")."""

import hydra

from pipeline import cli, report


@hydra.main(version_base="1.3", config_path="config/report", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(report.run, cfg)


if __name__ == "__main__":
    cli.check_argv("report")
    main()
