"""Training (SPEC §7) in one nanoGPT-style loop: learning rate -> evaluate and checkpoint at intervals ->
forward, backward, clip, step. `train(cfg)` is what 02_train.py runs.

Speed on CPU comes from holding the whole corpus as one tensor and indexing batches by a seeded permutation
(no per-sample DataLoader work), fused AdamW, scaled_dot_product_attention, and no host sync except at log
intervals. On CPU a resumed run is bit-identical to an uninterrupted one: the data order is a function of
(seed, epoch) and the checkpoint holds the weights, the optimizer and every RNG state.
"""

import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from net.checkpoint import (
    FORMAT_VERSION,
    checkpoint_path,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
)
from net.device import autocast_context, resolve_device
from net.model import GPT, LSTM, build_model
from net.run_log import RunLog
from synthetic.config import get_bool, get_float, get_int, get_path, get_tag, lookup
from synthetic.dataset import Dataset, load_dataset
from synthetic.errors import ConfigError
from synthetic.task import TaskSpec

EVAL_CORPORA = ("eval_train", "eval_all")
TORCH_THREADS = torch.get_num_threads()  # torch's default (one per physical core), what threads=0 asks for


def net_choice(fallback: str) -> str:
    """`${net_choice:${net.kind}}` in config/train/conf.yaml: the `net` config group chosen (nanogpt, lstm,
    nanogpt_deep, ...) when Hydra launched the run; `fallback` for configs composed without Hydra's runtime (tests)."""
    return HydraConfig.get().runtime.choices["net"] if HydraConfig.initialized() else fallback


if not OmegaConf.has_resolver("net_choice"):
    OmegaConf.register_new_resolver("net_choice", net_choice)


@dataclass(frozen=True)
class Settings:
    """The validated training config (everything but `net`, which build_model checks)."""

    seed: int
    device: str
    bf16: bool
    bf16_cpu: bool
    compile: bool
    threads: int
    epochs: int
    data_path: str
    batch_size: int
    out_dir: Path
    resume: bool
    overwrite: bool
    skip_complete: bool
    learning_rate: float
    weight_decay: float
    betas: tuple[float, float]
    grad_clip: float
    decay_lr: bool
    warmup_iters: int
    min_lr: float
    eval_interval: int
    log_interval: int
    eval_documents: int | None
    eval_batch_size: int


def parse_settings(config: dict) -> Settings:
    """Check every key of a training config; the first problem becomes a one-line ConfigError."""
    get_tag(config)
    get_tag(config, "data.tag")
    betas = (get_float(config, "optimizer.beta1", minimum=0.0), get_float(config, "optimizer.beta2", minimum=0.0))
    for key, beta in zip(("optimizer.beta1", "optimizer.beta2"), betas, strict=True):
        if beta >= 1.0:
            raise ConfigError(f"{key}={beta} must be < 1")
    eval_documents = lookup(config, "log.eval_documents")
    device = lookup(config, "device")
    if not isinstance(device, str):
        raise ConfigError(f"device={device!r} must be auto, cpu, cuda or cuda:<index>")
    s = Settings(
        seed=-1 if lookup(config, "seed") is None else get_int(config, "seed", minimum=0),  # -1: the dataset's
        device=device,
        bf16=get_bool(config, "bf16"),
        bf16_cpu=get_bool(config, "bf16_cpu"),
        compile=get_bool(config, "compile"),
        threads=get_int(config, "threads", minimum=0),
        epochs=get_int(config, "epochs", minimum=1),
        data_path=get_path(config, "data.path"),
        batch_size=get_int(config, "data.batch_size", minimum=1),
        out_dir=Path(get_path(config, "out_dir")),
        resume=get_bool(config, "resume"),
        overwrite=get_bool(config, "overwrite"),
        skip_complete=get_bool(config, "skip_complete"),
        learning_rate=get_float(config, "optimizer.learning_rate", minimum=0.0),
        weight_decay=get_float(config, "optimizer.weight_decay", minimum=0.0),
        betas=betas,
        grad_clip=get_float(config, "optimizer.grad_clip", minimum=0.0),
        decay_lr=get_bool(config, "optimizer.decay_lr"),
        warmup_iters=get_int(config, "optimizer.warmup_iters", minimum=0),
        min_lr=get_float(config, "optimizer.min_lr", minimum=0.0),
        eval_interval=get_int(config, "log.eval_interval", minimum=1),
        log_interval=get_int(config, "log.log_interval", minimum=1),
        eval_documents=None if eval_documents is None else get_int(config, "log.eval_documents", minimum=1),
        eval_batch_size=get_int(config, "log.eval_batch_size", minimum=1),
    )
    if s.resume and s.overwrite:
        raise ConfigError("resume=true and overwrite=true exclude each other; pick one")
    if s.min_lr > s.learning_rate:
        raise ConfigError(f"optimizer.min_lr={s.min_lr} must be <= optimizer.learning_rate={s.learning_rate}")
    return s


def model_args_for(net: dict, spec: TaskSpec) -> dict:
    """The net config as plain model_args: vocab_size null means the dataset's; both sizes must fit the data."""
    args = dict(net)
    if args.get("vocab_size") is None:
        args["vocab_size"] = spec.vocab_size
    vocab, context = args["vocab_size"], args.get("context_size")
    if isinstance(vocab, int) and vocab < spec.vocab_size:
        raise ConfigError(
            f"net.vocab_size={vocab} is smaller than the dataset's vocabulary of {spec.vocab_size} tokens"
        )
    if isinstance(context, int) and context < spec.doc_len - 1:
        raise ConfigError(
            f"net.context_size={context} is shorter than a training input of {spec.doc_len - 1} tokens "
            f"(documents of {spec.doc_len} tokens, minus the last)"
        )
    return args


def get_lr(step: int, max_steps: int, s: Settings) -> float:
    """Linear warmup over warmup_iters steps, then a cosine from learning_rate down to min_lr at max_steps."""
    if not s.decay_lr:
        return s.learning_rate
    if step < s.warmup_iters:
        return s.learning_rate * (step + 1) / (s.warmup_iters + 1)
    if step >= max_steps:
        return s.min_lr
    ratio = (step - s.warmup_iters) / max(1, max_steps - s.warmup_iters)
    return s.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (s.learning_rate - s.min_lr)


def configure_optimizer(model: torch.nn.Module, s: Settings, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on >= 2-D parameters (matrices, embeddings) only; fused kernels on CPU and CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": s.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=s.learning_rate, betas=s.betas, fused=fused)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training documents in `epoch`: a function of (seed, epoch) only, so resume needs no state."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(n, generator=generator)


@torch.inference_mode()
def teacher_forced_metrics(
    model: torch.nn.Module, docs: torch.Tensor, output_start: int, batch_size: int, bf16: bool = False
) -> dict[str, float]:
    """Next-token loss over whole documents, and loss, token and sequence accuracy on the final output y_L
    (columns output_start:) with the true document as context. docs (n, doc_len) int64 on the model's device."""
    was_training = model.training
    model.eval()
    n, doc_len = docs.shape
    m = doc_len - output_start
    sums = torch.zeros(4, dtype=torch.float64, device=docs.device)  # loss, y_L loss, y_L hits, y_L sequences
    for chunk in docs.split(batch_size):
        with autocast_context(docs.device, bf16):
            logits = model(chunk[:, :-1])  # (b, doc_len - 1, V)
        losses = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")  # (b, doc_len - 1)
        hits = logits[:, output_start - 1 :].argmax(-1) == chunk[:, output_start:]  # (b, m)
        sums += torch.stack(
            [losses.sum(), losses[:, output_start - 1 :].sum(), hits.sum(), hits.all(dim=1).sum()]
        ).double()
    model.train(was_training)
    loss, tf_loss, tf_acc, tf_seq_acc = sums.tolist()
    return {
        "loss": loss / (n * (doc_len - 1)),
        "tf_loss": tf_loss / (n * m),
        "tf_acc": tf_acc / (n * m),
        "tf_seq_acc": tf_seq_acc / n,
    }


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


HOW_KEYS = ("resume", "overwrite", "skip_complete", "threads", "device", "compile", "wandb")  # not what is trained


def same_run(a: dict, b: dict) -> bool:
    """Whether two training configs train the same model the same way (how fast or where aside)."""
    return {k: v for k, v in a.items() if k not in HOW_KEYS} == {k: v for k, v in b.items() if k not in HOW_KEYS}


def completed_run(s: Settings, config: dict, max_steps: int) -> dict | None:
    """With skip_complete: the final checkpoint of this very run when out_dir has it; None when the run is
    unfinished or absent. Checkpoints of another config are never resumed or kept: that is an error."""
    newest = load_latest_checkpoint(s.out_dir)
    if newest is None:
        return None
    if not same_run(newest["train_config"], config):
        raise ConfigError(
            f"out_dir={str(s.out_dir)!r} holds a run of another config (up to step {newest['step']}); "
            "pass overwrite=true to replace it"
        )
    return newest if newest["step"] == max_steps else None


def prepare_out_dir(s: Settings) -> dict | None:
    """Refuse to mix runs; clear the folder on overwrite; on resume, the newest readable checkpoint (or None)."""
    found = list_checkpoints(s.out_dir)
    if found and not (s.resume or s.overwrite):
        raise ConfigError(
            f"out_dir={str(s.out_dir)!r} already holds {len(found)} checkpoint(s) up to step {found[-1][0]}; "
            "pass resume=true to continue that run or overwrite=true to start over"
        )
    s.out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in (".ckpt_*.pt.tmp*", ".metrics.jsonl.tmp*"):  # from a write that was killed
        for leftover in s.out_dir.glob(pattern):
            leftover.unlink()
    if s.overwrite:
        for _, path in found:
            path.unlink()
        (s.out_dir / "metrics.jsonl").unlink(missing_ok=True)
    return load_latest_checkpoint(s.out_dir) if s.resume else None


def check_resumable(ckpt: dict, model_args: dict, ds: Dataset, out_dir: Path) -> None:
    if ckpt["model_args"] != model_args:
        raise ConfigError(
            f"resume=true but out_dir={str(out_dir)!r} holds a run of another net ({ckpt['model_args']}); "
            f"this config asks for {model_args}"
        )
    if ckpt["data"]["meta"].get("sha256") != ds.meta.get("sha256"):
        raise ConfigError(
            f"resume=true but out_dir={str(out_dir)!r} was trained on another dataset ({ckpt['data']['path']})"
        )


def make_checkpoint(
    step: int, model: GPT | LSTM, optimizer: torch.optim.Optimizer, ds: Dataset, config: dict, metrics: dict,
    wandb_id: str | None,
) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "step": step,
        "model_args": model.model_args,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "data": {"path": str(ds.path), "meta": ds.meta},
        "train_config": config,
        "rng": rng_state(),
        "metrics": metrics,
        "wandb_id": wandb_id,
    }


def eval_line(step: int, metrics: dict) -> str:
    parts = [f"{name} tf_acc {metrics[f'{name}/tf_acc']:.4f} tf_loss {metrics[f'{name}/tf_loss']:.4f}"
             for name in EVAL_CORPORA]
    return f"step {step}: " + " | ".join(parts)


def train(cfg: DictConfig) -> dict:
    """Train the configured net on its dataset; return the last evaluation's metrics (with "step")."""
    config = OmegaConf.to_container(cfg, resolve=True)
    s = parse_settings(config)
    device = resolve_device(s.device)
    ds = load_dataset(s.data_path)
    if s.seed < 0:  # seed: null trains with the dataset's seed, so a seed sweep varies data and model together
        s = replace(s, seed=int(ds.config["seed"]))
    spec = ds.spec
    model_args = model_args_for(config["net"], spec)
    torch.set_num_threads(s.threads or TORCH_THREADS)
    torch.manual_seed(s.seed)
    model = build_model(model_args).to(device)
    steps_per_epoch = len(ds.train) // s.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size={s.batch_size} exceeds the {len(ds.train)} training documents")
    max_steps = s.epochs * steps_per_epoch
    if s.skip_complete:
        if (done := completed_run(s, config, max_steps)) is not None:
            print(f"{s.out_dir} already holds this run's final checkpoint (step {max_steps}): skipping")
            return {"step": max_steps, **done["metrics"]}
        # An interrupted run of a sweep continues where it stopped (a different run there is still refused).
        s = replace(s, resume=not s.overwrite)
    ckpt = prepare_out_dir(s)
    optimizer = configure_optimizer(model, s, device)
    start_step, latest = 0, {}
    if ckpt is not None:
        check_resumable(ckpt, model_args, ds, s.out_dir)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        start_step, latest = ckpt["step"], ckpt["metrics"]
        print(f"resuming from {checkpoint_path(s.out_dir, start_step)} (step {start_step} of {max_steps})")
    bf16 = s.bf16 if device.type == "cuda" else s.bf16_cpu
    forward = torch.compile(model) if s.compile else model
    corpus = torch.from_numpy(ds.train.astype(np.int64)).to(device)  # (n, doc_len): the whole training set
    evals = {name: torch.from_numpy(getattr(ds, name)[: s.eval_documents].astype(np.int64)).to(device)
             for name in EVAL_CORPORA}
    tokens_per_step = s.batch_size * (spec.doc_len - 1)
    V = model_args["vocab_size"]

    run_log = RunLog(s.out_dir, config, ckpt["step"] if ckpt else None, ckpt.get("wandb_id") if ckpt else None)
    bar = tqdm(total=max_steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=1.0)
    failed = True
    try:
        loss_sum, n_losses = torch.zeros((), device=device), 0
        timed_steps = 0  # steps since t_log, for tokens/s
        epoch, perm = -1, torch.empty(0)
        started = t_log = time.perf_counter()
        step = start_step
        while True:
            lr = get_lr(step, max_steps, s)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # evaluate and checkpoint: step 0, every eval_interval, the end (the resumed step is done already)
            if (step % s.eval_interval == 0 or step == max_steps) and not (ckpt and step == start_step):
                latest = {f"{name}/{k}": v for name in EVAL_CORPORA for k, v in
                          teacher_forced_metrics(forward, evals[name], spec.output_start, s.eval_batch_size,
                                                 bf16).items()}
                run_log.log({"event": "eval", "step": step, **latest})
                bar.write(eval_line(step, latest))
                wandb_id = run_log.wandb.id
                save_checkpoint(make_checkpoint(step, model, optimizer, ds, config, latest, wandb_id),
                                checkpoint_path(s.out_dir, step))
                t_log, timed_steps = time.perf_counter(), 0  # evaluation time does not count in tokens/s
            if step == max_steps:
                break

            if step // steps_per_epoch != epoch:
                epoch = step // steps_per_epoch
                perm = epoch_permutation(len(corpus), s.seed, epoch).to(device)
            i = step % steps_per_epoch
            batch = corpus[perm[i * s.batch_size : (i + 1) * s.batch_size]]  # (B, doc_len)
            with autocast_context(device, bf16):
                logits = forward(batch[:, :-1])  # (B, doc_len - 1, V)
            loss = F.cross_entropy(logits.view(-1, V), batch[:, 1:].reshape(-1))
            loss.backward()
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip, foreach=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()  # no host sync until the next log
            n_losses += 1
            timed_steps += 1
            step += 1
            bar.update()

            if step % s.log_interval == 0 or step == max_steps:
                now = time.perf_counter()
                record = {"event": "train", "step": step, "lr": lr, "loss": loss_sum.item() / n_losses,
                          "tokens_per_s": timed_steps * tokens_per_step / (now - t_log)}
                run_log.log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                loss_sum.zero_()
                n_losses, timed_steps, t_log = 0, 0, now
        failed = False
    finally:
        bar.close()
        run_log.finish(failed)
    seconds = time.perf_counter() - started
    trained = max_steps - start_step
    print(f"trained {trained} steps in {seconds:.1f} s ({trained * tokens_per_step / max(seconds, 1e-9):,.0f} "
          f"tokens/s with evaluations); {eval_line(max_steps, latest)}; checkpoints in {s.out_dir}")
    return {"step": max_steps, **latest}
