"""Stage 3a: autoregressive accuracy of every in-order composition over training (README, "Evaluation")."""

import hydra

from pipeline import cli, evaluate


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(evaluate.run_inorder, cfg, "inorder")


if __name__ == "__main__":
    cli.check_argv("eval")
    main()
