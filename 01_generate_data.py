"""Stage 1: generate a function-composition dataset into data/<tag>/ (README, "Generating data")."""

import hydra

from pipeline import cli, generate


@hydra.main(version_base="1.3", config_path="config/gen", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(generate.run, cfg, "gen")


if __name__ == "__main__":
    cli.check_argv("gen")
    main()
