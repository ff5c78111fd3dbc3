"""Stage 5: mechanistic analysis of one nanoGPT checkpoint: attention, probes, ablations (README, "Analysis")."""

import hydra

from pipeline import analyze, cli


@hydra.main(version_base="1.3", config_path="config/analyze", config_name="conf")
def main(cfg) -> None:
    cli.run_stage(analyze.run, cfg, "analyze")


if __name__ == "__main__":
    cli.check_argv("analyze")
    main()
