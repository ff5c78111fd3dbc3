"""Stage 2: train a nanoGPT or an LSTM on data/<tag>/ into ckpts/<tag>/ (README, "Training")."""

import hydra
from omegaconf import DictConfig

from pipeline import train
from pipeline.cli import check_argv, run_stage


@hydra.main(version_base="1.3", config_path="config/train", config_name="conf")
def main(cfg: DictConfig) -> None:
    run_stage(train.run, cfg, "train")


if __name__ == "__main__":
    check_argv("train", "conf")
    main()
