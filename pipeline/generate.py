"""Stage 1 (01_generate_data.py): a generation config -> one dataset folder, data/<tag>/ (docs/task.md §1-§6)."""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import MAX_SEED, NEUTRAL, PATH, TAG, at_least, fingerprint, one_of, parse
from core.errors import ConfigError
from core.io import OutputLock, StagedFolder, write_bytes
from core.manifest import write_entry
from core.stage import SKIP, STAGES, Found, check_flags, decide, found_output
from pipeline.resources import require_memory
from synthetic.compositions import STRATEGIES
from synthetic.dataset import Dataset, DatasetSettings, dataset_files, generate_dataset, load_dataset
from synthetic.task import TaskSpec
from synthetic.text import decode_tokens

MAX_INORDER = 10**7  # in-order compositions: evaluation scores every one of them
STAGE = STAGES["gen"]


@dataclass(frozen=True)
class SplitConfig:
    strategy: str = field(metadata=one_of(*STRATEGIES))
    n_compositions: int = field(metadata=at_least(0))
    n_identity: int = field(metadata=at_least(0))
    n_compositions_inorder: int = field(metadata=at_least(0))


@dataclass(frozen=True)
class FunctionConfig:
    depth: int = field(metadata=at_least(1))
    n_functions: int = field(metadata=at_least(1))
    repeat: bool
    permute: bool
    permute_levels: list[int] | None
    split: SplitConfig


@dataclass(frozen=True)
class GenerateConfig:
    """config/gen/conf.yaml, validated."""

    tag: str = field(metadata=TAG)
    seed: int = field(metadata=at_least(0, MAX_SEED))
    n_alphabets: int = field(metadata=at_least(2))
    seq_len: int = field(metadata=at_least(1))
    ndocuments: int = field(metadata=at_least(1))
    neval_documents: int = field(metadata=at_least(1))
    with_replacement: bool
    direct: bool
    function: FunctionConfig
    out_dir: str = field(metadata=PATH | NEUTRAL)
    overwrite: bool = field(metadata=NEUTRAL)
    skip_complete: bool = field(metadata=NEUTRAL)

    def __post_init__(self) -> None:
        fn, split = self.function, self.function.split
        if not self.with_replacement and self.seq_len > self.n_alphabets:
            raise ConfigError(f"seq_len={self.seq_len} must be <= n_alphabets={self.n_alphabets} when "
                              "with_replacement=false")
        if fn.permute_levels is not None and not fn.permute:
            raise ConfigError(f"function.permute_levels={fn.permute_levels} needs function.permute=true")
        if fn.permute and any(not 0 <= d < fn.depth for d in self.permute_levels):
            raise ConfigError(f"function.permute_levels={fn.permute_levels} must be a list of levels in "
                              f"[0, {fn.depth - 1}]")
        if fn.permute and self.seq_len < 2:
            raise ConfigError(f"seq_len={self.seq_len} must be >= 2 when a level permutes positions")
        if split.strategy in ("random", "random_biased") and split.n_compositions < 1:
            raise ConfigError(f"function.split.n_compositions={split.n_compositions} must be >= 1")
        if split.n_identity > fn.depth:
            raise ConfigError(f"function.split.n_identity={split.n_identity} must be <= {fn.depth}")
        check_flags(self.skip_complete, self.overwrite)
        n_inorder = (fn.n_functions + 1) ** fn.depth
        if n_inorder > MAX_INORDER:
            raise ConfigError(f"function.depth={fn.depth} with function.n_functions={fn.n_functions} gives "
                              f"{fn.n_functions + 1}^{fn.depth} in-order compositions; every stage enumerates them, "
                              f"so at most {MAX_INORDER:,} are allowed")
        self.settings().split(np.random.default_rng(0))  # a split that no pool can hold is refused here, untouched
        spec = self.spec
        n_docs = self.ndocuments + 2 * self.neval_documents
        # the documents, int64 while the largest corpus is built (with every step's output); the function tables
        # and the vocabulary's strings
        docs = n_docs * spec.doc_len + self.ndocuments * (spec.doc_len + spec.depth * spec.seq_len) * 8
        tables = spec.depth * (fn.n_functions + 1) * self.n_alphabets * 8 + spec.vocab_size * 100
        require_memory(f"ndocuments={self.ndocuments} and 2 x neval_documents={self.neval_documents} documents of "
                       f"{spec.doc_len:,} tokens over a vocabulary of {spec.vocab_size:,}", docs + tables,
                       "ndocuments, neval_documents, seq_len, function.depth or n_alphabets")

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(n_alphabets=self.n_alphabets, seq_len=self.seq_len, depth=self.function.depth,
                        n_functions=self.function.n_functions, direct=self.direct)

    @property
    def permute_levels(self) -> list[int]:
        """The levels that permute positions: permute_levels, where null means [0] (the reference's choice)."""
        levels = self.function.permute_levels
        return sorted(set(levels if levels is not None else [0])) if self.function.permute else []

    def settings(self) -> DatasetSettings:
        split = self.function.split
        return DatasetSettings(seed=self.seed, spec=self.spec, ndocuments=self.ndocuments,
                               neval_documents=self.neval_documents, with_replacement=self.with_replacement,
                               repeat=self.function.repeat, permute_levels=frozenset(self.permute_levels),
                               strategy=split.strategy, n_compositions=split.n_compositions,
                               n_identity=split.n_identity, n_compositions_inorder=split.n_compositions_inorder)

    def record(self) -> dict:
        """The fingerprint stored in meta.json ("config"): what the dataset is, permute_levels resolved."""
        record = fingerprint(GenerateConfig, asdict(self))
        record["function"]["permute_levels"] = self.permute_levels or None
        return record


def existing(out_dir: Path) -> Found:
    """The dataset out_dir holds (core.stage.found_output); before manifests, a meta.json."""
    return found_output(out_dir, "gen", "the dataset", legacy=(out_dir / "meta.json").is_file())


def run(raw: dict) -> Dataset:
    """Generate and write one dataset (or keep it: skip_complete); returns it as written."""
    c = parse(GenerateConfig, raw)
    out_dir, record = Path(c.out_dir), c.record()
    STAGE.check_target(out_dir, existing(out_dir))
    with OutputLock(out_dir):
        if decide(STAGE, out_dir, record, existing(out_dir), skip_complete=c.skip_complete,
                  overwrite=c.overwrite) == SKIP:
            print(f"{out_dir} already holds this dataset: skipping")
            return load_dataset(out_dir)
        start = time.perf_counter()
        ds = generate_dataset(c.settings(), record)
        seconds = time.perf_counter() - start
        with StagedFolder(out_dir) as staged:
            files = dataset_files(ds)
            for name, data in files.items():
                write_bytes(staged.path / name, data)
            write_entry(staged.path, "gen", config=raw, fingerprint=record, files=list(files))
            staged.publish()
    n_docs = len(ds.train) + len(ds.eval_train) + len(ds.eval_all)
    print(f"wrote {out_dir}: {len(ds.train):,} train + {len(ds.eval_train):,} eval_train + {len(ds.eval_all):,} "
          f"eval_all documents of {ds.spec.doc_len} tokens, {len(ds.train_compositions)} training compositions, "
          f"vocab {ds.spec.vocab_size} ({n_docs / seconds:,.0f} documents/s, {seconds:.2f} s)")
    for doc in ds.train[:3]:
        print("  " + decode_tokens(ds.vocab, np.asarray(doc)))
    return load_dataset(out_dir)
