"""A trained model's generation next to the truth, for one composition and input (docs/reference.md, "Sampling")."""

import hydra

from pipeline import cli, sample


@hydra.main(version_base="1.3", config_path="config/sample", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(sample.run, cfg)


if __name__ == "__main__":
    cli.check_argv("sample")
    main()
