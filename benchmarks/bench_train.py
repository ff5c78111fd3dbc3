"""Training tokens/s: the project's trainer (02_train.py's loop) against a straightforward reference step.

Reference, as the reference pipeline trained: a per-sample torch Dataset and DataLoader (shuffled batches of 16),
float32, torch's default AdamW (on CPU its per-parameter loop), torch's default thread count and one thread (ratios
use the faster). Project: the real
`pipeline.train.run` on its default config (on CPU: threads=auto, i.e. one per core for a single job, fused AdamW, the
corpus as one tensor; on CUDA: bf16), plus variants (CPU: threads=1 and bf16_cpu=true; CUDA: compile=true), each
`--repeats` times in turn (the best kept, so that a busy neighbour weighs on every variant alike), each on a temporary
dataset of the default shapes; tokens/s come from its metrics.jsonl, which excludes evaluation time (the wall time
with its two evaluations is printed too). Same model (config/train/net/nanogpt.yaml), same device.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from net.device import resolve_device
from net.model import build_model
from net.run_log import load_metrics
from pipeline import generate, train
from pipeline.cli import CONFIG
from pipeline.launch import resolve_threads
from pipeline.tags import name_run

BATCH = 16  # the default data.batch_size


def default_config(stage: str, overrides: list[str]) -> dict:
    """config/<stage>/conf.yaml with overrides, its run named as a script names it, resolved."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG / stage)):
        cfg = compose(config_name="conf", overrides=overrides)
    name_run(stage, cfg)
    return OmegaConf.to_container(cfg, resolve=True)


class Documents(TorchDataset):
    """One (input, target) pair per document, as a per-sample pipeline serves them."""

    def __init__(self, docs: np.ndarray) -> None:
        self.docs = docs

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        doc = torch.tensor(self.docs[i].astype(np.int64))
        return doc[:-1], doc[1:]


def reference_tokens_per_s(docs: np.ndarray, model_args: dict, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(model_args).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    loader = DataLoader(Documents(docs), batch_size=BATCH, shuffle=True, drop_last=True)
    tokens, start = 0, 0.0
    for i, (x, y) in enumerate(loader):
        if i == 10:  # warmed up
            if device.type == "cuda":
                torch.cuda.synchronize()
            tokens, start = 0, time.perf_counter()
        if i == 10 + steps:
            break
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += x.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def project_tokens_per_s(data_path: Path, out_dir: Path, overrides: list[str]) -> tuple[float, float]:
    """(tokens/s of the training steps, wall seconds of the whole call including its evaluations)."""
    cfg = default_config("train", [f"data.path={data_path}", f"out_dir={out_dir}", "log.eval_interval=100000",
                                   "log.log_interval=50", *overrides])
    start = time.perf_counter()
    train.run(cfg)
    seconds = time.perf_counter() - start
    records = [r for r in load_metrics(out_dir / "metrics.jsonl") if r["event"] == "train"][1:]  # skip warmup
    return float(np.mean([r["tokens_per_s"] for r in records])), seconds


def run(args: argparse.Namespace) -> None:
    steps = getattr(args, "train_steps", 1000)
    device = resolve_device("auto")
    tmp = tempfile.TemporaryDirectory()
    data_path = Path(tmp.name) / "data"
    ds = generate.run(default_config("gen", [f"ndocuments={BATCH * steps}", f"out_dir={data_path}"]))
    model_args = {**default_config("train", [])["net"], "vocab_size": ds.spec.vocab_size}
    references = {}
    for threads in dict.fromkeys([torch.get_num_threads(), 1]):  # torch's default, then one thread
        torch.set_num_threads(threads)
        references[threads] = reference_tokens_per_s(ds.train, model_args, max(steps // 4, 50), device)
    reference = max(references.values())  # ratios are taken against the faster reference
    cpu_variants = {"threads=1": ["threads=1"], "bf16_cpu=true": ["bf16_cpu=true"]}
    variants = {"defaults": [], **(cpu_variants if device.type == "cpu" else {"compile=true": ["compile=true"]})}
    results = {}
    with tmp:
        for repeat in range(getattr(args, "repeats", 1)):
            for name, overrides in variants.items():
                out_dir = Path(tmp.name) / f"{name.replace('=', '_')}{repeat}"
                measured = project_tokens_per_s(data_path, out_dir, overrides)  # (tokens/s, wall seconds)
                results[name] = max(results.get(name, measured), measured)
    tokens = ds.spec.doc_len - 1
    print(f"train on {device.type} ({steps} steps of {BATCH} x {tokens} tokens, default nanoGPT; threads=auto is "
          f"{resolve_threads('auto')} here):")
    for threads, rate in references.items():
        print(f"  reference (DataLoader, fp32, default AdamW, {threads} CPU threads): {rate:10,.0f} tokens/s")
    for name, (rate, seconds) in results.items():
        print(f"  project   02_train.py {name:<15} {rate:10,.0f} tokens/s  {rate / reference:5.1f}x   "
              f"({seconds:.1f} s wall for {steps} steps and 2 evaluations)")
    rate = results["defaults"][0]
    print(f"  the default run's 6,250 steps at the defaults' rate: {6250 * BATCH * tokens / rate:.0f} s "
          "plus its evaluations")
