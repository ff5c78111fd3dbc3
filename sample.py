"""A trained model's generation next to the truth, for one composition and input (docs/reference.md, "Sampling")."""

import hydra
from omegaconf import DictConfig

from pipeline import sample
from pipeline.cli import check_argv, run_stage


@hydra.main(version_base="1.3", config_path="config/sample", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(sample.run, cfg)


if __name__ == "__main__":
    check_argv("sample", "conf")
    main()
