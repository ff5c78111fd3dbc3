"""Stage 2 (02_train.py): a training config -> one run folder, ckpts/<tag>/, of checkpoints and metrics.jsonl
(docs/task.md §7). This module decides what is trained, on what, and whether an existing run folder is kept,
continued or refused; `net.train.train_loop` trains."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.config import MAX_SEED, NEUTRAL, PATH, TAG, at_least, fingerprint, int_or, one_of, parse
from core.errors import ConfigError
from core.io import OutputLock
from core.manifest import read_entry, verified, write_entry
from core.stage import FRESH, REPLACE, RESUME, SKIP, STAGES, Found, check_flags, decide
from net.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from net.device import precision, resolve_device
from net.model import approx_parameters, build_model, check_model_args
from net.run_log import WANDB_MODES, RunLog, start_wandb
from net.train import EVAL_CORPORA, Loop, Schedule, configure_optimizer, eval_line, train_loop
from pipeline.launch import parallel_launcher, set_threads
from pipeline.resources import require_memory
from synthetic.dataset import load_dataset
from synthetic.task import TaskSpec

STAGE = STAGES["train"]


@dataclass(frozen=True)
class DataConfig:
    tag: str = field(metadata=TAG)
    path: str = field(metadata=PATH)
    batch_size: int = field(metadata=at_least(1))


@dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = field(metadata=at_least(0.0))
    weight_decay: float = field(metadata=at_least(0.0))
    beta1: float = field(metadata=at_least(0.0))
    beta2: float = field(metadata=at_least(0.0))
    grad_clip: float = field(metadata=at_least(0.0))
    decay_lr: bool
    warmup_iters: int = field(metadata=at_least(0))
    min_lr: float = field(metadata=at_least(0.0))


@dataclass(frozen=True)
class LogConfig:
    eval_interval: int = field(metadata=at_least(1))
    dense_interval: int | None = field(metadata=at_least(1))
    dense_until: int | None = field(metadata=at_least(0))
    log_interval: int = field(metadata=at_least(1))
    eval_documents: int | None = field(metadata=at_least(1))
    eval_batch_size: int = field(metadata=at_least(1))


@dataclass(frozen=True)
class WandbConfig:
    mode: str = field(metadata=one_of(*WANDB_MODES))
    project: str
    name: str


@dataclass(frozen=True)
class TrainConfig:
    """config/train/conf.yaml (with its `net` group), validated."""

    tag: str = field(metadata=TAG)
    seed: int | None = field(metadata=at_least(0, MAX_SEED))  # None: the dataset's seed
    device: str = field(metadata=NEUTRAL)
    bf16: bool
    bf16_cpu: bool
    compile: bool
    threads: int | str = field(metadata=int_or("auto") | NEUTRAL)
    epochs: int = field(metadata=at_least(1))
    out_dir: str = field(metadata=PATH)
    resume: bool = field(metadata=NEUTRAL)
    skip_complete: bool = field(metadata=NEUTRAL)
    overwrite: bool = field(metadata=NEUTRAL)
    data: DataConfig
    optimizer: OptimizerConfig
    log: LogConfig
    wandb: WandbConfig = field(metadata=NEUTRAL)
    net: dict  # the model's own config, checked by net.model.check_model_args

    def __post_init__(self) -> None:
        for key in ("beta1", "beta2"):
            if getattr(self.optimizer, key) >= 1.0:
                raise ConfigError(f"optimizer.{key}={getattr(self.optimizer, key)} must be < 1")
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true exclude each other; pick one")
        check_flags(self.skip_complete, self.overwrite)
        if self.optimizer.min_lr > self.optimizer.learning_rate:
            raise ConfigError(f"optimizer.min_lr={self.optimizer.min_lr} must be <= "
                              f"optimizer.learning_rate={self.optimizer.learning_rate}")
        if (self.log.dense_interval is None) != (self.log.dense_until is None):
            raise ConfigError(f"log.dense_interval={self.log.dense_interval} and log.dense_until="
                              f"{self.log.dense_until} go together: set both (a learning window) or neither")
        if self.wandb.mode != "disabled" and not self.wandb.project:
            raise ConfigError(f"wandb.project={self.wandb.project!r} must be a non-empty string")


def model_args_for(net: dict, spec: TaskSpec) -> dict:
    """The net config as plain model_args: vocab_size null means the dataset's; both sizes must fit the data."""
    args = dict(net)
    if args.get("vocab_size") is None:
        args["vocab_size"] = spec.vocab_size
    check_model_args(args)
    sizes = ", ".join(f"net.{k}={args[k]}" for k in ("n_layer", "n_embd", "context_size", "vocab_size") if k in args)
    # weights, gradients and AdamW's two moments, float32
    require_memory(f"{sizes} (weights, gradients, optimizer state)", 16 * approx_parameters(args),
                   "net.n_layer, net.n_embd, net.context_size or net.vocab_size")
    if args["vocab_size"] < spec.vocab_size:
        raise ConfigError(f"net.vocab_size={args['vocab_size']} is smaller than the dataset's vocabulary of "
                          f"{spec.vocab_size} tokens")
    if args.get("context_size", spec.doc_len) < spec.doc_len - 1:
        raise ConfigError(f"net.context_size={args['context_size']} is shorter than a training input of "
                          f"{spec.doc_len - 1} tokens (documents of {spec.doc_len} tokens, minus the last)")
    return args


def existing(out_dir: Path, max_steps: int) -> tuple[Found, dict | None]:
    """What out_dir holds, by its manifest entry (whole when at its last step and every file verifies), and its newest
    readable checkpoint (the one a resumed run continues from: a kill can leave one the entry does not list yet)."""
    found = list_checkpoints(out_dir)
    entry = read_entry(out_dir, "train")
    if not found:
        return Found(None), None
    contents = f"{len(found)} checkpoint(s) up to step {found[-1][0]} and metrics.jsonl"
    try:
        newest = load_latest_checkpoint(out_dir)
    except CheckpointError:
        return Found({"unreadable": True}, contents=f"{len(found)} unreadable checkpoint(s)"), None
    if entry is None:
        return Found(None, legacy=True, contents=contents), newest
    complete = entry.complete and newest["step"] == max_steps and verified(out_dir, entry)
    return Found(entry.fingerprint, complete, contents=contents), newest


def run(raw: dict) -> dict:
    """Train the configured net on its dataset (or keep / continue the run in out_dir); returns the last
    evaluation's metrics (with "step")."""
    c = parse(TrainConfig, raw)
    device = resolve_device(c.device)
    ds = load_dataset(c.data.path)
    spec = ds.spec
    seed = int(ds.config["seed"]) if c.seed is None else c.seed  # null: data and model vary together in a sweep
    model_args = model_args_for(c.net, spec)
    steps_per_epoch = len(ds.train) // c.data.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={c.data.batch_size} exceeds the {len(ds.train)} training documents")
    max_steps = c.epochs * steps_per_epoch
    t, a = spec.doc_len - 1, model_args
    # one step's activations and their gradients, float32: about 20 values per layer and width, the attention maps,
    # the logits
    per_doc = t * (a["n_layer"] * (20 * a["n_embd"] + 3 * a.get("n_head", 0) * t) + 3 * a["vocab_size"]) * 4
    require_memory(f"data.batch_size={c.data.batch_size} documents per step", c.data.batch_size * per_doc,
                   "data.batch_size")
    # the corpus as int64 on the device, and a copy
    require_memory(f"the {len(ds.train):,} training documents of {c.data.path}", ds.train.size * 8 * 2,
                   "ndocuments when generating it")
    out_dir = Path(c.out_dir)
    ran = {"device": str(device), "precision": precision(device, c.bf16, c.bf16_cpu)}  # device may say only "auto"
    STAGE.check_target(out_dir)
    with OutputLock(out_dir):
        found, newest = existing(out_dir, max_steps)
        record = fingerprint(TrainConfig, raw, ran["precision"])
        action = decide(STAGE, out_dir, record, found, skip_complete=c.skip_complete,
                        overwrite=c.overwrite, resume=c.resume)
        if action == SKIP:
            print(f"{out_dir} already holds this run's final checkpoint (step {max_steps}): skipping")
            return {"step": max_steps, **newest["metrics"]}
        ckpt = newest if action == RESUME else None
        if ckpt is not None and ckpt["model_args"] != model_args:
            raise ConfigError(f"resume=true but out_dir={str(out_dir)!r} holds a run of another net "
                              f"({ckpt['model_args']}); this config asks for {model_args}")
        if ckpt is not None and ckpt["data"]["meta"].get("sha256") != ds.meta.get("sha256"):
            raise ConfigError(f"resume=true but out_dir={str(out_dir)!r} was trained on another dataset "
                              f"({ckpt['data']['path']})")
        # wandb starts before anything is deleted or created: no login or no network is one line, the run untouched
        wandb_run = start_wandb(c.wandb.mode, c.wandb.project, c.wandb.name, raw,
                                ckpt.get("wandb_id") if ckpt else None)
        if action == REPLACE:  # delete the run's own files (checkpoints, metrics.jsonl)
            for path in [path for _, path in list_checkpoints(out_dir)] + [out_dir / "metrics.jsonl"]:
                path.unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        if ckpt is None:  # the entry comes first: a run killed before its first checkpoint is this stage's leftover
            write_entry(out_dir, "train", config=raw, fingerprint=record, files=[], complete=False,
                        upstream={"folder": c.data.path, "fingerprint": ds.config}, ran=ran)
        set_threads(c.threads)
        torch.manual_seed(seed)
        model = build_model(model_args).to(device)
        optimizer = configure_optimizer(model, c.optimizer.learning_rate, c.optimizer.weight_decay,
                                        (c.optimizer.beta1, c.optimizer.beta2), device)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"])
            print(f"resuming from {checkpoint_path(out_dir, ckpt['step'])} (step {ckpt['step']} of {max_steps})")
        elif action == FRESH and c.resume:
            print(f"resume=true, but {out_dir} holds no checkpoint yet: starting fresh")
        # train from ckpt (None: from scratch) to max_steps, a checkpoint and its manifest entry at every evaluation
        start_step, latest = (ckpt["step"], ckpt["metrics"]) if ckpt else (0, {})
        loop = Loop(seed=seed, batch_size=c.data.batch_size, steps_per_epoch=steps_per_epoch,
                    schedule=Schedule(c.optimizer.learning_rate, c.optimizer.min_lr, c.optimizer.warmup_iters,
                                      c.optimizer.decay_lr, max_steps),
                    grad_clip=c.optimizer.grad_clip, eval_interval=c.log.eval_interval, log_interval=c.log.log_interval,
                    eval_batch_size=c.log.eval_batch_size, output_start=spec.output_start,
                    bf16=ran["precision"] == "bf16", progress=not parallel_launcher(),
                    dense_interval=c.log.dense_interval, dense_until=c.log.dense_until or 0)
        corpus = torch.from_numpy(ds.train.astype(np.int64)).to(device)  # (n, doc_len): the whole training set
        evals = {name: torch.from_numpy(getattr(ds, name)[: c.log.eval_documents].astype(np.int64)).to(device)
                 for name in EVAL_CORPORA}
        run_log = RunLog(out_dir, ckpt["step"] if ckpt else None, wandb_run)
        entry = read_entry(out_dir, "train")  # written before training (or by the run resumed); kept here after

        def save(step: int, metrics: dict) -> None:
            nonlocal entry
            save_checkpoint({"format_version": FORMAT_VERSION, "step": step, "model_args": model.model_args,
                             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "data": {"path": str(ds.path), "meta": ds.meta}, "train_config": raw, "ran": ran,
                             "rng": rng_state(), "metrics": metrics, "wandb_id": run_log.wandb.id},
                            checkpoint_path(out_dir, step))
            entry = write_entry(out_dir, "train", config=raw, fingerprint=entry.fingerprint, upstream=entry.upstream,
                                ran=ran, files=[path.name for _, path in list_checkpoints(out_dir)] + ["metrics.jsonl"],
                                known={k: v for k, v in entry.files.items() if k != "metrics.jsonl"},
                                complete=step == max_steps)

        started = time.perf_counter()
        failed = True
        try:
            latest = train_loop(model, optimizer, corpus, evals, loop, run_log, save, start_step=start_step,
                                resumed=ckpt is not None, latest=latest,
                                forward=torch.compile(model) if c.compile else model)
            failed = False
        finally:
            run_log.finish(failed)
        seconds = time.perf_counter() - started
        trained = max_steps - start_step
        tokens_per_step = c.data.batch_size * (spec.doc_len - 1)
        print(f"trained {trained} steps in {seconds:.1f} s ({trained * tokens_per_step / max(seconds, 1e-9):,.0f} "
              f"tokens/s with evaluations); {eval_line(max_steps, latest)}; checkpoints in {out_dir}")
        return {"step": max_steps, **latest}
