"""Stage 3b: autoregressive accuracy of out-of-order compositions by (#identities, displacement) (README)."""

import hydra

from pipeline import cli, evaluate


@hydra.main(version_base="1.3", config_path="config/eval", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(evaluate.run_outorder, cfg, "outorder")


if __name__ == "__main__":
    cli.check_argv("eval")
    main()
