"""Stage 2: train a nanoGPT or an LSTM on data/<tag>/ into ckpts/<tag>/ (README, "Training")."""

import hydra

from pipeline import cli, train


@hydra.main(version_base="1.3", config_path="config/train", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(train.run, cfg, "train")


if __name__ == "__main__":
    cli.check_argv("train")
    main()
