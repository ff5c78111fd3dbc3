"""`python -m sweep SUITE [EXPERIMENT ...] [profile=P] [launcher=L] [workdir=DIR] [k=v ...]` (see sweep.driver)."""

import sys

from pipeline.cli import run_or_exit
from sweep.driver import main

sys.exit(run_or_exit(main, sys.argv[1:]))
