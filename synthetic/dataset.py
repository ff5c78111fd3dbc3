"""A dataset (docs/task.md §6): generated in memory, turned into files, and read back verified.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DatasetError
from synthetic.compositions import inorder_compositions, training_compositions
from synthetic.documents import sample_documents, smallest_uint_dtype
from synthetic.functions import FunctionTables, sample_functions
from synthetic.task import TaskSpec

FORMAT_VERSION = 1
ARRAYS = ("train", "eval_train", "eval_all")
JSON_FILES = ("vocab.json", "functions.json", "train_compositions.json")


@dataclass(frozen=True)
class DatasetSettings:
    """What a dataset is: the task, the split, the corpus sizes and the seed (validated by the caller)."""

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

    def split(self, rng: np.random.Generator) -> np.ndarray:
        """The training compositions (C, L, 2); TaskError when the strategy's pool cannot hold the counts."""
        return training_compositions(rng, self.spec.depth, self.spec.n_functions, self.strategy, self.n_compositions,
                                     self.n_identity, self.n_compositions_inorder)


@dataclass(frozen=True)
class Dataset:
    """A dataset in memory, as generated or as read back by `load_dataset`."""

    path: Path | None
    meta: dict
    config: dict  # the generation config it was made from (meta.json "config")
    spec: TaskSpec
    vocab: list[str]
    functions: FunctionTables
    train_compositions: np.ndarray  # (C, L, 2) int64
    train: np.ndarray  # (ndocuments, doc_len)
    eval_train: np.ndarray  # (neval_documents, doc_len)
    eval_all: np.ndarray  # (neval_documents, doc_len)


def generate_dataset(s: DatasetSettings, config: dict) -> Dataset:
    """Build a whole dataset in memory; `config` is the generation config recorded in meta.json."""
    spec = s.spec
    # Independent streams: changing ndocuments never changes the functions or the split.
    fn_rng, split_rng, train_rng, eval_train_rng, eval_all_rng = map(np.random.default_rng,
                                                                     np.random.SeedSequence(s.seed).spawn(5))
    functions = sample_functions(fn_rng, spec, s.permute_levels, s.repeat)
    train_comps = s.split(split_rng)
    corpora = {"train": (train_rng, train_comps, s.ndocuments),
               "eval_train": (eval_train_rng, train_comps, s.neval_documents),
               "eval_all": (eval_all_rng, inorder_compositions(spec.depth, spec.n_functions), s.neval_documents)}
    arrays = {name: sample_documents(rng, spec, functions, comps, n, s.with_replacement)
              for name, (rng, comps, n) in corpora.items()}
    meta = {"format_version": FORMAT_VERSION, "config": config, **derived_sizes(spec, len(train_comps))}
    return Dataset(None, meta, config, spec, spec.vocab(), functions, train_comps, **arrays)


def derived_sizes(spec: TaskSpec, n_train_compositions: int) -> dict:
    """The sizes meta.json records besides its config, derived from it (and the split)."""
    return {"vocab_size": spec.vocab_size, "doc_len": spec.doc_len, "prompt_len": spec.prompt_len,
            "n_train_compositions": n_train_compositions}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def dataset_files(ds: Dataset) -> dict[str, bytes]:
    """Every file of the dataset folder, name -> bytes (deterministic: same dataset, same bytes)."""
    files = {f"{name}.npy": _npy_bytes(getattr(ds, name)) for name in ARRAYS}
    files["vocab.json"] = (json.dumps(ds.vocab) + "\n").encode()
    files["functions.json"] = (json.dumps(ds.functions.to_json(), indent=1) + "\n").encode()
    rows = [json.dumps(c.tolist(), separators=(",", ":")) for c in ds.train_compositions]  # one composition a line
    files["train_compositions.json"] = ("[\n" + ",\n".join(rows) + "\n]\n").encode()
    meta = dict(ds.meta)
    meta["arrays"] = {f"{name}.npy": {"shape": list(getattr(ds, name).shape), "dtype": str(getattr(ds, name).dtype)}
                      for name in ARRAYS}
    meta["sha256"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files["meta.json"] = (json.dumps(meta, indent=1) + "\n").encode()
    return files


def task_spec(config: dict) -> TaskSpec:
    """The task sizes recorded in a dataset's generation config (meta.json "config")."""
    fn = config["function"]
    spec = TaskSpec(n_alphabets=config["n_alphabets"], seq_len=config["seq_len"], depth=fn["depth"],
                    n_functions=fn["n_functions"], direct=config["direct"])
    sizes = (spec.n_alphabets, spec.seq_len, spec.depth, spec.n_functions)
    if not all(type(v) is int and v >= 1 for v in sizes) or not isinstance(spec.direct, bool):  # bool is no size
        raise ValueError(f"config sizes {sizes} and direct={spec.direct!r} are not a task")
    return spec


def check_meta(meta: dict, spec: TaskSpec, arrays: dict[str, np.ndarray], n_comps: int) -> None:
    """meta.json's derived sizes and array records must agree with its config and with the arrays themselves
    (why: meta.json is the one file its own checksums cannot cover, so an edit to it must not go unnoticed)."""
    for key, value in derived_sizes(spec, n_comps).items():
        if meta.get(key) != value:
            raise ValueError(f"meta.json {key}={meta.get(key)!r} disagrees with its config ({value})")
    dtype = smallest_uint_dtype(spec.vocab_size)
    for name, array in arrays.items():
        record = meta["arrays"][f"{name}.npy"]
        if list(array.shape) != record["shape"] or str(array.dtype) != record["dtype"]:
            raise ValueError(f"{name}.npy is {list(array.shape)} {array.dtype}, meta.json says {record}")
        if array.ndim != 2 or array.shape[1] != spec.doc_len or array.dtype != dtype:
            raise ValueError(f"{name}.npy is {list(array.shape)} {array.dtype}; documents of this config are "
                             f"{spec.doc_len} tokens of {dtype} (direct={spec.direct})")
        if array.size and int(array.max()) >= spec.vocab_size:
            raise ValueError(f"{name}.npy holds token {int(array.max())} beyond the vocabulary of {spec.vocab_size}")


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a dataset folder back, verifying every file against the sha256 in meta.json and meta.json against
    the files."""
    root = Path(path)
    if not (root / "meta.json").is_file():
        raise DatasetError(f"{str(root)!r} is not a dataset folder (no meta.json); write one with 01_generate_data.py")
    try:
        meta = json.loads((root / "meta.json").read_text())
        sums = meta["sha256"]
        if meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"dataset {str(root)!r} has format_version={meta.get('format_version')}; "
                               f"this code reads {FORMAT_VERSION}")
        blobs = {}
        for name in [f"{a}.npy" for a in ARRAYS] + list(JSON_FILES):
            file = root / name
            if not file.is_file():
                raise DatasetError(f"dataset {str(root)!r} is incomplete: {name} is missing")
            blobs[name] = file.read_bytes()
            if hashlib.sha256(blobs[name]).hexdigest() != sums[name]:
                raise DatasetError(f"dataset {str(root)!r} is corrupt: {name} does not match its sha256 in meta.json")
        config = meta["config"]
        spec = task_spec(config)
        vocab = json.loads(blobs["vocab.json"])
        if len(vocab) != spec.vocab_size or vocab != spec.vocab():  # first: the rest is read through these sizes
            raise ValueError("vocab.json is not the vocabulary of meta.json's config")
        functions = FunctionTables.from_json(json.loads(blobs["functions.json"]), spec)
        comps = np.array(json.loads(blobs["train_compositions.json"]), dtype=np.int64).reshape(-1, spec.depth, 2)
        arrays = {a: np.load(io.BytesIO(blobs[f"{a}.npy"]), allow_pickle=False) for a in ARRAYS}
        check_meta(meta, spec, arrays, len(comps))
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise DatasetError(f"dataset {str(root)!r} is malformed: {err}") from None
    return Dataset(root, meta, config, spec, vocab, functions, comps, **arrays)
