"""`python -m sweep SUITE [EXPERIMENT ...] [profile=P] [launcher=L] [workdir=DIR] [k=v ...]` (see sweep.driver)."""

import sys

from sweep.driver import main
from synthetic.cli import run_or_exit

sys.exit(run_or_exit(main, sys.argv[1:]))
