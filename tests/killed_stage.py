"""Run a stage as its numbered script does, and die by SIGKILL in the middle of writing one file: a kill at a
known point.

    python tests/killed_stage.py gen|train NAME OVERRIDE ...

The process kills itself when it writes a file called NAME: written in one go (`Path.write_bytes`, as the files of
a staged dataset folder are), after half of its bytes; written atomically (a temporary file renamed into place
with `os.replace`, as checkpoints are), once the temporary file is cut to half its size, before the rename.
Everything the stage did before that file has happened; NAME itself does not exist under its own name.
"""

import importlib
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import stage_config  # noqa: E402

STAGES = {"gen": "pipeline.generate", "train": "pipeline.train"}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(stage: str, name: str, overrides: list[str]) -> None:
    rename, write_bytes = os.replace, Path.write_bytes

    def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if Path(dst).name == name:
            os.truncate(src, os.path.getsize(src) // 2)
            die()
        rename(src, dst)

    def write_half(path: Path, data: bytes) -> int:
        if path.name == name:
            write_bytes(path, data[: len(data) // 2])
            die()
        return write_bytes(path, data)

    os.replace, Path.write_bytes = replace, write_half
    importlib.import_module(STAGES[stage]).run(stage_config(stage, overrides))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
