"""A dataset on disk (SPEC.md §6): generate it from a config, write it atomically, read it back verified.

Folder layout (`data/<tag>/`):
  train.npy, eval_train.npy, eval_all.npy  (documents, doc_len) token ids, smallest unsigned dtype
  vocab.json                               token strings, index = token id
  functions.json                           {"levels": [[{"kind": "identity"}, {"kind": ..., "table": [...]}, ...]]}
  train_compositions.json                  training compositions, each a list of [level, function] per slot
  meta.json                                format version, resolved config, sizes, shape/dtype/sha256 of every file
"""

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthetic.compositions import STRATEGIES, inorder_compositions, training_compositions
from synthetic.config import get_bool, get_choice, get_int, lookup
from synthetic.documents import sample_documents
from synthetic.errors import ConfigError, DatasetError
from synthetic.functions import FunctionTables, sample_functions
from synthetic.task import TaskSpec

FORMAT_VERSION = 1
ARRAYS = ("train", "eval_train", "eval_all")
JSON_FILES = ("vocab.json", "functions.json", "train_compositions.json")
LOCATION_KEYS = ("out_dir", "overwrite", "skip_complete")  # where and whether to write: not what a dataset is


@dataclass(frozen=True)
class GenerationSettings:
    """A validated generation config."""

    seed: int
    spec: TaskSpec
    ndocuments: int
    neval_documents: int
    with_replacement: bool
    repeat: bool
    permute_levels: frozenset[int]
    strategy: str
    n_compositions: int
    n_identity: int
    n_compositions_inorder: int


def parse_generation_config(cfg: dict) -> GenerationSettings:
    """Check every key of a generation config; the first problem becomes a one-line ConfigError."""
    spec = TaskSpec(
        n_alphabets=get_int(cfg, "n_alphabets", minimum=2),
        seq_len=get_int(cfg, "seq_len", minimum=1),
        depth=get_int(cfg, "function.depth", minimum=1),
        n_functions=get_int(cfg, "function.n_functions", minimum=1),
        direct=get_bool(cfg, "direct"),
    )
    with_replacement = get_bool(cfg, "with_replacement")
    if not with_replacement and spec.seq_len > spec.n_alphabets:
        raise ConfigError(
            f"seq_len={spec.seq_len} must be <= n_alphabets={spec.n_alphabets} when with_replacement=false"
        )
    permute = get_bool(cfg, "function.permute")
    levels = lookup(cfg, "function.permute_levels")
    if levels is not None and not permute:
        raise ConfigError(f"function.permute_levels={levels} needs function.permute=true")
    if permute:
        levels = [0] if levels is None else levels
        if not isinstance(levels, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < spec.depth for d in levels
        ):
            raise ConfigError(
                f"function.permute_levels={levels} must be a list of levels in [0, {spec.depth - 1}]"
            )
        if spec.seq_len < 2:
            raise ConfigError(f"seq_len={spec.seq_len} must be >= 2 when a level permutes positions")
    strategy = get_choice(cfg, "function.split.strategy", STRATEGIES)
    at_least_one = strategy in ("random", "random_biased")
    return GenerationSettings(
        seed=get_int(cfg, "seed", minimum=0),
        spec=spec,
        ndocuments=get_int(cfg, "ndocuments", minimum=1),
        neval_documents=get_int(cfg, "neval_documents", minimum=1),
        with_replacement=with_replacement,
        repeat=get_bool(cfg, "function.repeat"),
        permute_levels=frozenset(levels or ()),
        strategy=strategy,
        n_compositions=get_int(cfg, "function.split.n_compositions", minimum=1 if at_least_one else 0),
        n_identity=get_int(cfg, "function.split.n_identity", minimum=0, maximum=spec.depth),
        n_compositions_inorder=get_int(cfg, "function.split.n_compositions_inorder", minimum=0),
    )


@dataclass(frozen=True)
class Dataset:
    """A dataset in memory, as generated or as read back by `load_dataset`."""

    path: Path | None
    meta: dict
    config: dict
    spec: TaskSpec
    vocab: list[str]
    functions: FunctionTables
    train_compositions: np.ndarray  # (C, L, 2) int64
    train: np.ndarray  # (ndocuments, doc_len)
    eval_train: np.ndarray  # (neval_documents, doc_len)
    eval_all: np.ndarray  # (neval_documents, doc_len)

    @property
    def direct(self) -> bool:
        return self.spec.direct


def dataset_config(cfg: dict) -> dict:
    """The config as stored in meta.json: what the dataset is (validated, permute_levels resolved)."""
    settings = parse_generation_config(cfg)
    config = {k: v for k, v in cfg.items() if k not in LOCATION_KEYS}
    config["function"] = {**config["function"], "permute_levels": sorted(settings.permute_levels) or None}
    return config


def is_complete(out_dir: str | os.PathLike, cfg: dict) -> bool:
    """True when `out_dir` already holds the dataset this config describes (its meta.json says so)."""
    meta = Path(out_dir) / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("config") == dataset_config(cfg)


def generate_dataset(cfg: dict) -> Dataset:
    """Build a whole dataset in memory from a generation config (a plain dict)."""
    s = parse_generation_config(cfg)
    spec = s.spec
    # Independent streams: changing ndocuments never changes the functions or the split.
    fn_rng, split_rng, train_rng, eval_train_rng, eval_all_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(s.seed).spawn(5)
    )
    functions = sample_functions(fn_rng, spec, s.permute_levels, s.repeat)
    train_comps = training_compositions(
        split_rng, spec.depth, spec.n_functions, s.strategy, s.n_compositions, s.n_identity,
        s.n_compositions_inorder,
    )
    inorder = inorder_compositions(spec.depth, spec.n_functions)
    arrays = {
        "train": sample_documents(train_rng, spec, functions, train_comps, s.ndocuments, s.with_replacement),
        "eval_train": sample_documents(
            eval_train_rng, spec, functions, train_comps, s.neval_documents, s.with_replacement
        ),
        "eval_all": sample_documents(eval_all_rng, spec, functions, inorder, s.neval_documents, s.with_replacement),
    }
    config = dataset_config(cfg)
    meta = {
        "format_version": FORMAT_VERSION,
        "config": config,
        "vocab_size": spec.vocab_size,
        "doc_len": spec.doc_len,
        "prompt_len": spec.prompt_len,
        "n_train_compositions": len(train_comps),
    }
    return Dataset(None, meta, config, spec, spec.vocab(), functions, train_comps, **arrays)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _compositions_json(comps: np.ndarray) -> str:
    rows = [json.dumps(c.tolist(), separators=(",", ":")) for c in comps]
    return "[\n" + ",\n".join(rows) + "\n]\n"


def dataset_files(ds: Dataset) -> dict[str, bytes]:
    """Every file of the dataset folder, name -> bytes (deterministic: same dataset, same bytes)."""
    files = {f"{name}.npy": _npy_bytes(getattr(ds, name)) for name in ARRAYS}
    files["vocab.json"] = (json.dumps(ds.vocab) + "\n").encode()
    files["functions.json"] = (json.dumps(ds.functions.to_json(), indent=1) + "\n").encode()
    files["train_compositions.json"] = _compositions_json(ds.train_compositions).encode()
    meta = dict(ds.meta)
    meta["arrays"] = {
        f"{name}.npy": {"shape": list(getattr(ds, name).shape), "dtype": str(getattr(ds, name).dtype)}
        for name in ARRAYS
    }
    meta["sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files["meta.json"] = (json.dumps(meta, indent=1) + "\n").encode()
    return files


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to replace an existing dataset unless asked to."""
    if Path(out_dir).exists() and not overwrite:
        raise ConfigError(f"out_dir={str(out_dir)!r} already exists; pass overwrite=true to replace it")


def write_dataset(ds: Dataset, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write into a temporary sibling folder, then rename it into place: never a half-written dataset."""
    check_out_dir(out_dir, overwrite)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, data in dataset_files(ds).items():
            (tmp / name).write_bytes(data)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a dataset folder back, verifying every file against the sha256 in meta.json."""
    root = Path(path)
    if not (root / "meta.json").is_file():
        raise DatasetError(f"{str(root)!r} is not a dataset folder (no meta.json); write one with 01_generate_data.py")
    try:
        meta = json.loads((root / "meta.json").read_text())
        sums = meta["sha256"]
        if meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"dataset {str(root)!r} has format_version={meta.get('format_version')}; "
                f"this code reads {FORMAT_VERSION}"
            )
        blobs = {}
        for name in [f"{a}.npy" for a in ARRAYS] + list(JSON_FILES):
            file = root / name
            if not file.is_file():
                raise DatasetError(f"dataset {str(root)!r} is incomplete: {name} is missing")
            blobs[name] = file.read_bytes()
            if hashlib.sha256(blobs[name]).hexdigest() != sums[name]:
                raise DatasetError(f"dataset {str(root)!r} is corrupt: {name} does not match its sha256 in meta.json")
        config = meta["config"]
        settings = parse_generation_config(config)
        spec = settings.spec
        functions = FunctionTables.from_json(json.loads(blobs["functions.json"]), spec)
        comps = np.array(json.loads(blobs["train_compositions.json"]), dtype=np.int64).reshape(-1, spec.depth, 2)
        arrays = {a: np.load(io.BytesIO(blobs[f"{a}.npy"]), allow_pickle=False) for a in ARRAYS}
    except (KeyError, ValueError, TypeError, ConfigError) as err:
        raise DatasetError(f"dataset {str(root)!r} is malformed: {err}") from None
    return Dataset(root, meta, config, spec, json.loads(blobs["vocab.json"]), functions, comps, **arrays)
