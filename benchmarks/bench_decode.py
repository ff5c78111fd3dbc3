"""Greedy decoding and per-checkpoint evaluation: the project's path against the reference pipeline's.

Reference: documents built one by one in Python, every token decoded by re-running the whole growing sequence,
batches of 10 compositions x 100 samples, then a teacher-forced pass. Project: vectorized documents, a teacher-
forced pass first, KV-cache decoding of the rows it finds a mistake in, batches of 1024 sequences.
On CPU the times are CPU seconds of this process (time.process_time): on a shared machine they stay steady
where wall time does not, and with one thread (OMP_NUM_THREADS=1) they equal wall time on an idle machine.
The last section compares thread counts (threads=auto against threads=1) in wall time, the calls alternated.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from benchmarks.bench_generate import best_of as wall_best_of
from benchmarks.bench_generate import naive_documents
from net.checkpoint import list_checkpoints, load_checkpoint, load_model
from net.decode import greedy_decode, naive_greedy_decode, teacher_forced_argmax
from net.device import autocast_context, resolve_device
from net.evaluate import evaluate_compositions
from net.model import build_model
from pipeline.evaluate import DEFAULT_BATCH_SIZE
from pipeline.launch import resolve_threads
from synthetic.compositions import inorder_compositions
from synthetic.dataset import load_dataset
from synthetic.documents import make_documents, sample_inputs
from synthetic.functions import FunctionTables, sample_functions
from synthetic.task import TaskSpec

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_BATCH = 1000  # the reference's nbatch=10 compositions x nsamples=100
CHECKPOINT_SEQUENCES = 1024 * 100  # one default in-order checkpoint at the reference's nsamples
TIMED_SEQUENCES = 4096  # project path, per timed call


def default_model(spec: TaskSpec, device: torch.device) -> torch.nn.Module:
    """The default nanoGPT of config/train/net/nanogpt.yaml, random weights."""
    args = OmegaConf.to_container(OmegaConf.load(ROOT / "config" / "train" / "net" / "nanogpt.yaml"))
    args["vocab_size"] = args["vocab_size"] or spec.vocab_size
    torch.manual_seed(0)
    return build_model(args).to(device).eval()


def best_of(fn, repeats: int, device: torch.device) -> float:
    """Fastest of `repeats` calls: CPU seconds on CPU, wall seconds (synchronized) on CUDA."""
    if device.type != "cuda":
        return wall_best_of(fn, repeats, time.process_time)
    return wall_best_of(lambda: (fn(), torch.cuda.synchronize()), repeats)


def run(args: argparse.Namespace) -> None:
    device = resolve_device("auto")
    bf16 = device.type == "cuda"
    spec = TaskSpec(n_alphabets=10, seq_len=6, depth=5, n_functions=3)
    rng = np.random.default_rng(0)
    functions = sample_functions(rng, spec, frozenset(), repeat=False)
    comps = inorder_compositions(spec.depth, spec.n_functions)
    model = default_model(spec, device)
    batch = DEFAULT_BATCH_SIZE[device.type]
    n_fast = max(TIMED_SEQUENCES, batch)
    rows = rng.integers(0, len(comps), n_fast)
    docs = torch.from_numpy(make_documents(spec, functions, comps[rows], sample_inputs(rng, n_fast, spec))).to(device)
    prompts, T = docs[:, : spec.prompt_len], spec.doc_len

    def timed(fn) -> float:
        def call():
            with autocast_context(device, bf16):
                return fn()

        return best_of(call, args.repeats, device)

    fast = timed(lambda: [greedy_decode(model, prompts[i : i + batch], T) for i in range(0, n_fast, batch)])
    naive = timed(lambda: naive_greedy_decode(model, prompts[:REFERENCE_BATCH], T))
    with autocast_context(device, bf16):
        same = torch.equal(greedy_decode(model, prompts[:REFERENCE_BATCH], T),
                           naive_greedy_decode(model, prompts[:REFERENCE_BATCH], T))
    fast_rate, naive_rate = n_fast / fast, REFERENCE_BATCH / naive
    print(f"decode  default nanoGPT ({model.num_params():,} parameters, random weights), prompt {spec.prompt_len} -> "
          f"{T} tokens, {device}, {torch.get_num_threads()} threads, best of {args.repeats}"
          + ("" if device.type == "cuda" else ", CPU seconds"))
    print(f"  project (KV cache)        : {fast_rate:>10,.0f} sequences/s  ({n_fast:,} in {fast:.2f} s, "
          f"batches of {batch})")
    print(f"  reference (recompute)     : {naive_rate:>10,.0f} sequences/s  ({REFERENCE_BATCH:,} in {naive:.2f} s, "
          f"one batch)")
    print(f"  ratio                     : {fast_rate / naive_rate:>10.1f}x  (same tokens: {'yes' if same else 'NO'})")

    # One in-order checkpoint at the reference's sizes, projected from a timed slice.
    sub = comps[:: max(len(comps) // (n_fast // 4), 1)]  # spread over the compositions, 4 samples each

    def evaluation(m: torch.nn.Module, task: TaskSpec, tables: FunctionTables):
        return lambda: evaluate_compositions(m, task, tables, sub, nsamples=4, seed=0, batch_size=batch, device=device,
                                             bf16=bf16)

    reference_docs = best_of(lambda: naive_documents(rng, spec, functions, comps, REFERENCE_BATCH), args.repeats,
                             torch.device("cpu"))
    tf = timed(lambda: teacher_forced_argmax(model, docs[:REFERENCE_BATCH]))
    reference = CHECKPOINT_SEQUENCES * (reference_docs + naive + tf) / REFERENCE_BATCH
    project = evaluation(model, spec, functions)
    untrained = best = CHECKPOINT_SEQUENCES * timed(project) / (len(sub) * 4)
    print(f"one in-order checkpoint, 1024 compositions x 100 samples ({CHECKPOINT_SEQUENCES:,} sequences), projected")
    print(f"  reference (per-document Python, recompute, teacher-forced pass) : {reference:>8,.0f} s")
    print(f"  project, random weights (every row decoded)                      : {untrained:>8,.1f} s  "
          f"({reference / untrained:.1f}x)")
    found = list_checkpoints(args.ckpt_dir)
    if found:  # the newest checkpoint, on the dataset it was trained on
        step, path = found[-1]
        ckpt = load_checkpoint(path)
        ds = load_dataset(ckpt["data"]["path"])
        project = evaluation(load_model(ckpt, device), ds.spec, ds.functions)
        best = CHECKPOINT_SEQUENCES * timed(project) / (len(sub) * 4)
        print(f"  project, {f'{path} (step {step})':<57}: {best:>8,.1f} s  ({reference / best:.1f}x)")
    else:
        print(f"  (no checkpoint in --ckpt-dir={args.ckpt_dir}: train one to time a trained checkpoint too)")
    conf = OmegaConf.load(ROOT / "config" / "eval" / "sizes" / "cpu.yaml")  # the default sizes
    share = conf.nckpts * conf.nsamples / 100
    print(f"  default 03_evaluate_i.py (nckpts={conf.nckpts}, nsamples={conf.nsamples}): {share * best:,.0f}-"
          f"{share * untrained:,.0f} s (trained-untrained); reference: {share * reference:,.0f} s")
    if device.type == "cpu":
        thread_comparison(args.repeats, project,
                          lambda: (naive_documents(rng, spec, functions, comps, REFERENCE_BATCH),
                                   naive_greedy_decode(model, prompts[:REFERENCE_BATCH], T),
                                   teacher_forced_argmax(model, docs[:REFERENCE_BATCH])),
                          len(sub) * 4, REFERENCE_BATCH)


def thread_comparison(repeats: int, project, reference, n_project: int, n_reference: int) -> None:
    """Sequences/s of one evaluation call (`project`, n_project sequences) and of the reference's steps (`reference`,
    n_reference sequences) at threads=auto and threads=1, in wall time: each the best of `repeats`, alternated."""
    settings = list(dict.fromkeys([resolve_threads("auto"), 1]))
    seconds = {t: [float("inf"), float("inf")] for t in settings}
    for _ in range(repeats):
        for t in settings:
            torch.set_num_threads(t)
            for k, call in enumerate((project, reference)):
                start = time.perf_counter()
                call()
                seconds[t][k] = min(seconds[t][k], time.perf_counter() - start)
    rates = {t: (n_project / seconds[t][0], n_reference / seconds[t][1]) for t in settings}
    best_reference = max(r for _, r in rates.values())
    print(f"evaluation per sequence, wall time, threads=auto ({settings[0]} here) and threads=1, best of {repeats}")
    for t, (project_rate, reference_rate) in rates.items():
        print(f"  {t} thread(s): project {project_rate:>8,.0f} sequences/s, reference {reference_rate:>6,.0f}: project "
              f"{project_rate / best_reference:.1f}x the faster reference")
    if len(settings) == 2:
        print(f"  project, threads=auto vs threads=1: {rates[settings[0]][0] / rates[1][0]:.2f}x")
