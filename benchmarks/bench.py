"""The project's benchmark script: `python benchmarks/bench.py {generate,train,decode,all}`.

Every section measures the project's path and a straightforward reference path in the same run and prints
their ratio, so figures are comparable across machines.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from benchmarks import bench_decode, bench_generate, bench_train  # noqa: E402

SECTIONS = {"generate": bench_generate.run, "train": bench_train.run, "decode": bench_decode.run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("section", choices=[*SECTIONS, "all"], nargs="?", default="all")
    parser.add_argument("--documents", type=int, default=120_000, help="generate: documents per timed call")
    parser.add_argument("--train-steps", type=int, default=1000, help="train: timed steps of the project's trainer")
    parser.add_argument("--ckpt-dir", default="ckpts/stepbystep_random50", help="decode: a trained run to time too")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    args = parser.parse_args()
    for name, run in SECTIONS.items():
        if args.section in (name, "all"):
            run(args)


if __name__ == "__main__":
    main()
