"""The training loop (docs/task.md §7), nanoGPT-style: learning rate -> evaluate and checkpoint at intervals ->
forward, backward, clip, step. `pipeline/train.py` decides what to train and where; `train_loop` trains it.

Speed on CPU comes from holding the whole corpus as one tensor and indexing batches by a seeded permutation
(no per-sample DataLoader work), fused AdamW, scaled_dot_product_attention, and no host sync except at log
intervals. On CPU a resumed run is bit-identical to an uninterrupted one: the data order is a function of
(seed, epoch) and the checkpoint holds the weights, the optimizer and every RNG state.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.errors import PipelineError
from net.device import autocast_context
from net.run_log import RunLog

EVAL_CORPORA = ("eval_train", "eval_all")


class DivergedError(PipelineError):
    """A NaN or infinite loss: training stops before it logs or saves anything of the diverged model."""


@dataclass(frozen=True)
class Schedule:
    """Linear warmup over warmup_iters steps, then a cosine from learning_rate down to min_lr at max_steps
    (decay_lr=false: learning_rate throughout)."""

    learning_rate: float
    min_lr: float
    warmup_iters: int
    decay_lr: bool
    max_steps: int

    def lr(self, step: int) -> float:
        if not self.decay_lr:
            return self.learning_rate
        if step < self.warmup_iters:
            return self.learning_rate * (step + 1) / (self.warmup_iters + 1)
        if step >= self.max_steps:
            return self.min_lr
        ratio = (step - self.warmup_iters) / max(1, self.max_steps - self.warmup_iters)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.learning_rate - self.min_lr)


def configure_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float,
                        betas: tuple[float, float], device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on >= 2-D parameters (matrices, embeddings) only; fused kernels on CPU and CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device.type in ("cpu", "cuda"))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the n training documents in `epoch`: a function of (seed, epoch) only, so resume needs no state."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(n, generator=generator)


@torch.inference_mode()
def teacher_forced_metrics(model: torch.nn.Module, docs: torch.Tensor, output_start: int, batch_size: int,
                           bf16: bool = False) -> dict[str, float]:
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
        sums += torch.stack([losses.sum(), losses[:, output_start - 1 :].sum(), hits.sum(),
                             hits.all(dim=1).sum()]).double()
    model.train(was_training)
    loss, tf_loss, tf_acc, tf_seq_acc = sums.tolist()
    return {"loss": loss / (n * (doc_len - 1)), "tf_loss": tf_loss / (n * m), "tf_acc": tf_acc / (n * m),
            "tf_seq_acc": tf_seq_acc / n}


def eval_line(step: int, metrics: dict) -> str:
    parts = [f"{name} tf_acc {metrics[f'{name}/tf_acc']:.4f} tf_loss {metrics[f'{name}/tf_loss']:.4f}"
             for name in EVAL_CORPORA]
    return f"step {step}: " + " | ".join(parts)


@dataclass(frozen=True)
class Loop:
    """What one training run's loop needs, besides the model, its optimizer and the data."""

    seed: int  # of the batch order
    batch_size: int
    steps_per_epoch: int
    schedule: Schedule
    grad_clip: float  # 0: off
    eval_interval: int
    log_interval: int
    eval_batch_size: int
    output_start: int  # first column of y_L
    bf16: bool
    progress: bool  # a tqdm bar (off under parallel launchers)
    dense_interval: int | None = None  # also every this many steps up to dense_until (a learning window)
    dense_until: int = 0

    def checkpoint_at(self, step: int) -> bool:
        """Step 0, every eval_interval, every dense_interval up to dense_until, and the last step."""
        dense = self.dense_interval is not None and step <= self.dense_until and step % self.dense_interval == 0
        return step % self.eval_interval == 0 or dense or step == self.schedule.max_steps


def train_loop(model: torch.nn.Module, optimizer: torch.optim.Optimizer, corpus: torch.Tensor,
               evals: dict[str, torch.Tensor], loop: Loop, run_log: RunLog, save: Callable[[int, dict], None], *,
               start_step: int = 0, resumed: bool = False, latest: dict | None = None,
               forward: torch.nn.Module | None = None) -> dict:
    """Train from start_step to loop.schedule.max_steps; evaluate (teacher-forced, on `evals`) and call
    `save(step, metrics)` at every step loop.checkpoint_at names (a resumed run's first step was saved already).
    corpus (n, doc_len) int64 on the model's device. Returns the last evaluation's metrics.
    DivergedError when a loss is NaN or infinite: checked at every log and before every save, so no checkpoint or
    metrics record of a diverged model is written."""
    forward = forward or model
    max_steps, device = loop.schedule.max_steps, corpus.device
    tokens_per_step = loop.batch_size * (corpus.size(1) - 1)
    bar = tqdm(total=max_steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=1.0,
               disable=not loop.progress)
    loss_sum, n_losses = torch.zeros((), device=device), 0
    timed_steps = 0  # steps since t_log, for tokens/s
    epoch, perm = -1, torch.empty(0)
    t_log = time.perf_counter()
    step = start_step
    last_saved = start_step if resumed else None

    def stop_if_diverged(what: str, value: float) -> None:
        if not math.isfinite(value):
            bar.close()  # so that the error line starts a line of its own
            kept = f"the newest checkpoint is step {last_saved}" if last_saved is not None else "none was saved"
            raise DivergedError(f"training diverged at step {step}: {what} is {value}; stopped without saving "
                                f"({kept}); lower optimizer.learning_rate or raise optimizer.warmup_iters")

    while True:
        lr = loop.schedule.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # evaluate and checkpoint (the resumed step is done already)
        if loop.checkpoint_at(step) and not (resumed and step == start_step):
            latest = {f"{name}/{k}": v for name, docs in evals.items() for k, v in
                      teacher_forced_metrics(forward, docs, loop.output_start, loop.eval_batch_size,
                                             loop.bf16).items()}
            stop_if_diverged("the training loss since the last log", loss_sum.item())
            for name in EVAL_CORPORA:
                stop_if_diverged(f"the {name} loss", latest[f"{name}/loss"])
            run_log.log({"event": "eval", "step": step, **latest})
            bar.write(eval_line(step, latest))
            save(step, latest)
            last_saved = step
            t_log, timed_steps = time.perf_counter(), 0  # evaluation time does not count in tokens/s
        if step == max_steps:
            break

        if step // loop.steps_per_epoch != epoch:
            epoch = step // loop.steps_per_epoch
            perm = epoch_permutation(len(corpus), loop.seed, epoch).to(device)
        i = step % loop.steps_per_epoch
        batch = corpus[perm[i * loop.batch_size : (i + 1) * loop.batch_size]]  # (B, doc_len)
        with autocast_context(device, loop.bf16):
            logits = forward(batch[:, :-1])  # (B, doc_len - 1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        loss.backward()
        if loop.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach()  # no host sync until the next log
        n_losses += 1
        timed_steps += 1
        step += 1
        bar.update()

        if step % loop.log_interval == 0 or step == max_steps:
            now = time.perf_counter()
            record = {"event": "train", "step": step, "lr": lr, "loss": loss_sum.item() / n_losses,
                      "tokens_per_s": timed_steps * tokens_per_step / (now - t_log)}
            stop_if_diverged("the training loss", record["loss"])
            run_log.log(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")
            loss_sum.zero_()
            n_losses, timed_steps, t_log = 0, 0, now
    bar.close()
    return latest or {}
