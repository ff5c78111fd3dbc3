"""The project's benchmark script: `python benchmarks/bench.py {generate,train,decode,all}`.

Every section measures the project's path and a straightforward reference path in the same run and prints
their ratio, so figures are comparable across machines.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from benchmarks import bench_generate  # noqa: E402

SECTIONS = {"generate": bench_generate.run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("section", choices=[*SECTIONS, "all"], nargs="?", default="all")
    parser.add_argument("--documents", type=int, default=120_000, help="generate: documents per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    args = parser.parse_args()
    for name, run in SECTIONS.items():
        if args.section in (name, "all"):
            run(args)


if __name__ == "__main__":
    main()
