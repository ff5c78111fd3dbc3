"""Evaluation: metrics through the real code with stand-in models of known accuracy (which output each metric
scores, against a truth computed independently), the out-of-order groups, checkpoint selection, the result files
of checkpoints the real trainer wrote, checkpoints from another device, and one-line errors."""

import csv
import io
import itertools
import json
import re
import shutil
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from net.checkpoint import checkpoint_path
from net.decode import naive_greedy_decode
from net.evaluate import (
    EvaluationError,
    evaluate_compositions,
    in_train_mask,
    inorder_summary,
    input_batches,
    outorder_summary,
    samples_per_composition,
    select_checkpoints,
)
from pipeline import generate, train
from pipeline.evaluate import run_inorder, run_outorder
from synthetic.compositions import (
    displacement_of,
    inorder_compositions,
    n_functions_of,
    outorder_compositions,
    training_compositions,
)
from synthetic.dataset import load_dataset
from synthetic.functions import FunctionTables, sample_functions
from synthetic.task import TaskSpec
from tests.conftest import ROOT, TINY_DATA, ForkRunner, compose_config, stage_config
from tests.independent_checker import after_prompt
from tests.task_models import NoisyOracle, Oracle, RandomData, TrainOnly, WrongAt, output_positions

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["function.depth=3", "function.n_functions=2", "function.split.n_compositions=5"]  # 27 in-order


def small_task(direct: bool = False, permute: bool = False, depth: int = 3, n_functions: int = 2):
    spec = TaskSpec(n_alphabets=10, seq_len=6, depth=depth, n_functions=n_functions, direct=direct)
    functions = sample_functions(np.random.default_rng(0), spec, frozenset({0} if permute else ()), repeat=False)
    return spec, functions


def scores_of(model, spec, functions, comps, nsamples=8, seed=0, batch_size=64, **kw):
    return evaluate_compositions(model, spec, functions, comps, nsamples=nsamples, seed=seed,
                                 batch_size=batch_size, device=CPU, **kw)


# ---- metrics, through the real evaluation code ----


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("permute", [False, True])
def test_oracle_scores_one_on_every_metric(direct, permute):
    spec, functions = small_task(direct, permute)
    comps = inorder_compositions(spec.depth, spec.n_functions)
    in_train = np.arange(len(comps)) % 3 == 0
    scores = scores_of(Oracle(spec, functions), spec, functions, comps, n_failures=3)
    summary = inorder_summary(spec, scores, comps, in_train)
    groups = [summary["overall"], summary["train"], summary["unseen"], *summary["by_n_functions"]]
    names = ["token_acc", "seq_acc", "tf_acc"] + ([] if direct else ["y1_acc", "y2_acc", "y3_acc"])
    assert all(g[name] == 1.0 for g in groups for name in names)
    assert all(g["token_acc_se"] == 0.0 for g in groups)
    assert scores.failures == []
    out = outorder_compositions(np.random.default_rng(0), spec.depth, spec.n_functions, 5)
    out_summary = outorder_summary(spec, scores_of(Oracle(spec, functions), spec, functions, out), out)
    assert all(g["token_acc"] == g["seq_acc"] == g["tf_acc"] == 1.0 for g in out_summary["groups"])


def test_uniform_random_model_scores_chance():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    scores = scores_of(RandomData(spec), spec, functions, comps, nsamples=100, batch_size=1000, n_failures=2)
    overall = inorder_summary(spec, scores, comps, np.zeros(len(comps), dtype=bool))["overall"]
    # 27 * 100 samples * 6 tokens: a standard error of 0.004 around 1/A = 0.1
    assert abs(overall["token_acc"] - 0.1) < 0.02
    assert abs(overall["tf_acc"] - 0.1) < 0.02
    assert abs(overall["y1_acc"] - 0.1) < 0.02
    assert overall["seq_acc"] < 0.01
    assert 0.002 < overall["token_acc_se"] < 0.006
    assert len(scores.failures) == 2


def test_model_right_only_on_training_compositions():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    train = training_compositions(np.random.default_rng(1), spec.depth, spec.n_functions, "random", 5)
    in_train = in_train_mask(comps, train)
    assert in_train.sum() == 5
    scores = scores_of(TrainOnly(spec, functions, train), spec, functions, comps)
    summary = inorder_summary(spec, scores, comps, in_train)
    assert summary["train"]["token_acc"] == summary["train"]["seq_acc"] == summary["train"]["tf_acc"] == 1.0
    assert summary["unseen"]["token_acc"] == summary["unseen"]["tf_acc"] == 0.0
    assert summary["unseen"]["n_compositions"] == 22 and summary["train"]["n_samples"] == 5 * 8
    np.testing.assert_array_equal(scores.token_acc, in_train.astype(float))


def test_inputs_come_from_the_seed_alone():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)
    model = RandomData(spec)
    a = scores_of(model, spec, functions, comps, batch_size=7)
    b = scores_of(model, spec, functions, comps, batch_size=1000)
    c = scores_of(model, spec, functions, comps, seed=1)
    np.testing.assert_array_equal(a.token_acc, b.token_acc)
    np.testing.assert_array_equal(a.step_acc, b.step_acc)
    assert not np.array_equal(a.token_acc, c.token_acc)


def test_small_groups_get_more_samples():
    groups = np.array([0, 0, 0, 1, 2, 2])
    assert samples_per_composition(groups, 5, 12).tolist() == [5, 5, 5, 12, 6, 6]
    assert samples_per_composition(groups, 5, 0).tolist() == [5] * 6
    pairs = np.array([[0, 1], [0, 1], [1, 0]])
    assert samples_per_composition(pairs, 1, 10).tolist() == [5, 5, 10]


def test_unequal_samples_weigh_compositions_equally():
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)[:4]
    train = comps[:1]
    n_samples = np.array([50, 2, 2, 2])
    scores = scores_of(TrainOnly(spec, functions, train), spec, functions, comps, nsamples=n_samples)
    summary = inorder_summary(spec, scores, comps, in_train_mask(comps, train))
    assert summary["overall"]["token_acc"] == 0.25 and summary["overall"]["n_samples"] == 56


# ---- which output each metric scores, against a truth of its own ----


def wrong_on(spec: TaskSpec, functions: FunctionTables, outputs: list[int]) -> WrongAt:
    """The oracle, wrong on every token of the given outputs (0-based: y_1 is 0) and right on the others."""
    return WrongAt(spec, functions, [c for k in outputs for c in output_positions(spec, k)])


@pytest.mark.parametrize("wrong", [[2], [0, 1], [1]], ids=["wrong-on-yL", "right-on-yL-only", "wrong-on-y2"])
def test_headline_metrics_score_the_final_output_and_each_step_its_own(wrong):
    spec, functions = small_task()  # L = 3
    comps = inorder_compositions(spec.depth, spec.n_functions)
    scores = scores_of(wrong_on(spec, functions, wrong), spec, functions, comps, nsamples=4)
    right = [0.0 if k in wrong else 1.0 for k in range(spec.depth)]
    assert scores.token_acc.tolist() == scores.seq_acc.tolist() == scores.tf_acc.tolist() == [right[-1]] * 27
    assert scores.step_acc.tolist() == scores.tf_step_acc.tolist() == [right] * 27
    overall = inorder_summary(spec, scores, comps, np.zeros(27, dtype=bool))["overall"]
    assert [overall[f"y{k}_acc"] for k in (1, 2, 3)] == [overall[f"tf_y{k}_acc"] for k in (1, 2, 3)] == right
    assert overall["token_acc"] == overall["seq_acc"] == overall["tf_acc"] == right[-1]


def independent_scores(model: nn.Module, spec: TaskSpec, functions: FunctionTables, comps: np.ndarray,
                       nsamples: int, seed: int) -> dict[str, np.ndarray]:
    """The per-composition metrics from their definitions (docs/task.md §8), sample by sample and token by token:
    true documents from the independent checker's application of the stored tables, free generation by naive
    greedy decoding, y_L as the last m columns. Only the inputs are the evaluator's (input_batches)."""
    P, m, T = spec.prompt_len, spec.seq_len, spec.doc_len
    levels = functions.to_json()["levels"]
    outputs = [output_positions(spec, k) for k in range(spec.n_steps)]
    free, forced = np.zeros((len(comps), len(outputs))), np.zeros((len(comps), len(outputs)))
    token, seq, tf_token = np.zeros(len(comps)), np.zeros(len(comps)), np.zeros(len(comps))
    for rows, xs in input_batches(spec, np.full(len(comps), nsamples), seed, 64, with_replacement=True):
        docs = []
        for r, x in zip(rows.tolist(), xs.tolist(), strict=True):
            comp = comps[r].tolist()
            prompt = [spec.start_id, *(spec.task_token(d, i) for d, i in comp), spec.sep_id, *x, spec.sep_id]
            docs.append(prompt + after_prompt(levels, comp, x, spec.direct, spec.sep_id))
        truth = torch.tensor(docs)
        generated = naive_greedy_decode(model, truth[:, :P], T).tolist()
        with torch.no_grad():
            predicted = model(truth[:, :-1]).argmax(-1).tolist()  # column c - 1 predicts column c
        for r, doc, gen, pred in zip(rows.tolist(), docs, generated, predicted, strict=True):
            for k, cols in enumerate(outputs):
                free[r, k] += sum(gen[c] == doc[c] for c in cols)
                forced[r, k] += sum(pred[c - 1] == doc[c] for c in cols)
            token[r] += sum(gen[c] == doc[c] for c in range(T - m, T))
            seq[r] += gen[T - m :] == doc[T - m :]
            tf_token[r] += sum(pred[c - 1] == doc[c] for c in range(T - m, T))
    n = nsamples * m
    return {"token_acc": token / n, "seq_acc": seq / nsamples, "tf_acc": tf_token / n, "step_acc": free / n,
            "tf_step_acc": forced / n}


@pytest.mark.parametrize(("direct", "permute", "outorder"), [(False, False, False), (False, True, True),
                                                             (True, False, False)],
                         ids=["stepbystep", "permute-outorder", "direct"])
def test_metrics_agree_with_an_independent_truth(direct, permute, outorder):
    spec, functions = small_task(direct, permute)
    comps = (outorder_compositions(np.random.default_rng(0), spec.depth, spec.n_functions, 1) if outorder
             else inorder_compositions(spec.depth, spec.n_functions))
    model = NoisyOracle(spec, functions, one_in=3)  # mistakes in every output, at random
    scores = scores_of(model, spec, functions, comps, nsamples=4)
    expected = independent_scores(model, spec, functions, comps, nsamples=4, seed=0)
    assert 0.1 < expected["token_acc"].mean() < 0.9 and 0.0 < expected["seq_acc"].mean() < 1.0
    if not direct:  # the outputs differ: a metric that scored another output than its own would show
        assert not np.array_equal(expected["step_acc"][:, 0], expected["token_acc"])
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(scores, name), value, rtol=0, atol=1e-12, err_msg=name)


def test_a_single_teacher_forced_mistake_is_decoded_wherever_it_is():
    """The evaluation decodes only the rows with a teacher-forced mistake (net.decode.generate_and_teacher_force):
    a model whose one mistake is at any data column after the prompt must show it in free generation too, in that
    output's accuracy and nowhere else."""
    spec, functions = small_task()
    comps = inorder_compositions(spec.depth, spec.n_functions)[::9]  # 3 compositions
    m = spec.seq_len
    for k in range(spec.depth):
        right = [(m - (j == k)) / m for j in range(spec.depth)]
        for col in output_positions(spec, k):
            scores = scores_of(WrongAt(spec, functions, [col]), spec, functions, comps, nsamples=2)
            assert scores.step_acc.tolist() == scores.tf_step_acc.tolist() == [right] * 3, col
            assert scores.seq_acc.tolist() == [float(k < spec.depth - 1)] * 3, col


# ---- out-of-order groups against hand-counted combinatorics (L=3, N=2) ----

# (#identities, displacement) -> compositions. A slot is the identity (1 way), its own level's function
# (N=2 ways) or another level's function ((L-1)*N = 4 ways): patterns x ways, e.g. (1, 1): 3*2 patterns x 2*4.
HAND_COUNTED = {(0, 0): 8, (0, 1): 48, (0, 2): 96, (0, 3): 64, (1, 0): 12, (1, 1): 48, (1, 2): 48,
                (2, 0): 6, (2, 1): 12, (3, 0): 1}
# with at most 3 per pattern: patterns x min(pattern size, 3)
HAND_COUNTED_CAP3 = {(0, 0): 3, (0, 1): 9, (0, 2): 9, (0, 3): 3, (1, 0): 9, (1, 1): 18, (1, 2): 9,
                     (2, 0): 6, (2, 1): 9, (3, 0): 1}


def brute_force_labels(comp) -> tuple[int, int]:
    """(#identities, displacement) of one composition, straight from the definitions."""
    return sum(i == 0 for _, i in comp), sum(d != k for k, (d, _) in enumerate(comp))


def test_outorder_groups_match_hand_counts():
    L, N = 3, 2
    comps = outorder_compositions(np.random.default_rng(0), L, N, max_per_pattern=10**6)
    every = [c for c in itertools.product(*[[(k, 0)] + [(d, i) for d in range(L) for i in range(1, N + 1)]
                                            for k in range(L)])]
    assert len(every) == 7**3 == sum(HAND_COUNTED.values())
    assert sorted(map(str, comps.tolist())) == sorted(str([list(s) for s in c]) for c in every)
    labels = [brute_force_labels(c) for c in comps.tolist()]
    assert Counter(labels) == HAND_COUNTED
    assert np.array_equal(L - n_functions_of(comps), [n for n, _ in labels])
    assert np.array_equal(displacement_of(comps), [d for _, d in labels])
    spec, functions = small_task()
    summary = outorder_summary(spec, scores_of(Oracle(spec, functions), spec, functions, comps, nsamples=1), comps)
    assert {(g["n_identity"], g["displacement"]): g["n_compositions"] for g in summary["groups"]} == HAND_COUNTED


def test_outorder_groups_with_a_cap_per_pattern():
    comps = outorder_compositions(np.random.default_rng(0), 3, 2, max_per_pattern=3)
    assert len({str(c) for c in comps.tolist()}) == len(comps)
    assert Counter(brute_force_labels(c) for c in comps.tolist()) == HAND_COUNTED_CAP3


# ---- checkpoint selection ----

STEPS = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1050]
CKPTS = [(s, Path(f"ckpt_{s}.pt")) for s in STEPS]


@pytest.mark.parametrize(("xlim", "nckpts", "expected"), [
    ((None, None), 3, [0, 600, 1050]),
    ((None, None), 2, [0, 1050]),
    ((None, None), 1, [1050]),
    ((None, None), 50, STEPS),
    ((200, 700), 2, [200, 700]),
    ((200, None), 4, [200, 500, 800, 1050]),
    ((None, 450), 3, [0, 200, 400]),
])
def test_select_checkpoints(xlim, nckpts, expected):
    assert [s for s, _ in select_checkpoints(CKPTS, xlim, nckpts)] == expected


def test_select_checkpoints_spreads_distinct_steps_with_both_ends():
    for n in range(1, 30):
        ckpts = [(10 * s, Path()) for s in range(n)]
        for k in range(2, n + 1):
            chosen = [s for s, _ in select_checkpoints(ckpts, (None, None), k)]
            assert len(set(chosen)) == k and chosen == sorted(chosen)
            assert chosen[0] == 0 and chosen[-1] == 10 * (n - 1)


def test_select_checkpoints_outside_xlim_is_an_error():
    with pytest.raises(EvaluationError, match=r"xlim=\[2000, None\] holds none of the checkpoint steps \(0..1050\)"):
        select_checkpoints(CKPTS, (2000, None), 3)


# ---- the stages end to end, on checkpoints of the real trainer ----

TINY_NET = ["net.n_layer=1", "net.n_head=1", "net.n_embd=16", "net.context_size=32"]


def write_checkpoints(ckpt_dir: Path, data_path: Path, steps: list[int]) -> None:
    """A tiny nanoGPT trained on CPU by the real training stage (02_train.py's), its checkpoints at `steps`:
    0, s, 2s, ..., the last one the run's end (data.batch_size chosen for that)."""
    n_train = len(np.load(data_path / "train.npy", mmap_mode="r"))
    batch_size = n_train // steps[-1]
    assert steps == list(range(0, steps[-1] + 1, steps[1])) and n_train // batch_size == steps[-1], steps
    train.run(stage_config("train", [f"data.path={data_path}", f"out_dir={ckpt_dir}", "device=cpu", *TINY_NET,
                                     f"data.batch_size={batch_size}", f"log.eval_interval={steps[1]}"]))


def as_saved_on_cuda(path: Path) -> None:
    """Rewrite a CPU checkpoint so that its tensors say they live on cuda:0, as one written on a GPU does."""
    with zipfile.ZipFile(path) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    name = next(n for n in entries if n.endswith("/data.pkl"))
    # the pickled location string after a storage's key (the later storages refer to it), not a config's "cpu"
    location = re.compile(rb"(X[\x01-\x09]\x00\x00\x00\d+(?:q[\s\S]|r[\s\S]{4}))X\x03\x00\x00\x00cpu")
    entries[name], found = location.subn(lambda m: m[1] + b"X\x06\x00\x00\x00cuda:0", entries[name])
    assert found == 1
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, checkpoint folder at steps 0, 10, 20, 30) of one real training run, shared by this module."""
    root = tmp_path_factory.mktemp("trained")
    generate.run(stage_config("gen", [*TINY_DATA, *SMALL, f"out_dir={root / 'data'}"]))
    write_checkpoints(root / "ckpts", root / "data", [0, 10, 20, 30])
    return root / "data", root / "ckpts"


@pytest.fixture
def run_dirs(tmp_path, trained):
    """(dataset, this test's own copy of the checkpoint folder, results folder)."""
    data, ckpts = trained
    shutil.copytree(ckpts, tmp_path / "ckpts")
    return data, tmp_path / "ckpts", tmp_path / "results"


def eval_config(stage: str, ckpts: Path, out: Path, *overrides: str) -> dict:
    return stage_config("eval", [f"ckpt_dir={ckpts}", f"out_dir={out}", "nsamples=4", "min_group_samples=0",
                                 *overrides])


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_both_stages_write_their_results(run_dirs, capsys):
    _, ckpts, out = run_dirs
    at_least = "min_group_samples=30"
    inorder = run_inorder(eval_config("i", ckpts, out, "nckpts=3", at_least))
    outorder = run_outorder(eval_config("o", ckpts, out, "max_per_pattern=3", at_least))
    rows = read_csv(out / "inorder.csv")
    assert list(rows[0]) == ["run", "step", "composition", "n_functions", "displacement", "in_train", "token_acc",
                             "seq_acc", "tf_acc", "n_samples", "y1_acc", "y2_acc", "y3_acc", "tf_y1_acc", "tf_y2_acc",
                             "tf_y3_acc"]
    assert len(rows) == 3 * 27 and [r["step"] for r in rows[::27]] == ["0", "20", "30"]
    assert rows[5]["composition"] == "T0_0 T1_1 T2_2" and rows[5]["n_functions"] == "2"
    assert sum(int(r["in_train"]) for r in rows) == 3 * 5 and all(r["displacement"] == "0" for r in rows)
    orows = read_csv(out / "outorder.csv")
    assert list(orows[0]) == ["run", "step", "composition", "n_identity", "displacement", "token_acc", "seq_acc",
                              "tf_acc", "in_train", "n_samples"]
    assert len(orows) == sum(HAND_COUNTED_CAP3.values()) and all(r["step"] == "30" for r in orows)
    summary = json.loads((out / "summary.json").read_text())
    written = {k: v for k, v in summary["inorder"].items() if k != "files"}
    assert written == json.loads(json.dumps(inorder)) and summary["outorder"]["step"] == 30
    assert {k: v for k, v in summary["outorder"].items() if k != "files"} == json.loads(json.dumps(outorder))
    assert [s["step"] for s in summary["inorder"]["steps"]] == [0, 20, 30]
    last = summary["inorder"]["steps"][-1]
    groups = [last["train"], last["unseen"], *last["by_n_functions"], *summary["outorder"]["groups"]]
    assert min(g["n_samples"] for g in groups) >= 30
    assert last["by_n_functions"][0]["n_samples"] == 30  # the all-identity composition alone: raised from 4
    assert sum(int(r["n_samples"]) for r in rows[:27]) == last["overall"]["n_samples"]
    run = json.loads((out / "run.json").read_text())  # for 04_report.py
    assert run["model"]["kind"] == "nanogpt" and run["data"]["function"]["depth"] == 3 and run["tag"]
    assert run["train"]["data"] == {"batch_size": 13} and run["train"]["optimizer"]["learning_rate"] == 3e-4
    assert (out / "metrics.jsonl").read_text() == (ckpts / "metrics.jsonl").read_text() != ""
    text = capsys.readouterr().out
    assert "in-order: 27 compositions" in text and "failing samples at step 30:" in text
    assert "out-of-order at step 30" in text and text.count("    generated  ") == 3 + 3
    assert not list(out.glob(".*tmp*"))  # nothing half-written left behind


@pytest.mark.parametrize("wrong", [[2], [0, 1]], ids=["wrong-on-yL", "right-on-yL-only"])
def test_stages_score_the_final_output_and_each_step_its_own(run_dirs, monkeypatch, wrong):
    data, ckpts, out = run_dirs
    ds = load_dataset(data)
    model = wrong_on(ds.spec, ds.functions, wrong)
    monkeypatch.setattr("pipeline.evaluate.load_model", lambda ckpt, device: model)
    run_inorder(eval_config("i", ckpts, out, "device=cpu", "nckpts=1", "nsamples=2"))
    run_outorder(eval_config("o", ckpts, out, "device=cpu", "max_per_pattern=1", "nsamples=2"))
    right = [0.0 if k in wrong else 1.0 for k in range(3)]
    final = ["token_acc", "seq_acc", "tf_acc"]
    rows, orows = read_csv(out / "inorder.csv"), read_csv(out / "outorder.csv")
    assert len(rows) == 27 and len(orows) == 27  # one composition per out-of-order pattern
    for row in rows:
        assert [float(row[name]) for name in final] == [right[-1]] * 3
        assert [float(row[f"y{k}_acc"]) for k in (1, 2, 3)] == [float(row[f"tf_y{k}_acc"]) for k in (1, 2, 3)] == right
    assert all([float(row[name]) for name in final] == [right[-1]] * 3 for row in orows)
    summary = json.loads((out / "summary.json").read_text())
    (at_step,) = summary["inorder"]["steps"]
    groups = [at_step["overall"], *at_step["by_n_functions"], summary["outorder"]["overall"],
              *summary["outorder"]["groups"]]
    assert all(g[name] == right[-1] for g in groups for name in final)
    assert [at_step["overall"][f"y{k}_acc"] for k in (1, 2, 3)] == right


def test_checkpoint_saved_on_another_device_evaluates_on_cpu(run_dirs):
    _, ckpts, out = run_dirs
    as_saved_on_cuda(checkpoint_path(ckpts, 30))
    if not torch.cuda.is_available():  # the rewrite really makes a GPU checkpoint
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(checkpoint_path(ckpts, 30), weights_only=True)
    config = eval_config("o", ckpts, out, "device=cpu", "max_per_pattern=3")
    summary = run_outorder(config)
    assert summary["step"] == 30 and summary["model"]["n_embd"] == 16
    assert summary["overall"]["n_compositions"] == sum(HAND_COUNTED_CAP3.values())


def test_reference_sizes_are_one_override_away():
    cpu, ref = compose_config("eval", []), compose_config("eval", ["sizes=reference"])
    assert (cpu.nckpts, cpu.nsamples, cpu.min_group_samples) == (6, 20, 420)
    assert (ref.nckpts, ref.nsamples, ref.min_group_samples) == (20, 100, 0)
    assert (cpu.max_per_pattern, ref.max_per_pattern) == (10, 500)


# ---- bad input fails in one line, through the real command line ----


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_input_fails_in_one_line(tmp_path, run_dirs, make_dataset):
    _, ckpts, out = run_dirs
    runner = ForkRunner(tmp_path / "runner")  # each command as `python 03_evaluate_*.py ...`, torch imported once

    def run_script(script: str, *overrides: str, cwd: Path):
        return runner.run([sys.executable, str(ROOT / script), *overrides, f"hydra.run.dir={cwd / 'logs' / 'hydra'}"],
                          cwd)

    try:
        line = one_line_error(run_script("03_evaluate_i.py", "ckpt_tag=no_such_run", cwd=tmp_path))
        assert line == "error: ckpt_dir='ckpts/no_such_run' does not exist; check ckpt_tag or train with 02_train.py"
        (tmp_path / "ckpts" / "empty").mkdir()
        line = one_line_error(run_script("03_evaluate_o.py", "ckpt_tag=empty", cwd=tmp_path))
        assert line == "error: ckpt_dir='ckpts/empty' holds no checkpoints (ckpt_<step>.pt)"
        other = make_dataset(*SMALL, "seed=1")
        line = one_line_error(run_script("03_evaluate_i.py", f"ckpt_dir={ckpts}", f"data_path={other}", cwd=tmp_path))
        assert "was trained on dataset" in line and "functions.json differs" in line
        line = one_line_error(run_script("03_evaluate_o.py", f"ckpt_dir={ckpts}", "lstm=true", cwd=tmp_path))
        assert "lstm=true disagrees with checkpoint" in line
    finally:
        ForkRunner.close_all([runner])
