"""Compare two pipeline output trees (e.g. the tiny suite run before and after a refactor):

    python tests/compare_outputs.py BEFORE_DIR AFTER_DIR

Datasets (every file of data/<tag>/), result CSVs (results/<tag>/*.csv, analysis/*.csv included) and figure CSVs
(reports/<name>/*.csv) must be byte-identical; checkpoints must hold identical weights, optimizer state and torch
RNG state, compared with torch.equal (their config entries name different folders, and the numpy and Python
global RNG states they also carry for resuming are never seeded, so they differ between any two processes).
manifest.json is not compared: it records the code version that wrote the folder.
Prints one line per file and exits 1 when anything differs or is missing.
"""

import sys
from pathlib import Path

import torch

BYTE_IDENTICAL = ("data/*/*", "results/*/*.csv", "results/*/analysis/*.csv", "reports/*/*.csv")


def tensors(obj: object) -> list[torch.Tensor]:
    """Every tensor inside a nested checkpoint, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for key in sorted(obj, key=str) for t in tensors(obj[key])]
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in tensors(item)]
    return []


def same_checkpoint(a: Path, b: Path) -> bool:
    ca, cb = (torch.load(p, weights_only=True, map_location="cpu") for p in (a, b))
    ta = tensors([ca["model"], ca["optimizer"], ca["rng"]["torch"]])
    tb = tensors([cb["model"], cb["optimizer"], cb["rng"]["torch"]])
    return len(ta) == len(tb) and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(ta, tb, strict=True))


def compare(before: Path, after: Path) -> list[str]:
    """One line per compared file: 'same <path>', 'DIFFERS <path>' or 'MISSING <path>'."""
    lines = []
    files = sorted({p for pattern in (*BYTE_IDENTICAL, "ckpts/*/ckpt_*.pt") for p in before.rglob(pattern)})
    for path in files:
        if not path.is_file() or path.name.startswith(".") or path.name == "manifest.json":
            continue
        rel = path.relative_to(before)
        other = after / rel
        if not other.is_file():
            lines.append(f"MISSING {rel}")
        elif path.suffix == ".pt":
            lines.append(f"{'same' if same_checkpoint(path, other) else 'DIFFERS'} {rel}")
        else:
            lines.append(f"{'same' if path.read_bytes() == other.read_bytes() else 'DIFFERS'} {rel}")
    return lines


if __name__ == "__main__":
    lines = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(lines))
    bad = [line for line in lines if not line.startswith("same")]
    print(f"{len(lines) - len(bad)} of {len(lines)} files identical")
    sys.exit(1 if bad or not lines else 0)
