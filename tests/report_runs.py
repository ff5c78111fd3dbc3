"""Report test fixtures: real runs of the pipeline's stages on a tiny task, and variants of them in memory.

`make_results` runs 01_generate_data / 02_train / 03_evaluate_i (and _o, 05_analyze where a finding needs them)
through their stage functions on a 27-composition task (A=4, m=2, L=3, N=2; base set 7), a 1-layer 16-wide model
and 30 training steps: every file the report reads has the format the stages write, whatever they write next.
`variant` copies such a run in memory with other settings and accuracies, keeping the real columns and rows; the
criteria's boundaries are tested on these.
"""

import dataclasses
from pathlib import Path

import numpy as np

from pipeline import analyze, evaluate, generate, train
from report.runs import Run
from tests.conftest import stage_config

TASK = ["n_alphabets=4", "seq_len=2", "function.depth=3", "function.n_functions=2", "ndocuments=600",
        "neval_documents=50"]
BASE_SET = 1 + 3 * 2  # the base set's count at L=3, N=2
NET = ["net.n_layer=1", "net.n_embd=16", "device=cpu", "data.batch_size=20", "log.eval_interval=10",
       "log.eval_documents=20", "optimizer.learning_rate=1e-2", "optimizer.warmup_iters=5"]
EVAL = ["nsamples=4", "min_group_samples=0", "device=cpu"]
# tag -> (dataset overrides, net overrides, out-of-order evaluation, analysis)
RUNS = {
    **{f"random9{f'_seed{s}' * bool(s)}": ([f"seed={s}"], [], True, s == 0) for s in (0, 1, 2)},
    "random7": ([f"function.split.n_compositions={BASE_SET}"], [], False, False),
    "base0": (["function.split.strategy=base", "function.split.n_compositions=0"], [], False, False),
    "base2": (["function.split.strategy=base", "function.split.n_compositions=2"], [], False, False),
    "base_combo2": (["function.split.strategy=base_combo", "function.split.n_compositions=2"], [], True, False),
    "direct_random9": (["direct=true"], [], False, False),
    "random9_lstm": ([], ["net=lstm", "net.n_layer=1", "net.n_embd=16"], False, False),
}


def make_results(root: Path) -> Path:
    """Generate, train and evaluate every run of RUNS under root; returns root/results."""
    for tag, (gen, net, outorder, analysed) in RUNS.items():
        data, ckpts, results = root / "data" / tag, root / "ckpts" / tag, root / "results" / tag
        generate.run(stage_config("gen", [*TASK, "function.split.n_compositions=9", *gen, f"out_dir={data}"]))
        train.run(stage_config("train", [f"data.path={data}", f"out_dir={ckpts}", f"tag={tag}", *NET, *net]))
        where = [f"ckpt_dir={ckpts}", f"out_dir={results}", f"tag={tag}", *EVAL]
        evaluate.run_inorder(stage_config("eval", [*where, "nckpts=3"]))
        if outorder:
            evaluate.run_outorder(stage_config("eval", [*where, "max_per_pattern=2"]))
        if analysed:
            analyze.run(stage_config("analyze", [f"ckpt_tag={tag}", f"ckpt_dir={ckpts}", f"out_dir={results}/analysis",
                                                 "nsamples=20", "ablation_nsamples=1", "device=cpu",
                                                 "probe.max_iter=5"]))
    return root / "results"


def _with_accuracy(table: dict, train: float, unseen: float, by_k: dict[int, float] | None, curve) -> dict:
    """A copy of an in-order table whose every metric column reads `train` on training compositions, `unseen`
    (or by_k[k] for k-function ones) on the others; or curve(step, k) on every composition."""
    acc = np.where(table["in_train"], train, unseen)
    for k, value in (by_k or {}).items():
        acc = np.where(~table["in_train"] & (table["n_functions"] == k), value, acc)
    if curve is not None:
        acc = np.array([curve(s, k) for s, k in zip(table["step"].tolist(), table["n_functions"].tolist(),
                                                    strict=True)])
    return {**table, **{c: acc.copy() for c in ("token_acc", "seq_acc", "tf_acc")}}


def variant(run: Run, tag: str, *, seed: int = 0, split: dict | None = None, train: float = 1.0,
            unseen: float = 0.9, by_k: dict[int, float] | None = None, by_disp: dict[int, float] | None = None,
            curve=None, last_step: int | None = None, rewrite=None, mechanism: dict | None = None) -> Run:
    """`run` with another tag and seed, split settings (`split` updates data.function.split) and accuracies:
    `train` on its training compositions, `unseen` (or by_k) on the other in-order ones, or curve(step, k) on
    every in-order one; by_disp[d] on the out-of-order ones of displacement d; `last_step` drops the checkpoints
    after it; rewrite(in-order table) -> the table kept (after the above); `mechanism`: its analysis numbers."""
    data = {**run.data, "seed": seed, "tag": tag,
            "function": {**run.data["function"], "split": {**run.data["function"]["split"], **(split or {})}}}
    inorder = outorder = None
    if run.inorder is not None:
        inorder = _with_accuracy(run.inorder, train, unseen, by_k, curve)
        if last_step is not None:
            keep = inorder["step"] <= last_step
            inorder = {c: v[keep] for c, v in inorder.items()}
        if rewrite is not None:
            inorder = rewrite(inorder)
    if run.outorder is not None and by_disp is not None:
        acc = np.vectorize(lambda d: by_disp.get(int(d), unseen))(run.outorder["displacement"]).astype(float)
        outorder = {**run.outorder, **{c: acc.copy() for c in ("token_acc", "seq_acc", "tf_acc")}}
    return dataclasses.replace(run, tag=tag, info={**run.info, "tag": tag, "data": data}, inorder=inorder,
                               outorder=outorder, mechanism=mechanism)
