"""Checkpoints: `ckpt_<step>.pt` files of plain tensors and JSON-able values, written atomically, loaded safely,
verified against the checksum they carry, and the RNG states they carry so that a resumed run is bit-identical.

Format 2 stores "checksum": the sha256 of every other entry (each tensor's dtype, shape and bytes, each plain
value's repr, in order), written by `save_checkpoint` and verified by `load_checkpoint`: a flipped bit anywhere
(weights, optimizer state, RNG states, config) is a CheckpointError, never a model that silently computes garbage.
Format 1 (written before checksums) still loads, unverified, with a one-time warning; resuming such a run writes
format 2 from then on.
"""

import hashlib
import os
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

from core.errors import PipelineError, first_line
from core.io import atomic_file
from net.device import recorded_precision
from net.model import GPT, LSTM, build_model

FORMAT_VERSION = 2
UNVERIFIED_VERSION = 1  # checkpoints without a checksum: read, with a warning
CKPT_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
REQUIRED_KEYS = ("format_version", "step", "model_args", "model", "optimizer", "data", "train_config", "rng")


class CheckpointError(PipelineError):
    """A checkpoint that is missing, truncated, corrupt or of an unknown format."""


def trained_precision(ckpt: dict) -> str:
    """What the run that wrote `ckpt` computed in: "ran" records it; older checkpoints have it inferred."""
    return (ckpt.get("ran") or {}).get("precision") or recorded_precision(ckpt["train_config"])


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"ckpt_{step}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every ckpt_<step>.pt in `ckpt_dir`, sorted by step; [] when the folder does not exist."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), ckpt_dir / m.group(0)) for m in map(CKPT_NAME.match, os.listdir(ckpt_dir)) if m]
    return sorted(found)


def _feed(digest, value: object) -> None:
    """Hash `value` (nested dicts, lists, tensors, plain values) into the hashlib object digest: structure, types
    and contents."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"tensor {t.dtype} {list(t.shape)}:".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}:".encode())
        for key, item in value.items():
            digest.update(f"{key!r}=".encode())
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__} {len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def checksum(ckpt: dict) -> str:
    """sha256 of every entry of ckpt but "checksum" itself."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in ckpt.items() if k != "checksum"})
    return digest.hexdigest()


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write `ckpt` with its checksum (format 2) to `path`, atomically."""
    ckpt = {**ckpt, "format_version": FORMAT_VERSION}
    ckpt["checksum"] = checksum(ckpt)
    with atomic_file(path) as f:
        torch.save(ckpt, f)


_unverified_warned: set[Path] = set()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights_only=True (no pickle code runs) and verify the checksum; CheckpointError when unreadable,
    incomplete or changed since it was written."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first_line(err)})") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    version = ckpt["format_version"]
    if version == UNVERIFIED_VERSION:
        if path not in _unverified_warned:
            _unverified_warned.add(path)
            print(f"warning: checkpoint {path} has no checksum (format_version=1, written before checksums): "
                  "loaded unverified", file=sys.stderr)
        return ckpt
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format_version={version!r}, this code reads "
                              f"{UNVERIFIED_VERSION} and {FORMAT_VERSION}")
    if ckpt.get("checksum") != checksum(ckpt):
        raise CheckpointError(f"checkpoint {path} is corrupt: its contents no longer match the checksum written "
                              "with it")
    return ckpt


def load_latest_checkpoint(ckpt_dir: str | Path, map_location: str | torch.device = "cpu") -> dict | None:
    """The newest readable checkpoint in `ckpt_dir` (None when there is none); unreadable ones are reported."""
    found = list_checkpoints(ckpt_dir)
    for _, path in reversed(found):
        try:
            return load_checkpoint(path, map_location)
        except CheckpointError as err:
            print(f"warning: {err}; falling back to an older checkpoint", file=sys.stderr)
    if found:
        raise CheckpointError(f"no readable checkpoint among the {len(found)} in {ckpt_dir}")
    return None


def load_model(ckpt: dict, device: str | torch.device = "cpu") -> GPT | LSTM:
    """Rebuild the model from the checkpoint's own model_args, load its weights, eval mode, on `device`."""
    model = build_model(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


def rng_state() -> dict:
    """Every RNG a run may draw from (dropout uses torch's), as tensors and plain values (weights_only-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss,
                  "gauss": gauss},
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
