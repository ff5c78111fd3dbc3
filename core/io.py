"""Writing outputs so that a reader never sees half a file, two runs never write one folder, and a killed run
leaves nothing that a rerun would trust.

- `atomic_file(path)`: write a temporary sibling (`.<name>.tmp-<pid>`), flush and fsync it, then `os.replace`.
  `write_bytes`, `write_text` and `write_json` go through it; so do checkpoints.
- `OutputLock(out_dir)`: one writer per output folder. An exclusive `flock` on a hidden sibling file
  (`.<name>.lock`) that the kernel releases when the process dies, so a killed run never leaves a stale lock.
  Taking it also clears what killed writers of that folder left behind; a writer that fails (a refusal under
  the lock) removes the lock file it created, or puts back the bytes of the one it found.
- `StagedFolder(out_dir)`: a stage that owns its whole folder writes it into a temporary sibling
  (`.<name>.staging-<pid>`) and `publish()` swaps it in: the folder appears whole or not at all.
"""

import csv
import fcntl
import glob
import io
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from core.errors import OutputError

LEFTOVER_SUFFIXES = (".staging-", ".tmp-", ".old-")  # what writers that were killed leave beside their folder


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces `path` only once the block finishes without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def json_text(obj: Any) -> str:
    """The project's JSON layout: one-space indent, a final newline."""
    return json.dumps(obj, indent=1) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json_text(obj))


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()


def _sibling(out_dir: Path, suffix: str) -> Path:
    return out_dir.parent / f".{out_dir.name}{suffix}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class OutputLock:
    """Exclusive right to write `out_dir` (context manager). A second writer gets a one-line OutputError.

    On entry, with the lock held (so no live writer owns them): a folder that a killed swap left aside
    (`.<name>.old-*` while `out_dir` is missing) is put back, and the temporary siblings of killed writers are
    removed, both beside the folder and inside it.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.path = _sibling(self.out_dir, ".lock")
        self.created = False  # this writer created the lock file
        self.found = ""  # what the lock file held before this writer wrote its pid there

    def __enter__(self) -> "OutputLock":
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.created = not self.path.exists()
        self.file = open(self.path, "a+")  # noqa: SIM115 (held until __exit__)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise OutputError(f"out_dir={str(self.out_dir)!r} is being written by {holder}; wait for it to finish, "
                              "or write this run elsewhere with another tag= (or out_dir=)") from None
        if not self.path.exists() or not os.path.samestat(os.stat(self.path), os.fstat(self.file.fileno())):
            self.file.close()  # a writer that failed removed the file we opened meanwhile: take a new one
            return self.__enter__()
        self.file.seek(0)
        self.found = self.file.read()
        self._write(f"pid {os.getpid()}")
        self._recover()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.created:  # refused or failed: no lock file left that it brought
            self.path.unlink()  # (a writer that opened it meanwhile sees that and takes a new one)
        elif exc[0] is not None:  # nor a lock file changed that it found
            self._write(self.found)
        self.file.close()  # releases the lock; the lock file of a run that finished stays

    def _write(self, text: str) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.file.write(text)
        self.file.flush()

    def _recover(self) -> None:
        out, parent = self.out_dir, self.out_dir.parent
        name = glob.escape(out.name)
        aside = sorted(parent.glob(f".{name}.old-*"))
        if aside and not out.exists():
            os.replace(aside[-1], out)
            print(f"note: restored {out} from {aside[-1].name}, left aside by a run that was killed", file=sys.stderr)
        leftovers = [*(p for s in LEFTOVER_SUFFIXES for p in parent.glob(f".{name}{s}*")),
                     *(out.glob(".*.tmp-*") if out.is_dir() else [])]
        for leftover in leftovers:
            _remove(leftover)
        if leftovers:
            print(f"note: removed {', '.join(p.name for p in leftovers)}: left behind by a run that was killed",
                  file=sys.stderr)


class StagedFolder:
    """A folder built in a temporary sibling and swapped into `out_dir` whole. Use inside an OutputLock."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.path = _sibling(self.out_dir, f".staging-{os.getpid()}")
        _remove(self.path)
        self.path.mkdir(parents=True)

    def publish(self, carry: Iterable[str] = ()) -> None:
        """Swap the staged folder in. `carry`: files of the current out_dir that another writer owns (e.g. the
        sweep driver's timing.json), hard-linked into the new folder first so they survive the swap."""
        out = self.out_dir
        for name in carry:
            if (out / name).is_file() and not (self.path / name).exists():
                os.link(out / name, self.path / name)
        aside = _sibling(out, f".old-{os.getpid()}")
        if out.exists():
            os.replace(out, aside)  # a kill between these two renames is undone by the next OutputLock
        os.replace(self.path, out)
        _remove(aside)

    def __enter__(self) -> "StagedFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        _remove(self.path)  # nothing left after publish
