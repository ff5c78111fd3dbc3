"""manifest.json: what an output folder holds, in one record per stage that wrote there, and the one reader of it.

    {"format": 1, "entries": {"<stage>": {
        "stage": "train", "config": {...}, "fingerprint": {...},
        "upstream": {"folder": "data/stepbystep_random50", "fingerprint": {...}} | null,
        "files": {"ckpt_0.pt": "<sha256>", ...}, "complete": true,
        "ran": {"device": "cpu", "precision": "float32"} | null,
        "code": {"commit": "<git commit>" | null, "dirty": false | null, "torch": ..., "numpy": ..., "hydra": ...}}}}

A stage writes its entry after every file it covers (`write_entry`), so a kill in between leaves files the entry does
not vouch for; the two evaluations share results/<tag>/ and keep each other's entry. `read_entry` is the one reader:
every stage decides skip, resume, replace or refuse from it, and the report reads only the files it covers
(`verified`). A folder written before manifests existed holds none; `python -m pipeline.migrate FOLDER` adds one.
"""

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from core.errors import OutputError
from core.io import json_text, write_text

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One stage's record of what it wrote in a folder."""

    stage: str  # core.stage.STAGES' key ("gen", "train", "inorder", ...) or "report"
    config: dict  # the whole config the stage ran with
    fingerprint: dict  # what identifies its output (Stage.fingerprint, plus what the stage adds)
    upstream: dict | None  # {"folder", "fingerprint"} of the output it read, when one
    files: dict[str, str]  # name -> sha256 of every file it covers
    complete: bool  # the output is whole (training: at its last step)
    ran: dict | None  # the device that ran and the precision it computed in, for stages that run a model
    code: dict  # the code version and the versions of torch, numpy and hydra


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of this checkout and whether it has uncommitted changes (None outside a checkout), and the
    versions of the libraries that change the numbers."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), *args],
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    versions = {}
    for package, name in (("torch", "torch"), ("numpy", "numpy"), ("hydra-core", "hydra")):
        try:
            versions[name] = version(package)
        except PackageNotFoundError:
            versions[name] = None
    return {"commit": commit, "dirty": None if status is None else bool(status), **versions}


def read_entries(folder: Path) -> dict[str, Entry]:
    """Every stage's entry in folder's manifest.json; {} when it has none. OutputError when it cannot be read."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {stage: Entry(**entry) for stage, entry in raw["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise OutputError(f"{path} cannot be read as a manifest; move the folder aside, or delete it to write it "
                          "anew") from None


def read_entry(folder: Path, stage: str) -> Entry | None:
    """`stage`'s entry in folder's manifest.json, or None."""
    return read_entries(folder).get(stage)


def changed(folder: Path, entry: Entry) -> list[str]:
    """The files the entry covers that are missing or no longer match their sha256."""
    return [name for name, digest in entry.files.items()
            if not (Path(folder) / name).is_file() or sha256(Path(folder) / name) != digest]


def verified(folder: Path, entry: Entry) -> bool:
    """The entry covers files, and every one is there, unchanged."""
    return bool(entry.files) and not changed(folder, entry)


def write_entry(folder: Path, stage: str, *, config: dict, fingerprint: dict, files: list[str],
                upstream: dict | None = None, complete: bool = True, ran: dict | None = None,
                known: dict[str, str] | None = None) -> Entry:
    """Write `stage`'s entry (the folder's other entries kept) covering `files`, hashed now; `known`: hashes already
    computed of files that have not changed since (a training run's earlier checkpoints)."""
    folder = Path(folder)
    known = known or {}
    entry = Entry(stage=stage, config=config, fingerprint=fingerprint, upstream=upstream,
                  files={name: known.get(name) or sha256(folder / name) for name in files}, complete=complete,
                  ran=ran, code=code_version())
    entries = {name: asdict(e) for name, e in read_entries(folder).items()} | {stage: asdict(entry)}
    write_text(folder / MANIFEST, json_text({"format": FORMAT, "entries": entries}))
    return entry
