"""Stage 2: train a nanoGPT or an LSTM on data/<tag>/ into ckpts/<tag>/ (see README, "Training")."""

import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from net.train import train
from synthetic.cli import run_or_exit

NET_CONFIGS = Path(__file__).resolve().parent / "config" / "train" / "net"


def main(cfg: DictConfig) -> dict:
    """Train one model; returns the final evaluation metrics (also in ckpts/<tag>/metrics.jsonl)."""
    return train(cfg)


def check_net_override(argv: list[str]) -> None:
    """Hydra reports an unknown config group option in a dozen lines; say it in one, like every other bad value."""
    available = sorted(p.stem for p in NET_CONFIGS.glob("*.yaml"))
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "net" and re.fullmatch(r"[\w.-]+(,[\w.-]+)*", value):  # net=a or sweep net=a,b
            for choice in value.split(","):
                if choice not in available:
                    print(f"error: net={choice} is not one of {', '.join(available)} (config/train/net/)",
                          file=sys.stderr)
                    sys.exit(2)


@hydra.main(version_base="1.3", config_path="config/train", config_name="conf")
def cli(cfg: DictConfig) -> None:
    run_or_exit(main, cfg)


if __name__ == "__main__":
    check_net_override(sys.argv[1:])
    cli()
