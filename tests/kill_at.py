"""Run a numbered script and SIGKILL it at a chosen point, as `kill -9` would (used by tests/test_safety.py).

    python tests/kill_at.py WHEN SCRIPT [OVERRIDES ...]

WHEN is `replace:<suffix>` (right after a rename onto a path ending in <suffix>, e.g. inorder.csv),
`replace-to:<part>` (right after a rename onto a path containing <part>, e.g. '.data.old-': the folder set aside)
or `mkdir:<part>` (right after creating a folder whose path contains <part>, e.g. '.staging-').
"""

import os
import runpy
import signal
import sys
from pathlib import Path

when, script, *overrides = sys.argv[1:]
kind, arg = when.split(":", 1)
real_replace, real_mkdir = os.replace, Path.mkdir


def hits(path: object, name: str) -> bool:
    return kind == name and (str(path).endswith(arg) if name == "replace" else arg in str(path))


def replace(src, dst, *args, **kwargs) -> None:
    real_replace(src, dst, *args, **kwargs)
    if hits(dst, "replace") or hits(dst, "replace-to"):
        os.kill(os.getpid(), signal.SIGKILL)


def mkdir(self: Path, *args, **kwargs) -> None:
    real_mkdir(self, *args, **kwargs)
    if hits(self, "mkdir"):
        os.kill(os.getpid(), signal.SIGKILL)


os.replace, Path.mkdir = replace, mkdir
sys.argv = [script, *overrides]
sys.path.insert(0, str(Path(script).resolve().parent))
runpy.run_path(script, run_name="__main__")
